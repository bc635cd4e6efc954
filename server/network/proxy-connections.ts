// The egress proxy's client side: one unix socket per session (never TCP), the connections
// accepted there, and their life until they close. A connection is tagged with the session whose
// socket it arrived on (the only source of a session: nothing the container sends names one),
// capped per session, closed when idle, and given a deadline for each request header, then
// handed to proxy-chain's HTTP server. Plain-HTTP exchanges are known here from the moment their
// request arrives, before proxy-chain decides anything (see Exchange).
//
// The socket is the session's only one (issue 16: one Incus proxy device per session), so it
// also carries the agent hook channel: a connection is routed by its first byte (channelOf). Until
// that byte arrives it is pending: at most maxConnectionsPerSession pending per session (a new one
// past that closes the oldest pending, so connections that send nothing cannot keep out ones
// that do) and firstByteTimeoutMs each. Then each channel has its own cap: the egress proxy's
// here, the hook channel's in its handler; a flood on one never counts against the other.
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

/**
 * The handler of a session's connections that are not HTTP (the agent hook channel): given the
 * session, the socket (paused; the handler resumes it) and the first chunk read from it.
 */
export type OtherConnection = (session: string, socket: net.Socket, head: Buffer) => void

/** The first byte of a line of the hook channel: a JSON object. */
export const HOOK_FIRST_BYTE = 0x7b

/**
 * Which channel a connection opens, from its first byte: `{` is the hook channel's JSON line;
 * anything else goes to the HTTP proxy (a request line starts with a method, a token, which
 * cannot contain `{`: RFC 9110 §5.6.2), which answers garbage with 400.
 */
export function channelOf(firstByte: number): 'hook' | 'http' {
  return firstByte === HOOK_FIRST_BYTE ? 'hook' : 'http'
}

export interface SessionListener {
  server: net.Server
  path: string
  /** Connections that have sent nothing yet (oldest first). */
  pending: Set<net.Socket>
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
  'maxConnectionsPerSession' | 'idleTimeoutMs' | 'headersTimeoutMs' | 'firstByteTimeoutMs'
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
  #hooks: OtherConnection | null = null

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

  /** Where connections starting with `{` go; without it they are closed. */
  routeHooks(route: OtherConnection): void {
    this.#hooks = route
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
    const server = net.createServer((socket) => {
      this.#sniff(session, socket, entry)
    })
    const entry: SessionListener = {
      server,
      path,
      pending: new Set(),
      sockets: new Set(),
      live: new Set(),
    }
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
    for (const s of entry.pending) s.destroy()
    for (const s of entry.sockets) s.destroy()
    await new Promise<void>((resolve) =>
      entry.server.close(() => {
        resolve()
      }),
    )
    await removeStale(entry.path).catch(() => undefined)
  }

  /**
   * Holds a new connection until its first chunk (bounded: see the header), then routes it. The
   * chunk is at most one read (64 KiB); it goes back in front of the stream for the HTTP server,
   * and to the hook channel as its first data.
   */
  #sniff(session: string, socket: net.Socket, entry: SessionListener): void {
    socket.on('error', () => undefined)
    const pending = entry.pending
    if (pending.size >= this.#limits.maxConnectionsPerSession) {
      const oldest = pending.values().next().value
      oldest?.destroy()
      if (oldest) pending.delete(oldest)
    }
    pending.add(socket)
    const timer = setTimeout(() => socket.destroy(), this.#limits.firstByteTimeoutMs)
    timer.unref()
    const done = (): void => {
      clearTimeout(timer)
      pending.delete(socket)
    }
    socket.once('close', done)
    socket.once('data', (head: Buffer) => {
      socket.pause()
      done()
      socket.off('close', done)
      if (socket.destroyed) return
      if (channelOf(head[0] ?? 0) === 'hook') {
        if (this.#hooks) this.#hooks(session, socket, head)
        else socket.destroy()
        return
      }
      socket.unshift(head)
      this.#accept(session, socket, entry.sockets)
      socket.resume()
    })
  }

  #accept(session: string, socket: net.Socket, sockets: Set<Holder>): void {
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
