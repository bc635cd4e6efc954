import { readlink, realpath, stat } from 'node:fs/promises'
import { basename, dirname, join, relative, resolve, sep } from 'node:path'
import { watch, type FSWatcher } from 'chokidar'
import type { Logger } from 'pino'
import { watchedFiles } from './fingerprint.ts'
import type { ConfigLocations } from './paths.ts'

export { watchedFiles } from './fingerprint.ts'

export interface ConfigWatcherOptions {
  /** Quiet time after the last change before reloading (editors write in several steps). */
  debounceMs?: number
  /** A reload happens at the latest this long after the first change, even if writes go on. */
  maxWaitMs?: number
}

/** What the watcher drives: the config store (store.ts), or a test's stand-in. */
export interface Reloadable {
  readonly locations: ConfigLocations
  /**
   * Reloads when the files' bytes differ from those of the last load: true when it loaded a good
   * config, false when the files are invalid, null when the bytes had not changed (no reload).
   */
  reloadIfChanged(): Promise<boolean | null>
}

const DEFAULT_DEBOUNCE_MS = 250

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory()
  } catch {
    return false
  }
}

/** The directory to watch for `file`: its own, or the closest ancestor that exists. */
export async function nearestExistingDir(file: string): Promise<string> {
  let dir = dirname(file)
  while (!(await isDir(dir))) {
    const up = dirname(dir)
    if (up === dir) return dir
    dir = up
  }
  return dir
}

/**
 * chokidar drops, rather than delays, a second `change` for the same path within 50 ms and a
 * second removal within 100 ms (its `_throttle`). A comparison that read the files sooner than
 * this after the last event may have missed a write: it is made again once the window is over.
 */
const CHOKIDAR_DROP_WINDOW_MS = 100
/** A watcher that never says it is ready (a hung mount) must not stall reloads for good. */
const READY_TIMEOUT_MS = 5000
/** Re-plans in a row before giving up until the next event (paths that never hold still). */
const MAX_REARMS_IN_A_ROW = 10

/** What to watch for the config files, worked out from the paths as they are now. */
interface WatchPlan {
  /** Real directories handed to chokidar, each watched at depth 0. */
  readonly roots: ReadonlySet<string>
  /** The entries of those directories whose events matter (real directory joined with a name). */
  readonly entries: ReadonlySet<string>
  /** Of the entries: the config files themselves, and the targets of those that are links. */
  readonly contents: ReadonlySet<string>
  /** The directory holding each file, or its closest ancestor that exists (as configured). */
  readonly dirs: ReadonlySet<string>
  /** The paths and each root's inode: a directory deleted and made again is another plan. */
  readonly key: string
}

async function realOr(path: string): Promise<string> {
  return realpath(path).catch(() => path)
}

async function inode(path: string): Promise<string> {
  try {
    const st = await stat(path)
    return `${String(st.dev)}:${String(st.ino)}`
  } catch {
    return 'none'
  }
}

/** Where a config file that is a symbolic link leads; for a dangling one, where it points. */
async function linkTarget(file: string): Promise<string | null> {
  const real = await realpath(file).catch(() => null)
  if (real !== null) return real
  try {
    return resolve(dirname(file), await readlink(file))
  } catch {
    return null
  }
}

interface PlanParts {
  roots: Set<string>
  entries: Set<string>
  contents: Set<string>
}

/** Adds what to watch for `file` (and, once, for where it leads when it is a link). */
async function planFile(file: string, p: PlanParts, followLink: boolean): Promise<string> {
  const dir = await nearestExistingDir(file)
  const realDir = await realOr(dir)
  p.roots.add(realDir)
  // The entry of the directory that leads to the file: the file, or the first missing directory.
  const entry = join(realDir, relative(dir, file).split(sep)[0] ?? basename(file))
  p.entries.add(entry)
  if (dir === dirname(file)) {
    p.contents.add(entry)
    // A config file that is a symbolic link (a dotfiles manager's) is edited where it leads; and
    // that directory too may be deleted and cloned again.
    const target = followLink ? await linkTarget(file) : null
    if (target !== null && target !== entry) await planFile(target, p, false)
  }
  // The directory's own entry in its parent: a watch on the directory follows its inode, so
  // moving it, deleting it, making it again or swapping a link to it shows only there.
  const parent = dirname(dir)
  if (parent !== dir) {
    const realParent = await realOr(parent)
    p.roots.add(realParent)
    p.entries.add(join(realParent, basename(dir)))
  }
  return dir
}

