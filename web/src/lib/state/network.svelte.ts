// The data of one session's Network panel (issue 12): loaded from GET /api/sessions/{id}/network,
// refetched (debounced) on a `session.network` event for that session, on a config reload and on
// every events reconnect, never polled. Allow adds an entry to the user's config through the server.
import { errorMessage, type ApiClient } from '../api.ts'
import type { ClientEvent, SessionNetwork } from '../schemas.ts'
import { groupDestinations, type Destination } from '../network.ts'
import { Refetch } from '../refetch.ts'

/** Connections fetched per load: the API's maximum page, grouped here into destinations. */
export const NETWORK_PAGE = 1000

/** Quiet time after the last event before refetching: a burst of refusals is one request. */
export const NETWORK_DEBOUNCE_MS = 500

export type AllowOutcome = { ok: true } | { ok: false; message: string }

export interface SessionNetworkOptions {
  debounceMs?: number
}

export class SessionNetworkState {
  data: SessionNetwork | null = $state.raw(null)
  error: string | null = $state(null)
  loading = $state(false)
  /** Entries allowed from this page; shown as "allowed, retry pending" until retried. */
  pending: string[] = $state.raw([])
  /** The entry whose Allow request is in flight. */
  allowing: string | null = $state(null)

  readonly destinations: Destination[] = $derived(
    groupDestinations(this.data?.connections ?? [], this.data?.allow ?? [], this.pending),
  )

  readonly #api: ApiClient
  readonly #id: string
  readonly #debounceMs: number
  #timer: ReturnType<typeof setTimeout> | null = null
  #disposed = false
  readonly #refetch = new Refetch(
    () => this.#fetch(),
    () => !this.#disposed,
  )

  constructor(api: ApiClient, id: string, opts: SessionNetworkOptions = {}) {
    this.#api = api
    this.#id = id
    this.#debounceMs = opts.debounceMs ?? NETWORK_DEBOUNCE_MS
  }

  /** Fetches now; a call while a fetch runs makes it fetch once more after (newest data wins). */
  load(): Promise<void> {
    return this.#refetch.run()
  }

  async #fetch(): Promise<void> {
    this.loading = true
    try {
      const data = await this.#api.sessionNetwork(this.#id, NETWORK_PAGE, 0)
      if (this.#disposed) return
      this.data = data
      this.error = null
    } catch (err) {
      if (!this.#disposed) this.error = errorMessage(err)
    } finally {
      this.loading = false
    }
  }

  /**
   * Events for this session, and config reloads (the effective allow list may have changed, e.g.
   * after Allow), schedule one refetch after a quiet `debounceMs`.
   */
  apply(event: ClientEvent): void {
    if (this.#disposed) return
    const mine = event.type === 'session.network' && event.id === this.#id
    if (!mine && event.type !== 'config.reloaded') return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.load()
    }, this.#debounceMs)
  }

  /** Adds `entry` to `[network] allow`; the answer's message is the server's when it refused. */
  async allow(entry: string): Promise<AllowOutcome> {
    if (this.allowing !== null) return { ok: false, message: 'Another entry is being added' }
    this.allowing = entry
    try {
      await this.#api.allowNetwork(entry)
      if (!this.pending.includes(entry)) this.pending = [...this.pending, entry]
      return { ok: true }
    } catch (err) {
      return { ok: false, message: errorMessage(err) }
    } finally {
      this.allowing = null
    }
  }

  dispose(): void {
    this.#disposed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
  }
}
