import { lstat, readlink } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import type { Logger } from 'pino'
import type { Config } from '../../shared/schemas/config.ts'
import { writeFileAtomic } from '../fs/atomic-write.ts'
import { loadConfig, type LoadedConfig } from './load.ts'
import { AppError } from '../errors.ts'
import { ConfigError } from './merge.ts'
import type { ConfigLocations } from './paths.ts'
import { readSmallFile } from './safe-read.ts'
import { parse } from 'smol-toml'
import { isPlainObject } from './merge.ts'
import { setDashboardKeys, setNetworkAllow, type DashboardPatch } from './toml-edit.ts'
import { fingerprint, watchedFiles } from './fingerprint.ts'
import { ConfigWatcher, type ConfigWatcherOptions } from './watcher.ts'

const MAX_LINKS = 40

/**
 * The file a write to `file` must replace: the end of its chain of symbolic links (dotfiles
 * managers link config.toml into a repository). Renaming a temp file over the link itself would
 * turn it into a regular file and the user's real file would never see the change. A dangling
 * link names the file to create.
 */
export async function writeTarget(file: string): Promise<string> {
  let current = file
  for (let i = 0; i < MAX_LINKS; i++) {
    let isLink: boolean
    try {
      isLink = (await lstat(current)).isSymbolicLink()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return current
      throw err
    }
    if (!isLink) return current
    current = resolve(dirname(current), await readlink(current))
  }
  throw new AppError(409, 'config_not_editable', `${file}: too many levels of symbolic links`, {
    expose: true,
  })
}

export type ConfigChange =
  | { type: 'reloaded'; previous: Config; current: Config }
  | { type: 'invalid'; file: string; error: string }

export type ConfigListener = (change: ConfigChange) => void

/**
 * The current merged config, and the one writer of it: loads (at open, on its own saves, and
 * from its file watcher) are serialised and swap it atomically. Listeners hear `reloaded` only
 * when the merged config differs from the last one (deep equality; a comment, a reordering or a
 * save that writes the same values is no event), or when a good load ends an invalid spell; an
 * invalid file keeps the last good config and is reported (`invalid`), never thrown at readers.
 */
export class ConfigStore {
  readonly locations: ConfigLocations
  readonly home: string
  readonly #env: Record<string, string | undefined>
  #loaded: LoadedConfig
  /** sha256 of the files' bytes the last load read (fingerprint.ts). */
  #fingerprint: string
  #lastError: { file: string; error: string } | null = null
  readonly #listeners = new Set<ConfigListener>()
  #writeChain: Promise<unknown> = Promise.resolve()
  #loadChain: Promise<unknown> = Promise.resolve()
  #watcher: ConfigWatcher | null = null

  private constructor(
    locations: ConfigLocations,
    env: Record<string, string | undefined>,
    home: string,
    loaded: LoadedConfig,
    print: string,
  ) {
    this.locations = locations
    this.#env = env
    this.home = home
    this.#loaded = loaded
    this.#fingerprint = print
  }

  /** Loads the config once; a broken file at startup is a ConfigError for the entry point. */
  static async open(
    locations: ConfigLocations,
    env: Record<string, string | undefined>,
    home: string,
  ): Promise<ConfigStore> {
    // The bytes are fingerprinted before they are read: a write in between makes them differ,
    // so the watcher's next comparison reloads (never the reverse, a change taken as seen).
    const print = await fingerprint(watchedFiles(locations))
    return new ConfigStore(locations, env, home, await loadConfig(locations, env, home), print)
  }

  get current(): Config {
    return this.#loaded.config
  }

  get loaded(): LoadedConfig {
    return this.#loaded
  }

  get env(): Record<string, string | undefined> {
    return this.#env
  }

  /** The last reload error, until a good reload clears it. */
  get lastError(): { file: string; error: string } | null {
    return this.#lastError
  }

  /** The store's file watcher, while one runs (watch()). */
  get watcher(): ConfigWatcher | null {
    return this.#watcher
  }

