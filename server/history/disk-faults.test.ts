// Write failures on a real filesystem: a tiny tmpfs that fills up, and a read-only one.
// Mounting needs root, which npm test has (it provisions Incus); elsewhere this is skipped.
import { execFileSync } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { buildTestApp, json } from '../test/helpers.ts'

const isRoot = process.getuid?.() === 0

function mountTmpfs(dir: string, options: string): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir])
  onTestFinished(() => {
    execFileSync('umount', ['-l', dir])
  })
}

async function fill(dir: string): Promise<void> {
  // Fill the filesystem up to the last byte.
  for (let i = 0; ; i++) {
    try {
      await writeFile(join(dir, `filler-${i}`), Buffer.alloc(1024, 120))
    } catch {
      break
    }
  }
  for (let i = 0; ; i++) {
    try {
      await writeFile(join(dir, `tiny-${i}`), 'x')
    } catch {
      break
    }
  }
}

describe.skipIf(!isRoot)('write failures (needs root to mount a tmpfs)', () => {
  it('a full disk under the history fails the launch clearly, rolls back, and leaves no half line', async () => {
    const t = await buildTestApp()
    const dir = join(t.home, '.clincus')
    await mkdir(dir, { recursive: true })
    mountTmpfs(dir, 'size=16k')
    const first = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(first.statusCode).toBe(200)
    // Pad the history to just under a page so the next record straddles the page boundary:
    // the first bytes fit, the rest meets a full disk.
    const current = await readFile(join(dir, 'history.jsonl'), 'utf8')
    const pad = 4096 - Buffer.byteLength(current) - 40
    await writeFile(
      join(dir, 'history.jsonl'),
      `${current}${JSON.stringify({ type: 'note', pad: 'p'.repeat(pad - 30) })}\n`,
    )
    const before = await readFile(join(dir, 'history.jsonl'), 'utf8')
    await fill(dir)
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode).toBe(500)
    expect(res.json<{ error: string }>().error).toMatch(
      /could not write session history .*ENOSPC|no space/i,
    )
    expect(t.driver.instances.size).toBe(1)
    const after = await readFile(join(dir, 'history.jsonl'), 'utf8')
    expect(after).toBe(before)
    expect(after.endsWith('\n')).toBe(true)
  })

  it('a read-only or full config directory fails PUT /api/config clearly and keeps the file whole', async () => {
    const t = await buildTestApp()
    const dir = join(t.home, '.config', 'clincus')
    const original = await readFile(t.configFile, 'utf8')
    mountTmpfs(dir, 'size=16k')
    await writeFile(t.configFile, original)
    await fill(dir)
    const full = await t.app.inject({ method: 'PUT', url: '/api/config', ...json({ port: 3999 }) })
    expect(full.statusCode).toBe(500)
    expect(full.json<{ error: string }>().error).toMatch(
      /could not save the configuration.*(ENOSPC|no space)/i,
    )
    expect(await readFile(t.configFile, 'utf8')).toBe(original)

    execFileSync('mount', ['-o', 'remount,ro', dir])
    const ro = await t.app.inject({
      method: 'POST',
      url: '/api/workspaces',
      ...json({ path: t.home }),
    })
    expect(ro.statusCode).toBe(500)
    expect(ro.json<{ error: string }>().error).toMatch(
      /could not save the configuration.*(EROFS|read-only)/i,
    )
    expect(await readFile(t.configFile, 'utf8')).toBe(original)
    expect(
      (await t.app.inject({ url: '/api/config' })).json<{ dashboard: { port: number } }>().dashboard
        .port,
    ).toBe(3000)
  })
})
