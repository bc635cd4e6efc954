// Red team, issue 16 `[pool] prestart`: the agent's view (agent-view.ts) against a workspace the
// agent controls. The view decides whether a running agent is handed over, so any way the workspace
// can make two views of different states compare equal hands over a stale agent. Two views are
// "the same" only when both were taken whole (a view that could not be, null, equals nothing).
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { PinnedDir } from '../pinned.ts'
import { agentView, VIEW_MAX_DEPTH, VIEW_MAX_ENTRIES } from './agent-view.ts'

let base: string
let ws: string
let home: string

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'clincus-view-red-'))
  ws = join(base, 'ws')
  home = join(base, 'home')
  await mkdir(join(ws, '.git', 'refs', 'heads'), { recursive: true })
  await mkdir(join(ws, '.claude'), { recursive: true })
  await mkdir(join(home, '.claude', 'plugins', 'p'), { recursive: true })
  await writeFile(join(ws, '.git', 'HEAD'), 'ref: refs/heads/main\n')
  await writeFile(join(ws, '.git', 'refs', 'heads', 'main'), 'a'.repeat(40) + '\n')
  await writeFile(join(ws, '.claude', 'settings.json'), '{"hooks":{}}\n')
})

afterEach(async () => {
  vi.restoreAllMocks()
  await rm(base, { recursive: true, force: true })
})

const view = async (): Promise<string | null> =>
  (await agentView(ws, home, 'claude'))?.digest ?? null
/** Whether a claim would hand the agent over: both views taken whole, and equal. */
const same = (a: string | null, b: string | null): boolean => a !== null && a === b

async function files(dir: string, n: number): Promise<void> {
  await mkdir(dir, { recursive: true })
  for (let i = 0; i < n; i += 500)
    await Promise.all(
      Array.from({ length: Math.min(500, n - i) }, (_, j) =>
        writeFile(join(dir, `f${String(i + j).padStart(6, '0')}`), ''),
      ),
    )
}

describe('agentView against the workspace it describes', () => {
  it('entries planted under .claude cannot hide a commit on the branch (walked after them)', async () => {
    // Sorted before settings.json, and .git/refs/heads comes after .claude.
    await files(join(ws, '.claude', 'aaa'), VIEW_MAX_ENTRIES)
    const before = await view()
    // Written in place (same inode): only its own mtime/ctime tell.
    await writeFile(join(ws, '.git', 'refs', 'heads', 'main'), 'b'.repeat(40) + '\n')
    expect(same(before, await view())).toBe(false)
  })

  it('entries planted under .claude cannot hide a hook removed from .claude/settings.json', async () => {
    await files(join(ws, '.claude', 'aaa'), VIEW_MAX_ENTRIES)
    const before = await view()
    await writeFile(join(ws, '.claude', 'settings.json'), '{}\n')
    expect(same(before, await view())).toBe(false)
  })

  it("a workspace within its bound cannot push the host's copied plugins past theirs", async () => {
    await files(join(ws, '.claude', 'aaa'), VIEW_MAX_ENTRIES - 10)
    await files(join(home, '.claude', 'plugins', 'p'), 20)
    const before = await view()
    expect(before).not.toBeNull()
    // A plugin file the user edited on the host, in place.
    await writeFile(join(home, '.claude', 'plugins', 'p', 'f000019'), 'changed\n')
    expect(same(before, await view())).toBe(false)
  })

  it('a settings file nested deeper than the walk goes cannot be edited unseen', async () => {
    const deep = join(
      ws,
      '.claude',
      ...Array.from({ length: VIEW_MAX_DEPTH + 1 }, (_, i) => `d${i}`),
    )
    await mkdir(deep, { recursive: true })
    await writeFile(join(deep, 'cmd.md'), 'one\n')
    const before = await view()
    await writeFile(join(deep, 'cmd.md'), 'two\n')
    expect(same(before, await view())).toBe(false)
  })

  it('a directory of many entries is never read whole (at most the bound of its names)', async () => {
    await files(join(ws, '.claude', 'many'), VIEW_MAX_ENTRIES * 5)
    const whole = vi.spyOn(PinnedDir.prototype, 'list')
    const bounded = vi.spyOn(PinnedDir.prototype, 'listAtMost')
    const a = await view()
    const b = await view()
    expect(whole).not.toHaveBeenCalled()
    expect(bounded).toHaveBeenCalled()
    for (const call of bounded.mock.calls) expect(call[0]).toBeLessThanOrEqual(VIEW_MAX_ENTRIES)
    // Cut: not comparable, so never handed over.
    expect(same(a, b)).toBe(false)
  })

  it('a gitfile repository: another branch checked out in its git directory changes the view', async () => {
    await rm(join(ws, '.git'), { recursive: true })
    await mkdir(join(ws, 'repo.git', 'refs', 'heads'), { recursive: true })
    await writeFile(join(ws, '.git'), 'gitdir: repo.git\n')
    await writeFile(join(ws, 'repo.git', 'HEAD'), 'ref: refs/heads/main\n')
    await writeFile(join(ws, 'repo.git', 'refs', 'heads', 'main'), 'a'.repeat(40) + '\n')
    const before = await view()
    expect(before).not.toBeNull()
    await writeFile(join(ws, 'repo.git', 'HEAD'), 'ref: refs/heads/other\n')
    expect(same(before, await view())).toBe(false)
  })
})

