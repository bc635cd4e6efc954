// What an agent has read when it starts (issue 16, `[pool] prestart`): a primed member may start
// its agent before the click, and the agent then works from what it read at its start: its
// instruction files (CLAUDE.md, AGENTS.md, .github/copilot-instructions.md, …), its settings, MCP
// servers, commands and agents under .claude/.opencode, the git state Claude Code puts into its
// system prompt (branch, HEAD, the index), and the tool's config copied from the host home
// (credentials included). The view is a digest of those paths' identities (lstat: type, size,
// inode, mtime, ctime), taken when the agent starts and again at the claim; a claim whose view
// differs starts the agent again (launch-steps.ts), so a pre-started agent never works from an
// instruction file, a branch or a login older than the click.
//
// Not seen (README "Pre-started agents"): a change to an ordinary file of the working tree that
// touches none of these paths, which Claude Code's git status snapshot would have listed.
//
// The workspace is the agent's: every component is looked up without following links
// (PinnedDir), a link is recorded as a link, never followed, and the walk of a directory is
// bounded. Nothing is read but metadata, so a FIFO or a huge file costs nothing.
import { createHash } from 'node:crypto'
import type { Stats } from 'node:fs'
import type { ToolName } from '../../../shared/tools.ts'
import { PinnedDir } from '../pinned.ts'
import { planToolConfig } from '../tool-config.ts'
import { TOOL_SPECS } from '../tools.ts'

/** Files of the workspace an agent reads at its start, relative to it (any tool: one list). */
export const VIEW_FILES: readonly string[] = [
  'CLAUDE.md',
  'CLAUDE.local.md',
  'AGENTS.md',
  'AGENT.md',
  '.mcp.json',
  'opencode.json',
  'opencode.jsonc',
  '.github/copilot-instructions.md',
  '.git',
  '.git/HEAD',
  '.git/index',
  '.git/packed-refs',
  '.git/config',
]

/** Directories of the workspace walked whole (bounded): settings, commands, agents, branches. */
export const VIEW_DIRS: readonly string[] = [
  '.claude',
  '.opencode',
  '.github/instructions',
  '.github/prompts',
  '.git/refs/heads',
]

/** At most this many entries are recorded per view; the rest of a walk is cut (recorded so). */
export const VIEW_MAX_ENTRIES = 1000
/** Directories deeper than this under a walked one are recorded, not entered. */
export const VIEW_MAX_DEPTH = 6

interface Walk {
  lines: string[]
  budget: number
  /** Which tree the lines are of (their prefix). */
  where: 'workspace' | 'home'
}

function describe(w: Walk, rel: string, st: Stats | null): string {
  if (!st) return `${w.where}:${rel}\t-`
  const kind = st.isSymbolicLink() ? 'l' : st.isDirectory() ? 'd' : st.isFile() ? 'f' : 'o'
  return `${w.where}:${rel}\t${kind}\t${st.size}\t${st.ino}\t${st.mode}\t${st.mtimeMs}\t${st.ctimeMs}`
}

/**
 * Opens `rel` (a relative path) under `root` component by component, never through a link: the
 * directory that holds its last component and that component's name, or null (with a line saying
 * why) when a component on the way is missing, a link or not a directory.
 */
async function parentOf(
  root: PinnedDir,
  rel: string,
  w: Walk,
): Promise<{ dir: PinnedDir; name: string; owned: PinnedDir[] } | null> {
  const parts = rel.split('/')
  const name = parts.pop() ?? ''
  const owned: PinnedDir[] = []
  let dir = root
  for (const [i, part] of parts.entries()) {
    const st = await dir.lstat(part)
    if (!st?.isDirectory()) {
      w.lines.push(describe(w, `${parts.slice(0, i + 1).join('/')}/`, st))
      for (const d of owned) await d.close()
      return null
    }
    const next = await dir.openDir(part)
    if (!next) {
      for (const d of owned) await d.close()
      return null
    }
    owned.push(next)
    dir = next
  }
  return { dir, name, owned }
}

/** Records every entry under `dir` (names sorted), depth-first, within the walk's budget. */
async function walkDir(dir: PinnedDir, rel: string, depth: number, w: Walk): Promise<void> {
  const names = (await dir.list()).sort()
  for (const name of names) {
    if (w.budget <= 0) {
      w.lines.push(`${w.where}:${rel}/…\tcut`)
      return
    }
    w.budget--
    const st = await dir.lstat(name)
    const child = `${rel}/${name}`
    w.lines.push(describe(w, child, st))
    if (!st?.isDirectory() || depth >= VIEW_MAX_DEPTH) continue
    const sub = await dir.openDir(name)
    if (!sub) continue
    try {
      await walkDir(sub, child, depth + 1, w)
    } finally {
      await sub.close()
    }
  }
}

