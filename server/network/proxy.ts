// The egress proxy: proxy-chain's HTTP proxy server (CONNECT tunnels and absolute-URI plain HTTP)
// that never listens on TCP. Each session gets its own unix socket; a connection accepted there
// is tagged with that session and handed to the HTTP server. The session is known only from the
// socket a connection arrived on, never from anything the container sends. Every request goes
// through the policy (policy.ts) before anything is resolved or connected.
//
// proxy-chain (checked in its source, v3.0.1): `prepareRequestFunction` runs before any
// connection; a thrown RequestError(message, status) becomes that status with the message as a
// text/plain body, and the socket is closed. The `dnsLookup` it returns is passed as `lookup` to
// net.createConnection (CONNECT) and http.request (plain HTTP), so the socket connects to what
// our lookup answers: we answer the addresses resolved and checked here, once per request.
//
// A CONNECT tunnel without an upstream proxy is not left to proxy-chain's `direct()` (a Node pipe):
// TunnelServer takes it after the decision, connects to the checked address itself and hands it
// to relay-tunnel.ts, which moves a bulk transfer's bytes with the splice relay (relay.ts).
// Tunnels through an upstream proxy, and plain HTTP, stay with proxy-chain.
import { EventEmitter } from 'node:events'
import http from 'node:http'
import net, { type LookupFunction } from 'node:net'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { RequestError, Server, type PrepareRequestFunctionResult } from 'proxy-chain'
import type { NetworkConnection } from '../../shared/schemas/network.ts'
import { repoRoot } from '../paths.ts'
import { checkAddresses, decide, fmt, type Policy, type Target } from './policy.ts'
import { findRelay, RELAY_BINARY, RelayHost, type SpliceRelay } from './relay.ts'
import { RelayTunnel } from './relay-tunnel.ts'
import { removeStale } from './runtime-dir.ts'

/** Resolves a name to every address (A and AAAA); throws when it does not resolve. */
export type Resolver = (name: string) => Promise<string[]>

export const defaultResolver: Resolver = async (name) => {
  const { lookup } = await import('node:dns/promises')
  const found = await lookup(name, { all: true, verbatim: true })
  return found.map((a) => a.address)
}

export interface ProxyHooks {
  /** The session's policy right now; null when the session is unknown (refused). */
  policy(session: string): Policy | null
  /** An upstream proxy URL for the session's traffic, or null to connect directly. */
  upstream(session: string): string | null
  /** One finished connection (or refusal), for the audit and events. */
  record(session: string, record: NetworkConnection): void
}

export interface ProxyLimits {
  /** Open client connections per session; more are closed at once. Default 256. */
  maxConnectionsPerSession: number
  /** A connection with no traffic either way for this long is closed. Default 10 min. */
  idleTimeoutMs: number
  /**
   * Time for a client to send a whole request header, from connect or from the end of its
   * previous response. Default 20 s. Enforced here (Node's `headersTimeout` only works for a
   * server that listens itself; this one is handed its connections).
   */
  headersTimeoutMs: number
  /** Time for a name to resolve. Default 10 s. */
  resolveTimeoutMs: number
  /**
   * Bytes a CONNECT tunnel moves (both ways) in Node before the splice relay takes it over.
   * Default 256 KiB: a connection that stays below it never starts a process (a start costs the
   * event loop about 3 ms); 0 hands every tunnel over once it is up.
   */
  relayAfterBytes: number
}

const DEFAULT_LIMITS: ProxyLimits = {
  maxConnectionsPerSession: 256,
  idleTimeoutMs: 10 * 60_000,
  headersTimeoutMs: 20_000,
  resolveTimeoutMs: 10_000,
  relayAfterBytes: 256 * 1024,
}

/** Where `scripts/ensure-deps.mjs` builds the splice relay. */
export const DEFAULT_RELAY_PATH = join(repoRoot, 'dist', 'native', RELAY_BINARY)

