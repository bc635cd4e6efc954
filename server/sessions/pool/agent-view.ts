// What an agent has read when it starts (issue 16, `[pool] prestart`): a primed member may start
// its agent before the click, and the agent then works from what it read at its start: its
// instruction files (CLAUDE.md, AGENTS.md, .github/copilot-instructions.md, …), its settings, MCP
// servers, commands and agents under .claude/.opencode, the git state Claude Code puts into its
// system prompt (branch, HEAD, the index), and the tool's config copied from the host home
// (credentials included). The view records those paths' identities (lstat: type, size, inode,
// mtime, ctime) and the names at the workspace's top, taken when the agent starts and again at
// the claim; a member whose view differs is stale (pool/primed.ts: removed, never claimed), so a
// pre-started agent never works from an instruction file, a branch or a login older than the
// click.
//
// Not seen (README "Pre-started agents"): a change to an ordinary file of the working tree that
// touches none of these paths, which Claude Code's git status snapshot would have listed.
//
// The workspace is the agent's: every component is looked up without following links
// (PinnedDir), a link is recorded as a link, never followed, and the walk is bounded (entries,
// depth, and no directory is read past the bound). Nothing is read but metadata (and a gitfile's
// first 4 KiB, as protect.ts reads it), so a FIFO or a huge file costs nothing. A workspace walk
// cut by a bound is no view at all (null): what lies past the cut could change unseen, so an agent
// that planted entries to reach the bound gets no agent handed over, rather than a stale one. The
// home (the user's own) has a bound of its own, so the workspace cannot push it past its cut.
import { createHash } from 'node:crypto'
import type { Stats } from 'node:fs'
import { posix } from 'node:path'
import type { ToolName } from '../../../shared/tools.ts'
import { CONTAINER_WORKSPACE } from '../commands.ts'
import { hasDotDot, insideWorkspace, parseGitfile } from '../git-metadata.ts'
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

/** The git files of a gitfile's git directory (relative to it) and the directory walked. */
const GITDIR_FILES: readonly string[] = ['HEAD', 'index', 'packed-refs', 'config']
const GITDIR_DIRS: readonly string[] = ['refs/heads']

/**
 * Instruction files whose `@path` imports an agent reads at its start with them (Claude Code's
 * memory imports, up to {@link IMPORT_DEPTH} hops): the imported files are in the view too.
 */
const IMPORTING: readonly string[] = [
  'CLAUDE.md',
  'CLAUDE.local.md',
  '.claude/CLAUDE.md',
  'AGENTS.md',
  'AGENT.md',
]
const IMPORT_DEPTH = 5
/** Imported files viewed at most; more: no view. */
export const VIEW_MAX_IMPORTS = 64
/** An importing file larger than this (its imports not all read): no view. */
const IMPORT_MAX_BYTES = 64 * 1024
/** An import deeper than this many path components (each opened on the way): no view. */
const IMPORT_MAX_PARTS = 32

/** At most this many workspace entries are walked; a workspace past it has no view (null). */
export const VIEW_MAX_ENTRIES = 1000
/** Directories deeper than this under a walked one: the workspace has no view (null). */
export const VIEW_MAX_DEPTH = 6
/** At most this many entries of the home's copied directories are recorded (the rest: cut). */
export const HOME_MAX_ENTRIES = 2000

