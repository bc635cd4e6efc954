// The view an agent started ahead had of the workspace (issue 16, `[pool] prestart`): what changes
// it, what does not, and that the agent's own tree cannot make the walk follow a link, hang on a
// FIFO or run without bound.
import { execFileSync } from 'node:child_process'
import { chown, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { agentView, VIEW_MAX_ENTRIES, viewChange, type AgentView } from './agent-view.ts'

let base: string
let ws: string
let home: string
let outside: string

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'clincus-view-'))
  ws = join(base, 'ws')
  home = join(base, 'home')
  outside = join(base, 'outside')
  await mkdir(join(ws, '.git', 'refs', 'heads'), { recursive: true })
  await mkdir(join(ws, '.claude', 'commands'), { recursive: true })
  await mkdir(join(ws, 'src'))
  await mkdir(join(home, '.claude'), { recursive: true })
  await mkdir(outside)
  await writeFile(join(ws, 'CLAUDE.md'), 'be nice\n')
  await writeFile(join(ws, '.git', 'HEAD'), 'ref: refs/heads/main\n')
  await writeFile(join(ws, '.git', 'refs', 'heads', 'main'), 'a'.repeat(40) + '\n')
  await writeFile(join(ws, 'src', 'x.ts'), 'export {}\n')
  await writeFile(join(home, '.claude', '.credentials.json'), '{"token":"one"}')
  await writeFile(join(home, '.claude.json'), JSON.stringify({ theme: 'dark', numStartups: 1 }))
  await writeFile(join(outside, 'secret.md'), 'outside\n')
})

afterEach(async () => {
  await rm(base, { recursive: true, force: true })
})

const view = async (): Promise<string | null> =>
  (await agentView(ws, home, 'claude'))?.digest ?? null

describe('agentView', () => {
  it('is the same for an unchanged workspace and home', async () => {
    const a = await view()
    expect(a).toMatch(/^[0-9a-f]{64}$/)
    expect(await view()).toBe(a)
  })

  it.each([
    ['an instruction file edited', () => writeFile(join(ws, 'CLAUDE.md'), 'be very nice\n')],
    ['an instruction file added', () => writeFile(join(ws, 'AGENTS.md'), 'hi\n')],
    [
      'a command added under .claude',
      () => writeFile(join(ws, '.claude', 'commands', 'go.md'), 'go\n'),
    ],
    [
      'another branch checked out',
      () => writeFile(join(ws, '.git', 'HEAD'), 'ref: refs/heads/b\n'),
    ],
    [
      'a commit on the branch',
      () => writeFile(join(ws, '.git', 'refs', 'heads', 'main'), 'b'.repeat(40) + '\n'),
    ],
    ['a staged change (the index)', () => writeFile(join(ws, '.git', 'index'), 'DIRC')],
    ['a file added at the top', () => writeFile(join(ws, 'NEW.txt'), 'x')],
    [
      'the host login renewed',
      () => writeFile(join(home, '.claude', '.credentials.json'), '{"token":"two"}'),
    ],
    [
      'a copied host setting changed',
      () =>
        writeFile(join(home, '.claude.json'), JSON.stringify({ theme: 'light', numStartups: 1 })),
    ],
  ])('changes when %s', async (_what, change) => {
    const before = await view()
    await change()
    expect(await view()).not.toBe(before)
  })

  it('names what changed, the most telling path first', async () => {
    const full = async (): Promise<AgentView> => {
      const v = await agentView(ws, home, 'claude')
      if (!v) throw new Error('no view')
      return v
    }
    const a = await full()
    expect(viewChange(a, await full())).toBeNull()
    // A new instruction file also changes the names at the top: the file is named.
    await writeFile(join(ws, 'AGENTS.md'), 'hi\n')
    const b = await full()
    expect(viewChange(a, b)).toBe('AGENTS.md')
    await writeFile(join(ws, 'NOTES.txt'), 'x')
    expect(viewChange(b, await full())).toBe('the list of files at the top of the workspace')
    const c = await full()
    await writeFile(join(home, '.claude', '.credentials.json'), '{"token":"two"}')
    expect(viewChange(c, await full())).toBe('~/.claude/.credentials.json')
  })

  it('does not change when the folder is only chowned or touched (nothing added or removed)', async () => {
    const before = await view()
    await chown(ws, 1000, 1000)
    await utimes(ws, new Date(), new Date())
    expect(await view()).toBe(before)
  })

  it("does not change for the host tool's own counters (keys the copy leaves out)", async () => {
    const before = await view()
    await writeFile(join(home, '.claude.json'), JSON.stringify({ theme: 'dark', numStartups: 9 }))
    expect(await view()).toBe(before)
  })

  it('does not see an edit deep in the working tree (documented: README "Pre-started agents")', async () => {
    const before = await view()
    await writeFile(join(ws, 'src', 'x.ts'), 'export const changed = 1\n')
    expect(await view()).toBe(before)
  })

  it('never follows a link the agent planted, as a file or as a directory', async () => {
    await rm(join(ws, 'CLAUDE.md'))
    await symlink(join(outside, 'secret.md'), join(ws, 'CLAUDE.md'))
    await rm(join(ws, '.claude'), { recursive: true })
    await symlink(outside, join(ws, '.claude'))
    await symlink(outside, join(ws, '.github'))
    // A link where the agent reads is never followed, so what it names could change unseen: no
    // view at all (red team: agent-view-red.test.ts), and nothing outside is read.
    expect(await view()).toBeNull()
  })

  it('takes no time over a FIFO in place of an instruction file (metadata only)', async () => {
    await rm(join(ws, 'CLAUDE.md'))
    execFileSync('mkfifo', [join(ws, 'CLAUDE.md')])
    const a = await view()
    expect(await view()).toBe(a)
  })

  it('walks a huge settings directory within its bound, and gives no view past it', async () => {
    const many = join(ws, '.claude', 'many')
    await mkdir(many)
    await Promise.all(
      Array.from({ length: VIEW_MAX_ENTRIES + 50 }, (_, i) => writeFile(join(many, `f${i}`), '')),
    )
    // Past the bound a change could hide (red team: agent-view-red.test.ts): no view at all.
    expect(await view()).toBeNull()
  })

  it('gives no view (null, equal to none) when the workspace cannot be walked', async () => {
    expect(await agentView(join(base, 'missing'), home, 'claude')).toBeNull()
  })
})
