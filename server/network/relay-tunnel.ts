// One approved CONNECT tunnel without an upstream proxy: the client socket (the session's side)
// and the target socket (connected to the checked address). Node pipes the bytes until the
// tunnel has moved `handOffAfter` bytes (0 by default: at once), then hands it to the splice relay
// (relay.ts), so bulk transfers run at the kernel's speed. When the relay cannot take it (gone,
// or never started) the tunnel stays in Node's pipe.
//
// Both sockets are half-open capable: an end of stream from one side shuts down writing on the
// other once what came before it is written (the relay does the same), so a client that finished
// sending still receives the whole answer.
import type net from 'node:net'
import type { RelayEnd, RelayHost, SpliceRelay } from './relay.ts'

export interface TunnelOptions {
  /** The relay host, or null to keep every byte in Node. */
  relay: RelayHost | null
  /** Bytes moved either way before the handoff; 0 hands off at once. */
  handOffAfter: number
  /** No byte either way for this long ends a relayed tunnel (ms; 0: never). */
  idleMs: number
  /**
   * The relay took over: from now on the tunnel ends when `relay.done` settles, and closing it
   * means `relay.stop()`. `client` holds the client socket's counters at the handoff (they stop
   * there: the descriptor leaves this process).
   */
  onRelay(relay: SpliceRelay, client: { bytesRead: number; bytesWritten: number }): void
  /** The relay could not be started; the tunnel stays in Node. */
  onRelayFailed(): void
}

/** Whether a socket closed after both of its directions ended normally. */
function endedCleanly(s: net.Socket): boolean {
  return s.readableEnded && s.writableFinished && !s.errored
}

/** Resolves once every byte written to `s` so far reached the kernel (or `s` failed). */
function flushed(s: net.Socket): Promise<void> {
  if (s.writableLength === 0) return Promise.resolve()
  return new Promise((resolve) => {
    // Writes complete in order: the callback of an empty one runs after every earlier one.
    s.write(Buffer.alloc(0), () => {
      resolve()
    })
  })
}

type HandleInternals =
  { reading?: boolean; readStop?: () => number; readStart?: () => number } | null | undefined

/**
 * Stops the event loop reading the socket: what child_process does to a socket it gives to a
 * child (lib/internal/child_process.js), through the same internal handle. `reading` stays true
 * so that the stream does not start reading again (net.Socket#_read starts it when false) before
 * the handle has left. False when this Node has no such handle method (nothing was changed).
 */
function stopReading(s: net.Socket): boolean {
  const h = (s as unknown as { _handle?: HandleInternals })._handle
  if (!h || typeof h.readStop !== 'function') return false
  if (h.readStop() !== 0) return false
  h.reading = true
  return true
}

/**
 * Undoes stopReading: reads again at once, as net.Socket's own tryReadStart does. The stream
 * would not ask by itself: a read() during the drain left it waiting for data that the stopped
 * handle never delivers.
 */
function resumeReading(s: net.Socket): void {
  const h = (s as unknown as { _handle?: HandleInternals })._handle
  if (!h || s.destroyed) return
  if (typeof h.readStart !== 'function') {
    h.reading = false
    return
  }
  h.reading = true
  if (h.readStart() !== 0) s.destroy()
}

/** Takes every byte the stream has buffered (it is paused and no longer piped). */
function drain(s: net.Socket): Buffer {
  const parts: Buffer[] = []
  for (let chunk: unknown = s.read(); chunk !== null; chunk = s.read()) {
    if (Buffer.isBuffer(chunk)) parts.push(chunk)
  }
  return Buffer.concat(parts)
}

export class RelayTunnel {
  readonly #client: net.Socket
  readonly #target: net.Socket
  readonly #opts: TunnelOptions
  #moved = 0
  #relay: SpliceRelay | null = null
  #handingOff = false

  constructor(client: net.Socket, target: net.Socket, opts: TunnelOptions) {
    this.#client = client
    this.#target = target
    this.#opts = opts
    client.allowHalfOpen = true
    target.allowHalfOpen = true
    client.on('error', () => {
      target.destroy()
    })
    target.on('error', () => {
      client.destroy()
    })
    // An end of stream travels through the pipes; a socket that closed any other way (reset,
    // idle timeout, a policy recheck) takes the other one with it.
    client.on('close', () => {
      if (!this.#relay && !endedCleanly(client)) target.destroy()
    })
    target.on('close', () => {
      if (!this.#relay && !endedCleanly(target)) client.destroy()
    })
    client.pipe(target)
    target.pipe(client)
    if (opts.relay === null) return
    if (opts.handOffAfter <= 0) {
      setImmediate(() => void this.#handOff())
      return
    }
    const count = (chunk: Buffer): void => {
      this.#moved += chunk.length
      if (this.#moved < opts.handOffAfter) return
      client.off('data', count)
      target.off('data', count)
      // Outside the 'data' emit: the pipes have written this chunk by then.
      setImmediate(() => void this.#handOff())
    }
    client.on('data', count)
    target.on('data', count)
  }

  /** Whether the relay runs this tunnel now. */
  get relayed(): boolean {
    return this.#relay !== null
  }

  /** Ends the tunnel at once, in Node or in the relay. */
  close(): void {
    if (this.#relay) this.#relay.stop()
    else {
      this.#client.destroy()
      this.#target.destroy()
    }
  }

  #open(): boolean {
    const c = this.#client
    const t = this.#target
    return (
      !c.destroyed &&
      !t.destroyed &&
      !c.readableEnded &&
      !t.readableEnded &&
      !c.writableEnded &&
      !t.writableEnded
    )
  }

  /**
   * Stops the pipes, waits until everything Node was asked to write is in the kernel, then gives
   * both sockets and the bytes Node read but did not write yet to the relay. A tunnel that ended
   * or half-closed meanwhile stays in Node (it is nearly over anyway).
   */
  async #handOff(): Promise<void> {
    const c = this.#client
    const t = this.#target
    const host = this.#opts.relay
    if (this.#handingOff || host === null || !this.#open()) return
    this.#handingOff = true
    c.unpipe(t)
    t.unpipe(c)
    c.pause()
    t.pause()
    await Promise.all([flushed(c), flushed(t)])
    if (!this.#open()) {
      this.#repipe()
      return
    }
    // From here on synchronous: what Node buffered is taken, then it reads nothing more.
    const preUp = drain(c)
    const preDown = drain(t)
    const stopped = stopReading(c) && stopReading(t)
    const counters = { bytesRead: c.bytesRead, bytesWritten: c.bytesWritten }
    const relay = stopped
      ? host.handOff({ client: c, target: t, preUp, preDown, idleMs: this.#opts.idleMs })
      : null
    if (!relay) {
      if (preUp.length > 0) t.write(preUp)
      if (preDown.length > 0) c.write(preDown)
      this.#repipe()
      this.#opts.onRelayFailed()
      return
    }
    // The host destroys the socket objects here once their descriptors are sent.
    this.#relay = relay
    this.#opts.onRelay(relay, counters)
  }

  #repipe(): void {
    resumeReading(this.#client)
    resumeReading(this.#target)
    if (this.#client.destroyed || this.#target.destroyed) return
    this.#client.pipe(this.#target)
    this.#target.pipe(this.#client)
  }
}

export type { RelayEnd }
