import type { FastifyPluginAsync } from 'fastify'
import type { Logger } from 'pino'
import type { WebSocket } from '@fastify/websocket'
import { CloseCode } from '../../shared/ws/terminal.ts'
import type { ServerEvent } from '../../shared/schemas/events.ts'
import type { EventHub } from '../events/hub.ts'
import { keepAlive } from '../events/ws-keepalive.ts'

export interface EventSocketOptions {
  /**
   * Bytes a client may leave unread before it is disconnected. Events are small (~100 B), so the
   * default is thousands of them: only a client that stopped reading gets there.
   */
  maxBufferedBytes?: number
  pingIntervalMs?: number
  /** Events every new subscriber gets first: the current state a late joiner would miss. */
  greeting?: () => ServerEvent[]
}

const DEFAULT_MAX_BUFFERED = 1024 * 1024

/**
 * The /ws/events subscribers: every hub event as one JSON text frame, exactly the event object
 * (`{"type":"session.started","id":"…"}` as in the contract). A client whose backlog passes the
 * bound is closed with 4408 rather than queued for ever; it reconnects and refetches the state.
 */
export class EventSockets {
  readonly #hub: EventHub
  readonly #log: Logger
  readonly #max: number
  readonly #pingMs: number | undefined
  readonly #sockets = new Set<WebSocket>()
  readonly #greeting: () => ServerEvent[]

  constructor(hub: EventHub, log: Logger, opts: EventSocketOptions = {}) {
    this.#hub = hub
    this.#log = log
    this.#max = opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED
    this.#pingMs = opts.pingIntervalMs
    this.#greeting = opts.greeting ?? (() => [])
  }

  get size(): number {
    return this.#sockets.size
  }

  add(ws: WebSocket): void {
    this.#sockets.add(ws)
    keepAlive(ws, this.#pingMs)
    for (const event of this.#greeting()) ws.send(JSON.stringify(event))
    const unsubscribe = this.#hub.subscribe(({ event }) => {
      if (ws.readyState !== ws.OPEN) return
      const data = JSON.stringify(event)
      if (ws.bufferedAmount + Buffer.byteLength(data) > this.#max) {
        this.#log.warn({ buffered: ws.bufferedAmount }, 'events client too slow; disconnecting')
        unsubscribe()
        // `ws` destroys the socket if the close handshake does not finish within its timeout.
        ws.close(CloseCode.SLOW_CLIENT, 'client too slow; reconnect and refetch')
        return
      }
      ws.send(data)
    })
    ws.on('close', () => {
      unsubscribe()
      this.#sockets.delete(ws)
    })
    ws.on('error', (err) => {
      this.#log.debug({ err }, 'events socket error')
    })
    // Clients only listen; anything they send is ignored.
    ws.on('message', () => undefined)
  }

  closeAll(): void {
    for (const ws of this.#sockets) ws.close(CloseCode.GOING_AWAY, 'server shutting down')
  }
}

export function wsEventsRoutes(sockets: EventSockets): FastifyPluginAsync {
  return async (app) => {
    app.get('/ws/events', { websocket: true }, (socket) => {
      sockets.add(socket)
    })
  }
}
