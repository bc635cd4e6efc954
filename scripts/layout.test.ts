// The layout's boundaries (issue 15), checked on the sources: the server reaches the image
// builder through images/index.ts only, and host setup (provision/) and the Incus layer (incus/)
// never import the server, so `clincus setup` and the builder run without it.
import { readdir, readFile } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = resolve(import.meta.dirname, '..')

async function sources(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(join(root, dir), { withFileTypes: true, recursive: true })) {
    const name = entry.name
    if (entry.isFile() && name.endsWith('.ts') && !name.endsWith('.test.ts')) {
      out.push(relative(root, join(entry.parentPath, name)))
    }
  }
  return out
}

/** The repository-relative files a module imports (static and dynamic), relative paths only. */
async function imports(file: string): Promise<string[]> {
  const text = await readFile(join(root, file), 'utf8')
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((m) => m[1] ?? '')
  return specs.map((spec) => relative(root, resolve(root, file, '..', spec)))
}

describe('layout boundaries', () => {
  it('the server imports the image builder through images/index.ts only', async () => {
    const offending: string[] = []
    for (const file of await sources('server')) {
      for (const target of await imports(file)) {
        if (target.startsWith('images/') && target !== 'images/index.ts') {
          offending.push(`${file} -> ${target}`)
        }
      }
    }
    expect(offending).toEqual([])
  })

  it('provision/ and incus/ import nothing from server/ or images/', async () => {
    const offending: string[] = []
    const files = [...(await sources('provision')), ...(await sources('incus'))]
    expect(files).toContain('incus/cli.ts')
    for (const file of files) {
      for (const target of await imports(file)) {
        if (target.startsWith('server/') || target.startsWith('images/')) {
          offending.push(`${file} -> ${target}`)
        }
      }
    }
    expect(offending).toEqual([])
  })

  it('no incus process is started outside incus/ but by the driver’s monitor stream', async () => {
    const offending: string[] = []
    const files = [
      ...(await sources('server')),
      ...(await sources('images')),
      ...(await sources('provision')),
    ].filter((f) => !f.startsWith('server/test/'))
    for (const file of files) {
      const text = await readFile(join(root, file), 'utf8')
      if (/\b(?:run|execa)\(\s*'incus'/.test(text)) offending.push(file)
    }
    expect(offending).toEqual([])
  })
})