interface Walk {
  lines: string[]
  budget: number
  /** Which tree the lines are of (their prefix). */
  where: 'workspace' | 'home'
  /**
   * Cut by a bound, or a link met where the agent reads (what it names is never viewed): the
   * workspace's view is then void; the home's (the user's own) keeps a `cut` line.
   */
  cut: boolean
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
    if (st?.isSymbolicLink()) w.cut = true
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
  // Never more names than the budget left (+1 to tell a cut): a directory of millions of entries
  // is not read whole.
  const names = (await dir.listAtMost(Math.max(w.budget, 0))).sort()
  for (const name of names) {
    if (w.budget <= 0) {
      w.cut = true
      w.lines.push(`${w.where}:${rel}/…\tcut`)
      return
    }
    w.budget--
    const st = await dir.lstat(name)
    const child = `${rel}/${name}`
    w.lines.push(describe(w, child, st))
    if (st?.isSymbolicLink()) w.cut = true
    if (!st?.isDirectory()) continue
    if (depth >= VIEW_MAX_DEPTH) {
      w.cut = true
      continue
    }
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
 * `listing`, also the names at its top (an entry added, removed or renamed there; not the
 * folder's times, which a chown or a touch of it changes too: the bench chowns its workspace
 * before each launch), at most {@link VIEW_MAX_ENTRIES} of them (more: cut).
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
    if (listing) {
      const names = await root.listAtMost(VIEW_MAX_ENTRIES)
      if (names.length > VIEW_MAX_ENTRIES) w.cut = true
      w.lines.push(`${w.where}:.\t${sha256(names.sort().join('\0'))}`)
    }
    const gitFiles = await gitdirOf(base, root, files, GITDIR_FILES)
    const gitDirs = await gitdirOf(base, root, files, GITDIR_DIRS)
    const wanted = [
      ...[...files, ...gitFiles].map((rel) => ({ rel, walk: false })),
      ...[...dirs, ...gitDirs].map((rel) => ({ rel, walk: true })),
    ]
    for (const { rel, walk } of wanted) {
      const at = await parentOf(root, rel, w)
      if (!at) continue
      try {
        const st = await at.dir.lstat(at.name)
        if (st?.isSymbolicLink()) w.cut = true
        w.lines.push(describe(w, rel, st))
        // A directory to walk: everything under it too.
        const dir = walk && st?.isDirectory() ? await at.dir.openDir(at.name) : null
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
    if (files.length > 0) await viewImports(root, w)
  } finally {
    await root.close()
  }
}

/**
 * The files {@link IMPORTING} import (`@path`), and theirs, up to {@link IMPORT_DEPTH} hops:
 * each recorded by identity, each importing file read (at most {@link IMPORT_MAX_BYTES}, a regular
 * file only, never through a link) for its imports. Past {@link VIEW_MAX_IMPORTS}, or an importing
 * file too large to read whole: the walk is cut.
 */
async function viewImports(root: PinnedDir, w: Walk): Promise<void> {
  const queue = IMPORTING.map((rel) => ({ rel, depth: 0 }))
  const seen = new Set<string>()
  for (let next = queue.shift(); next; next = queue.shift()) {
    const { rel, depth } = next
    if (seen.has(rel)) continue
    seen.add(rel)
    if (seen.size > IMPORTING.length + VIEW_MAX_IMPORTS) {
      w.cut = true
      return
    }
    if (rel.split('/').length > IMPORT_MAX_PARTS) {
      w.cut = true
      return
    }
    const at = await parentOf(root, rel, w)
    if (!at) continue
    try {
      const st = await at.dir.lstat(at.name)
      if (st?.isSymbolicLink()) w.cut = true
      w.lines.push(describe(w, `@${rel}`, st))
      if (!st?.isFile() || depth >= IMPORT_DEPTH) continue
      if (st.size > IMPORT_MAX_BYTES) {
        w.cut = true
        return
      }
      const text = await at.dir.readSmall(at.name, IMPORT_MAX_BYTES)
      for (const i of importsOf(text ?? '', rel)) queue.push({ rel: i, depth: depth + 1 })
    } finally {
      for (const d of at.owned.reverse()) await d.close()
    }
  }
}

/**
 * The workspace files `@path` tokens of `text` (the file at `from`) name, relative to the
 * workspace: a relative path from the file's folder, or an absolute one under the container's
 * workspace. Tokens naming anything else (the container's home, other folders) are not the
 * workspace's, and are left out. Over-approximates Claude Code's imports (code spans included).
 */
export function importsOf(text: string, from: string): string[] {
  const out: string[] = []
  for (const m of text.matchAll(/(?:^|[\s(])@([^\s`'"()<>]+)/g)) {
    const token = (m[1] ?? '').replace(/[.,;:!?]+$/, '')
    if (token === '' || token.startsWith('~')) continue
    const path = token.startsWith('/')
      ? token.startsWith(`${CONTAINER_WORKSPACE}/`)
        ? token.slice(CONTAINER_WORKSPACE.length + 1)
        : null
      : posix.join(posix.dirname(from), token)
    if (path === null) continue
    const rel = posix.normalize(path).replace(/\/+$/, '')
    if (rel === '' || rel === '.' || rel === '..' || rel.startsWith('../')) continue
    out.push(rel)
  }
  return out
}

/**
 * `names` under the git directory a `.git` gitfile of the workspace names (inside it, as
 * protect.ts accepts it), when `files` has `.git` and it is a gitfile; none otherwise. Host git
 * uses that directory's HEAD, index and refs, which the `.git/…` paths then do not reach.
 */
async function gitdirOf(
  base: string,
  root: PinnedDir,
  files: readonly string[],
  names: readonly string[],
): Promise<string[]> {
  if (!files.includes('.git')) return []
  const text = await root.readSmall('.git', 4096)
  const target = text === null ? null : parseGitfile(text)
  if (target === null || hasDotDot(target)) return []
  const rel = insideWorkspace(base, base, target)
  return rel === null ? [] : names.map((n) => `${rel}/${n}`)
}

/**
 * What an agent saw: one line per path (`<tree>:<path>\t<identity>`) in walk order, and their
 * digest (what claims compare).
 */
export interface AgentView {
  digest: string
  lines: readonly string[]
}

/**
 * The view an agent of `tool` gets of `workspace` (its real path) and of its config copied from
 * `home`: the identities of {@link VIEW_FILES}, everything under {@link VIEW_DIRS}, the files the
 * instruction files import and the names at the top of the workspace; the content the tool-config
 * copy would take from the home (planToolConfig: selected keys, credentials) and the copied
 * directories' identities. Equal digests: nothing the agent read at its start changed (as far as
 * metadata shows). Never throws; null when no view can be taken (a workspace walk cut by
 * {@link VIEW_MAX_ENTRIES} or {@link VIEW_MAX_DEPTH}, a link where the agent reads, a component
 * swapped during the walk, an unreadable directory): no agent is started ahead on it, and a null
 * view at a claim matches none.
 */
export async function agentView(
  workspace: string,
  home: string,
  tool: ToolName,
): Promise<AgentView | null> {
  const w: Walk = { lines: [], budget: VIEW_MAX_ENTRIES, cut: false, where: 'workspace' }
  try {
    await view(workspace, VIEW_FILES, VIEW_DIRS, w, true)
    if (w.cut) return null
    // The host home is the user's own: its files are read (what the copy would put in the
    // container, selected keys only, so the host tool's own counters do not count), and the
    // copied directories walked by metadata.
    const spec = TOOL_SPECS[tool]
    const files = await planToolConfig(
      { ...spec, copy: { files: spec.copy.files, dirs: [] } },
      { hostHome: home, containerHome: home, effortLevel: '' },
    )
    const h: Walk = { lines: [], budget: HOME_MAX_ENTRIES, cut: false, where: 'home' }
    for (const f of files) h.lines.push(`home:${f.path}\t${sha256(f.content)}`)
    await view(home, [], spec.copy.dirs, h, false)
    w.lines.push(...h.lines)
  } catch {
    return null
  }
  return { digest: sha256(w.lines.join('\n')), lines: w.lines }
}

/**
 * The first path whose identity differs between two views, for the user (`CLAUDE.md`,
 * `~/.claude/.credentials.json`); the workspace folder's own line only when nothing more telling
 * differs. Null when none does.
 */
export function viewChange(then: AgentView, now: AgentView): string | null {
  const a = new Map(then.lines.map(splitLine))
  const b = new Map(now.lines.map(splitLine))
  const differ = [
    ...[...b].filter(([path, id]) => a.get(path) !== id).map(([path]) => path),
    ...[...a.keys()].filter((path) => !b.has(path)),
  ]
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
  const rel = path.startsWith('home:') ? `~/${path.slice(5)}` : path.slice('workspace:'.length)
  return rel.startsWith('@') ? rel.slice(1) : rel
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}
