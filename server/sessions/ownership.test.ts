// Issue 15 "one owner": the reconciler is the only writer of history and of session lifecycle
// events. A source scan keeps it that way (a new writer elsewhere fails here, not in a browser).
import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { repoRoot } from '../paths.ts'

async function sources(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...(await sources(path)))
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) out.push(path)
  }
  return out
}

async function filesMatching(pattern: RegExp): Promise<string[]> {
  const hits: string[] = []
  for (const file of await sources(join(repoRoot, 'server'))) {
    if (file.includes(join('server', 'test'))) continue
    if (pattern.test(await readFile(file, 'utf8'))) hits.push(relative(repoRoot, file))
  }
  return hits.sort()
}

describe('one owner of session state', () => {
  it('only the reconciler writes history', async () => {
    expect(await filesMatching(/\.record(Start|End)\(/)).toEqual(['server/sessions/reconciler.ts'])
  })

  it('only the lifecycle table names the session lifecycle events', async () => {
    expect(
      await filesMatching(/'session\.(created|started|stopped|deleted|frozen|thawed)'/),
    ).toEqual(['server/sessions/lifecycle.ts', 'server/sessions/reconciler.ts'])
  })

  it('only the reconciler holds the session cache', async () => {
    expect(await filesMatching(/new SessionCache\(/)).toEqual(['server/sessions/reconciler.ts'])
  })
})