/** Something that holds one of a session's connections open: a client socket, or a relay. */
interface Holder {
  destroy(): void
}

interface SessionListener {
  server: net.Server
  path: string
  /** Client connections and relayed tunnels (the per-session cap counts both). */
  sockets: Set<Holder>
  /** Allowed tunnels and plain-HTTP exchanges still open, re-checked when the policy changes. */
  live: Set<LiveConnection>
}

interface LiveConnection {
  target: Target
  /** The addresses checked for it; null when an upstream proxy resolved. */
  addresses: readonly string[] | null
  close(): void
}

/** What #prepare decided for one allowed request, for the code that carries it out. */
interface Approved {
  /** The host and port the request now names (after pinTarget). */
  host: string
  port: number
  /** A lookup answering the checked addresses; null when an upstream proxy resolves. */
  lookup: LookupFunction | null
  tracked: Tracked
}

/** An allowed connection being recorded. */
interface Tracked {
  /**
   * The relay took the connection: it ends (and is recorded) when the relay ends. `client`: the
   * client socket's counters at the handoff.
   */
  handOff(relay: SpliceRelay, client: { bytesRead: number; bytesWritten: number }): void
}

/**
 * One plain-HTTP exchange: its response, and what runs when the response closes (set by #track
 * once the request is approved). The response gets exactly one 'close' listener from us: with
 * proxy-chain 3.0.1's forward (client.destroy, byte counting) and Node 20's pipeline (seven),
 * a ServerResponse already carries nine, and Node warns past ten.
 */
interface Exchange {
  res: http.ServerResponse
  closed: (() => void) | null
}

type HandlerOpts = Awaited<ReturnType<Server['prepareRequestHandling']>>

/**
 * proxy-chain's server, with CONNECT tunnels that need no upstream proxy carried by `tunnel`
 * (which answers whether it took the request). The decision runs once per request:
 * prepareRequestHandling is memoised, so a request given back to proxy-chain is not decided (or
 * recorded) twice. Checked against proxy-chain 3.0.1's onConnect: prepare, then chain/direct.
 */
class TunnelServer extends Server {
  readonly #prepared = new WeakMap<http.IncomingMessage, Promise<HandlerOpts>>()
  tunnel: (request: http.IncomingMessage, socket: net.Socket, head: Buffer) => boolean = () => false

  override prepareRequestHandling(request: http.IncomingMessage): Promise<HandlerOpts> {
    let p = this.#prepared.get(request)
    if (!p) {
      p = super.prepareRequestHandling(request)
      this.#prepared.set(request, p)
    }
    return p
  }

  override async onConnect(
    request: http.IncomingMessage,
    socket: net.Socket,
    head: Buffer,
  ): Promise<void> {
    let opts: HandlerOpts | null = null
    try {
      opts = await this.prepareRequestHandling(request)
    } catch {
      // proxy-chain answers the refusal (the memoised rejection) below.
    }
    if (opts && !opts.upstreamProxyUrlParsed && this.tunnel(request, socket, head)) return
    await super.onConnect(request, socket, head)
  }
}

class Refusal extends Error {
  readonly status: number
  readonly host: string
  constructor(status: number, host: string, reason: string) {
    super(reason)
    this.status = status
    this.host = host
  }
}

/** A lookup for node:net that answers what was resolved and checked, whatever it is asked. */
function fixedLookup(addresses: readonly string[]): LookupFunction {
  return (_host: string, options: unknown, callback: unknown) => {
    const cb = (typeof options === 'function' ? options : callback) as (
      err: Error | null,
      address: string | Array<{ address: string; family: number }>,
      family?: number,
    ) => void
    const opts = (typeof options === 'object' && options !== null ? options : {}) as {
      all?: boolean
      family?: number | string
    }
    const want =
      opts.family === 4 || opts.family === 'IPv4'
        ? 4
        : opts.family === 6 || opts.family === 'IPv6'
          ? 6
          : 0
    const list = addresses
      .map((address) => ({ address, family: net.isIP(address) }))
      .filter((a) => want === 0 || a.family === want)
    if (list.length === 0) {
      const err = Object.assign(new Error('no checked address of that family'), {
        code: 'ENOTFOUND',
      })
      setImmediate(() => {
        cb(err, opts.all ? [] : '', 0)
      })
      return
    }
    const first = list[0] as { address: string; family: number }
    setImmediate(() => {
      if (opts.all) cb(null, list)
      else cb(null, first.address, first.family)
    })
  }
}

