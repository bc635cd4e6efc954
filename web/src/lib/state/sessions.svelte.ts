// The session list, kept current by /ws/events (no polling). Since issue 15 every `session.*`
// lifecycle event carries the session as it is after the change, which replaces ours: no fetch.
// An older server sends ids only: then a known session's status is patched and an unknown id
// triggers one list fetch. The list is fetched whole only on start and on every (re)connect of
// the events socket (events may have been missed). Launch progress (`session.launching`) is kept
// beside the list.
import { LAUNCH_STEP_LABELS } from '../../../../shared/schemas/launch.ts'
import type { CreateSessionBody, SessionStatus } from '../../../../shared/schemas/sessions.ts'
import { errorMessage, type ApiClient } from '../api.ts'
import type { ClientEvent, Session } from '../schemas.ts'
import { formatTarget } from '../network.ts'
import { Refetch } from '../refetch.ts'

export interface Launch {
  id: string
  step: string
  progress: number
  /** Epoch ms of the last progress event. */
  updated: number
}

export type PendingAction = 'stopping' | 'deleting' | 'resuming'

/** A launch step in words, from the one schema the server uses (shared/schemas/launch.ts). */
export function stepLabel(step: string): string {
  const label = (LAUNCH_STEP_LABELS as Record<string, string | undefined>)[step]
  return label === undefined ? step : label.charAt(0).toUpperCase() + label.slice(1)
}

/** The status an id-only lifecycle event (an older server) implies. */
const STATUS_AFTER = {
  'session.started': 'running',
  'session.stopped': 'stopped',
  'session.frozen': 'frozen',
  'session.thawed': 'running',
} as const satisfies Record<string, SessionStatus>

/** A session card flags a refused connection for this long (issue 12: "in the last minute"). */
export const REFUSED_RECENT_MS = 60_000

/** The last refused connection of a session, as far as this page knows. */
export interface Refusal {
  /** Epoch ms. */
  at: number
  /** `host:port` when a live event said which; null when only the session object's time is known. */
  target: string | null
}

/** A launch with no news for this long is dropped (it failed before a container existed). */
const LAUNCH_STALE_MS = 120_000
/** After the last step a launch is kept briefly, until the list shows the session running. */
const LAUNCH_DONE_MS = 10_000

export class SessionsStore {
  list: Session[] = $state.raw([])
  loaded = $state(false)
  loadError: string | null = $state(null)
  launches: Launch[] = $state.raw([])
  pending: Record<string, PendingAction> = $state.raw({})
  /** Workspaces this tab is launching into right now (POST in flight). */
  creating: string[] = $state.raw([])
  /** Refused connections seen live (`session.network` with allowed false), per session id. */
  refusedLive: Record<string, Refusal> = $state.raw({})

  readonly running: Session[] = $derived(this.list.filter((s) => s.status === 'running'))
  /** Launches still worth showing: not yet finished into a running session. */
  readonly activeLaunches: Launch[] = $derived(
    this.launches.filter(
      (l) => !(l.step === 'tool' && this.list.some((s) => s.id === l.id && s.status === 'running')),
    ),
  )

  readonly #api: ApiClient
  readonly #now: () => number
  readonly #refetch = new Refetch(() => this.#fetch())
  /**
   * The changes applied while a fetch is in flight: its answer may predate them, so they are
   * applied again on top of it (instead of fetching once more).
   */
  #journal: ((list: Session[]) => Session[])[] | null = null

  constructor(api: ApiClient, now: () => number = Date.now) {
    this.#api = api
    this.#now = now
  }

  get(id: string): Session | undefined {
    return this.list.find((s) => s.id === id)
  }

  launch(id: string): Launch | undefined {
    return this.activeLaunches.find((l) => l.id === id)
  }

  /**
   * The newest refused connection of a session: the later of the session object's
   * `network.last_refused_at` (survives a reload) and the live `session.network` events.
   */
  lastRefused(id: string): Refusal | null {
    const live = this.refusedLive[id] ?? null
    const iso = this.get(id)?.network?.last_refused_at
    const at = iso ? Date.parse(iso) : Number.NaN
    if (Number.isNaN(at)) return live
    return live && live.at >= at ? live : { at, target: null }
  }

  /** The refusal to flag on the card at `now` (epoch ms): one less than a minute old, else null. */
  recentRefusal(id: string, now: number): Refusal | null {
    const r = this.lastRefused(id)
    return r && now - r.at < REFUSED_RECENT_MS ? r : null
  }

  /** Running sessions per workspace path. */
  activeCount(workspace: string): number {
    return this.running.filter((s) => s.workspace === workspace).length
  }

  /** Fetches the list; concurrent calls share one request, and a call during a fetch re-runs it. */
  load(): Promise<void> {
    return this.#refetch.run()
  }

  async #fetch(): Promise<void> {
    const journal: ((list: Session[]) => Session[])[] = []
    this.#journal = journal
    try {
      let list = await this.#api.sessions()
      for (const change of journal) list = change(list)
      this.list = list
      this.loaded = true
      this.loadError = null
    } catch (err) {
      this.loadError = errorMessage(err)
    } finally {
      if (this.#journal === journal) this.#journal = null
    }
  }

