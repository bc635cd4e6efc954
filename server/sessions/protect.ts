// Protected paths that hold against the code user (SECURITY.md). The workspace is walked without
// following links (pinned.ts) and the plan is a list of disk devices, each with the identity of
// what was checked, verified again inside the running container before the tool starts:
// - `.git` read-only as a whole (config, config.worktree, commondir, hooks, info, modules/**,
//   worktrees/**); a symlinked `.git` is refused, a gitfile must point inside the workspace (the
//   gitfile and its gitdir are both read-only), an absent `.git` is created empty and read-only so
//   the agent cannot `git init` one for the host's git to run later;
// - the gitfiles of submodules and linked worktrees inside the workspace, found from the (protected)
//   metadata, read-only: the host's `git status` follows them;
// - every other protected path read-only, created empty when absent;
// - every directory between /workspace and a protected path bind-mounted onto itself, so no
//   rename of a parent can move the protection away (a mount point cannot be renamed).
import { normalize, posix } from 'node:path'
import { BadRequestError } from '../errors.ts'
import {
  configValue,
  hasDotDot,
  insideWorkspace,
  parseCoreWorktree,
  parseGitfile,
} from './git-metadata.ts'
import {
  openPath,
  PinnedDir,
  ProtectedPathChanged,
  SymlinkRefused,
  walk,
  type Found,
} from './pinned.ts'
import { gitlinkRel, MAX_INDEX_BYTES, parseIndexGitlinks } from './git-index.ts'

export { configValue, insideWorkspace, parseCoreWorktree, parseGitfile } from './git-metadata.ts'
export { parseProtectLabel, protectLabel } from './protect-label.ts'

/** More devices than this is refused: a workspace should not need them, and each costs a mount. */
export const MAX_PROTECT_DEVICES = 64
const MAX_MODULE_DEPTH = 6
const MAX_METADATA_BYTES = 64 * 1024

export interface ProtectDevice {
  device: string
  source: string
  path: string
  readonly: boolean
  /** What the checked path was; the container must see exactly this at `path`. */
  expect: Found
}

export interface ProtectionPlan {
  devices: ProtectDevice[]
  /** Directories created for the plan (relative, outermost first): removed at deletion if empty. */
  created: string[]
  /** The workspace directory itself, as checked. */
  root: Found
}

export interface ProtectOptions {
  paths: readonly string[]
  owner: { uid: number; gid: number }
  writableHooks: boolean
}

/** A protected path from the config, normalised; refused when it leaves the workspace. */
export function normaliseRel(raw: string): string {
  const rel = normalize(raw).replace(/\/+$/, '')
  if (rel.startsWith('/') || rel === '..' || rel.startsWith('../') || rel === '.' || rel === '') {
    throw new BadRequestError(
      `protected path must be relative to the workspace: ${raw}`,
      'invalid_protected_path',
    )
  }
  return rel
}

/** `.git/hooks` → `protect-git-hooks`; ancestors get `keep-…`; unique per plan. */
export function deviceName(prefix: string, rel: string, taken: Set<string>): string {
  const slug = rel
    .replaceAll('/', '-')
    .replaceAll('.', '')
    .replace(/[^A-Za-z0-9_-]/g, '-')
    .replace(/^-+/, '')
  let name = `${prefix}-${slug}`.slice(0, 56)
  for (let i = 2; taken.has(name); i++) name = `${prefix}-${slug}`.slice(0, 52) + `-${i}`
  taken.add(name)
  return name
}

class Planner {
  readonly targets = new Map<string, { found: Found; readonly: boolean }>()
  readonly ancestors = new Map<string, Found>()
  readonly created: string[] = []
  /** Gitfiles that belong to submodules (from the configs under `.git/modules`). */
  readonly submodules = new Set<string>()
  /** Git directories of submodules and linked worktrees (relative) and the checkout each serves. */
  readonly indexes: { gitdir: string; base: string }[] = []

  readonly root: PinnedDir
  readonly workspace: string
  readonly owner: { uid: number; gid: number }