/**
 * Records `files` and walks `dirs` under the directory at `base` (already resolved); with
 * `listing`, also the names at its top (an entry added, removed or renamed there; not its
 * times, which a chown or a touch of the folder changes too).
 */
async function view(
  base: string,
  files: readonly string[],
  dirs: readonly string[],
  w: Walk,
  listing: boolean,
): Promise<void> {
  const root = await PinnedDir.open(base)
  try {
    if (listing) w.lines.push(`${w.where}:.\t${sha256((await root.list()).sort().join('\0'))}`)
    for (const rel of files) {
      const at = await parentOf(root, rel, w)
      if (!at) continue
      try {
        w.lines.push(describe(w, rel, await at.dir.lstat(at.name)))
      } finally {
        for (const d of at.owned.reverse()) await d.close()
      }
    }
    for (const rel of dirs) {
      const at = await parentOf(root, rel, w)
      if (!at) continue
      try {
        const st = await at.dir.lstat(at.name)
        w.lines.push(describe(w, rel, st))
        if (!st?.isDirectory()) continue
        const dir = await at.dir.openDir(at.name)
        if (!dir) continue
        try {
          await walkDir(dir, rel, 1, w)
        } finally {
          await dir.close()
        }
      } finally {
        for (const d of at.owned.reverse()) await d.close()
      }
    }
  } finally {
    await root.close()
  }
}

/**
 * What an agent saw: one line per path (`<where>:<path>\t<identity>`), in walk order. `broken`:
 * the view could not be taken (then it equals no other view).
 */
export interface AgentView {
  lines: readonly string[]
  broken: boolean
}

/**
 * The view an agent of `tool` gets of `workspace` (its real path) and of its config copied from
 * `home`: the identities of {@link VIEW_FILES} and everything under {@link VIEW_DIRS} in the
 * workspace, the content the tool-config copy would take from the home (planToolConfig: selected
 * keys, credentials; recorded as a digest) and the copied directories' identities. Never throws: a
 * view that cannot be taken (a component swapped during the walk, an unreadable directory) is
 * `broken`, so the agent is started again.
 */
export async function agentView(
  workspace: string,
  home: string,
  tool: ToolName,
): Promise<AgentView> {
  const w: Walk = { lines: [], budget: VIEW_MAX_ENTRIES, where: 'workspace' }
  try {
    await view(workspace, VIEW_FILES, VIEW_DIRS, w, true)
    // The host home is the user's own: its files are read (what the copy would put in the
    // container, selected keys only, so the host tool's own counters do not count), and the
    // copied directories walked by metadata.
    const spec = TOOL_SPECS[tool]
    const files = await planToolConfig(
      { ...spec, copy: { files: spec.copy.files, dirs: [] } },
      { hostHome: home, containerHome: home, effortLevel: '' },
    )
    w.where = 'home'
    for (const f of files) w.lines.push(`home:${f.path}\t${sha256(f.content)}`)
    await view(home, [], spec.copy.dirs, w, false)
  } catch {
    return { lines: w.lines, broken: true }
  }
  return { lines: w.lines, broken: false }
}

/**
 * Null when `now` is the view `then` was; else the first path that differs, for the user
 * (`CLAUDE.md`, `~/.claude/.credentials.json`), or why the view could not be compared.
 */
export function viewChange(then: AgentView, now: AgentView): string | null {
  if (then.broken || now.broken) return 'the workspace could not be walked'
  const a = new Map(then.lines.map(splitLine))
  const b = new Map(now.lines.map(splitLine))
  const differ = [
    ...[...b].filter(([path, id]) => a.get(path) !== id).map(([path]) => path),
    ...[...a.keys()].filter((path) => !b.has(path)),
  ]
  // The folder itself changes with every entry added at its top: named only when nothing more
  // telling did.
  const path = differ.find((p) => p !== ROOT_LINE) ?? differ[0]
  return path === undefined ? null : shown(path)
}

const ROOT_LINE = 'workspace:.'

function splitLine(line: string): [string, string] {
  const tab = line.indexOf('\t')
  return [line.slice(0, tab), line.slice(tab + 1)]
}

function shown(path: string): string {
  if (path === ROOT_LINE) return 'the list of files at the top of the workspace'
  return path.startsWith('home:') ? `~/${path.slice(5)}` : path.slice('workspace:'.length)
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}
