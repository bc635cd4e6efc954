import { lstat, readlink } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
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
 * The current merged config. Reloads swap it atomically; an invalid file keeps the last good
 * config and is reported to listeners (config.invalid), never thrown at readers.
 */
export class ConfigStore {
  readonly locations: ConfigLocations
  readonly home: string
  readonly #env: Record<string, string | undefined>
  #loaded: LoadedConfig
  #lastError: { file: string; error: string } | null = null
  readonly #listeners = new Set<ConfigListener>()
  #writeChain: Promise<unknown> = Promise.resolve()

  private constructor(
    locations: ConfigLocations,
    env: Record<string, string | undefined>,
    home: string,
    loaded: LoadedConfig,
  ) {
    this.locations = locations
    this.#env = env
    this.home = home
    this.#loaded = loaded
  }

  /** Loads the config once; a broken file at startup is a ConfigError for the entry point. */
  static async open(
    locations: ConfigLocations,
    env: Record<string, string | undefined>,
    home: string,
  ): Promise<ConfigStore> {
    return new ConfigStore(locations, env, home, await loadConfig(locations, env, home))
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

  subscribe(listener: ConfigListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  #emit(change: ConfigChange): void {
    for (const l of this.#listeners) l(change)
  }

  /** Re-reads every file; returns whether the new config was taken. */
  async reload(): Promise<boolean> {
    try {
      const loaded = await loadConfig(this.locations, this.#env, this.home)
      const previous = this.#loaded.config
      this.#loaded = loaded
      this.#lastError = null
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
