// One terminal socket (`/ws/terminal/{id}` or `/ws/shell/{id}`) speaking `clincus.v1`, with
// flow-control ACKs as output is rendered, paced input, de-duplicated resizes and automatic
// reconnection. It knows nothing about xterm: a sink renders the output, so it is testable.
import {
  CloseCode,
  Op,
  TERMINAL_SIZE,
  TERMINAL_SUBPROTOCOL,
  ackFrame,
  parseFrame,
  resizeFrame,
} from '../../../../shared/ws/terminal.ts'
import { Backoff } from '../backoff.ts'
import { AckCounter, inputFrames } from './protocol.ts'

export type TerminalState =
  | { kind: 'idle' }
  | { kind: 'connecting'; attempt: number }
  | { kind: 'open' }
  | { kind: 'reconnecting'; retryAt: number; reason: string }
  | { kind: 'exited'; code: number }
  /** The session is not running (or gone): nothing to attach to until it is resumed. */
  | { kind: 'unavailable'; reason: string }
  /** The server refused us for a reason a retry will not fix. */
  | { kind: 'failed'; reason: string }

export interface TerminalSink {
  /** Renders output; calls `done` once it is on screen (xterm's write callback). */
  write(data: Uint8Array, done: () => void): void
  /** Shows a one-line notice inside the terminal (exit code, server error). */
  notice(text: string): void
  /** Current size, sent when a connection opens; null while unknown (hidden tab). */
  size(): { cols: number; rows: number } | null
}

export interface ConnectionOptions {
  /** The socket's URL; may first fetch a single-use ticket (so it is asked anew per attempt). */
  url: () => string | Promise<string>
  sink: TerminalSink
  WebSocket?: typeof WebSocket
  backoff?: Backoff
  ackEvery?: number
  /** Acknowledge leftovers after output has been quiet this long. */
  ackIdleMs?: number
  /**
   * Treat an exit this soon after connecting as "not ready yet" and retry (a few times): the
   * agent's tmux session appears a moment after its container reports running, so a terminal
   * that attaches on the `session.started` event can find no session to attach to.
   */
  earlyExitMs?: number
}

const EARLY_EXIT_RETRIES = 5

/** Above this many queued bytes on the socket, input waits (a big paste must not flood it). */
const MAX_BUFFERED = 256 * 1024
/** The server refuses sizes outside TERMINAL_SIZE. */
function validSize(cols: number, rows: number): boolean {
  const ok = (n: number): boolean =>
    Number.isInteger(n) && n >= TERMINAL_SIZE.MIN && n <= TERMINAL_SIZE.MAX
  return ok(cols) && ok(rows)
}

const CONNECTING = 0
const OPEN = 1

function closeReason(code: number, reason: string): string {
  if (reason) return reason.charAt(0).toUpperCase() + reason.slice(1)
  if (code === CloseCode.NOT_FOUND) return 'The session does not exist'
  if (code === CloseCode.NOT_RUNNING) return 'The session is not running'
  if (code === CloseCode.TOO_MANY) return 'Too many terminals are open on this session'
  if (code === CloseCode.INTERNAL) return 'The server hit an error'
  if (code === CloseCode.GOING_AWAY) return 'The server is restarting'
  return 'The connection was lost'
}

export class TerminalConnection {
  state: TerminalState = $state({ kind: 'idle' })
  /** OUTPUT bytes received on the current connection (tests and diagnostics). */
  received = 0

  readonly #opts: ConnectionOptions
  readonly #WS: typeof WebSocket
  readonly #backoff: Backoff
  #socket: WebSocket | null = null
  #generation = 0
  #acks: AckCounter
  #ackTimer: ReturnType<typeof setTimeout> | null = null
  #retryTimer: ReturnType<typeof setTimeout> | null = null
  #queue: Uint8Array[] = []
  #pumping = false
  #pumpId = 0
  #lastSize: { cols: number; rows: number } | null = null
  #disposed = false
  #openedAt = 0
  #earlyExits = 0
  readonly #encoder = new TextEncoder()

