import type { ServerEvent } from '../../shared/schemas/events.ts'

export interface StampedEvent {
  id: number
  event: ServerEvent
}

export type EventListener = (e: StampedEvent) => void

/**
 * Fan-out of server events. Each event gets an increasing id and is kept in a bounded ring so
 * SSE clients can replay what they missed (Last-Event-ID). Listeners must not block: transports
 * own their own per-client bounds.
 */
export class EventHub {
  readonly #listeners = new Set<EventListener>()
  readonly #ring: StampedEvent[] = []
  readonly #capacity: number
  #nextId = 1

  /** `firstId`: where ids start (the app starts them from the clock, see buildApp). */
  constructor(capacity = 1024, firstId = 1) {
    this.#capacity = capacity
    this.#nextId = firstId
  }

  publish(event: ServerEvent): StampedEvent {
    const stamped = { id: this.#nextId++, event }
    this.#ring.push(stamped)
    if (this.#ring.length > this.#capacity) this.#ring.shift()
    for (const l of this.#listeners) l(stamped)
    return stamped
  }

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Events after `lastId`; `complete` is false when the ring no longer reaches back that far. */
  since(lastId: number): { events: StampedEvent[]; complete: boolean } {
    const events = this.#ring.filter((e) => e.id > lastId)
    const oldest = this.#ring[0]?.id ?? this.#nextId
    return { events, complete: lastId >= oldest - 1 }
  }

  get lastId(): number {
    return this.#nextId - 1
  }

  get listenerCount(): number {
    return this.#listeners.size
  }
}
