// The terminal bridge's input side: client keystrokes and pastes on their way into the PTY.
// Before the PTY exists (the session is being looked up) input queues, up to a bound in bytes;
// past it the connection is refused (`overflow`). Once attached, input is written straight
// through, and while the PTY holds more than `flow.high` bytes it could not write (the process
// behind it does not read) the socket is not read (`ws.pause()`): TCP pushes back on the client
// instead of the server buffering without bound; reading resumes under `flow.low`.
import type { Logger } from 'pino'
import type { Watermarks } from './flow-control.ts'
import type { PtyProcess } from './spawner.ts'

/** The socket operations the pump needs (a `ws` WebSocket). */
export interface Pausable {
  pause(): void
  resume(): void
}

export class InputPump {
  readonly #ws: Pausable
  readonly #log: Logger
  readonly #flow: Watermarks
  readonly #maxQueued: number
  readonly #closed: () => boolean
  readonly #overflow: () => void
  #pty: PtyProcess | null = null
  #queued: Buffer[] = []
  #queuedBytes = 0
  #paused = false
  #cancelWait: (() => void) | null = null

  /**
   * `maxQueued`: bytes that may queue before the PTY exists. `closed`: whether the socket is
   * closed (a closed socket is never paused). `overflow`: the queue went over its bound (the
   * input that did it is dropped). Throws RangeError unless 0 <= flow.low < flow.high.
   */
  constructor(opts: {
    ws: Pausable
    log: Logger
    flow: Watermarks
    maxQueued: number
    closed: () => boolean
    overflow: () => void
  }) {
    if (!(opts.flow.low >= 0 && opts.flow.low < opts.flow.high))
      throw new RangeError('inputFlow needs 0 <= low < high')
    this.#ws = opts.ws
    this.#log = opts.log
    this.#flow = opts.flow
    this.#maxQueued = opts.maxQueued
    this.#closed = opts.closed
    this.#overflow = opts.overflow
  }

  /** Whether the socket is not being read because the PTY has not taken the input yet. */
  get paused(): boolean {
    return this.#paused
  }

  /** The PTY is there: what queued is written to it, in order. */
  attach(pty: PtyProcess): void {
    this.#pty = pty
    for (const chunk of this.#queued) pty.write(chunk)
    this.drop()
    this.#check()
  }

  /** Client input (empty input is ignored). */
  push(data: Buffer): void {
    if (data.length === 0) return
    if (this.#pty) {
      this.#pty.write(data)
      this.#check()
      return
    }
    this.#queuedBytes += data.length
    if (this.#queuedBytes > this.#maxQueued) {
      this.#overflow()
      return
    }
    this.#queued.push(Buffer.from(data))
  }

  /** Forgets queued input (the socket closed before the PTY existed). */
  drop(): void {
    this.#queued = []
    this.#queuedBytes = 0
  }

  /** Reads the socket again (the PTY took the input, exited, or the socket is closing). */
  resume(): void {
    if (!this.#paused) return
    this.#paused = false
    const cancel = this.#cancelWait
    this.#cancelWait = null
    cancel?.()
    this.#log.debug('terminal input resumed')
    // Also when closing: the peer's close frame can only be read from a flowing socket.
    this.#ws.resume()
  }

  #check(): void {
    const pty = this.#pty
    if (!pty || this.#paused || this.#closed()) return
    if (pty.pendingInput <= this.#flow.high) return
    this.#log.debug({ pendingInput: pty.pendingInput }, 'terminal input paused')
    this.#paused = true
    this.#ws.pause()
    // (When it calls back at once, what it returns is a no-op, so keeping it is harmless.)
    this.#cancelWait = pty.onInputBelow(this.#flow.low, () => {
      this.resume()
    })
  }
}
