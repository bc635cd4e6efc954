// What the egress proxy records: one NetworkConnection (shared/schemas/network.ts) per request it
// decided, written once, when the connection ends: a refusal at once with no bytes; an allowed
// CONNECT tunnel when its client socket closes (or, once handed to the splice relay, when the
// relay ends); a plain-HTTP exchange when its response closes (a keep-alive connection carries
// several, each its own record). Bytes are the client socket's counters over the connection's
// life (`bytes_up`: read from the session, `bytes_down`: written to it) plus what a relay moved
// after the handoff; `duration_ms` runs from the decision's start. A record hook that throws is
// logged, never passed on.
import type net from 'node:net'
import type { Logger } from 'pino'
import type { NetworkConnection } from '../../shared/schemas/network.ts'
import type { Exchange, LiveConnection } from './proxy-connections.ts'
import type { SpliceRelay } from './relay.ts'

/** A record before it ends: what is known at the decision. */
export type ConnectionStart = Omit<NetworkConnection, 'bytes_up' | 'bytes_down' | 'duration_ms'>

/** Bytes moved by a connection, each way. */
export interface Moved {
  up: number
  down: number
}

/** An allowed connection being recorded. */
export interface Tracked {
  /**
   * The relay took the connection: it ends (and is recorded) when the relay ends. `client`: the
   * client socket's counters at the handoff.
   */
  handOff(relay: SpliceRelay, client: { bytesRead: number; bytesWritten: number }): void
}

/** Writes records through the proxy's `record` hook. */
export class Recorder {
  readonly #log: Logger
  readonly #record: (session: string, record: NetworkConnection) => void

  constructor(log: Logger, record: (session: string, record: NetworkConnection) => void) {
    this.#log = log
    this.#record = record
  }

  /** Records a connection that ended now; `bytes` null: none moved (a refusal). */
  finish(session: string, rec: ConnectionStart, started: number, bytes: Moved | null): void {
    try {
      this.#record(session, {
        ...rec,
        bytes_up: bytes?.up ?? 0,
        bytes_down: bytes?.down ?? 0,
        duration_ms: Math.max(0, Date.now() - started),
      })
    } catch (err) {
      this.#log.warn({ err, session }, 'egress record failed')
    }
  }

  /**
   * Tracks an allowed connection on `socket` (the client's) until it ends, then records it with
   * the bytes it moved. `exchange`: the plain-HTTP exchange (its response's close ends it), or
   * undefined for a CONNECT tunnel (the socket's close ends it, unless a relay took it). While
   * open it is in `lives`, where a policy change can close it.
   */
  track(
    session: string,
    socket: net.Socket,
    exchange: Exchange | undefined,
    lives: Set<LiveConnection> | undefined,
    rec: ConnectionStart,
    started: number,
    checked: Omit<LiveConnection, 'close'>,
  ): Tracked {
    const read0 = socket.bytesRead
    const written0 = socket.bytesWritten
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
    const end = (more: Moved): void => {
      if (done) return
      done = true
      lives?.delete(live)
      this.finish(session, rec, started, {
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
}
