// The merged configuration, plus the last `config.invalid` report: the server keeps running on
// the previous good config when a file stops parsing, and says so until a `config.reloaded`.
//
// Requests (issue 15): a save uses what the server answers — the merged config from
// PUT /api/config, the new roots from POST/DELETE /api/workspaces — and fetches nothing more. The
// `config.reloaded` that a save of this tab causes is recognised and costs nothing; one from
// anywhere else (a hand edit of the file, another tab) costs one GET /api/config. When the roots
// changed, `onRootsChanged` tells the project list, which refetches only when it is on screen.
import type { Config } from '../../../../shared/schemas/config.ts'
import type { Roots } from '../../../../shared/schemas/workspaces.ts'
import { errorMessage, type ApiClient } from '../api.ts'
import { Refetch } from '../refetch.ts'
import type { ClientEvent } from '../schemas.ts'

export interface ConfigProblem {
  file: string
  error: string
}

export interface ConfigStoreOptions {
  /** The workspace roots differ from the previous config's (not called for the first load). */
  onRootsChanged?: () => void
  /** Epoch ms (tests). */
  now?: () => number
}

/**
 * How long after its answer a save of this tab still claims the next `config.reloaded`. The
 * server publishes the event before it answers the save, so it normally arrives first; the
 * window only covers a slow socket, and a hand edit inside it is missed until the next event
 * or reconnect.
 */
export const OWN_RELOAD_MS = 5000

function sameRoots(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i])
}

export class ConfigStore {
  config: Config | null = $state.raw(null)
  loadError: string | null = $state(null)
  invalid: ConfigProblem | null = $state.raw(null)

  readonly roots: string[] = $derived(this.config?.dashboard.workspace_roots ?? [])
  readonly port: number | null = $derived(this.config?.dashboard.port ?? null)

  readonly #api: ApiClient
  readonly #onRootsChanged: () => void
  readonly #now: () => number
  readonly #refetch = new Refetch(() => this.#fetch())
  /**
   * Saves of this tab whose `config.reloaded` has not arrived: each claims one event, until
   * its deadline (epoch ms; Infinity while the request is in flight).
   */
  #ownSaves: { until: number }[] = []

  constructor(api: ApiClient, opts: ConfigStoreOptions = {}) {
    this.#api = api
    this.#onRootsChanged = opts.onRootsChanged ?? (() => undefined)
    this.#now = opts.now ?? Date.now
  }

  /** GET /api/config; concurrent calls share one request. */
  load(): Promise<void> {
    return this.#refetch.run()
  }

  async #fetch(): Promise<void> {
    try {
      this.#set(await this.#api.config())
      this.loadError = null
    } catch (err) {
      this.loadError = errorMessage(err)
    }
  }

  #set(next: Config): void {
    const before = this.config
    this.config = next
    if (before && !sameRoots(before.dashboard.workspace_roots, next.dashboard.workspace_roots))
      this.#onRootsChanged()
  }

  /** Handles `config.reloaded` / `config.invalid`; other events are ignored. */
  apply(event: ClientEvent): void {
    if (event.type === 'config.invalid') {
      this.invalid = { file: event.file, error: event.error }
      return
    }
    if (event.type !== 'config.reloaded') return
    this.invalid = null
    const now = this.#now()
    this.#ownSaves = this.#ownSaves.filter((s) => s.until > now)
    // This tab's own save: its answer is (or will be) the new config.
    if (this.#ownSaves.shift()) return
    void this.load()
  }

  /**
   * Runs one save and takes its answer as the new state. `apply` returns whether the config
   * changed (only then does the server publish `config.reloaded`).
   */
  async #save<T>(send: () => Promise<T>, apply: (answer: T) => Promise<boolean>): Promise<void> {
    const claim = { until: Number.POSITIVE_INFINITY }
    this.#ownSaves.push(claim)
    let changed = false
    try {
      changed = await apply(await send())
    } finally {
      if (changed) claim.until = this.#now() + OWN_RELOAD_MS
      else this.#ownSaves = this.#ownSaves.filter((s) => s !== claim)
    }
  }

  /** The roots a POST/DELETE /api/workspaces answered, applied to the config we hold. */
  async #applyRoots(answer: Roots): Promise<boolean> {
    const current = this.config
    if (!current) {
      await this.load()
      return true
    }
    this.#set({ ...current, dashboard: { ...current.dashboard, workspace_roots: answer.roots } })
    return true
  }

  /** POST /api/workspaces: one request (the server checks the folder and refuses duplicates). */
  addRoot(path: string): Promise<void> {
    return this.#save(
      () => this.#api.addRoot(path),
      (r) => this.#applyRoots(r),
    )
  }

  /** DELETE /api/workspaces: one request. */
  removeRoot(path: string): Promise<void> {
    return this.#save(
      () => this.#api.removeRoot(path),
      (r) => this.#applyRoots(r),
    )
  }

  /** PUT /api/config `{port}`: one request (a GET too only when the server is older). */
  setPort(port: number): Promise<void> {
    const before = this.config
    return this.#save(
      () => this.#api.updateConfig({ port }),
      async (merged) => {
        if (merged) this.#set(merged)
        else await this.load()
        return before === null || JSON.stringify(before) !== JSON.stringify(this.config)
      },
    )
  }
}