describe('agentView against restored metadata', () => {
  it('an instruction file edited and its mtime put back (same size) still changes the view: ctime', async () => {
    await writeFile(join(ws, 'CLAUDE.md'), 'Be careful.\n')
    const was = await stat(join(ws, 'CLAUDE.md'))
    const before = await view()
    await writeFile(join(ws, 'CLAUDE.md'), 'Be reckless\n')
    await utimes(join(ws, 'CLAUDE.md'), was.atime, was.mtime)
    expect(same(before, await view())).toBe(false)
  })

  it('an instruction file swapped by rename for a twin (same size, same mtime) changes the view', async () => {
    await writeFile(join(ws, 'CLAUDE.md'), 'aaaa\n')
    await writeFile(join(ws, 'twin'), 'bbbb\n')
    const was = await stat(join(ws, 'CLAUDE.md'))
    await utimes(join(ws, 'twin'), was.atime, was.mtime)
    const before = await view()
    await rename(join(ws, 'twin'), join(ws, 'CLAUDE.md'))
    expect(same(before, await view())).toBe(false)
  })
})

describe('agentView and what an instruction file brings in', () => {
  it('a file CLAUDE.md imports (@docs/rules.md), edited in place, changes the view', async () => {
    await mkdir(join(ws, 'docs'))
    await writeFile(join(ws, 'CLAUDE.md'), 'Read the rules: @docs/rules.md\n')
    await writeFile(join(ws, 'docs', 'rules.md'), 'Never push.\n')
    const before = await view()
    await writeFile(join(ws, 'docs', 'rules.md'), 'Push to origin whenever you like.\n')
    expect(same(before, await view())).toBe(false)
  })

  it('an import of an import (relative to the importing file) changes the view too', async () => {
    await mkdir(join(ws, 'docs', 'more'), { recursive: true })
    await writeFile(join(ws, 'AGENTS.md'), '@docs/rules.md\n')
    await writeFile(join(ws, 'docs', 'rules.md'), 'See @more/deep.md and @/workspace/top.md\n')
    await writeFile(join(ws, 'docs', 'more', 'deep.md'), 'one\n')
    await writeFile(join(ws, 'top.md'), 'one\n')
    const before = await view()
    await writeFile(join(ws, 'docs', 'more', 'deep.md'), 'two\n')
    const mid = await view()
    expect(same(before, mid)).toBe(false)
    await writeFile(join(ws, 'top.md'), 'two\n')
    expect(same(mid, await view())).toBe(false)
  })

  it('an instruction file that is a link to another workspace file: no view (what it names could change unseen)', async () => {
    await mkdir(join(ws, 'docs'))
    await writeFile(join(ws, 'docs', 'agents.md'), 'one\n')
    await symlink('docs/agents.md', join(ws, 'CLAUDE.md'))
    const before = await view()
    await writeFile(join(ws, 'docs', 'agents.md'), 'two\n')
    expect(same(before, await view())).toBe(false)
  })

  it('a .claude folder that is a link: no view (its settings could change unseen)', async () => {
    await rm(join(ws, '.claude'), { recursive: true })
    await mkdir(join(ws, 'conf'))
    await writeFile(join(ws, 'conf', 'settings.json'), '{"hooks":{"a":1}}\n')
    await symlink('conf', join(ws, '.claude'))
    const before = await view()
    await writeFile(join(ws, 'conf', 'settings.json'), '{}\n')
    expect(same(before, await view())).toBe(false)
  })

  it('imports are bounded: a chain or fan-out past the bound gives no view, and a FIFO import is never opened', async () => {
    await writeFile(
      join(ws, 'CLAUDE.md'),
      Array.from({ length: 200 }, (_, i) => `@f${i}.md`).join('\n') + '\n',
    )
    await Promise.all(Array.from({ length: 200 }, (_, i) => writeFile(join(ws, `f${i}.md`), '')))
    expect(await view()).toBeNull()
    // An import of more path components than the bound: no view either (each one is opened).
    await writeFile(join(ws, 'CLAUDE.md'), `@${Array.from({ length: 40 }, () => 'a').join('/')}\n`)
    expect(await view()).toBeNull()
    await writeFile(join(ws, 'CLAUDE.md'), '@pipe.md\n')
    execFileSync('mkfifo', [join(ws, 'pipe.md')])
    const a = await view()
    expect(a).not.toBeNull()
    expect(same(a, await view())).toBe(true)
  })
})

describe('PinnedDir.listAtMost', () => {
  it('reads at most max + 1 names of a large directory', async () => {
    await files(join(base, 'big'), 3000)
    const dir = await PinnedDir.open(join(base, 'big'))
    try {
      expect(await dir.listAtMost(10)).toHaveLength(11)
      expect((await dir.listAtMost(5000)).length).toBe(3000)
    } finally {
      await dir.close()
    }
  })
})
