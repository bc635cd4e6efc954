// The connection policy of the listener (server/listener.ts): per-client caps, header and request
// timeouts, and which connection goes first when there are too many. Pure bookkeeping over
// sockets it is handed; it never accepts or reads one itself.
import { peerUids, type Endpoints } from './peer-uid.ts'

/**
 * How long a connection may take and how many may wait (issue 10 row 5: 20,000 half-sent
 * requests from another local user took every file descriptor).
 *
 * The timeouts are ours, not node:http's `headersTimeout`/`requestTimeout`: node enforces those
 * from a timer it arms only when the HTTP server itself listens, and ours never does (the
 * net.Server below hands it sockets), so they were never enforced at all.
 */
export interface ConnectionLimits {
  /**
   * A connection that has not sent a complete request header this long after it opened, or
   * after its previous response, is closed. 10 s: a browser, curl or a reverse proxy sends
   * the header (at most a few KiB) in one write, so even a slow link with retransmissions
   * delivers it in well under a second; nginx allows 60 s, but it does not share its file
   * descriptors with a terminal server.
   */
  headersTimeoutMs: number
  /**
   * A request whose body has not fully arrived this long after its header is closed. 30 s:
   * bodies are at most 1 MiB (the body limit), and 1 MiB in 30 s is 35 KB/s.
   */
  requestTimeoutMs: number
  /**
   * An idle keep-alive connection is closed after this (node's own default, 5 s): the next
   * request on loopback costs a new connection, well under a millisecond. Fastify's 72 s is
   * for load balancers that keep 60 s idle connections, which also wait for a header here.
   */
  keepAliveTimeoutMs: number
  /**
   * Connections waiting for a request header above which the client holding the most of them
   * loses its oldest one. A browser opens at most 6 per origin; 256 is far above any real user.
   */
  maxWaiting: number
  /** All connections above which the client holding the most of them loses one. */
  maxConnections: number
  /** How often the timeouts are checked. */
  sweepIntervalMs: number
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxWaiting: 256,
  maxConnections: 4096,
  sweepIntervalMs: 1000,
}

/** What the table needs of a socket (a net.Socket; a fake in the unit tests). */
export interface TrackedSocket extends Endpoints {
  destroy(): void
}

/**
 * Names the client at the other end of each socket: `uid:N` for a peer on this machine (every
 * local user connects from 127.0.0.1, only the uid tells them apart), else `addr:<address>`.
 */
export type PeerIdentifier<S extends TrackedSocket> = (sockets: readonly S[]) => Map<S, string>

export function identifyPeers<S extends TrackedSocket>(sockets: readonly S[]): Map<S, string> {
  const uids = peerUids(sockets)
  const out = new Map<S, string>()
  for (const s of sockets) {
    const uid = uids.get(s)
    out.set(s, uid !== undefined ? `uid:${uid}` : `addr:${s.remoteAddress ?? '?'}`)
  }
  return out
}

type State = 'waiting' | 'busy' | 'upgraded'

/** What the table reads of a request (an IncomingMessage): whether its body has all arrived. */
export interface RequestProgress {
  readonly complete: boolean
}

interface Conn<S> {
  socket: S
  state: State
  /** When it started waiting for a header, or when its current request arrived. */
  since: number
  inFlight: number
  request: RequestProgress | null
  /** Who is at the other end, once asked (only when a cap is reached). */
  client: string | undefined
}

interface Counts {
  total: number
  waiting: number
}

export interface Eviction {
  client: string
  state: State
}

/**
 * Every open connection, what it is doing, and who holds it. The policy, in one place:
 *
 * - a connection waiting for a request header (new, or idle between keep-alive requests)
 *   longer than `headersTimeoutMs` is closed, and so is a request whose body is still
 *   incomplete after `requestTimeoutMs`;
 * - when more than `maxWaiting` connections wait for a header, or more than `maxConnections`
 *   are open, the client holding the most of them loses its oldest (waiting first). Clients
 *   are only identified then (one read of /proc/net/tcp for the whole batch), so the normal
 *   path pays nothing; and an attacker who floods the server only ever evicts their own
 *   connections, while the owner's few are never the largest share.
 */
export class ConnectionTable<S extends TrackedSocket> {
  readonly #limits: ConnectionLimits
  readonly #identify: PeerIdentifier<S>
  readonly #onEvict: (e: Eviction) => void
  readonly #conns = new Map<S, Conn<S>>()
  /** The connections waiting for a header, the longest-waiting first. */
  readonly #waiting = new Map<S, Conn<S>>()
  readonly #clients = new Map<string, Counts>()
  readonly #unknown: Counts = { total: 0, waiting: 0 }

  constructor(
    limits: ConnectionLimits,
    identify: PeerIdentifier<S>,
    onEvict: (e: Eviction) => void = () => undefined,
  ) {
    this.#limits = limits
    this.#identify = identify
    this.#onEvict = onEvict
  }

  get size(): number {
    return this.#conns.size
  }

  get waiting(): number {
    return this.#waiting.size
  }

