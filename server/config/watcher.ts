import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { watch, type FSWatcher } from 'chokidar'
import type { Logger } from 'pino'
import type { ConfigLocations } from './paths.ts'

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
    try {
      h.update(f)
        .update('\0')
        .update(await readFile(f))
        .update('\0')
    } catch {
      h.update(f).update('\0missing\0')
    }
  }
  return h.digest('hex')
}

/**
 * Hot reload of the config files (system, user, $CLINCUS_CONFIG). chokidar watches their parent
 * directories, not the files: a file that does not exist yet has nothing to watch, and editors
 * that save by writing a temp file and renaming it over the original replace the inode a file
 * watch would follow. Events are filtered by path. A parent directory that does not exist yet is
 * covered by watching its closest existing ancestor until it appears.
 *
 * Changes are debounced, then the store reloads (it keeps the last good config and reports
 * `config.invalid` for a broken file). A change that leaves every file's bytes as they were at
 * the last reload (a touch, an editor's backup dance) is not a reload.
 */
export class ConfigWatcher {
  readonly #store: Reloadable
  readonly #log: Logger
  readonly #files: string[]
  readonly #debounceMs: number
  readonly #maxWaitMs: number
  #watcher: FSWatcher | null = null
  /** The directories that cover the config files now (each file's own, or an ancestor). */
  #dirs = new Set<string>()
  /** Every directory handed to chokidar. */
  readonly #watched = new Set<string>()
  #timer: NodeJS.Timeout | null = null
  #firstChangeAt = 0
  #running: Promise<void> | null = null
  #again = false
  #last = ''
  #closed = false
  #reloads = 0
  #changes = 0

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

  /** Directories currently watched. */
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

  /** Resolves once no change is waiting for its debounce and no reload is running. */
  async settled(): Promise<void> {
    while (this.#timer || this.#running) {
      if (this.#running) await this.#running
      else await new Promise((r) => setTimeout(r, this.#debounceMs))
    }
  }

  async start(): Promise<void> {
    if (this.#watcher) return
    this.#last = await fingerprint(this.#files)
    const dirs = await this.#wantedDirs()
    this.#dirs = dirs
    for (const d of dirs) this.#watched.add(d)
    const watcher = watch([...dirs], {
      ignoreInitial: true,
      depth: 0,
      // Parent directories hold unrelated files; only ours matter (and the directories leading
      // to a config directory that does not exist yet).
      ignored: (path: string) => !this.#relevant(resolve(path)),
    })
    this.#watcher = watcher
    watcher.on('all', (event, path) => {
      this.#onEvent(event, resolve(path))
    })
    watcher.on('error', (err) => {
      this.#log.warn({ err }, 'config watcher error')
    })
    await new Promise<void>((res) =>
      watcher.once('ready', () => {
        res()
      }),
    )
    this.#log.debug({ files: this.#files, dirs: [...dirs] }, 'watching config files')
  }

  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    await this.#watcher?.close()
    this.#watcher = null
    await this.#running
  }

  async #wantedDirs(): Promise<Set<string>> {
    return new Set(await Promise.all(this.#files.map((f) => nearestExistingDir(f))))
  }

  /** A config file, a watched directory, or a directory on the way to a config file. */
  #relevant(path: string): boolean {
    if (this.#dirs.has(path)) return true
    for (const f of this.#files) {
      if (f === path) return true
      if (f.startsWith(`${path}/`)) return true
    }
    return false
  }

  #onEvent(event: string, path: string): void {
    if (this.#closed) return
    if (event === 'addDir' || event === 'unlinkDir') {
      // A directory on the way to a config file came or went: watch the right level again.
      void this.#retarget()
      return
    }
    if (this.#files.includes(path)) {
      this.#changes++
      this.#schedule()
    }
  }

  async #retarget(): Promise<void> {
    const wanted = await this.#wantedDirs()
    const w = this.#watcher
    if (!w || this.#closed) return
    const changed = wanted.size !== this.#dirs.size || [...wanted].some((d) => !this.#dirs.has(d))
    this.#dirs = wanted
    // Directories are only ever added: chokidar's unwatch(dir) also ignores everything below
    // it, which would blind us to the config directory that just appeared inside. A directory
    // no longer needed costs one inotify watch, and its events are filtered out by path.
    const add = [...wanted].filter((d) => !this.#watched.has(d))
    for (const d of add) this.#watched.add(d)
    if (add.length > 0) w.add(add)
    if (changed) {
      this.#log.debug({ dirs: [...wanted] }, 'config watch directories changed')
      // The file may have been written before its new directory was watched.
      this.#schedule()
    }
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