  subscribe(listener: ConfigListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  #emit(change: ConfigChange): void {
    for (const l of this.#listeners) l(change)
  }

  /**
   * Starts hot reload of the config files (watcher.ts) owned by this store, once; close() stops
   * it. Resolves when the watches are set up.
   */
  async watch(log: Logger, opts: ConfigWatcherOptions = {}): Promise<ConfigWatcher> {
    this.#watcher ??= new ConfigWatcher(this, log, opts)
    await this.#watcher.start()
    return this.#watcher
  }

  /** Stops the watcher (if any) and waits for a load in progress. */
  async close(): Promise<void> {
    const w = this.#watcher
    this.#watcher = null
    await w?.close()
    await this.#loadChain
  }

  /** Re-reads every file; returns whether the new config was taken. */
  async reload(): Promise<boolean> {
    return this.#serial(async () => this.#load(await fingerprint(watchedFiles(this.locations))))
  }

  /** Reloads only when the files' bytes differ from the last load's; null when they do not. */
  async reloadIfChanged(): Promise<boolean | null> {
    return this.#serial(async () => {
      const print = await fingerprint(watchedFiles(this.locations))
      return print === this.#fingerprint ? null : this.#load(print)
    })
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#loadChain.then(task)
    this.#loadChain = run.catch(() => undefined)
    return run
  }

  /** One load, `print` taken before reading; emits only what changed. */
  async #load(print: string): Promise<boolean> {
    this.#fingerprint = print
    try {
      const loaded = await loadConfig(this.locations, this.#env, this.home)
      const previous = this.#loaded.config
      const recovered = this.#lastError !== null
      this.#loaded = loaded
      this.#lastError = null
      if (recovered || !isDeepStrictEqual(previous, loaded.config))
        this.#emit({ type: 'reloaded', previous, current: loaded.config })
      return true
    } catch (err) {
      const file = err instanceof ConfigError ? err.file : 'config'
      const error = err instanceof Error ? err.message : String(err)
      this.#lastError = { file, error }
      this.#emit({ type: 'invalid', file, error })
      return false
    }
  }

  /**
   * Persists dashboard keys to the user config file (comments and other keys kept, written
   * atomically), then reloads. Writes are serialised so two requests never interleave.
   */
  async updateDashboard(patch: DashboardPatch): Promise<Config> {
    await this.#edit((text) => setDashboardKeys(text, patch))
    return this.current
  }

  /**
   * Adds `entry` to `[network] allow` of the user config file unless an entry with the same
   * `key` is there already (idempotent); returns that file's list afterwards. Same write path as
   * updateDashboard (comments kept, atomic, serialised, reloaded).
   */
  async addNetworkAllow(entry: string, key: (e: string) => string): Promise<string[]> {
    let list: string[] = []
    await this.#edit((text) => {
      const net = text.trim() === '' ? undefined : parse(text).network
      const current = isPlainObject(net) && Array.isArray(net.allow) ? net.allow : []
      list = current.filter((e): e is string => typeof e === 'string')
      const wanted = key(entry)
      if (list.some((e) => safeKey(key, e) === wanted)) return null
      list = [...list, entry]
      return setNetworkAllow(text, list)
    })
    return list
  }

  /** `edit` returns the new text, or null for no change (then nothing is written). */
  async #edit(edit: (text: string) => string | null): Promise<void> {
    const run = this.#writeChain.then(async () => {
      const file = await writeTarget(this.locations.writable)
      let text: string
      try {
        text = (await readSmallFile(file, { followLinks: false, maxBytes: 1024 * 1024 })) ?? ''
      } catch (err) {
        throw new AppError(409, 'config_not_editable', (err as Error).message, { expose: true })
      }
      let next: string | null
      try {
        next = edit(text)
      } catch (err) {
        throw new AppError(
          409,
          'config_not_editable',
          `${file}: ${(err as Error).message}; edit the file by hand`,
          { expose: true },
        )
      }
      if (next === null) return
      try {
        await writeFileAtomic(file, next)
      } catch (err) {
        throw new AppError(
          500,
          'config_write_failed',
          `could not save the configuration to ${file}: ${(err as Error).message}`,
          { cause: err, expose: true },
        )
      }
      const ok = await this.reload()
      if (!ok) {
        const error = this.#lastError?.error ?? 'reload failed'
        throw new AppError(
          409,
          'config_invalid',
          `the configuration is invalid, fix it first: ${error}`,
          { expose: true },
        )
      }
    })
    this.#writeChain = run.catch(() => undefined)
    return run
  }
}

function safeKey(key: (e: string) => string, e: string): string {
  try {
    return key(e)
  } catch {
    return e
  }
}
