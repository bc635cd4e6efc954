// Terminal endpoints the benchmarks drive the same way: a direct node-pty process (the floor) or
// a WebSocket to /ws/terminal or /ws/shell in either protocol (clincus). Each hands its output
// bytes to one sink, as fast as they arrive.
import * as nodePty from 'node-pty'
import { WebSocket, type RawData } from 'ws'
import { ackFrame, FLOW, inputFrame, Op, TERMINAL_SUBPROTOCOL } from '../../shared/ws/terminal.ts'
import { sleep, waitFor } from './stats.ts'

export type Protocol = 'raw' | 'v1'

export abstract class Endpoint {
  abstract readonly label: string
  /** Output bytes received (payload, without v1 framing). */
  bytes = 0
  lastDataAt = 0
  #sink: ((chunk: Buffer) => void) | null = null
  readonly #watchers = new Set<(chunk: Buffer) => void>()
  #ended = false
  protected readonly ended: Promise<void>
  #resolveEnded: () => void = () => undefined

  constructor() {
    this.ended = new Promise((resolve) => {
      this.#resolveEnded = resolve
    })
  }

  /** Where output goes from now on (null: counted and dropped). */
  set sink(fn: ((chunk: Buffer) => void) | null) {
    this.#sink = fn
  }

  /** The sink output goes to now (to chain another watcher in front of it). */
  get currentSink(): ((chunk: Buffer) => void) | null {
    return this.#sink
  }

  /** Also hands output to `fn`, beside the sink, until the returned function is called. */
  watch(fn: (chunk: Buffer) => void): () => void {
    this.#watchers.add(fn)
    return () => this.#watchers.delete(fn)
  }

  get isEnded(): boolean {
    return this.#ended
  }

  protected deliver(chunk: Buffer): void {
    this.bytes += chunk.length
    this.lastDataAt = performance.now()
    this.#sink?.(chunk)
    for (const w of this.#watchers) w(chunk)
  }

  protected markEnded(): void {
    this.#ended = true
    this.#resolveEnded()
  }

  abstract write(data: string): void
  abstract close(): Promise<void>

  /** Waits until no output has arrived for `quietMs` (the initial screen has been drawn). */
  async settle(quietMs = 300, timeoutMs = 15_000): Promise<void> {
    const start = performance.now()
    await waitFor(
      `${this.label} to go quiet`,
      () => performance.now() - Math.max(this.lastDataAt, start) >= quietMs,
      timeoutMs,
      10,
    )
  }
}

// With `encoding: null` node-pty hands out Buffers, although its typings say string.
type ByteEvent = (listener: (data: Buffer | string) => void) => nodePty.IDisposable

/** A PTY of our own around `incus exec -t …`: the floor, no clincus in between. */
export class PtyEndpoint extends Endpoint {
  readonly label: string
  readonly pty: nodePty.IPty
  exitCode: number | undefined

  constructor(label: string, file: string, args: readonly string[], cols = 80, rows = 24) {
    super()
    this.label = label
    this.pty = nodePty.spawn(file, [...args], {
      name: 'xterm-256color',
      cols,
      rows,
      encoding: null,
    })
    const onData = this.pty.onData as unknown as ByteEvent
    onData((d) => {
      this.deliver(typeof d === 'string' ? Buffer.from(d) : d)
    })
    this.pty.onExit((e) => {
      this.exitCode = e.exitCode
      this.markEnded()
    })
  }

  write(data: string): void {
    this.pty.write(data)
  }

  async close(): Promise<void> {
    if (this.isEnded) return
    this.pty.kill('SIGHUP')
    const killed = await Promise.race([this.ended.then(() => true), sleep(3000).then(() => false)])
    if (!killed) {
      this.pty.kill('SIGKILL')
      await this.ended
    }
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

/**
 * A WebSocket terminal client. v1 acknowledges output as it is consumed (at least every
 * FLOW.ACK_EVERY bytes, like the dashboard); `stall()` stops reading the socket altogether.
 */
export class WsEndpoint extends Endpoint {
  readonly label: string
  readonly protocol: Protocol
  readonly ws: WebSocket
  readonly opened: Promise<void>
  closeCode: number | undefined
  closeReason = ''
  errors: string[] = []
  #unacked = 0
  #stalled = false

  constructor(label: string, url: string, protocol: Protocol, headers: Record<string, string>) {
    super()
    this.label = label
    this.protocol = protocol
    this.ws = new WebSocket(url, protocol === 'v1' ? [TERMINAL_SUBPROTOCOL] : [], {
      perMessageDeflate: false,
      headers,
    })
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => {
        resolve()
      })
      this.ws.once('error', reject)
      this.ws.once('close', (code, reason) => {
        reject(new Error(`${label}: closed before open (${code} ${reason.toString()})`))
      })
    })
    this.ws.on('error', (err) => {
      this.errors.push(err.message)
    })
    this.ws.on('close', (code, reason) => {
      this.closeCode = code
      this.closeReason = reason.toString()
      this.markEnded()
    })
    this.ws.on('message', (data, isBinary) => {
      const buf = toBuffer(data)
      if (protocol === 'raw') {
        this.deliver(buf)
        return
      }
      if (!isBinary || buf.length === 0) return
      if (buf[0] === Op.OUTPUT) {
        const payload = buf.subarray(1)
        this.deliver(payload)
        this.#unacked += payload.length
        if (this.#unacked >= FLOW.ACK_EVERY && !this.#stalled) this.#ack()
      } else if (buf[0] === Op.ERROR) {
        this.errors.push(buf.subarray(1).toString('utf8'))
      }
    })
  }

