import type { ServerEvent } from '../../shared/schemas/events.ts'
import type { SessionInfo } from '../../shared/schemas/sessions.ts'
import type { EventHub } from './hub.ts'

/**
 * The events that bring a client who believes `known` (id → running) up to `now`. Used after the
 * lifecycle monitor reconnects: whatever happened while it was down (the daemon restarted, a
 * container stopped meanwhile) reaches /ws/events as if it had been seen live.
 */
export function resyncEvents(
  known: ReadonlyMap<string, boolean>,
  now: readonly SessionInfo[],
): ServerEvent[] {
  const out: ServerEvent[] = []
  const seen = new Set<string>()
  for (const s of now) {
    seen.add(s.id)
    const running = s.status === 'running'
    const was = known.get(s.id)
    if (was === undefined) {
      out.push({ type: 'session.created', id: s.id })
      if (running) out.push({ type: 'session.started', id: s.id })
    } else if (running !== was) {
      out.push({ type: running ? 'session.started' : 'session.stopped', id: s.id })
    }
  }
  for (const id of known.keys()) {
    if (seen.has(id)) continue
    // As for a live instance-deleted: deleted also counts as stopped (the contract).
    out.push({ type: 'session.stopped', id }, { type: 'session.deleted', id })
  }
  return out
}

/** What clients of the event stream have been told about each session, read off the hub. */
export class SessionStateTracker {
  readonly #known = new Map<string, boolean>()
  readonly #unsubscribe: () => void
  #seeded = false

  constructor(hub: EventHub) {
    this.#unsubscribe = hub.subscribe(({ event }) => {
      this.#apply(event)
    })
  }

  get seeded(): boolean {
    return this.#seeded
  }

  get known(): ReadonlyMap<string, boolean> {
    return this.#known
  }

  /** Starts from the truth (the first time the monitor connects). */
  seed(now: readonly SessionInfo[]): void {
    this.#known.clear()
    for (const s of now) this.#known.set(s.id, s.status === 'running')
    this.#seeded = true
  }

  dispose(): void {
    this.#unsubscribe()
  }

  #apply(e: ServerEvent): void {
    switch (e.type) {
      case 'session.created':
        if (!this.#known.has(e.id)) this.#known.set(e.id, false)
        return
      case 'session.started':
        this.#known.set(e.id, true)
        return
      case 'session.stopped':
        this.#known.set(e.id, false)
        return
      case 'session.deleted':
        this.#known.delete(e.id)
        return
      default:
        return
    }
  }
}