/**
 * Makes the request say exactly what the policy checked before proxy-chain forwards it: the
 * request target becomes `host:port` (CONNECT) or `http://authority/path?query` (plain HTTP: no
 * userinfo, no fragment, the path as the WHATWG parser read it), and the only Host header is that
 * authority (RFC 9112 §3.2.2: a proxy replaces the Host with the target's). proxy-chain sends
 * `request.url` and `request.rawHeaders` on as they are (to the origin, or to an upstream proxy
 * that may parse `a@b`, `a\@b` or a second Host differently from us), so nothing the agent wrote
 * beyond the checked name and port reaches anyone else as an authority.
 */
function pinTarget(
  request: http.IncomingMessage,
  isHttp: boolean,
  host: string,
  port: number,
): void {
  const hostText = net.isIP(host) === 6 ? `[${host}]` : host
  if (!isHttp) {
    request.url = `${hostText}:${port}`
    return
  }
  const authority = port === 80 ? hostText : `${hostText}:${port}`
  const parsed = new URL(request.url ?? '')
  request.url = `http://${authority}${parsed.pathname}${parsed.search}`
  const raw: string[] = []
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i] ?? ''
    if (name.toLowerCase() !== 'host') raw.push(name, request.rawHeaders[i + 1] ?? '')
  }
  raw.push('Host', authority)
  request.rawHeaders.splice(0, request.rawHeaders.length, ...raw)
  request.headers.host = authority
}

/**
 * Name lookups at once, overall and per session. getaddrinfo runs on libuv's thread pool (4
 * threads by default), shared with every file operation of the server, and a lookup whose DNS
 * server never answers holds its thread for the resolver's whole retry time, whatever our own
 * timeout says. Two at most keeps half the pool for the dashboard; one per session keeps one
 * session from taking both.
 */
export const MAX_LOOKUPS = 2
export const MAX_LOOKUPS_PER_SESSION = 1
/** How long a successful answer is reused, and how many names are kept. */
const LOOKUP_CACHE_MS = 5000
const LOOKUP_CACHE_SIZE = 1000

/**
 * Runs lookups within those bounds, first come first served among the sessions that have a free
 * slot. A slot is held until the lookup itself settles (not when its requester gave up); a queued
 * lookup whose requester gave up is dropped without running.
 */
class LookupGate {
  #active = 0
  readonly #perSession = new Map<string, number>()
  readonly #queue: Array<{ session: string; signal: AbortSignal; start: () => void }> = []

  run<T>(session: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        this.#active++
        this.#perSession.set(session, (this.#perSession.get(session) ?? 0) + 1)
        fn()
          .then(resolve, reject)
          .finally(() => {
            this.#active--
            const left = (this.#perSession.get(session) ?? 1) - 1
            if (left === 0) this.#perSession.delete(session)
            else this.#perSession.set(session, left)
            this.#next()
          })
      }
      this.#queue.push({ session, signal, start })
      this.#next()
    })
  }

  #next(): void {
    for (let i = 0; i < this.#queue.length && this.#active < MAX_LOOKUPS;) {
      const job = this.#queue[i]
      if (!job) break
      if (job.signal.aborted) {
        this.#queue.splice(i, 1)
        continue
      }
      if ((this.#perSession.get(job.session) ?? 0) >= MAX_LOOKUPS_PER_SESSION) {
        i++
        continue
      }
      this.#queue.splice(i, 1)
      job.start()
    }
  }
}