  /** Applies `change` to the list, and again to the answer of a fetch now in flight. */
  #change(change: (list: Session[]) => Session[]): void {
    this.list = change(this.list)
    this.#journal?.push(change)
  }

  apply(event: ClientEvent): void {
    switch (event.type) {
      case 'session.created':
      case 'session.started':
      case 'session.stopped':
      case 'session.frozen':
      case 'session.thawed': {
        const session = event.session
        if (session && session.id === event.id) {
          this.#upsert(session)
          return
        }
        // An older server (ids only): patch what we know, fetch what we do not.
        if (event.type === 'session.created') {
          if (!this.get(event.id)) void this.load()
          return
        }
        this.#setStatus(event.id, STATUS_AFTER[event.type])
        return
      }
      case 'session.agent':
        this.#setAgent(event.id, event.agent)
        return
      case 'session.deleted':
        this.#remove(event.id)
        this.launches = this.launches.filter((l) => l.id !== event.id)
        if (this.refusedLive[event.id]) {
          const next = { ...this.refusedLive }
          Reflect.deleteProperty(next, event.id)
          this.refusedLive = next
        }
        return
      case 'session.network':
        if (!event.allowed) {
          this.refusedLive = {
            ...this.refusedLive,
            [event.id]: { at: this.#now(), target: formatTarget(event.host, event.port) },
          }
        }
        return
      case 'session.launching':
        // The server ends every launch with `done` or `failed`; prune() only covers older servers.
        if (event.step === 'done' || event.step === 'failed') {
          this.launches = this.launches.filter((l) => l.id !== event.id)
          if (event.step === 'done' && !this.get(event.id)) void this.load()
          return
        }
        this.launches = [
          ...this.launches.filter((l) => l.id !== event.id),
          { id: event.id, step: event.step, progress: event.progress, updated: this.#now() },
        ]
        if (!this.get(event.id) && event.step !== 'init') void this.load()
        return
      default:
        return
    }
  }

  /** Drops launches that went quiet (a launch that failed before its container existed). */
  prune(): void {
    const now = this.#now()
    const keep = this.launches.filter((l) => {
      const age = now - l.updated
      return l.step === 'tool' ? age < LAUNCH_DONE_MS : age < LAUNCH_STALE_MS
    })
    if (keep.length !== this.launches.length) this.launches = keep
  }

  /** Replaces the session with the server's object (in place), or adds it at the end. */
  #upsert(session: Session): void {
    this.#change((list) =>
      list.some((s) => s.id === session.id)
        ? list.map((s) => (s.id === session.id ? session : s))
        : [...list, session],
    )
  }

  #setStatus(id: string, status: SessionStatus): void {
    const current = this.get(id)
    if (!current) {
      void this.load()
      return
    }
    if (current.status === status) return
    this.#change((list) => list.map((s) => (s.id === id ? { ...s, status } : s)))
  }

  /**
   * Issue 17: the agent's status changed; the event carries all of it, so no fetch. An unknown id
   * is ignored: the session's own lifecycle event (or the fetch in flight, via the journal)
   * brings it, with its agent status.
   */
  #setAgent(id: string, agent: NonNullable<Session['agent']>): void {
    if (!this.get(id) && !this.#journal) return
    this.#change((list) => list.map((s) => (s.id === id ? { ...s, agent } : s)))
  }

  #remove(id: string): void {
    this.#change((list) => list.filter((s) => s.id !== id))
  }

  #setPending(id: string, action: PendingAction | null): void {
    const next = { ...this.pending }
    if (action) next[id] = action
    else Reflect.deleteProperty(next, id)
    this.pending = next
  }

  async #act(id: string, action: PendingAction, fn: () => Promise<unknown>): Promise<void> {
    if (this.pending[id]) return
    this.#setPending(id, action)
    try {
      await fn()
    } finally {
      this.#setPending(id, null)
    }
  }

  async create(body: CreateSessionBody): Promise<Session> {
    this.creating = [...this.creating, body.workspace]
    try {
      const session = await this.#api.createSession(body)
      this.#upsert(session)
      this.launches = this.launches.filter((l) => l.id !== session.id)
      return session
    } finally {
      const i = this.creating.indexOf(body.workspace)
      this.creating = this.creating.filter((_, j) => j !== i)
    }
  }

  /** Graceful stop: the container stays, stopped; the event stream brings the new status. */
  stop(id: string): Promise<void> {
    return this.#act(id, 'stopping', async () => {
      await this.#api.deleteSession(id, false)
      this.#setStatus(id, 'stopped')
    })
  }

  /** Deletes the container for good (the UI confirms first). */
  forceDelete(id: string): Promise<void> {
    return this.#act(id, 'deleting', async () => {
      await this.#api.deleteSession(id, true)
      this.#remove(id)
    })
  }

  resume(id: string): Promise<void> {
    return this.#act(id, 'resuming', async () => {
      await this.#api.resumeSession(id)
      this.#setStatus(id, 'running')
    })
  }
}
