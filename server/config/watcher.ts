import { createHash } from 'node:crypto'
import { realpath, stat } from 'node:fs/promises'
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import type { Logger } from 'pino'
import type { ConfigLocations } from './paths.ts'
import { readSmallFile } from './safe-read.ts'

export interface ConfigWatcherOptions {
  /** Quiet time after the last change before reloading (editors write in several steps). */
  debounceMs?: number
  /** A reload happens at the latest this long after the first change, even if writes go on. */
  maxWaitMs?: number
}

export interface Reloadable {
  readonly locations: ConfigLocations
  reload(): Promise<boolean>
}

const DEFAULT_DEBOUNCE_MS = 250

/** The files of the merge order, in order, without duplicates. */
export function watchedFiles(l: ConfigLocations): string[] {
  const files = [l.system, l.user, l.extra, l.writable].filter(
    (f): f is string => typeof f === 'string' && f !== '',
  )
  return [...new Set(files.map((f) => resolve(f)))]
}

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

async function fingerprint(files: readonly string[]): Promise<string> {
  const h = createHash('sha256')
  for (const f of files) {
    h.update(f).update('\0')
    try {
      // The safe reader: a FIFO or a device in place of a config file must not hang the watcher.
      const text = await readSmallFile(f, { followLinks: true, maxBytes: 1024 * 1024 })
      h.update(text === null ? '\0missing' : `\0${text}`).update('\0')
    } catch (err) {
      h.update(`\0unreadable: ${(err as Error).message}\0`)
    }
  }
  return h.digest('hex')
}

type Role = 'own' | 'parent' | 'target'

interface Armed {
  dir: string
  watcher: FSWatcher
}

/** file → the real path it resolves to, for the files that are (or sit behind) symbolic links. */
async function linkTargets(files: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const f of files) {
    const real = await realpath(f).catch(() => null)
    if (real !== null && dirname(real) !== (await realpath(dirname(f)).catch(() => dirname(f))))
      out.set(f, real)
  }
  return out
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x))
}

function sameMap(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v)
}

/**
 * Hot reload of the config files (system, user, $CLINCUS_CONFIG), on inotify through fs.watch.
 *
 * For each file it watches the directory that holds it (or the closest ancestor that exists yet)
 * and that directory's parent. The directory, not the file: a file that does not exist has nothing
 * to watch, and editors that save by renaming a temp file over the original replace the inode a
 * file watch would follow. The parent: an inotify watch follows the directory's inode, so when
 * the directory is moved away, deleted, re-created or a directory symlink is swapped, only the
 * parent sees it. Any such event (or a watch error) re-arms every watch on the paths as they are
 * now, then compares the files' bytes: a file that went or came back is a reload, which publishes
 * `config.reloaded` (or `config.invalid` when it is broken). A config file that is itself a
 * symbolic link (a dotfiles manager's) is also watched where its target lives, and re-pointing
 * the link moves that watch.
 *
 * Changes are debounced, then the store reloads (it keeps the last good config for a broken file).
 * A change that leaves every file's bytes as they were at the last reload (a touch, an editor's
 * backup dance, a re-arm) is not a reload.
 */