async function withTimeout<T>(make: (signal: AbortSignal) => Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const gaveUp = new AbortController()
  try {
    return await Promise.race([
      make(gaveUp.signal),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          gaveUp.abort()
          reject(Object.assign(new Error('lookup timed out'), { code: 'ETIMEOUT' }))
        }, ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

export class EgressProxy extends EventEmitter {
  readonly #log: Logger
  readonly #hooks: ProxyHooks
  readonly #resolver: Resolver
  readonly #limits: ProxyLimits
  readonly #proxy: TunnelServer
  readonly #approved = new WeakMap<http.IncomingMessage, Approved>()
  /** The splice relay program, once looked up; null: tunnels stay in Node. */
  #relay: string | null = null
  /** Runs the relays (forked at the first handoff); kept for dispose after a failure. */
  #host: RelayHost | null = null
  readonly #relayReady: Promise<void>
  readonly #relays = new Set<SpliceRelay>()
  #relayed = 0
  readonly #sessionOf = new WeakMap<net.Socket, string>()
  readonly #exchanges = new WeakMap<http.IncomingMessage, Exchange>()
  readonly #listeners = new Map<string, SessionListener>()
  readonly #lookups = new LookupGate()
  readonly #answers = new Map<string, { at: number; addresses: string[] }>()
  /** Per client connection: the pending header deadline, and requests still being answered. */
  readonly #deadlines = new WeakMap<net.Socket, NodeJS.Timeout>()
  readonly #inFlight = new WeakMap<net.Socket, number>()
  /** Plain-HTTP requests get a fresh upstream connection each: no socket shared across sessions. */
  readonly #agent = new http.Agent({ keepAlive: false })

  constructor(opts: {
    log: Logger
    hooks: ProxyHooks
    resolver?: Resolver
    limits?: Partial<ProxyLimits>
    /**
     * The splice relay program (DEFAULT_RELAY_PATH unless given); null, or a path that is not an
     * executable file, keeps every tunnel's bytes in Node.
     */
    relay?: string | null
  }) {
    super()
    this.#log = opts.log
    this.#hooks = opts.hooks
    this.#resolver = opts.resolver ?? defaultResolver
    this.#limits = { ...DEFAULT_LIMITS, ...opts.limits }
    this.#proxy = new TunnelServer({
      port: 0,
      verbose: false,
      authRealm: 'clincus',
      prepareRequestFunction: ({ request, hostname, port, isHttp }) =>
        this.#prepare(request, hostname, port, isHttp),
    })
    this.#proxy.tunnel = (request, socket, head) => this.#tunnel(request, socket, head)
    const wanted = opts.relay === undefined ? DEFAULT_RELAY_PATH : opts.relay
    this.#relayReady = (wanted === null ? Promise.resolve(null) : findRelay(wanted)).then(
      (found) => {
        this.#relay = found
        if (found) {
          this.#host = new RelayHost({
            binary: found,
            onDeath: () => {
              this.#relayFailed('the relay host exited')
            },
            onFailed: () => {
              this.#relayFailed('the relay program did not start')
            },
          })
          this.#log.info({ relay: found }, 'egress tunnels: splice relay')
        } else if (wanted !== null)
          this.#log.info(
            { relay: wanted },
            'egress tunnels: node pipe (no splice relay program; `npm start` builds it with a C compiler)',
          )
      },
    )
    const http = this.#proxy.server
    http.headersTimeout = this.#limits.headersTimeoutMs
    // Uploads through plain HTTP may take long; the idle timeout bounds a stalled one.
    http.requestTimeout = 0
    http.keepAliveTimeout = 5000
    // Prepended: the exchange must be known before proxy-chain's own 'request' listener runs
    // #prepare, which decides an IP literal (and tracks it) without waiting for anything.
    http.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
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
    http.on('connect', (req: http.IncomingMessage) => {
      this.#disarm(req.socket)
    })
    this.#proxy.on('requestFailed', ({ error }: { error: unknown }) => {
      this.#log.warn({ err: error }, 'egress proxy request failed')
    })
  }

  /** Whether the session has a listener. */
  has(session: string): boolean {
    return this.#listeners.has(session)
  }

  /** The socket path of a session's listener, if open. */
  socketPath(session: string): string | undefined {
    return this.#listeners.get(session)?.path
  }

  /**
   * Opens the session's unix socket at `path` (mode 0600; what a crash left there is removed
   * first, a symbolic link unlinked and never followed). Idempotent.
   */
  async open(session: string, path: string): Promise<void> {
    if (this.#listeners.has(session)) return
    await removeStale(path)
    const sockets = new Set<net.Socket>()
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
      const { chmod } = await import('node:fs/promises')
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
    this.#proxy.server.emit('connection', socket)
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

  /**
   * After a policy change (hot reload): closes every open tunnel and plain-HTTP exchange of the
   * session that its policy now refuses, so removing an entry (or narrowing the mode) also ends
   * the connections it allowed — a tunnel can otherwise carry traffic for as long as it is used.
   */
  recheck(session: string): void {
    const entry = this.#listeners.get(session)
    if (!entry) return
    const policy = this.#hooks.policy(session)
    const upstream = this.#hooks.upstream(session)
    for (const live of [...entry.live]) {
      const d = policy ? decide(policy, live.target) : null
      const ok =
        policy !== null &&
        d !== null &&
        d.kind !== 'refuse' &&
        (live.addresses === null ||
          upstream !== null ||
          checkAddresses(
            policy,
            live.addresses,
            live.target.port,
            d.kind === 'resolve' ? d.name : undefined,
          ) === null)
      if (!ok) {
        entry.live.delete(live)
        live.close()
      }
    }
  }

  /** Closes every open connection of a session (its mode became none). */
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

  /**
   * Closes every listener and connection; resolves once every relay process has exited (each
   * is asked to stop, and killed if it does not within 2 s), so none outlives the proxy.
   */
  async dispose(): Promise<void> {
    await Promise.all([...this.#listeners.keys()].map((s) => this.close(s)))
    this.#agent.destroy()
    this.#proxy.server.closeAllConnections()
    await this.#relayReady
    const relays = [...this.#relays]
    for (const r of relays) r.stop()
    await Promise.all(relays.map((r) => r.done))
    await this.#host?.dispose()
  }

  /** Tunnels stay in Node from now on (logged once). */
  #relayFailed(why: string): void {
    if (this.#relay === null) return
    this.#log.warn(
      { relay: this.#relay, why },
      'egress tunnels: the splice relay did not start; tunnels stay in the node pipe',
    )
    this.#relay = null
  }

  /** The splice relay program tunnels are handed to, or null when they stay in Node. */
  async relayProgram(): Promise<string | null> {
    await this.#relayReady
    return this.#relay
  }

  /** How many tunnels were handed to the splice relay so far. */
  get relayedTunnels(): number {
    return this.#relayed
  }

  /** Relay processes running now (their pids), for tests. */
  relayPids(): number[] {
    return [...this.#relays].flatMap((r) => (r.pid === undefined ? [] : [r.pid]))
  }

  /**
   * Carries an approved CONNECT tunnel that needs no upstream proxy: connects to the checked
   * address, answers 200 (or 502 when the connect fails) and gives both sockets to a
   * RelayTunnel. Returns false (proxy-chain carries it) when #prepare did not approve it here.
   */
  #tunnel(request: http.IncomingMessage, client: net.Socket, head: Buffer): boolean {
    const approved = this.#approved.get(request)
    const session = this.#sessionOf.get(client)
    const entry = session === undefined ? undefined : this.#listeners.get(session)
    if (!approved?.lookup || !entry || session === undefined) return false
    this.#approved.delete(request)
    const { host, port, tracked } = approved
    if (head.length > 0) client.unshift(head)
    const target = net.createConnection({
      host,
      port,
      lookup: approved.lookup,
      allowHalfOpen: true,
    })
    const gaveUp = (): void => {
      target.destroy()
    }
    client.once('close', gaveUp)
    const failed = (err: NodeJS.ErrnoException): void => {
      client.off('close', gaveUp)
      const code = err.code ?? 'error'
      if (!client.destroyed && client.writable)
        this.#proxy.sendSocketResponse(
          client,
          502,
          {},
          `clincus egress proxy: could not connect to ${fmt(host, port)} (${code})\n`,
        )
      else client.destroy()
    }
    target.once('error', failed)
    target.once('connect', () => {
      target.off('error', failed)
      client.off('close', gaveUp)
      if (client.destroyed) {
        target.destroy()
        return
      }
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      new RelayTunnel(client, target, {
        relay: this.#relay === null ? null : this.#host,
        handOffAfter: this.#limits.relayAfterBytes,
        idleMs: this.#limits.idleTimeoutMs,
        onRelay: (relay, counters) => {
          this.#relayed++
          this.#relays.add(relay)
          const holder: Holder = {
            destroy: () => {
              relay.stop()
            },
          }
          entry.sockets.add(holder)
          tracked.handOff(relay, counters)
          void relay.done.then((e) => {
            this.#relays.delete(relay)
            entry.sockets.delete(holder)
            if (e.end === 'crash')
              this.#log.warn({ session, signal: e.signal }, 'egress: a splice relay died')
          })
        },
        onRelayFailed: () => {
          this.#relayFailed('the handoff failed')
        },
      })
    })
    return true
  }

  async #prepare(
    request: http.IncomingMessage,
    hostname: string,
    port: number,
    isHttp: boolean,
  ): Promise<PrepareRequestFunctionResult> {
    const started = Date.now()
    const socket = request.socket
    const session = this.#sessionOf.get(socket)
    const base = { time: new Date(started).toISOString(), port }
    if (session === undefined)
      throw new RequestError('clincus egress proxy: unknown session\n', 403)
    try {
      const policy = this.#hooks.policy(session)
      if (!policy) throw new Refusal(403, hostname, 'this session is not known to the egress proxy')
      const d = decide(policy, { host: hostname, port, method: isHttp ? 'http' : 'connect' })
      if (d.kind === 'refuse') throw new Refusal(d.status, d.host, d.reason)
      const upstream = this.#hooks.upstream(session)
      let host: string
      let addresses: string[] | null = null
      if (d.kind === 'connect') {
        host = d.address
        addresses = [d.address]
      } else {
        host = d.name
        // Behind a corporate proxy, that proxy resolves (and may be the only one able to).
        if (!upstream) {
          try {
            const name = d.name
            addresses = await withTimeout(
              (signal) => this.#resolve(session, signal, name),
              this.#limits.resolveTimeoutMs,
            )
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code ?? 'error'
            this.#finish(
              session,
              { ...base, host, allowed: true, reason: `the name did not resolve (${code})` },
              started,
              null,
            )
            throw new RequestError(`clincus egress proxy: ${host} did not resolve (${code})\n`, 502)
          }
          const bad = checkAddresses(policy, addresses, port, d.name)
          if (bad)
            throw new Refusal(403, host, `${fmt(host, port)} resolves to a refused address: ${bad}`)
        }
      }
      const reason = policy.mode === 'open' ? 'allowed (mode open)' : 'allowed by the allowlist'
      pinTarget(request, isHttp, host, port)
      const tracked = this.#track(
        session,
        request,
        isHttp,
        { ...base, host, allowed: true, reason },
        started,
        {
          target: { host: hostname, port, method: isHttp ? 'http' : 'connect' },
          addresses: upstream ? null : addresses,
        },
      )
      const lookup = addresses && !upstream ? fixedLookup(addresses) : null
      if (!isHttp) this.#approved.set(request, { host, port, lookup, tracked })
      return {
        // proxy-chain types it as dns.lookup; node:net only calls it as a LookupFunction.
        ...(lookup
          ? { dnsLookup: lookup as unknown as PrepareRequestFunctionResult['dnsLookup'] }
          : {}),
        upstreamProxyUrl: upstream,
        httpAgent: this.#agent,
      }
    } catch (err) {
      if (err instanceof Refusal) {
        const host = err.host.slice(0, 255)
        this.#finish(session, { ...base, host, allowed: false, reason: err.message }, started, null)
        throw new RequestError(
          `clincus egress proxy refused ${fmt(host, port)}: ${err.message}\n`,
          err.status,
        )
      }
      throw err
    }
  }

  /**
   * Resolves through the lookup gate. An answer is reused for LOOKUP_CACHE_MS (its addresses are
   * checked again on every use), so parallel connections to one host wait for one lookup, not one
   * each in a row.
   */
  async #resolve(session: string, signal: AbortSignal, name: string): Promise<string[]> {
    const cached = (): string[] | undefined => {
      const hit = this.#answers.get(name)
      return hit && Date.now() - hit.at < LOOKUP_CACHE_MS ? hit.addresses : undefined
    }
    const now = cached()
    if (now) return now
    return this.#lookups.run(session, signal, async () => {
      const again = cached()
      if (again) return again
      const addresses = await this.#resolver(name)
      if (this.#answers.size >= LOOKUP_CACHE_SIZE) this.#answers.clear()
      this.#answers.set(name, { at: Date.now(), addresses })
      return addresses
    })
  }

  /** Records an allowed connection when it ends, with the bytes it moved. */
  #track(
    session: string,
    request: http.IncomingMessage,
    isHttp: boolean,
    rec: Omit<NetworkConnection, 'bytes_up' | 'bytes_down' | 'duration_ms'>,
    started: number,
    checked: Omit<LiveConnection, 'close'>,
  ): Tracked {
    const socket = request.socket
    const read0 = socket.bytesRead
    const written0 = socket.bytesWritten
    const exchange = isHttp ? this.#exchanges.get(request) : undefined
    // Unreachable: the prepended 'request' listener runs first. Without it a plain-HTTP record
    // would wait for the client connection to close.
    if (isHttp && !exchange) throw new Error('egress: a plain-HTTP request without its response')
    const lives = this.#listeners.get(session)?.live
    let relay: SpliceRelay | null = null
    let counters: { bytesRead: number; bytesWritten: number } = socket
    const live: LiveConnection = {
      ...checked,
      close: () => {
        if (relay) {
          relay.stop()
          return
        }
        if (exchange) exchange.res.destroy()
        socket.destroy()
      },
    }
    lives?.add(live)
    let done = false
    // `more`: what the relay moved after the handoff (the socket counters stop there).
    const end = (more: { up: number; down: number }): void => {
      if (done) return
      done = true
      lives?.delete(live)
      this.#finish(session, rec, started, {
        up: Math.max(0, counters.bytesRead - read0) + more.up,
        down: Math.max(0, counters.bytesWritten - written0) + more.down,
      })
    }
    const none = { up: 0, down: 0 }
    if (exchange)
      exchange.closed = () => {
        end(none)
      }
    else
      socket.once('close', () => {
        if (!relay) end(none)
      })
    return {
      handOff: (r, atHandOff) => {
        relay = r
        counters = atHandOff
        void r.done.then((e) => {
          end(e)
        })
      },
    }
  }

  #finish(
    session: string,
    rec: Omit<NetworkConnection, 'bytes_up' | 'bytes_down' | 'duration_ms'>,
    started: number,
    bytes: { up: number; down: number } | null,
  ): void {
    try {
      this.#hooks.record(session, {
        ...rec,
        bytes_up: bytes?.up ?? 0,
        bytes_down: bytes?.down ?? 0,
        duration_ms: Math.max(0, Date.now() - started),
      })
    } catch (err) {
      this.#log.warn({ err, session }, 'egress record failed')
    }
  }
}
