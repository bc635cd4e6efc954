// The egress proxy: proxy-chain's HTTP proxy server (CONNECT tunnels and absolute-URI plain HTTP)
// that never listens on TCP. Each session gets its own unix socket; a connection accepted there
// is tagged with that session and handed to the HTTP server. The session is known only from the
// socket a connection arrived on, never from anything the container sends. Every request goes
// through the policy (policy.ts) before anything is resolved or connected.
//
// This module owns the decision (policy glue: refuse, resolve and check, pin, approve), the
// re-check after a policy change, and the lifecycle of the whole; the parts it puts together:
//   proxy-connections.ts  session sockets, connection caps, idle and header deadlines
//   proxy-server.ts       proxy-chain's Server subclass, pinning a request to what was checked
//   proxy-lookup.ts       resolver, lookup bounds and cache, the fixed lookup for node:net
//   proxy-accounting.ts   one NetworkConnection record per request, with its bytes
//   proxy-tunnel.ts       CONNECT tunnels carried here (splice relay handoff)
//
// Our lookup answers the addresses resolved and checked here, once per request. A CONNECT tunnel
// without an upstream proxy is not left to proxy-chain's `direct()` (a Node pipe): TunnelServer
// takes it after the decision and proxy-tunnel.ts carries it. Tunnels through an upstream proxy,
// and plain HTTP, stay with proxy-chain.
//
// Refusals are answered by proxy-chain from a RequestError: 403 (policy, unknown session), the
// policy's own status, or 502 (a name that did not resolve), each with a text/plain reason.
import { EventEmitter } from 'node:events'
import http from 'node:http'
import type net from 'node:net'
import type { Logger } from 'pino'
import { RequestError, type PrepareRequestFunctionResult } from 'proxy-chain'
import type { NetworkConnection } from '../../shared/schemas/network.ts'
import { checkAddresses, decide, fmt, type Policy } from './policy.ts'
import { Recorder } from './proxy-accounting.ts'
import { SessionListeners, type OtherConnection } from './proxy-connections.ts'
import { CachingResolver, defaultResolver, fixedLookup, type Resolver } from './proxy-lookup.ts'
import { pinTarget, TunnelServer } from './proxy-server.ts'
import { DirectTunnels, type Approved } from './proxy-tunnel.ts'

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
  /**
   * Time for a new connection to send its first byte, which says where it goes (the HTTP proxy,
   * or the hook channel: proxy-connections.ts). Default 10 s (the hook channel's idle timeout).
   */
  firstByteTimeoutMs: number
  /** Time for a name to resolve. Default 10 s. */
  resolveTimeoutMs: number
  /**
   * Bytes a CONNECT tunnel moves (both ways) in Node before the splice relay takes it over.
   * Default 0: every tunnel is handed over once it is up (the relay process is already running
   * and forks a child per tunnel: ~0.6 ms until the first byte moves, measured, against ~3.6 ms
   * when a program was started per tunnel), so a download runs at the kernel's speed from its
   * first byte.
   */
  relayAfterBytes: number
}