  constructor(root: PinnedDir, workspace: string, owner: { uid: number; gid: number }) {
    this.root = root
    this.workspace = workspace
    this.owner = owner
  }

  /** Protects `rel`; `create` makes it (an empty directory) when absent. */
  async protect(rel: string, create: boolean, readonly = true): Promise<Found | null> {
    const r = await walk(this.root, rel, { create: create ? this.owner : null })
    this.created.push(...r.created)
    if (!r.target) return null
    for (const a of r.ancestors) this.ancestors.set(a.rel, a)
    this.targets.set(rel, { found: r.target, readonly })
    return r.target
  }

  /** Protects the repository's metadata; resolves with its git directory (relative). */
  async git(): Promise<string> {
    const st = await this.root.lstat('.git')
    if (st?.isSymbolicLink()) throw new SymlinkRefused('.git')
    let gitdir = '.git'
    if (st?.isFile()) {
      const text = await this.root.readSmall('.git', 4096)
      const target = text === null ? null : parseGitfile(text)
      const rel =
        target === null || hasDotDot(target)
          ? null
          : insideWorkspace(this.workspace, this.workspace, target)
      if (rel === null) {
        throw new BadRequestError(
          `.git in the workspace is a gitfile pointing outside it or through '..' (${target ?? 'unreadable'}); ` +
            'refusing to start the session: its git directory could not be protected. Open the ' +
            'repository that owns it as the workspace instead',
          'gitfile_outside',
        )
      }
      await this.protect('.git', false)
      const dir = await this.protect(rel, false)
      if (dir?.kind !== 'dir')
        throw new BadRequestError(
          `.git points to ${rel}, which is not a directory`,
          'protected_path_invalid',
        )
      gitdir = rel
    } else {
      // Absent: an empty, read-only .git, so the agent cannot make one for the host's git to use.
      await this.protect('.git', true)
    }
    await this.linkedCheckouts(gitdir)
    if (st) await this.gitlinks(gitdir)
    return gitdir
  }

  /**
   * Registered submodules never cloned (a gitlink in an index, no `.git/modules` entry): the host's
   * git would use a `.git` the agent made at their path, so their folder is read-only, made (empty)
   * when absent. The indexes (the repository's, its linked worktrees' and its submodules', whose
   * paths are relative to their own checkout) are read through the pinned walk and parsed here,
   * never by host git, within one byte budget.
   */
  async gitlinks(gitdir: string): Promise<void> {
    let budget = MAX_INDEX_BYTES
    let repository: 20 | 32 | null = null
    for (const { gitdir: at, base } of [{ gitdir, base: '' }, ...this.indexes]) {
      const dir = await openPath(this.root, at).catch(() => null)
      if (!dir) continue
      let paths: string[] | null
      try {
        const config = await dir.readSmall('config', MAX_METADATA_BYTES)
        const format = config === null ? null : configValue(config, 'extensions', 'objectformat')
        const own = format === null ? null : format.toLowerCase() === 'sha256' ? 32 : 20
        // a linked worktree's gitdir has no config: it shares the repository's object format
        repository ??= own ?? 20
        const hashBytes = own ?? repository
        const index = await dir.readBytes('index', budget)
        budget -= index?.length ?? 0
        paths = index && parseIndexGitlinks(index, hashBytes)
      } finally {
        await dir.close()
      }
      for (const path of paths ?? []) {
        const inner = gitlinkRel(path)
        if (inner === null) continue
        const rel = base === '' ? inner : `${base}/${inner}`
        if (this.submodules.has(`${rel}/.git`) || this.targets.has(rel)) continue
        // Past the cap the plan is refused in devices(); no need to walk further.
        if (this.targets.size + this.ancestors.size > MAX_PROTECT_DEVICES) return
        await this.protect(rel, true)
      }
    }
  }