  /** Connections per client, for those identified so far. */
  clients(): Map<string, Counts> {
    return new Map([...this.#clients].map(([k, v]) => [k, { ...v }]))
  }

  add(socket: S, now: number): void {
    const conn: Conn<S> = {
      socket,
      state: 'waiting',
      since: now,
      inFlight: 0,
      request: null,
      client: undefined,
    }
    this.#conns.set(socket, conn)
    this.#waiting.set(socket, conn)
    this.#count(conn, 1, 1)
    this.#enforce()
  }

  remove(socket: S): void {
    const conn = this.#conns.get(socket)
    if (!conn) return
    this.#conns.delete(socket)
    this.#waiting.delete(socket)
    this.#count(conn, -1, conn.state === 'waiting' ? -1 : 0)
  }

  /** A complete request header arrived. */
  requestStarted(socket: S, request: RequestProgress, now: number): void {
    const conn = this.#conns.get(socket)
    if (!conn) return
    conn.inFlight++
    conn.request = request
    if (conn.state === 'waiting') {
      this.#waiting.delete(socket)
      this.#count(conn, 0, -1)
      conn.state = 'busy'
      conn.since = now
    }
  }

  /** Its response is over; with none left in flight, the connection waits for the next header. */
  requestDone(socket: S, now: number): void {
    const conn = this.#conns.get(socket)
    if (!conn || conn.state !== 'busy') return
    conn.inFlight = Math.max(0, conn.inFlight - 1)
    if (conn.inFlight > 0) return
    conn.state = 'waiting'
    conn.request = null
    conn.since = now
    this.#waiting.set(socket, conn)
    this.#count(conn, 0, 1)
    this.#enforce()
  }

  /** Taken over by a protocol upgrade (a WebSocket): no longer HTTP's business. */
  upgraded(socket: S): void {
    const conn = this.#conns.get(socket)
    if (!conn || conn.state === 'upgraded') return
    if (conn.state === 'waiting') {
      this.#waiting.delete(socket)
      this.#count(conn, 0, -1)
    }
    conn.state = 'upgraded'
    conn.request = null
  }

  /** Closes what has waited too long; returns how many. */
  sweep(now: number): number {
    const expired: S[] = []
    for (const conn of this.#waiting.values()) {
      if (now - conn.since < this.#limits.headersTimeoutMs) break
      expired.push(conn.socket)
    }
    for (const conn of this.#conns.values()) {
      if (
        conn.state === 'busy' &&
        conn.request?.complete === false &&
        now - conn.since >= this.#limits.requestTimeoutMs
      )
        expired.push(conn.socket)
    }
    for (const s of expired) this.#close(s)
    return expired.length
  }

  /** Closes every connection that waits for a header (shutdown: nothing is in progress there). */
  closeWaiting(): void {
    for (const s of [...this.#waiting.keys()]) this.#close(s)
  }

  #close(socket: S): void {
    this.remove(socket)
    socket.destroy()
  }

  #count(conn: Conn<S>, total: number, waiting: number): void {
    const c = conn.client === undefined ? this.#unknown : this.#clients.get(conn.client)
    if (!c) return
    c.total += total
    c.waiting += waiting
    if (conn.client !== undefined && c.total <= 0) this.#clients.delete(conn.client)
  }

  #enforce(): void {
    while (this.#waiting.size > this.#limits.maxWaiting) if (!this.#evict('waiting')) break
    while (this.#conns.size > this.#limits.maxConnections) if (!this.#evict('total')) break
  }

  #largest(scope: 'waiting' | 'total'): [string, number] | null {
    let best: [string, number] | null = null
    for (const [client, c] of this.#clients) {
      const n = scope === 'waiting' ? c.waiting : c.total
      if (n > 0 && (!best || n > best[1])) best = [client, n]
    }
    return best
  }

  #identifyUnknown(): void {
    const unknown = [...this.#conns.values()].filter((c) => c.client === undefined)
    const names = this.#identify(unknown.map((c) => c.socket))
    for (const conn of unknown) {
      const client = names.get(conn.socket) ?? `addr:${conn.socket.remoteAddress ?? '?'}`
      const waiting = conn.state === 'waiting' ? 1 : 0
      this.#unknown.total--
      this.#unknown.waiting -= waiting
      conn.client = client
      const c = this.#clients.get(client) ?? { total: 0, waiting: 0 }
      c.total++
      c.waiting += waiting
      this.#clients.set(client, c)
    }
  }

  /** Closes one connection of the client with the largest share; false when none could go. */
  #evict(scope: 'waiting' | 'total'): boolean {
    let largest = this.#largest(scope)
    const unknown = scope === 'waiting' ? this.#unknown.waiting : this.#unknown.total
    // Not-yet-identified connections could hide a bigger share (and the owner's newest one is
    // among them): name them all first. This happens once per batch, not per connection.
    if (unknown > 0 && (!largest || unknown >= largest[1])) {
      this.#identifyUnknown()
      largest = this.#largest(scope)
    }
    if (!largest) return false
    const [client] = largest
    const victim =
      this.#oldest(this.#waiting, client, 'waiting') ??
      (scope === 'total'
        ? (this.#oldest(this.#conns, client, 'busy') ??
          this.#oldest(this.#conns, client, 'upgraded'))
        : undefined)
    if (!victim) return false
    this.#onEvict({ client, state: victim.state })
    this.#close(victim.socket)
    return true
  }

  /** Both maps keep their oldest entry first (accept order; waiting since). */
  #oldest(pool: Map<S, Conn<S>>, client: string, state: State): Conn<S> | undefined {
    for (const c of pool.values()) if (c.client === client && c.state === state) return c
    return undefined
  }
}
