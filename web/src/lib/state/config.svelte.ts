// The merged configuration, plus the last `config.invalid` report: the server keeps running on
// the previous good config when a file stops parsing, and says so until a `config.reloaded`.
import type { Config } from '../../../../shared/schemas/config.ts'
import { errorMessage, type ApiClient } from '../api.ts'
import type { ClientEvent } from '../schemas.ts'

export interface ConfigProblem {
  file: string
  error: string
}

export class ConfigStore {
  config: Config | null = $state.raw(null)
  loadError: string | null = $state(null)
  invalid: ConfigProblem | null = $state.raw(null)

  readonly roots: string[] = $derived(this.config?.dashboard.workspace_roots ?? [])
  readonly port: number | null = $derived(this.config?.dashboard.port ?? null)

  readonly #api: ApiClient

  constructor(api: ApiClient) {
    this.#api = api
  }

  async load(): Promise<void> {
    try {
      this.config = await this.#api.config()
      this.loadError = null
    } catch (err) {
      this.loadError = errorMessage(err)
    }
  }

  /** Returns true when the event changed the config (the caller re-fetches what depends on it). */
  apply(event: ClientEvent): boolean {
    if (event.type === 'config.invalid') {
      this.invalid = { file: event.file, error: event.error }
      return false
    }
    if (event.type === 'config.reloaded') {
      this.invalid = null
      void this.load()
      return true
    }
    return false
  }

  async addRoot(path: string): Promise<void> {
    await this.#api.addRoot(path)
    await this.load()
  }

  async removeRoot(path: string): Promise<void> {
    await this.#api.removeRoot(path)
    await this.load()
  }

  async setPort(port: number): Promise<void> {
    await this.#api.updateConfig({ port })
    await this.load()
  }
}