  /** Gitfiles of submodules and linked worktrees inside the workspace, from the git metadata. */
  async linkedCheckouts(gitdir: string): Promise<void> {
    const dir = await openPath(this.root, gitdir)
    if (!dir) return
    const gitfiles = new Set<string>()
    try {
      await this.modules(dir, `${this.workspace}/${gitdir}`, 0, gitfiles)
      const worktrees = await dir.openDir('worktrees').catch(() => null)
      if (worktrees) {
        try {
          for (const name of (await worktrees.list()).slice(0, MAX_PROTECT_DEVICES)) {
            const wt = await worktrees.openDir(name).catch(() => null)
            if (!wt) continue
            try {
              const text = await wt.readSmall('gitdir', 4096)
              const rel = text && insideWorkspace(this.workspace, this.workspace, text.trim())
              if (rel) gitfiles.add(rel)
              if (rel?.endsWith('/.git'))
                this.indexes.push({ gitdir: `${gitdir}/worktrees/${name}`, base: rel.slice(0, -5) })
            } finally {
              await wt.close()
            }
          }
        } finally {
          await worktrees.close()
        }
      }
    } finally {
      await dir.close()
    }
    for (const rel of gitfiles) {
      if (gitfiles.size > MAX_PROTECT_DEVICES) break
      const found = await this.protect(rel, false)
      // A submodule not checked out: the host's git would use a `.git` the agent put there, so
      // its (empty) folder is read-only instead, made when absent as git itself would.
      if (!found && this.submodules.has(rel))
        await this.protect(rel.slice(0, -'/.git'.length), true)
    }
  }

  async modules(dir: PinnedDir, abs: string, depth: number, out: Set<string>): Promise<void> {
    if (depth > MAX_MODULE_DEPTH || out.size > MAX_PROTECT_DEVICES) return
    const modules = await dir.openDir('modules').catch(() => null)
    if (!modules) return
    try {
      await this.moduleTree(modules, `${abs}/modules`, depth, out)
    } finally {
      await modules.close()
    }
  }

  /** Module names may hold slashes: every directory with a config below `modules` is a gitdir. */
  async moduleTree(dir: PinnedDir, abs: string, depth: number, out: Set<string>): Promise<void> {
    for (const name of (await dir.list()).slice(0, MAX_PROTECT_DEVICES)) {
      if (depth > MAX_MODULE_DEPTH || out.size > MAX_PROTECT_DEVICES) return
      const sub = await dir.openDir(name).catch(() => null)
      if (!sub) continue
      try {
        const config = await sub.readSmall('config', MAX_METADATA_BYTES)
        if (config !== null) {
          const wt = parseCoreWorktree(config)
          const rel = wt && insideWorkspace(this.workspace, `${abs}/${name}`, wt)
          if (rel) {
            out.add(`${rel}/.git`)
            this.submodules.add(`${rel}/.git`)
            const own = insideWorkspace(this.workspace, this.workspace, `${abs}/${name}`)
            if (own) this.indexes.push({ gitdir: own, base: rel })
          }
          await this.modules(sub, `${abs}/${name}`, depth + 1, out)
        } else {
          await this.moduleTree(sub, `${abs}/${name}`, depth + 1, out)
        }
      } finally {
        await sub.close()
      }
    }
  }

  devices(workspace: string, ctrWorkspace: string): ProtectDevice[] {
    const taken = new Set<string>()
    const out: ProtectDevice[] = []
    const add = (prefix: string, rel: string, found: Found, readonly: boolean): void => {
      out.push({
        device: deviceName(prefix, rel, taken),
        source: posix.join(workspace, rel),
        path: posix.join(ctrWorkspace, rel),
        readonly,
        expect: found,
      })
    }
    for (const [rel, found] of this.ancestors) {
      if (!this.targets.has(rel)) add('keep', rel, found, false)
    }
    for (const [rel, t] of this.targets)
      add(t.readonly ? 'protect' : 'open', rel, t.found, t.readonly)
    // Parents before children (Incus sorts disks by path too; this keeps the plan readable).
    out.sort((a, b) => a.path.split('/').length - b.path.split('/').length)
    if (out.length > MAX_PROTECT_DEVICES) {
      throw new BadRequestError(
        `protecting this workspace needs ${out.length} mounts (more than ${MAX_PROTECT_DEVICES}); ` +
          'shorten security.protected_paths or remove submodules/worktrees from the workspace',
        'too_many_protected_paths',
      )
    }
    return out
  }
}