export class ConfigWatcher {
  readonly #store: Reloadable
  readonly #log: Logger
  readonly #files: string[]
  readonly #debounceMs: number
  readonly #maxWaitMs: number
  #armed: Armed[] = []
  /** The directories that hold (or lead to) the config files now. */
  #dirs = new Set<string>()
  /** Where the config files that are symbolic links lead. */
  #targets = new Map<string, string>()
  #started = false
  #arming: Promise<void> | null = null
  #rearmAgain = false
  #timer: NodeJS.Timeout | null = null
  #firstChangeAt = 0
  #running: Promise<void> | null = null
  #again = false
  #last = ''
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
    return [...this.#dirs]
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

  /** Resolves once no re-arm, no change waiting for its debounce and no reload is pending. */
  async settled(): Promise<void> {
    while (this.#arming || this.#timer || this.#running) {
      if (this.#arming) await this.#arming
      else if (this.#running) await this.#running
      else await new Promise((r) => setTimeout(r, this.#debounceMs))
    }
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    this.#last = await fingerprint(this.#files)
    await this.#arm()
    this.#log.debug({ files: this.#files, dirs: [...this.#dirs] }, 'watching config files')
  }

  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    await this.#arming
    this.#disarm()
    await this.#running
  }

  #disarm(): void {
    for (const a of this.#armed) a.watcher.close()
    this.#armed = []
  }

  /** Sets up the watches on the paths as they are now (closing the old ones first). */
  async #arm(): Promise<void> {
    let dirs = await this.#wantedDirs()
    let targets = await linkTargets(this.#files)
    for (;;) {
      if (this.#closed) return
      this.#disarm()
      this.#dirs = dirs
      this.#targets = targets
      for (const dir of dirs) this.#watchDir(dir, 'own')
      for (const dir of dirs) {
        const parent = dirname(dir)
        if (parent !== dir && !dirs.has(parent)) this.#watchDir(parent, 'parent')
      }
      // A config file that is a symbolic link (dotfiles): its target is edited where it lives.
      for (const dir of new Set([...targets.values()].map((t) => dirname(t))))
        this.#watchDir(dir, 'target')
      // A directory created between the lookup and the watch sent its event to nobody: look
      // again now that the watches are in place, until the answer holds still.
      const now = await this.#wantedDirs()
      const nowTargets = await linkTargets(this.#files)
      if (sameSet(now, dirs) && sameMap(nowTargets, targets)) return
      dirs = now
      targets = nowTargets
    }
  }

  async #wantedDirs(): Promise<Set<string>> {
    return new Set(await Promise.all(this.#files.map((f) => nearestExistingDir(f))))
  }

  #watchDir(dir: string, role: Role): void {
    let watcher: FSWatcher
    try {
      watcher = watch(dir, { persistent: false }, (_event, name) => {
        this.#onEvent(dir, role, typeof name === 'string' ? name : null)
      })
    } catch (err) {
      // Gone between the lookup and the watch: look again.
      this.#log.debug({ err, dir }, 'config directory vanished while arming')
      this.#rearm()
      return
    }
    watcher.on('error', (err) => {
      // The watched directory itself was removed (or the watch failed): look again.
      this.#log.debug({ err, dir }, 'config watch ended')
      this.#rearm()
    })
    this.#armed.push({ dir, watcher })
  }

  #onEvent(dir: string, role: Role, name: string | null): void {
    if (this.#closed) return
    if (name === null) {
      this.#rearm()
      return
    }
    const path = join(dir, name)
    if (role === 'target') {
      if ([...this.#targets.values()].includes(path)) {
        this.#changes++
        this.#schedule()
      }
      return
    }
    if (role === 'parent') {
      // Only the entries that are (or lead to) one of our directories matter here.
      if (this.#dirs.has(path) || this.#leadsToFile(path)) this.#rearm()
      return
    }
    if (this.#files.includes(path)) {
      this.#changes++
      this.#schedule()
    } else if (this.#leadsToFile(path) || this.#dirs.has(path)) {
      // A directory on the way to a config file came or went; or the watched directory was
      // moved or deleted itself (inotify reports that with its own name).
      this.#rearm()
    } else if (name === basename(dir)) {
      this.#rearm()
    }
  }

  #leadsToFile(path: string): boolean {
    return this.#files.some((f) => f.startsWith(`${path}/`))
  }

  /** Whether an event asked for another re-arm while one ran (read after the await). */
  #rearmPending(): boolean {
    return this.#rearmAgain && !this.#closed
  }

  #rearm(): void {
    if (this.#closed) return
    if (this.#arming) {
      this.#rearmAgain = true
      return
    }
    this.#arming = (async () => {
      try {
        do {
          this.#rearmAgain = false
          this.#rearms++
          await this.#arm()
        } while (this.#rearmPending())
        this.#log.debug({ dirs: [...this.#dirs] }, 'config watches re-armed')
      } catch (err) {
        this.#log.warn({ err }, 'config watches could not be re-armed')
      } finally {
        this.#arming = null
      }
      // The files may have changed (gone, come back, or a new directory behind a swapped link)
      // before the new watches were in place: compare the bytes.
      this.#schedule()
    })()
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
          // A config file re-pointed to another target (or turned into or from a link): the
          // target's directory must be watched from now on.
          if (!sameMap(await linkTargets(this.#files), this.#targets)) this.#rearm()
          const fp = await fingerprint(this.#files)
          if (this.#closed || fp === this.#last) continue
          this.#last = fp
          this.#reloads++
          const ok = await this.#store.reload()
          this.#log.info({ ok }, 'config reloaded from disk')
        } while (this.#rerun())
      } catch (err) {
        this.#log.error({ err }, 'config reload failed')
      } finally {
        this.#running = null
      }
    })()
    await this.#running
  }
}
