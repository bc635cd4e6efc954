// Issue 17: the hook channel's host side. One unix socket per session (mode 0600, in a private
// runtime directory: network/runtime-dir.ts), reached from inside the container through an Incus
// `proxy` device (device.ts). The session is the socket a line arrived on, never anything in it.
// Lines are newline-delimited; everything the container sends is hostile:
//   - a line longer than `maxLineBytes` closes its connection (the bytes are never buffered);
//     an unfinished line is held in one buffer of at most that size per connection;
//   - lines over the session's rate (a token bucket) are dropped, and the connection closed;
//   - at most `maxConnections` open connections per session; more are closed at once;
//   - a connection idle for `idleMs` is closed.
// None of it reaches another session or the server: each session has its own socket, bucket and
// counters. Times are ms. `open` rejects with the listen/chmod error (nothing left behind).
import { chmod } from 'node:fs/promises'
import net from 'node:net'
import type { Logger } from 'pino'
import { prepareRuntimeDir, removeStale } from '../../network/runtime-dir.ts'

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
  lines: number
  tooLong: number
  dropped: number
  refused: number
}

interface Listener {
  server: net.Server
  path: string
  sockets: Set<net.Socket>
  tokens: number
  refilledAt: number
  counters: ChannelCounters
}

export class HookChannel {
  readonly #dir: string
  readonly #log: Logger
  readonly #limits: ChannelLimits
  readonly #onLine: (session: string, line: string) => void
  readonly #now: () => number
  readonly #listeners = new Map<string, Listener>()

  constructor(opts: {
    /** The private directory of the sockets (`<id>.sock`). */
    dir: string
    log: Logger
    limits?: Partial<ChannelLimits>
    /** One complete line of a session, without its newline. */
    onLine: (session: string, line: string) => void
    now?: () => number
  }) {
    this.#dir = opts.dir
    this.#log = opts.log
    this.#limits = { ...DEFAULT_CHANNEL_LIMITS, ...opts.limits }
    this.#onLine = opts.onLine
    this.#now = opts.now ?? Date.now
  }

  /** The socket path of a session. */
  path(session: string): string {
    return `${this.#dir}/${session}.sock`
  }

  has(session: string): boolean {
    return this.#listeners.has(session)
  }

  counters(session: string): ChannelCounters | undefined {
    const l = this.#listeners.get(session)
    return l ? { ...l.counters } : undefined
  }

  /** Opens the session's socket (what a crash left at its path removed first). Idempotent. */
  async open(session: string): Promise<void> {
    if (this.#listeners.has(session)) return
    await prepareRuntimeDir(this.#dir, {
      what: 'the agent status socket directory',
      fix: 'set XDG_RUNTIME_DIR to a directory of yours (mode 0700)',
    })
    const path = this.path(session)
    await removeStale(path)
    const l: Listener = {
      server: net.createServer((socket) => {
        this.#accept(session, l, socket)
      }),
      path,
      sockets: new Set(),
      tokens: this.#limits.burst,
      refilledAt: this.#now(),
      counters: { lines: 0, tooLong: 0, dropped: 0, refused: 0 },
    }
    // Before the listen: a concurrent open sees it and returns.
    this.#listeners.set(session, l)
    try {
      await new Promise<void>((resolve, reject) => {
        l.server.once('error', reject)
        l.server.listen(path, () => {
          l.server.off('error', reject)
          resolve()
        })
      })
      await chmod(path, 0o600)
    } catch (err) {
      this.#listeners.delete(session)
      l.server.close()
      await removeStale(path).catch(() => undefined)
      throw err
    }
    l.server.on('error', (err) => {
      this.#log.warn({ err, session }, 'agent channel listener error')
    })
  }

  /** Closes the session's socket and connections and removes its file. */
  async close(session: string): Promise<void> {
    const l = this.#listeners.get(session)
    if (!l) return
    this.#listeners.delete(session)
    for (const s of l.sockets) s.destroy()
    await new Promise<void>((resolve) => {
      l.server.close(() => {
        resolve()
      })
    })
    await removeStale(l.path).catch(() => undefined)
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

  #accept(session: string, l: Listener, socket: net.Socket): void {
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
    const close = (why: keyof ChannelCounters): void => {
      l.counters[why]++
      pending = null
      socket.destroy()
      this.#log.debug({ session: session, why }, 'agent channel connection closed')
    }
    socket.on('data', (chunk: Buffer) => {
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
    })
  }
}
