import { PassThrough, type Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import type { Logger } from 'pino'
import { Type } from 'typebox'
import { errorResponses } from '../../shared/schemas/common.ts'
import {
  EventsHeadersSchema,
  EventsQuerySchema,
  type StreamReset,
} from '../../shared/schemas/events.ts'
import type { EventHub, StampedEvent } from '../events/hub.ts'
import { formatSseComment, formatSseEvent, formatSseRetry, lastEventId } from '../events/sse.ts'

export interface SseOptions {
  /** Comment lines at this interval keep proxies and idle timeouts from closing the stream. */
  heartbeatMs?: number
  /** Unsent bytes after which a stalled client is dropped (it reconnects with Last-Event-ID). */
  maxBufferedBytes?: number
  /** The reconnection delay suggested to EventSource. */
  retryMs?: number
}

const DEFAULT_HEARTBEAT_MS = 15_000
const DEFAULT_MAX_BUFFERED = 1024 * 1024
const DEFAULT_RETRY_MS = 2000

interface Stream {
  out: PassThrough
  reply: FastifyReply
  stop: () => void
}

/** The open `GET /api/events` streams, so the app can end them on close. */
export class SseStreams {
  readonly #hub: EventHub
  readonly #log: Logger
  readonly #o: Required<SseOptions>
  readonly #streams = new Set<Stream>()

  constructor(hub: EventHub, log: Logger, opts: SseOptions = {}) {
    this.#hub = hub
    this.#log = log
    this.#o = {
      heartbeatMs: opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
      maxBufferedBytes: opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED,
      retryMs: opts.retryMs ?? DEFAULT_RETRY_MS,
    }
  }

  get size(): number {
    return this.#streams.size
  }

  /** Starts a stream on `reply`: replay after `after` (if given), then live events. */
  open(reply: FastifyReply, after: number | undefined): PassThrough {
    const out = new PassThrough()
    const backlog = (): number => out.readableLength + out.writableLength + reply.raw.writableLength
    const write = (text: string): void => {
      if (out.writableEnded || out.destroyed) return
      if (backlog() > this.#o.maxBufferedBytes) {
        this.#log.warn({ backlog: backlog() }, 'sse client too slow; dropping it')
        out.destroy()
        return
      }
      out.write(text)
    }
    const send = (e: StampedEvent): void => {
      write(formatSseEvent({ id: e.id, data: JSON.stringify(e.event) }))
    }

    write(formatSseRetry(this.#o.retryMs))
    // Replay and subscription happen in the same synchronous turn, so no event can fall between.
    if (after !== undefined) {
      const { events, complete } = this.#hub.since(after)
      if (!complete) {
        const reset: StreamReset = {
          type: 'stream.reset',
          reason: 'events after the given id are no longer kept; refetch the state',
        }
        write(formatSseEvent({ event: 'reset', data: JSON.stringify(reset) }))
      }
      for (const e of events) send(e)
    } else {
      // Something for the client to parse at once: headers and a first byte flush the proxy.
      write(formatSseComment('connected'))
    }
    const unsubscribe = this.#hub.subscribe(send)
    const heartbeat = setInterval(() => {
      write(formatSseComment('heartbeat'))
    }, this.#o.heartbeatMs)
    heartbeat.unref()

    const stream: Stream = {
      out,
      reply,
      stop: () => {
        unsubscribe()
        clearInterval(heartbeat)
        this.#streams.delete(stream)
      },
    }
    this.#streams.add(stream)
    out.once('close', stream.stop)
    reply.raw.once('close', () => {
      stream.stop()
      out.destroy()
    })
    return out
  }

  /** Ends every stream cleanly (the response completes; EventSource will try to reconnect). */
  closeAll(): void {
    for (const s of [...this.#streams]) {
      s.stop()
      s.out.end()
    }
  }
}

export function sseEventsRoutes(streams: SseStreams): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/api/events', {
      // Closed when the sign-in session that opened it is revoked.
      config: { stream: true },
      schema: {
        tags: ['events'],
        summary: 'Server-sent events: the /ws/events stream for scripts, resumable',
        description:
          'text/event-stream. Each event is `id: <n>` and `data: <the event JSON, as on /ws/events>`; ids increase. ' +
          'After a reconnect with `Last-Event-ID` (or `?last_event_id=`) the events after that id are replayed from a ' +
          'bounded ring; if the ring no longer reaches back that far an event of type `reset` comes first. ' +
          'Comment lines (`: heartbeat`) arrive every 15 s.',
        querystring: EventsQuerySchema,
        headers: EventsHeadersSchema,
        response: {
          200: {
            description: 'An endless text/event-stream',
            // The handler sends a stream; for the document it is a string.
            content: { 'text/event-stream': { schema: Type.Unsafe<Readable>({ type: 'string' }) } },
          },
          ...errorResponses,
        },
      },
      handler: async (req, reply) => {
        const after = lastEventId(req.headers['last-event-id'], req.query.last_event_id)
        const out = streams.open(reply, after)
        return reply
          .header('content-type', 'text/event-stream; charset=utf-8')
          .header('cache-control', 'no-cache, no-transform')
          .header('x-accel-buffering', 'no')
          .send(out)
      },
    })
  }
}
