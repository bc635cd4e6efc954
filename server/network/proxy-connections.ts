// The egress proxy's client side: one unix socket per session (never TCP), the connections
// accepted there, and their life until they close. A connection is tagged with the session whose
// socket it arrived on (the only source of a session: nothing the container sends names one),
// capped per session, closed when idle, and given a deadline for each request header, then
// handed to proxy-chain's HTTP server. Plain-HTTP exchanges are known here from the moment their
// request arrives, before proxy-chain decides anything (see Exchange).
//
// Times are ms. Errors: `open` rejects with the listen/chmod error (nothing is left behind);
// a connection's socket errors are swallowed (the connection just closes).
import { chmod } from 'node:fs/promises'
import type http from 'node:http'
import net from 'node:net'
import type { Logger } from 'pino'
import type { Target } from './policy.ts'
import type { ProxyLimits } from './proxy.ts'
import { removeStale } from './runtime-dir.ts'

/** Something that holds one of a session's connections open: a client socket, or a relay. */
export interface Holder {
  destroy(): void
}

/** An allowed tunnel or plain-HTTP exchange still open, re-checked when the policy changes. */
export interface LiveConnection {
  target: Target
  /** The addresses checked for it; null when an upstream proxy resolved. */
  addresses: readonly string[] | null
  close(): void
}

export interface SessionListener {
  server: net.Server
  path: string
  /** Client connections and relayed tunnels (the per-session cap counts both). */
  sockets: Set<Holder>
  /** Allowed tunnels and plain-HTTP exchanges still open, re-checked when the policy changes. */
  live: Set<LiveConnection>
}

/**
 * One plain-HTTP exchange: its response, and what runs when the response closes (set by the
 * accounting once the request is approved). The response gets exactly one 'close' listener from
 * us: with proxy-chain 3.0.1's forward (client.destroy, byte counting) and Node 20's pipeline
 * (seven), a ServerResponse already carries nine, and Node warns past ten.
 */
export interface Exchange {
  res: http.ServerResponse
  closed: (() => void) | null
}

export type ConnectionLimits = Pick<
  ProxyLimits,
  'maxConnectionsPerSession' | 'idleTimeoutMs' | 'headersTimeoutMs'
>

export class SessionListeners {
  readonly #log: Logger
  readonly #limits: ConnectionLimits
  readonly #http: http.Server
  readonly #listeners = new Map<string, SessionListener>()
  readonly #sessionOf = new WeakMap<net.Socket, string>()
  readonly #exchanges = new WeakMap<http.IncomingMessage, Exchange>()
  /** Per client connection: the pending header deadline, and requests still being answered. */
  readonly #deadlines = new WeakMap<net.Socket, NodeJS.Timeout>()
  readonly #inFlight = new WeakMap<net.Socket, number>()

  /** `http`: proxy-chain's server, which is handed each accepted connection. */
  constructor(opts: { log: Logger; limits: ConnectionLimits; http: http.Server }) {
    this.#log = opts.log
    this.#limits = opts.limits
    const server = (this.#http = opts.http)
    server.headersTimeout = this.#limits.headersTimeoutMs
    // Uploads through plain HTTP may take long; the idle timeout bounds a stalled one.
    server.requestTimeout = 0
    server.keepAliveTimeout = 5000
    // Prepended: the exchange must be known before proxy-chain's own 'request' listener runs the
    // decision, which decides an IP literal (and tracks it) without waiting for anything.
    server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const exchange: Exchange = { res, closed: null }
      this.#exchanges.set(req, exchange)
      const socket = req.socket
      this.#inFlight.set(socket, (this.#inFlight.get(socket) ?? 0) + 1)
      this.#disarm(socket)
      res.once('close', () => {
        exchange.closed?.()
        const left = (this.#inFlight.get(socket) ?? 1) - 1
        this.#inFlight.set(socket, left)
        // Keep-alive: the next request header has the same deadline as the first.
        if (left === 0 && !socket.destroyed) this.#arm(socket)
      })
    })
    // A tunnel carries no more headers.
    server.on('connect', (req: http.IncomingMessage) => {
      this.#disarm(req.socket)
    })
  }

  /** Whether the session has a listener. */
  has(session: string): boolean {
    return this.#listeners.has(session)
  }

  /** The session's listener, if open. */
  get(session: string): SessionListener | undefined {
    return this.#listeners.get(session)
  }

  /** The sessions with a listener. */
  sessions(): string[] {
    return [...this.#listeners.keys()]
  }

  /** The session a client connection arrived for. */
  sessionOf(socket: net.Socket): string | undefined {
    return this.#sessionOf.get(socket)
  }

  /** The plain-HTTP exchange of a request (none for CONNECT). */
  exchange(request: http.IncomingMessage): Exchange | undefined {
    return this.#exchanges.get(request)
  }

  /**
   * Opens the session's unix socket at `path` (mode 0600; what a crash left there is removed
   * first, a symbolic link unlinked and never followed). Idempotent.
   */
  async open(session: string, path: string): Promise<void> {
    if (this.#listeners.has(session)) return
    await removeStale(path)
    const sockets = new Set<Holder>()
    const server = net.createServer((socket) => {
      this.#accept(session, socket, sockets)
    })
    const entry: SessionListener = { server, path, sockets, live: new Set() }
    this.#listeners.set(session, entry)
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(path, () => {
          server.off('error', reject)
          resolve()
        })
      })
      await chmod(path, 0o600)
    } catch (err) {
      this.#listeners.delete(session)
      server.close()
      throw err
    }
    server.on('error', (err) => {
      this.#log.warn({ err, session }, 'egress listener error')
    })
  }

  /** Closes every open connection of a session. */
  closeConnections(session: string): void {
    for (const s of this.#listeners.get(session)?.sockets ?? []) s.destroy()
  }

  /** Closes the session's listener and connections and removes its socket file. */
  async close(session: string): Promise<void> {
    const entry = this.#listeners.get(session)
    if (!entry) return
    this.#listeners.delete(session)
    for (const s of entry.sockets) s.destroy()
    await new Promise<void>((resolve) =>
      entry.server.close(() => {
        resolve()
      }),
    )
    await removeStale(entry.path).catch(() => undefined)
  }

  #accept(session: string, socket: net.Socket, sockets: Set<Holder>): void {
    socket.on('error', () => undefined)
    if (sockets.size >= this.#limits.maxConnectionsPerSession) {
      this.#log.warn({ session }, 'egress: too many connections from one session; closing one')
      socket.destroy()
      return
    }
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    this.#sessionOf.set(socket, session)
    // proxy-chain drops sockets without a remote address (a TCP quirk it guards against); a unix
    // socket has none, so it gets a name that says where it came from.
    Object.defineProperty(socket, 'remoteAddress', { value: 'clincus-session', configurable: true })
    socket.setTimeout(this.#limits.idleTimeoutMs)
    socket.once('close', () => {
      this.#disarm(socket)
    })
    this.#arm(socket)
    this.#http.emit('connection', socket)
  }

  /** Closes the connection unless a whole request header arrives within headersTimeoutMs. */
  #arm(socket: net.Socket): void {
    this.#disarm(socket)
    const timer = setTimeout(() => {
      socket.destroy()
    }, this.#limits.headersTimeoutMs)
    timer.unref()
    this.#deadlines.set(socket, timer)
  }

  #disarm(socket: net.Socket): void {
    clearTimeout(this.#deadlines.get(socket))
    this.#deadlines.delete(socket)
  }
}