async function watchPlan(files: readonly string[]): Promise<WatchPlan> {
  const p: PlanParts = { roots: new Set(), entries: new Set(), contents: new Set() }
  const dirs = new Set<string>()
  for (const file of files) dirs.add(await planFile(file, p, true))
  const { roots, entries, contents } = p
  const ids = await Promise.all([...roots].sort().map(async (r) => `${r}@${await inode(r)}`))
  const key = JSON.stringify([ids, [...entries].sort(), [...contents].sort()])
  return { roots, entries, contents, dirs, key }
}

/**
 * Hot reload of the config files (system, user, $CLINCUS_CONFIG), on chokidar.
 *
 * chokidar watches directories, not the files: a file that does not exist has nothing to watch,
 * and editors that save by renaming a temp file over the original replace the inode a file watch
 * would follow. For each file it watches, at depth 0 and filtered to the entries that matter, the
 * directory that holds it (or the closest ancestor that exists yet) and that directory's parent;
 * for a config file that is a symbolic link, the same again where it leads. What chokidar 5.0.0
 * does not do by itself, and how this class makes up for it:
 *
 * - A watched directory that is moved away or deleted is reported (`unlinkDir`) and then never
 *   watched again, not even when it comes back (tried). The parent's watch reports the entry
 *   coming back (`addDir`), and every such event makes this class set chokidar up again on the
 *   paths as they are then.
 * - With `followSymlinks` (the default) a directory symlink swapped for one to another directory
 *   is not reported at all, and the watch stays on the old target, whose edits are even reported
 *   under the link's path (tried; handler.js skips a link it has followed once). With
 *   `followSymlinks: false` the swap is a `change` of the link entry, so chokidar is given real
 *   directories only and the links are resolved here.
 * - A directory that chokidar finds by reading its parent is read before it is watched
 *   (handler.js `_handleDir`): a file written in between is never reported. So chokidar is never
 *   left to find directories (depth 0): a new one is a new setup, and the files are compared once
 *   chokidar says it is ready.
 * - It drops a repeated event for a path within 50-100 ms (see CHOKIDAR_DROP_WINDOW_MS).
 *
 * Changes are debounced; then the watches are set up again if any path moved (cheap when none
 * did), and the store is asked to reload if the files' bytes differ from those it last loaded
 * (`reloadIfChanged`: a touch, an editor's backup dance, a re-arm or the store's own save is no
 * reload). The store publishes `config.reloaded` only when the merged config changed.
 */
export class ConfigWatcher {
  readonly #store: Reloadable
  readonly #log: Logger
  readonly #files: string[]
  readonly #debounceMs: number
  readonly #maxWaitMs: number
  #fsw: FSWatcher | null = null
  #plan: WatchPlan | null = null
  /** An event said a directory on the way moved, went or came: set chokidar up again. */
  #stale = false
  #endReadyWait: (() => void) | null = null
  #started = false
  #timer: NodeJS.Timeout | null = null
  #firstChangeAt = 0
  #lastEventAt = 0
  #lastReadAt = 0
  #running: Promise<void> | null = null
  #again = false
  #closed = false
  #reloads = 0
  #changes = 0
  #rearms = 0

  constructor(store: Reloadable, log: Logger, opts: ConfigWatcherOptions = {}) {
    this.#store = store
    this.#log = log
    this.#files = watchedFiles(store.locations)
    this.#debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS
    this.#maxWaitMs = opts.maxWaitMs ?? this.#debounceMs * 4
  }

  get files(): readonly string[] {
    return this.#files
  }

