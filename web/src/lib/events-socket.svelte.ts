// The /ws/events subscription: one socket, reconnected with backoff for as long as the page lives.
// Every (re)connect calls onOpen, whose job is to re-fetch everything: events sent while we were
// away are lost, so the lists are rebuilt from the REST API rather than patched.
import { Value } from 'typebox/value'
import { Backoff } from './backoff.ts'
import { ClientEventSchema, type ClientEvent } from './schemas.ts'

export type LinkState = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface EventsSocketOptions {
  /** The socket's URL; may first fetch a single-use ticket (so it is asked anew per attempt). */
  url: () => string | Promise<string>
  onEvent: (event: ClientEvent) => void
  onOpen: () => void
  WebSocket?: typeof WebSocket
  backoff?: Backoff
}

/** Parses one message; null for anything that is not an event we know (newer servers may add types). */
export function parseEvent(data: unknown): ClientEvent | null {
  if (typeof data !== 'string') return null
  let msg: unknown
  try {
    msg = JSON.parse(data)
  } catch {
    return null
  }
  // Accept a stamped envelope {id, event} as well as the bare event the contract sends.
  if (typeof msg === 'object' && msg !== null && 'event' in msg && !('type' in msg)) msg = msg.event
  return Value.Check(ClientEventSchema, msg) ? msg : null
}

export class EventsSocket {
  state: LinkState = $state('connecting')
  /** When the next reconnect attempt is due (epoch ms), while reconnecting. */
  retryAt: number | null = $state(null)
  readonly #opts: EventsSocketOptions
  readonly #WS: typeof WebSocket
  readonly #backoff: Backoff
  #socket: WebSocket | null = null
  #timer: ReturnType<typeof setTimeout> | null = null
  #closed = false
  /** Bumped by close() and each attempt, so a URL that arrives late is not used. */
  #attempt = 0

  constructor(opts: EventsSocketOptions) {
    this.#opts = opts
    this.#WS = opts.WebSocket ?? WebSocket
    this.#backoff = opts.backoff ?? new Backoff(500, 15_000)
  }

  start(): void {
    this.#closed = false
    this.#connect()
  }

  /** Skips the wait when the browser says the network is back. */
  retryNow(): void {
    if (this.#closed || this.state !== 'reconnecting') return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#connect()
  }

  close(): void {
    this.#closed = true
    this.#attempt++
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    const s = this.#socket
    this.#socket = null
    if (s) {
      s.onopen = s.onclose = s.onmessage = s.onerror = null
      s.close(1000)
    }
    this.state = 'closed'
    this.retryAt = null
  }

  #connect(): void {
    if (this.#closed) return
    this.state = this.#backoff.attempt === 0 ? 'connecting' : 'reconnecting'
    this.retryAt = null
    const attempt = ++this.#attempt
    let url: string | Promise<string>
    try {
      url = this.#opts.url()
    } catch {
      this.#schedule()
      return
    }
    if (typeof url === 'string') {
      this.#open(url)
      return
    }
    url.then(
      (u) => {
        if (attempt === this.#attempt && !this.#closed) this.#open(u)
      },
      () => {
        if (attempt === this.#attempt) this.#schedule()
      },
    )
  }

  #open(url: string): void {
    let socket: WebSocket
    try {
      socket = new this.#WS(url)
    } catch {
      this.#schedule()
      return
    }
    this.#socket = socket
    socket.onopen = () => {
      this.#backoff.reset()
      this.state = 'open'
      this.#opts.onOpen()
    }
    socket.onmessage = (e: MessageEvent) => {
      const event = parseEvent(e.data)
      if (event) this.#opts.onEvent(event)
    }
    socket.onclose = () => {
      socket.onopen = socket.onclose = socket.onmessage = socket.onerror = null
      if (this.#socket === socket) this.#socket = null
      this.#schedule()
    }
  }

  #schedule(): void {
    if (this.#closed) return
    const delay = this.#backoff.next()
    this.state = 'reconnecting'
    this.retryAt = Date.now() + delay
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#connect()
    }, delay)
  }
}