  constructor(opts: ConnectionOptions) {
    this.#opts = opts
    this.#WS = opts.WebSocket ?? WebSocket
    this.#backoff = opts.backoff ?? new Backoff(500, 10_000)
    this.#acks = new AckCounter(opts.ackEvery)
  }

  get isOpen(): boolean {
    return this.state.kind === 'open'
  }

  /** Opens (or re-opens) the socket now, cancelling any pending retry. */
  connect(): void {
    if (this.#disposed) return
    this.#clearRetry()
    this.#drop()
    const generation = ++this.#generation
    this.#acks = new AckCounter(this.#opts.ackEvery)
    this.#lastSize = null
    this.#openedAt = 0
    this.received = 0
    this.state = { kind: 'connecting', attempt: this.#backoff.attempt }
    let url: string | Promise<string>
    try {
      url = this.#opts.url()
    } catch {
      this.#retry('Could not open the connection')
      return
    }
    if (typeof url === 'string') {
      this.#open(url, generation)
      return
    }
    url.then(
      (u) => {
        if (generation === this.#generation && !this.#disposed) this.#open(u, generation)
      },
      () => {
        if (generation === this.#generation) this.#retry('Could not open the connection')
      },
    )
  }

  #open(base: string, generation: number): void {
    // The initial size rides on the URL, so the PTY starts at the right size and the first
    // screen (tmux redraws on attach) is drawn for it.
    const size = this.#opts.sink.size()
    let url = base
    if (size && validSize(size.cols, size.rows)) {
      url += `${url.includes('?') ? '&' : '?'}cols=${size.cols}&rows=${size.rows}`
      this.#lastSize = { cols: size.cols, rows: size.rows }
    }
    let socket: WebSocket
    try {
      socket = new this.#WS(url, TERMINAL_SUBPROTOCOL)
    } catch {
      this.#retry('Could not open the connection')
      return
    }
    socket.binaryType = 'arraybuffer'
    this.#socket = socket
    let exited = false
    socket.onopen = () => {
      if (generation !== this.#generation) return
      this.#openedAt = Date.now()
      this.state = { kind: 'open' }
      // The terminal may have been resized while the socket was connecting.
      const now = this.#opts.sink.size()
      if (now) this.resize(now.cols, now.rows)
    }
    socket.onmessage = (e: MessageEvent) => {
      if (generation !== this.#generation || !(e.data instanceof ArrayBuffer)) return
      const f = parseFrame(new Uint8Array(e.data))
      if (!f) return
      switch (f.op) {
        case Op.OUTPUT: {
          const bytes = f.data.length
          this.received += bytes
          this.#opts.sink.write(f.data, () => {
            this.#rendered(generation, bytes)
          })
          return
        }
        case Op.EXIT:
          exited = true
          if (this.#isEarlyExit()) return
          this.state = { kind: 'exited', code: f.code }
          this.#opts.sink.notice(`[process exited with code ${f.code}]`)
          return
        case Op.ERROR:
          this.#opts.sink.notice(`[error: ${f.message}]`)
          return
        default:
          return
      }
    }
    socket.onclose = (e: CloseEvent) => {
      if (generation !== this.#generation) return
      this.#socket = null
      this.#queue = []
      if (exited || e.code === CloseCode.EXITED) {
        if (this.#isEarlyExit()) {
          this.#earlyExits++
          this.#retry('Waiting for the agent to start')
          return
        }
        if (this.state.kind !== 'exited') this.state = { kind: 'exited', code: 0 }
        return
      }
      // A connection that lived a while earns a fresh start next time.
      if (this.#openedAt > 0 && Date.now() - this.#openedAt > 5000) {
        this.#backoff.reset()
        this.#earlyExits = 0
      }
      const reason = closeReason(e.code, e.reason)
      if (e.code === CloseCode.NOT_FOUND || e.code === CloseCode.NOT_RUNNING) {
        this.state = { kind: 'unavailable', reason }
        return
      }
      if (
        e.code === CloseCode.BAD_REQUEST ||
        e.code === CloseCode.UNAUTHORIZED ||
        e.code === CloseCode.FORBIDDEN
      ) {
        this.state = { kind: 'failed', reason }
        return
      }
      this.#retry(reason)
    }
  }

  /** Stops without retrying, e.g. because the session was stopped. */
  suspend(reason: string): void {
    if (this.state.kind === 'unavailable' && !this.#socket && !this.#retryTimer) return
    this.#clearRetry()
    this.#drop()
    this.#generation++
    this.state = { kind: 'unavailable', reason }
  }

  /** Sends keyboard input or a prepared paste, in paced chunks. Dropped while disconnected. */
  input(data: string | Uint8Array): void {
    if (!this.#socket || this.state.kind !== 'open') return
    const bytes = typeof data === 'string' ? this.#encoder.encode(data) : data
    if (bytes.length === 0) return
    this.#queue.push(...inputFrames(bytes))
    this.#pump()
  }

  /** Sends the size when it differs from the last one sent on this connection. */
  resize(cols: number, rows: number): void {
    if (!validSize(cols, rows)) return
    if (this.#lastSize?.cols === cols && this.#lastSize.rows === rows) return
    if (!this.#socket || this.state.kind !== 'open') return
    this.#lastSize = { cols, rows }
    this.#socket.send(resizeFrame(cols, rows))
  }

  dispose(): void {
    this.#disposed = true
    this.#clearRetry()
    this.#drop()
    this.#generation++
    this.state = { kind: 'idle' }
  }

  #isEarlyExit(): boolean {
    const window = this.#opts.earlyExitMs ?? 0
    return (
      window > 0 && this.#earlyExits < EARLY_EXIT_RETRIES && Date.now() - this.#openedAt < window
    )
  }

  #rendered(generation: number, bytes: number): void {
    if (generation !== this.#generation) return
    const ack = this.#acks.rendered(bytes)
    if (ack > 0) this.#sendAck(ack)
    // Leftovers below the threshold are acknowledged once output goes quiet, so the server's
    // count always returns to zero.
    if (this.#ackTimer) clearTimeout(this.#ackTimer)
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = null
      if (generation !== this.#generation) return
      const rest = this.#acks.flush()
      if (rest > 0) this.#sendAck(rest)
    }, this.#opts.ackIdleMs ?? 250)
  }

  #sendAck(bytes: number): void {
    if (this.#socket?.readyState === OPEN) this.#socket.send(ackFrame(bytes))
  }

  /** One chunk per task, waiting while the socket's send buffer is full. */
  #pump(): void {
    if (this.#pumping) return
    this.#pumping = true
    const id = this.#pumpId
    const step = (): void => {
      if (id !== this.#pumpId) return
      const socket = this.#socket
      if (!socket || socket.readyState !== OPEN) {
        this.#queue = []
        this.#pumping = false
        return
      }
      if (socket.bufferedAmount > MAX_BUFFERED) {
        setTimeout(step, 10)
        return
      }
      const next = this.#queue.shift()
      if (!next) {
        this.#pumping = false
        return
      }
      socket.send(next)
      if (this.#queue.length === 0) {
        this.#pumping = false
        return
      }
      setTimeout(step, 0)
    }
    step()
  }

  #retry(reason: string): void {
    if (this.#disposed) return
    const delay = this.#backoff.next()
    const retryAt = Date.now() + delay
    this.state = { kind: 'reconnecting', retryAt, reason }
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null
      this.connect()
    }, delay)
  }

  #clearRetry(): void {
    if (this.#retryTimer) clearTimeout(this.#retryTimer)
    this.#retryTimer = null
  }

  #drop(): void {
    if (this.#ackTimer) clearTimeout(this.#ackTimer)
    this.#ackTimer = null
    this.#queue = []
    this.#pumping = false
    this.#pumpId++
    const s = this.#socket
    this.#socket = null
    if (s) {
      s.onopen = s.onmessage = s.onclose = s.onerror = null
      if (s.readyState === OPEN || s.readyState === CONNECTING) s.close(1000)
    }
  }
}