/** Plans the protection of `workspace`: checks (and creates) the paths without following links. */
export async function planProtection(
  workspace: string,
  ctrWorkspace: string,
  opts: ProtectOptions,
): Promise<ProtectionPlan> {
  const rels = [...new Set(opts.paths.map(normaliseRel))]
  const root = await PinnedDir.open(workspace)
  const planner = new Planner(root, workspace, opts.owner)
  try {
    const rootFound = await root.self()
    // The owner was read by path a moment ago: the folder held open must be that one's.
    const rootStat = await root.stat()
    if (rootStat.uid !== opts.owner.uid || rootStat.gid !== opts.owner.gid)
      throw new ProtectedPathChanged('the workspace')
    const gitdir = await planner.git()
    // .git and everything below it are covered by the read-only .git.
    for (const rel of rels.filter((r) => r !== '.git' && !r.startsWith('.git/')))
      await planner.protect(rel, true)
    // git.writable_hooks (the user's opt-in, SECURITY.md): the hooks directory of the
    // repository's git directory (`.git/hooks`, or the gitfile's `<gitdir>/hooks`) is mounted
    // read-write over the read-only metadata, made (owned by the workspace owner) when absent.
    if (opts.writableHooks) await planner.protect(`${gitdir}/hooks`, true, false)
    return {
      devices: planner.devices(workspace, ctrWorkspace),
      created: planner.created,
      root: rootFound,
    }
  } catch (err) {
    // What was created for a refused plan goes again.
    await removeCreated(root, planner.created).catch(() => undefined)
    throw err
  } finally {
    await root.close()
  }
}

async function removeCreated(root: PinnedDir, created: readonly string[]): Promise<void> {
  for (const rel of [...created].reverse()) {
    const parts = rel.split('/')
    const name = parts.pop() ?? ''
    const parent =
      parts.length === 0 ? root : await openPath(root, parts.join('/')).catch(() => null)
    if (!parent) continue
    try {
      await parent.removeIfEmpty(name)
    } finally {
      if (parent !== root) await parent.close()
    }
  }
}

/**
 * Removes the directories a protection created, where still empty; none when the directory at
 * `workspace` is not `made` (the plan's root) any more: a replaced workspace's folders are not ours.
 */
export async function removeCreatedDirs(
  workspace: string,
  created: readonly string[],
  made?: Pick<Found, 'dev' | 'ino'>,
): Promise<void> {
  if (created.length === 0) return
  const root = await PinnedDir.open(workspace)
  try {
    const now = made ? await root.stat() : null
    if (now && made && (now.dev !== made.dev || now.ino !== made.ino)) return
    await removeCreated(root, created)
  } finally {
    await root.close()
  }
}

/**
 * The check after `incus start`: what the container sees at the workspace and at every protected
 * (or kept) path is exactly what the plan checked: same device and inode, reached without following
 * a link from the container's root (`/proc/<init pid>/root`). Anything else means a path was swapped
 * between the check and Incus resolving the device source.
 */
export async function verifyMounted(
  containerRoot: string,
  ctrWorkspace: string,
  plan: ProtectionPlan,
): Promise<void> {
  const root = await PinnedDir.open(`${containerRoot}${ctrWorkspace}`).catch(() => null)
  if (!root) throw new ProtectedPathChanged(ctrWorkspace)
  try {
    const seen = await root.self()
    if (seen.dev !== plan.root.dev || seen.ino !== plan.root.ino)
      throw new ProtectedPathChanged('the workspace')
    for (const d of plan.devices) {
      const rel = d.expect.rel
      const r = await walk(root, rel, { create: null }).catch(() => null)
      if (r?.target?.dev !== d.expect.dev || r.target.ino !== d.expect.ino)
        throw new ProtectedPathChanged(rel)
    }
  } finally {
    await root.close()
  }
}
