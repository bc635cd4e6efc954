import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http'
import { createServer, type Server, type Socket } from 'node:net'
import type { Logger } from 'pino'
import {
  ConnectionTable,
  DEFAULT_LIMITS,
  identifyPeers,
  type ConnectionLimits,
  type Eviction,
  type PeerIdentifier,
} from './connection-table.ts'

export {
  ConnectionTable,
  DEFAULT_LIMITS,
  identifyPeers,
  type ConnectionLimits,
  type Eviction,
  type PeerIdentifier,
  type RequestProgress,
  type TrackedSocket,
} from './connection-table.ts'

/** The app's WebSocket server: it announces each upgrade that really became a WebSocket. */
export interface WebSocketAcceptor {
  on(event: 'connection', listener: (ws: unknown, request: IncomingMessage) => void): unknown
}

export interface ListenerOptions {
  log?: Logger
  /**
   * With it, a connection counts as upgraded only once it is a WebSocket: until then it still
   * waits for a header, so a refused upgrade (answered 401, then left open by
   * @fastify/websocket) is closed by the header timeout like any other idle connection.
   */
  websockets?: WebSocketAcceptor
  limits?: Partial<ConnectionLimits>
  /** Who is behind each socket (default: the peer's uid from /proc/net/tcp, else the address). */
  identify?: PeerIdentifier<Socket>
}

/**
 * Owns the TCP listener(s) in front of the app's HTTP server. Connections are handed to the
 * HTTP server with `emit('connection')`, so the listener can move to another port (a config
 * change) without rebuilding the app or dropping sockets that are already open. It also owns
 * the connection policy (timeouts, caps): see ConnectionTable.
 */
export class Listener {
  readonly #http: HttpServer
  readonly #log: Logger | undefined
  readonly #limits: ConnectionLimits
  readonly #table: ConnectionTable<Socket>
  #server: Server | null = null
  readonly #sockets = new Set<Socket>()
  #host = '127.0.0.1'
  #sweeper: NodeJS.Timeout | null = null
  #evicted = new Map<string, number>()
  #lastReport = 0

  constructor(http: HttpServer, opts: ListenerOptions = {}) {
    this.#http = http
    this.#log = opts.log
    this.#limits = { ...DEFAULT_LIMITS, ...opts.limits }
    this.#table = new ConnectionTable<Socket>(this.#limits, opts.identify ?? identifyPeers, (e) => {
      this.#noteEviction(e)
    })
    http.keepAliveTimeout = this.#limits.keepAliveTimeoutMs
    http.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket
      this.#table.requestStarted(socket, req, Date.now())
      res.once('close', () => {
        if (!socket.destroyed) this.#table.requestDone(socket, Date.now())
      })
    })
    if (opts.websockets) {
      opts.websockets.on('connection', (_ws, req) => {
        this.#table.upgraded(req.socket)
      })
    } else {
      http.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
        this.#table.upgraded(socket)
      })
    }
  }

  get port(): number {
    const addr = this.#server?.address()
    return typeof addr === 'object' && addr ? addr.port : 0
  }

  get host(): string {
    return this.#host
  }

  /** Open connections, and those waiting for a request header (tests, diagnostics). */
  get connections(): { total: number; waiting: number } {
    return { total: this.#table.size, waiting: this.#table.waiting }
  }

  async #open(port: number, host: string): Promise<Server> {
    const server = createServer({ noDelay: true }, (socket) => {
      this.#sockets.add(socket)
      socket.once('close', () => {
        this.#sockets.delete(socket)
        this.#table.remove(socket)
      })
      this.#table.add(socket, Date.now())
      if (!socket.destroyed) this.#http.emit('connection', socket)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ port, host }, () => {
        server.off('error', reject)
        resolve()
      })
    })
    return server
  }

  async listen(port: number, host: string): Promise<number> {
    this.#server = await this.#open(port, host)
    this.#host = host
    this.#sweeper ??= setInterval(() => {
      this.#table.sweep(Date.now())
    }, this.#limits.sweepIntervalMs)
    this.#sweeper.unref()
    return this.port
  }

  /** Opens the new port first; only when that worked is the old one closed. */
  async move(port: number): Promise<number> {
    if (port === this.port) return port
    const next = await this.#open(port, this.#host)
    const prev = this.#server
    this.#server = next
    // Stop accepting on the old port; its open connections keep being served.
    prev?.close()
    return this.port
  }

  /** Stops accepting and drops idle connections; busy ones finish their request. */
  close(): Promise<void> {
    this.#server?.close()
    this.#server = null
    this.#table.closeWaiting()
    return Promise.resolve()
  }

  destroySockets(): void {
    if (this.#sweeper) clearInterval(this.#sweeper)
    this.#sweeper = null
    for (const s of this.#sockets) s.destroy()
    this.#sockets.clear()
  }

  /** One warning per 10 s at most, with what was closed per client, never per connection. */
  #noteEviction(e: Eviction): void {
    this.#evicted.set(e.client, (this.#evicted.get(e.client) ?? 0) + 1)
    const now = Date.now()
    if (now - this.#lastReport < 10_000) return
    this.#lastReport = now
    this.#log?.warn(
      { evicted: Object.fromEntries(this.#evicted), ...this.connections },
      'too many connections; closed the oldest of the client holding the most',
    )
    this.#evicted = new Map()
  }
}
