// Issue 17: the hook channel's host side. Its connections arrive on the session's one unix socket
// (mode 0600, in a private runtime directory), shared with the egress proxy behind the session's
// one Incus `proxy` device (issue 16): network/proxy-connections.ts hands over each connection
// whose first byte is `{`, tagged with the session whose socket it came in on (never anything in
// it). Lines are newline-delimited; everything the container sends is hostile:
//   - a line longer than `maxLineBytes` closes its connection (the bytes are never buffered);
//     an unfinished line is held in one buffer of at most that size per connection;
//   - lines over the session's rate (a token bucket) are dropped, and the connection closed;
//   - at most `maxConnections` open connections per session; more are closed at once;
//   - a connection idle for `idleMs` is closed.
// None of it reaches another session or the server: each session has its own socket, bucket and
// counters. Times are ms. The idle timeout counts from the handover; the time before the first
// byte is bounded there (ProxyLimits.firstByteTimeoutMs).
import type net from 'node:net'
import type { Logger } from 'pino'

export interface ChannelLimits {
  /** Bytes of one line (without its newline). Default 64 KiB (the hook script's own cap). */
  maxLineBytes: number
  /** Lines per second a session may send, sustained. Default 20. */
  linesPerSecond: number
  /** Lines a session may send at once (the bucket's size). Default 60. */
  burst: number
  /** Open connections per session. Default 8. */
  maxConnections: number
  /** A connection with nothing sent for this long is closed. Default 10 000. */
  idleMs: number
}

export const DEFAULT_CHANNEL_LIMITS: ChannelLimits = {
  maxLineBytes: 64 * 1024,
  linesPerSecond: 20,
  burst: 60,
  maxConnections: 8,
  idleMs: 10_000,
}

/** What the channel counts per session (tests, logs). */
export interface ChannelCounters {
  /** Connections open now. */
  open: number
  lines: number
  tooLong: number
  dropped: number
  refused: number
}

interface Listener {
  sockets: Set<net.Socket>
  tokens: number
  refilledAt: number
  counters: Omit<ChannelCounters, 'open'>
}

export class HookChannel {
  readonly #log: Logger
  readonly #limits: ChannelLimits
  readonly #onLine: (session: string, line: string) => void
  readonly #now: () => number
  readonly #listeners = new Map<string, Listener>()

  constructor(opts: {
    log: Logger
    limits?: Partial<ChannelLimits>
    /** One complete line of a session, without its newline. */
    onLine: (session: string, line: string) => void
    now?: () => number
  }) {
    this.#log = opts.log
    this.#limits = { ...DEFAULT_CHANNEL_LIMITS, ...opts.limits }
    this.#onLine = opts.onLine
    this.#now = opts.now ?? Date.now
  }

  counters(session: string): ChannelCounters | undefined {
    const l = this.#listeners.get(session)
    return l ? { ...l.counters, open: l.sockets.size } : undefined
  }

  /**
   * A connection of `session` (its socket paused, `head` the first chunk read from it): served
   * under the session's limits, its bucket and counters made at its first connection.
   */
  accept(session: string, socket: net.Socket, head: Buffer): void {
    let l = this.#listeners.get(session)
    if (!l) {
      l = {
        sockets: new Set(),
        tokens: this.#limits.burst,
        refilledAt: this.#now(),
        counters: { lines: 0, tooLong: 0, dropped: 0, refused: 0 },
      }
      this.#listeners.set(session, l)
    }
    this.#accept(session, l, socket, head)
  }

  /** Closes the session's connections and drops its bucket and counters. */
  close(session: string): Promise<void> {
    const l = this.#listeners.get(session)
    this.#listeners.delete(session)
    for (const s of l?.sockets ?? []) s.destroy()
    return Promise.resolve()
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.#listeners.keys()].map((s) => this.close(s)))
  }

  /** Takes a token from the session's bucket; false when it is empty. */
  #take(l: Listener): boolean {
    const now = this.#now()
    const { linesPerSecond, burst } = this.#limits
    l.tokens = Math.min(burst, l.tokens + ((now - l.refilledAt) / 1000) * linesPerSecond)
    l.refilledAt = now
    if (l.tokens < 1) return false
    l.tokens -= 1
    return true
  }

  #accept(session: string, l: Listener, socket: net.Socket, head: Buffer): void {
    socket.on('error', () => undefined)
    if (l.sockets.size >= this.#limits.maxConnections) {
      l.counters.refused++
      socket.destroy()
      return
    }
    l.sockets.add(socket)
    socket.once('close', () => l.sockets.delete(socket))
    socket.setTimeout(this.#limits.idleMs, () => socket.destroy())
    // The unfinished line, copied into one buffer: a chunk each byte (a container pacing its
    // writes) must cost a byte, not a Buffer object of its own (~900 bytes each).
    let pending: Buffer | null = null
    let size = 0
    const close = (why: 'tooLong' | 'dropped'): void => {
      l.counters[why]++
      pending = null
      socket.destroy()
      this.#log.debug({ session: session, why }, 'agent channel connection closed')
    }
    const data = (chunk: Buffer): void => {
      let at = 0
      while (!socket.destroyed) {
        const nl = chunk.indexOf(0x0a, at)
        const piece = nl === -1 ? chunk.subarray(at) : chunk.subarray(at, nl)
        if (size + piece.length > this.#limits.maxLineBytes) {
          close('tooLong')
          return
        }
        if (nl === -1) {
          if (piece.length > 0) {
            pending ??= Buffer.allocUnsafe(this.#limits.maxLineBytes)
            piece.copy(pending, size)
            size += piece.length
          }
          return
        }
        let line: string
        if (pending === null) line = piece.toString('utf8')
        else {
          piece.copy(pending, size)
          line = pending.toString('utf8', 0, size + piece.length)
        }
        pending = null
        size = 0
        at = nl + 1
        if (!this.#take(l)) {
          close('dropped')
          return
        }
        l.counters.lines++
        try {
          this.#onLine(session, line)
        } catch (err) {
          this.#log.warn({ err, session }, 'agent channel line handler failed')
        }
      }
    }
    data(head)
    socket.on('data', data)
    socket.resume()
  }
}