const DEFAULT_LIMITS: ProxyLimits = {
  maxConnectionsPerSession: 256,
  idleTimeoutMs: 10 * 60_000,
  headersTimeoutMs: 20_000,
  firstByteTimeoutMs: 10_000,
  resolveTimeoutMs: 10_000,
  relayAfterBytes: 0,
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

export class EgressProxy extends EventEmitter {
  readonly #hooks: ProxyHooks
  readonly #proxy: TunnelServer
  readonly #listeners: SessionListeners
  readonly #resolver: CachingResolver
  readonly #recorder: Recorder
  readonly #tunnels: DirectTunnels
  readonly #approved = new WeakMap<http.IncomingMessage, Approved>()
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
    const log = opts.log
    this.#hooks = opts.hooks
    const limits = { ...DEFAULT_LIMITS, ...opts.limits }
    this.#resolver = new CachingResolver(opts.resolver ?? defaultResolver, limits.resolveTimeoutMs)
    this.#recorder = new Recorder(log, (session, record) => {
      this.#hooks.record(session, record)
    })
    const proxy = (this.#proxy = new TunnelServer({
      port: 0,
      verbose: false,
      authRealm: 'clincus',
      prepareRequestFunction: ({ request, hostname, port, isHttp }) =>
        this.#prepare(request, hostname, port, isHttp),
    }))
    this.#tunnels = new DirectTunnels({
      log,
      relay: opts.relay,
      limits,
      refuse: (client, status, body) => {
        proxy.sendSocketResponse(client, status, {}, body)
      },
    })
    proxy.tunnel = (request, socket, head) => this.#tunnel(request, socket, head)
    this.#listeners = new SessionListeners({ log, limits, http: proxy.server })
    proxy.on('requestFailed', ({ error }: { error: unknown }) => {
      log.warn({ err: error }, 'egress proxy request failed')
    })
  }

  /**
   * Where a session's connections that start with `{` go (the agent hook channel, which shares
   * the session's socket and device); without a route they are closed.
   */
  routeHooks(route: OtherConnection): void {
    this.#listeners.routeHooks(route)
  }

  /** Whether the session has a listener. */
  has(session: string): boolean {
    return this.#listeners.has(session)
  }

  /** A session's connections: not yet routed (nothing sent), and the proxy's own (tests). */
  connections(session: string): { pending: number; open: number } {
    const entry = this.#listeners.get(session)
    return { pending: entry?.pending.size ?? 0, open: entry?.sockets.size ?? 0 }
  }

  /** The socket path of a session's listener, if open. */
  socketPath(session: string): string | undefined {
    return this.#listeners.get(session)?.path
  }

  /**
   * Opens the session's unix socket at `path` (mode 0600; what a crash left there is removed
   * first, a symbolic link unlinked and never followed). Idempotent.
   */
  open(session: string, path: string): Promise<void> {
    return this.#listeners.open(session, path)
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
    this.#listeners.closeConnections(session)
  }

  /** Closes the session's listener and connections and removes its socket file. */
  close(session: string): Promise<void> {
    return this.#listeners.close(session)
  }

  /**
   * Closes every listener and connection; resolves once every relay process has exited (each
   * is asked to stop, and killed if it does not within 2 s), so none outlives the proxy.
   */
  async dispose(): Promise<void> {
    await Promise.all(this.#listeners.sessions().map((s) => this.close(s)))
    this.#agent.destroy()
    this.#proxy.server.closeAllConnections()
    await this.#tunnels.dispose()
  }

  /** The splice relay program tunnels are handed to, or null when they stay in Node. */
  relayProgram(): Promise<string | null> {
    return this.#tunnels.relayProgram()
  }

  /** How many tunnels were handed to the splice relay so far. */
  get relayedTunnels(): number {
    return this.#tunnels.relayedTunnels
  }

  /** Relay processes running now (their pids), for tests. */
  relayPids(): number[] {
    return this.#tunnels.relayPids()
  }

  /** The relay process's id while it runs, for tests. */
  relayHostPid(): number | undefined {
    return this.#tunnels.relayHostPid()
  }

  /**
   * Takes an approved CONNECT tunnel that needs no upstream proxy to DirectTunnels. Returns
   * false (proxy-chain carries it) when #prepare did not approve it here.
   */
  #tunnel(request: http.IncomingMessage, client: net.Socket, head: Buffer): boolean {
    const approved = this.#approved.get(request)
    const session = this.#listeners.sessionOf(client)
    const entry = session === undefined ? undefined : this.#listeners.get(session)
    const lookup = approved?.lookup
    if (!approved || !lookup || !entry || session === undefined) return false
    this.#approved.delete(request)
    this.#tunnels.carry(session, entry, { ...approved, lookup }, client, head)
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
    const session = this.#listeners.sessionOf(socket)
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
            addresses = await this.#resolver.resolve(session, d.name)
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code ?? 'error'
            this.#recorder.finish(
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
      const exchange = isHttp ? this.#listeners.exchange(request) : undefined
      // Unreachable: SessionListeners' prepended 'request' listener runs first. Without the
      // exchange a plain-HTTP record would wait for the client connection to close.
      if (isHttp && !exchange) throw new Error('egress: a plain-HTTP request without its response')
      const tracked = this.#recorder.track(
        session,
        socket,
        exchange,
        this.#listeners.get(session)?.live,
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
        this.#recorder.finish(
          session,
          { ...base, host, allowed: false, reason: err.message },
          started,
          null,
        )
        throw new RequestError(
          `clincus egress proxy refused ${fmt(host, port)}: ${err.message}\n`,
          err.status,
        )
      }
      throw err
    }
  }
}