  #ack(): void {
    if (this.#unacked === 0 || this.ws.readyState !== WebSocket.OPEN) return
    this.ws.send(ackFrame(this.#unacked))
    this.#unacked = 0
  }

  /** Acknowledges what has been consumed but not yet acked (v1), e.g. after a keystroke echo. */
  flushAck(): void {
    if (this.protocol === 'v1') this.#ack()
  }

  write(data: string): void {
    if (this.protocol === 'v1') this.ws.send(inputFrame(data))
    else this.ws.send(data)
  }

  /** Stops reading: the kernel buffers fill, then the server has to hold back. */
  stall(): void {
    this.#stalled = true
    this.ws.pause()
  }

  unstall(): void {
    this.#stalled = false
    this.ws.resume()
    this.flushAck()
  }

  async close(): Promise<void> {
    if (this.isEnded) return
    this.ws.close(1000, 'bench done')
    const closed = await Promise.race([this.ended.then(() => true), sleep(3000).then(() => false)])
    if (!closed) {
      this.ws.terminate()
      await this.ended
    }
  }
}

/** Watches a byte stream for a marker that may be split across chunks. */
export class MarkerWatch {
  readonly #marker: Buffer
  #tail: Buffer = Buffer.alloc(0)
  found = false

  constructor(marker: string) {
    this.#marker = Buffer.from(marker)
  }

  push(chunk: Buffer): boolean {
    if (this.found) return true
    const keep = this.#marker.length - 1
    if (chunk.indexOf(this.#marker) >= 0) {
      this.found = true
      return true
    }
    if (this.#tail.length > 0) {
      const seam = Buffer.concat([this.#tail, chunk.subarray(0, keep)])
      if (seam.indexOf(this.#marker) >= 0) {
        this.found = true
        return true
      }
    }
    const joined = chunk.length >= keep ? chunk : Buffer.concat([this.#tail, chunk])
    this.#tail = Buffer.from(joined.subarray(Math.max(0, joined.length - keep)))
    return false
  }
}

/** Resolves with the time (performance.now) at which `marker` arrived on `ep`. */
export function timeToMarker(ep: Endpoint, marker: string, timeoutMs: number): Promise<number> {
  const watch = new MarkerWatch(marker)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ep.sink = null
      reject(new Error(`${ep.label}: no ${marker} within ${timeoutMs} ms (${ep.bytes} bytes in)`))
    }, timeoutMs)
    ep.sink = (chunk) => {
      if (watch.push(chunk)) {
        const at = performance.now()
        clearTimeout(timer)
        ep.sink = null
        resolve(at)
      }
    }
  })
}

/**
 * Resolves with the time (performance.now) at which `key` arrived on `ep` (also when split across
 * chunks). It watches beside the sink, so the watch that owns the sink (e.g. `timeToMarker`, which
 * clears the sink when its marker comes) cannot take the echo away.
 */
export function echoBeside(ep: Endpoint, key: string, timeoutMs: number): Promise<number> {
  const watch = new MarkerWatch(key)
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error(`${ep.label}: no echo of ${key} within ${timeoutMs} ms`))
    }, timeoutMs)
    const off = ep.watch((chunk) => {
      if (!watch.push(chunk)) return
      const at = performance.now()
      clearTimeout(timer)
      off()
      resolve(at)
    })
  })
}

/**
 * A shell command line that runs `command` then prints `marker`, written so that the shell's
 * echo of the line itself never contains the marker (it is split by quotes).
 */
export function commandWithMarker(command: string, marker: string): string {
  const cut = Math.floor(marker.length / 2)
  return `${command}; echo '${marker.slice(0, cut)}''${marker.slice(cut)}'\r`
}