  /** Directories currently watched for the files themselves. */
  get dirs(): readonly string[] {
    return [...(this.#plan?.dirs ?? [])]
  }

  /** Reloads started by the watcher so far. */
  get reloads(): number {
    return this.#reloads
  }

  /** File events seen for the config files (before debouncing). */
  get changes(): number {
    return this.#changes
  }

  /** Times the watches were set up again after a directory moved, went, came or was swapped. */
  get rearms(): number {
    return this.#rearms
  }

  /** Resolves once no change is waiting for its debounce and no re-arm or reload is running. */
  async settled(): Promise<void> {
    while (this.#timer || this.#running) {
      if (this.#running) await this.#running
      else await new Promise((r) => setTimeout(r, this.#debounceMs))
    }
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    this.#running = this.#arm().finally(() => {
      this.#running = null
    })
    await this.#running
    // A change made before chokidar was set up had nobody to tell: compare once now.
    this.#schedule()
    this.#log.debug({ files: this.#files, dirs: this.dirs }, 'watching config files')
  }

  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#endReadyWait?.()
    const fsw = this.#fsw
    this.#fsw = null
    await fsw?.close()
    await this.#running
  }

  /** Sets chokidar up on the paths as they are now, if they moved; until they hold still. */
  async #arm(): Promise<void> {
    for (let i = 0; i < MAX_REARMS_IN_A_ROW; i++) {
      const plan = await watchPlan(this.#files)
      if (this.#closed) return
      if (!this.#stale && plan.key === this.#plan?.key) return
      this.#stale = false
      await this.#watch(plan)
    }
    this.#log.warn({ dirs: this.dirs }, 'config paths keep moving; watching them as they were')
  }

  async #watch(plan: WatchPlan): Promise<void> {
    // One chokidar at a time: chokidar shares one fs.watch per path between its instances, and
    // the old one's may be on a directory that is gone.
    const old = this.#fsw
    this.#fsw = null
    await old?.close()
    if (this.#closed) return
    if (old) this.#rearms++
    this.#plan = plan
    const fsw = watch([...plan.roots], {
      ignoreInitial: true,
      depth: 0,
      followSymlinks: false,
      // Its rename-and-replace handling delays removals; the byte comparison covers editors' saves.
      atomic: false,
      // A file without the owner's read bit is still a config file (it is reported unreadable).
      ignorePermissionErrors: true,
      ignored: (path: string) => !plan.roots.has(path) && !plan.entries.has(path),
    })
    this.#fsw = fsw
    let ready = false
    fsw.on('all', (_event, path) => {
      if (ready) this.#onEvent(plan, resolve(path))
    })
    fsw.on('error', (err) => {
      this.#log.warn({ err }, 'config watcher error')
    })
    await new Promise<void>((res) => {
      const done = (): void => {
        clearTimeout(timer)
        this.#endReadyWait = null
        res()
      }
      const timer = setTimeout(() => {
        this.#log.warn({ roots: [...plan.roots] }, 'config watcher not ready in time')
        done()
      }, READY_TIMEOUT_MS)
      this.#endReadyWait = done
      fsw.once('ready', done)
    })
    // The events of chokidar's first scan (it reports links even with ignoreInitial) are not
    // changes: the caller compares the files now.
    ready = true
    this.#log.debug({ dirs: this.dirs, roots: [...plan.roots] }, 'config watches set up')
  }

  #onEvent(plan: WatchPlan, path: string): void {
    if (this.#closed || plan !== this.#plan) return
    if (!plan.entries.has(path) && !plan.roots.has(path)) return
    this.#lastEventAt = Date.now()
    if (plan.contents.has(path)) this.#changes++
    else this.#stale = true
    this.#schedule()
  }

  #schedule(): void {
    if (this.#closed) return
    const now = Date.now()
    if (!this.#timer) this.#firstChangeAt = now
    else clearTimeout(this.#timer)
    const wait = Math.max(
      0,
      Math.min(this.#debounceMs, this.#firstChangeAt + this.#maxWaitMs - now),
    )
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.#reload()
    }, wait)
  }

  /** Compares once more when the last comparison may have fallen in chokidar's drop window. */
  #recheckIfEarly(): void {
    const early = this.#lastEventAt + CHOKIDAR_DROP_WINDOW_MS - this.#lastReadAt
    if (early <= 0 || this.#timer || this.#closed) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.#reload()
    }, early)
  }

  /** Whether a change arrived during the reload that just ran (read after the await). */
  #rerun(): boolean {
    return this.#again && !this.#closed
  }

  async #reload(): Promise<void> {
    if (this.#running) {
      // One reload at a time; a change during one gets its own reload afterwards.
      this.#again = true
      return
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false
          // A directory moved, went, came or was swapped, or a config file link re-pointed.
          await this.#arm()
          this.#lastReadAt = Date.now()
          if (this.#closed) continue
          const ok = await this.#store.reloadIfChanged()
          if (ok === null) continue
          this.#reloads++
          this.#log.info({ ok }, 'config reloaded from disk')
        } while (this.#rerun())
      } catch (err) {
        this.#log.error({ err }, 'config reload failed')
      } finally {
        this.#running = null
      }
      this.#recheckIfEarly()
    })()
    await this.#running
  }
}
