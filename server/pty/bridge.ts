import type { Logger } from 'pino'
import type { WebSocket } from '@fastify/websocket'
import type { RawData } from 'ws'
import {
  CloseCode,
  errorFrame,
  exitFrame,
  FLOW,
  frame,
  jsonMessage,
  Op,
  parseFrame,
  TERMINAL_SIZE,
} from '../../shared/ws/terminal.ts'
import { closeReason } from '../events/ws-keepalive.ts'
import { DEFAULT_COALESCE, OutputCoalescer, type CoalesceOptions } from './coalescer.ts'
import { FlowCounter, PauseGate, type Watermarks } from './flow-control.ts'
import type { PtyExit, PtyProcess } from './spawner.ts'
import { parseJsonClientMessage } from './json-protocol.ts'
import { Utf8Splitter, utf8TextPayload } from './utf8.ts'

/**
 * `raw`: the contract's protocol (text out, text/binary in); `v1`: the clincus.v1 subprotocol;
 * `json`: the original dashboard's JSON messages, recognised on a `raw` connection from the
 * client's first frame.
 */
export type TerminalProtocol = 'raw' | 'v1' | 'json'

export interface BridgeOptions {
  /** What the handshake chose; `raw` becomes `json` when the first frame is a JSON message. */
  protocol: 'raw' | 'v1'
  log: Logger
  /** Unacknowledged (v1) or socket-buffered (both) output bytes that pause the PTY. */
  flow?: Watermarks
  coalesce?: CoalesceOptions
  /** After SIGHUP, how long the PTY's process gets before SIGKILL. */
  killGraceMs?: number
  /** Input that may queue while the session is looked up, before the PTY exists. */
  maxQueuedInput?: number
  /**
   * Input the PTY has not taken yet (its process does not read) above which the socket is no
   * longer read, and under which reading resumes.
   */
  inputFlow?: Watermarks
  /** Called whenever output reached the kernel: the client is reading (keepalive). */
  onDelivered?: () => void
}

const DEFAULT_FLOW: Watermarks = { high: FLOW.HIGH_WATER, low: FLOW.LOW_WATER }
// A paste of a few MiB goes through in steps of ¾ MiB; a flood costs at most about 1 MiB plus
// one WebSocket message (ws_max_message_bytes) and one socket read.
const DEFAULT_INPUT_FLOW: Watermarks = { high: 1024 * 1024, low: 256 * 1024 }
const DEFAULT_KILL_GRACE_MS = 2000
const DEFAULT_MAX_QUEUED_INPUT = 256 * 1024
/**
 * Output a connection without subprotocol may receive before the client's first frame says
 * which framing it speaks; past it the connection stays raw. Up to it, the output is kept, so a
 * JSON client (which cannot read the raw frames) gets it again as its first output message.
 */
const PRELUDE_LIMIT = FLOW.HIGH_WATER
const textDecoder = new TextDecoder('utf-8', { fatal: false })

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

function validSize(cols: number, rows: number): boolean {
  const ok = (n: number): boolean =>
    Number.isInteger(n) && n >= TERMINAL_SIZE.MIN && n <= TERMINAL_SIZE.MAX
  return ok(cols) && ok(rows)
}

/**
 * One WebSocket ↔ one PTY. Created synchronously with the socket, so no frame is lost while the
 * session is looked up (input queues, the last resize is kept), then `attach`ed to the PTY.
 *
 * Output: PTY → coalescer → (raw: UTF-8 splitter → text frame | v1: OUTPUT frame) → socket.
 * Backpressure: the PTY is paused while the socket holds more than `flow.high` unsent bytes, or
 * (v1) the client has not acknowledged that many, and resumed under `flow.low`. A paused PTY
 * stops `incus exec` reading, so the tmux client inside blocks, and tmux holds back redraws for
 * that one client only: other viewers and the tool itself keep running.
 *
 * Input backpressure: while the PTY holds more than `inputFlow.high` bytes it could not write
 * (the process behind it does not read), the socket is not read (`ws.pause()`): TCP pushes back
 * on the client instead of the server buffering without bound; reading resumes under
 * `inputFlow.low`.
 */
export class TerminalBridge {
  readonly #ws: WebSocket
  #protocol: TerminalProtocol
  /** A raw connection whose client has not sent a frame yet: it may still turn out to be json. */
  #undecided: boolean
  #prelude: Buffer[] = []
  #preludeBytes = 0
  readonly #log: Logger
  readonly #killGraceMs: number
  readonly #maxQueuedInput: number
  readonly #onDelivered: () => void
  readonly #coalescer: OutputCoalescer
  readonly #splitter = new Utf8Splitter()
  readonly #socketFlow: FlowCounter
  readonly #ackFlow: FlowCounter
  readonly #gate: PauseGate
  readonly #inputFlow: Watermarks
  #inputPaused = false
  #cancelInputWait: (() => void) | null = null
  #pty: PtyProcess | null = null
  #queuedInput: Buffer[] = []
  #queuedBytes = 0
  #pendingSize: { cols: number; rows: number } | null = null
  #socketClosed = false
  #exited = false
  #killTimer: NodeJS.Timeout | null = null
  readonly #done: Promise<void>
  #resolveDone: () => void = () => undefined
  #bytesOut = 0

  constructor(ws: WebSocket, opts: BridgeOptions) {
    this.#ws = ws
    this.#protocol = opts.protocol
    this.#undecided = opts.protocol === 'raw'
    this.#log = opts.log
    this.#killGraceMs = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS
    this.#maxQueuedInput = opts.maxQueuedInput ?? DEFAULT_MAX_QUEUED_INPUT
    this.#onDelivered = opts.onDelivered ?? (() => undefined)
    const flow = opts.flow ?? DEFAULT_FLOW
    this.#inputFlow = opts.inputFlow ?? DEFAULT_INPUT_FLOW
    if (!(this.#inputFlow.low >= 0 && this.#inputFlow.low < this.#inputFlow.high))
      throw new RangeError('inputFlow needs 0 <= low < high')
    this.#socketFlow = new FlowCounter(flow)
    this.#ackFlow = new FlowCounter(flow)
    this.#gate = new PauseGate(
      () => {
        this.#log.debug({ bytesOut: this.#bytesOut }, 'pty paused')
        this.#pty?.pause()
      },
      () => {
        this.#log.debug({ bytesOut: this.#bytesOut }, 'pty resumed')
        this.#pty?.resume()
      },
    )
    this.#coalescer = new OutputCoalescer(opts.coalesce ?? DEFAULT_COALESCE, (data) => {
      this.#output(data)
    })
    this.#done = new Promise((resolve) => {
      this.#resolveDone = resolve
    })
    // Synchronously, in the route handler (@fastify/websocket README): frames that arrive before
    // a listener exists are dropped.
    ws.on('message', (data, isBinary) => {
      this.#onMessage(toBuffer(data), isBinary)
    })
    ws.on('close', () => {
      this.#onSocketClose()
    })
    ws.on('error', (err) => {
      this.#log.debug({ err }, 'terminal socket error')
    })
  }

  get protocol(): TerminalProtocol {
    return this.#protocol
  }

  /** Whether the client is gone (or was sent away). */
  get closed(): boolean {
    return this.#socketClosed || this.#ws.readyState !== this.#ws.OPEN
  }

  /** Resolves when the socket is closed and the PTY (if any) has exited. */
  get done(): Promise<void> {
    return this.#done
  }

  get pid(): number | undefined {
    return this.#pty?.pid
  }

  /** Output bytes sent so far (payload, before framing). */
  get bytesOut(): number {
    return this.#bytesOut
  }

  get paused(): boolean {
    return this.#gate.paused
  }

  /** Whether the socket is not being read because the PTY has not taken the input yet. */
  get inputPaused(): boolean {
    return this.#inputPaused
  }

  attach(pty: PtyProcess): void {
    if (this.#pty) throw new Error('terminal bridge already attached')
    this.#pty = pty
    pty.onData((data) => {
      this.#coalescer.push(data)
    })
    pty.onExit((e) => {
      this.#onExit(e)
    })
    if (this.#socketClosed) {
      // The client left while the PTY was being spawned.
      this.#kill()
      return
    }
    if (this.#pendingSize) pty.resize(this.#pendingSize.cols, this.#pendingSize.rows)
    for (const chunk of this.#queuedInput) pty.write(chunk)
    this.#queuedInput = []
    this.#queuedBytes = 0
    this.#checkInput()
    if (this.#gate.paused) pty.pause()
  }

  /**
   * Refuses the connection before a PTY exists: an ERROR frame (v1) or error message (json),
   * then the close code.
   */
  reject(code: number, reason: string): void {
    this.#sendError(reason)
    this.#closeSocket(code, reason)
    if (!this.#pty) this.#finish()
  }

  /** Ends the terminal from the server side; resolves once the PTY has exited. */
  async close(code: number, reason: string): Promise<void> {
    this.#closeSocket(code, reason)
    if (this.#pty) this.#kill()
    else this.#finish()
    await this.#done
  }

  #onMessage(buf: Buffer, isBinary: boolean): void {
    if (this.#undecided) {
      this.#undecided = false
      const first = parseJsonClientMessage(buf)
      if (first) this.#useJson()
      this.#prelude = []
      this.#preludeBytes = 0
    }
    if (this.#protocol === 'raw') {
      this.#input(buf)
      return
    }
    if (this.#protocol === 'json') {
      this.#onJsonMessage(buf)
      return
    }
    if (!isBinary) {
      this.#protocolError('clincus.v1 takes binary frames only')
      return
    }
    const f = parseFrame(buf)
    if (!f) {
      this.#protocolError('malformed frame')
      return
    }
    switch (f.op) {
      case Op.INPUT:
        this.#input(Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength))
        return
      case Op.RESIZE:
        this.resize(f.cols, f.rows)
        return
      case Op.ACK:
        if (this.#ackFlow.release(f.bytes)) this.#gate.set('ack', false)
        return
      default:
        this.#protocolError(`opcode ${f.op} is server-to-client only`)
    }
  }

  /** From here on the connection speaks json; output sent raw so far is sent again, as json. */
  #useJson(): void {
    this.#protocol = 'json'
    this.#log.debug({ prelude: this.#preludeBytes }, 'terminal speaks the json framing')
    if (this.#preludeBytes === 0) return
    const data = textDecoder.decode(Buffer.concat(this.#prelude))
    this.#send(jsonMessage({ type: 'output', data }), false)
  }

  /**
   * One json-mode frame. A frame that is not a message is answered, never fatal; while the
   * client does not read (its socket is over the output bound) answers are dropped, so a flood
   * of bad frames cannot grow the server's buffer.
   */
  #onJsonMessage(buf: Buffer): void {
    const m = parseJsonClientMessage(buf)
    if (!m) {
      this.#log.debug('terminal json message malformed')
      this.#answerJson(
        'malformed message: expected {"type":"input","data":"…"} or {"type":"resize","cols":N,"rows":N}',
      )
      return
    }
    if (m.type === 'input') {
      this.#input(Buffer.from(m.data, 'utf8'))
      return
    }
    if (!validSize(m.cols, m.rows)) {
      this.#answerJson(
        `size ${m.cols}x${m.rows} is outside ${TERMINAL_SIZE.MIN}-${TERMINAL_SIZE.MAX}`,
      )
      return
    }
    this.resize(m.cols, m.rows)
  }

  /** Applies a size (v1 RESIZE frames; also used for the initial size). */
  resize(cols: number, rows: number): void {
    if (!validSize(cols, rows)) {
      this.#protocolError(
        `size ${cols}x${rows} is outside ${TERMINAL_SIZE.MIN}-${TERMINAL_SIZE.MAX}`,
      )
      return
    }
    if (!this.#pty) {
      this.#pendingSize = { cols, rows }
      return
    }
    if (this.#exited) return
    try {
      this.#pty.resize(cols, rows)
    } catch (err) {
      this.#log.debug({ err }, 'pty resize failed')
    }
  }

  #input(data: Buffer): void {
    if (data.length === 0 || this.#exited) return
    if (this.#pty) {
      this.#pty.write(data)
      this.#checkInput()
      return
    }
    this.#queuedBytes += data.length
    if (this.#queuedBytes > this.#maxQueuedInput) {
      this.reject(CloseCode.BAD_REQUEST, 'too much input before the terminal was ready')
      return
    }
    this.#queuedInput.push(Buffer.from(data))
  }

  #checkInput(): void {
    const pty = this.#pty
    if (!pty || this.#inputPaused || this.#socketClosed) return
    if (pty.pendingInput <= this.#inputFlow.high) return
    this.#log.debug({ pendingInput: pty.pendingInput }, 'terminal input paused')
    this.#inputPaused = true
    this.#ws.pause()
    // (When it calls back at once, what it returns is a no-op, so keeping it is harmless.)
    this.#cancelInputWait = pty.onInputBelow(this.#inputFlow.low, () => {
      this.#resumeInput()
    })
  }

  #resumeInput(): void {
    if (!this.#inputPaused) return
    this.#inputPaused = false
    const cancel = this.#cancelInputWait
    this.#cancelInputWait = null
    cancel?.()
    this.#log.debug('terminal input resumed')
    // Also when closing: the peer's close frame can only be read from a flowing socket.
    this.#ws.resume()
  }

  #answerJson(message: string): void {
    if (!this.#socketFlow.over) this.#send(jsonMessage({ type: 'error', message }), false)
  }

  /** An error message in the connection's framing (raw has none: its close reason says it). */
  #sendError(message: string): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return
    if (this.#protocol === 'v1') this.#ws.send(errorFrame(message), { binary: true })
    else if (this.#protocol === 'json') this.#ws.send(jsonMessage({ type: 'error', message }))
  }

  #protocolError(message: string): void {
    this.#log.debug({ message }, 'terminal protocol error')
    this.#sendError(message)
    this.#closeSocket(CloseCode.BAD_REQUEST, message)
    if (this.#pty) this.#kill()
    else this.#finish()
  }

  #output(data: Buffer): void {
    if (this.#protocol === 'v1') {
      this.#bytesOut += data.length
      if (this.#ackFlow.add(data.length)) this.#gate.set('ack', true)
      this.#send(frame(Op.OUTPUT, data), true)
      return
    }
    const whole = this.#splitter.push(data)
    if (whole.length > 0) this.#sendText(whole)
  }

  /** Whole UTF-8 characters, as a raw text frame or a json output message. */
  #sendText(bytes: Buffer): void {
    this.#bytesOut += bytes.length
    if (this.#protocol === 'json') {
      this.#send(jsonMessage({ type: 'output', data: textDecoder.decode(bytes) }), false)
      return
    }
    if (this.#undecided) this.#keepPrelude(bytes)
    this.#send(utf8TextPayload(bytes), false)
  }

  #keepPrelude(bytes: Buffer): void {
    this.#preludeBytes += bytes.length
    if (this.#preludeBytes > PRELUDE_LIMIT) {
      // No client of the json framing stays silent this long: the connection is raw.
      this.#undecided = false
      this.#prelude = []
      this.#preludeBytes = 0
      return
    }
    this.#prelude.push(Buffer.from(bytes))
  }

  #send(payload: Uint8Array | string, binary: boolean): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return
    const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength
    if (this.#socketFlow.add(size)) this.#gate.set('socket', true)
    // The callback runs once `ws` has handed the frame to the kernel (or the socket died), so
    // the counter tracks exactly what `ws.bufferedAmount` reports, without polling it.
    this.#ws.send(payload, { binary }, (err) => {
      if (!err) this.#onDelivered()
      if (this.#socketFlow.release(size)) this.#gate.set('socket', false)
    })
  }

  #onExit(e: PtyExit): void {
    this.#exited = true
    this.#resumeInput()
    if (this.#killTimer) clearTimeout(this.#killTimer)
    this.#killTimer = null
    const code = e.signal !== undefined ? 128 + e.signal : e.exitCode
    this.#log.info({ pid: this.#pty?.pid, exitCode: code, bytesOut: this.#bytesOut }, 'pty exited')
    if (!this.#socketClosed) {
      this.#coalescer.flush()
      const tail = this.#splitter.flush()
      if (tail.length > 0) this.#sendText(tail)
      if (this.#protocol === 'v1') this.#send(exitFrame(code), true)
      else if (this.#protocol === 'json') this.#send(jsonMessage({ type: 'exit', code }), false)
      this.#closeSocket(CloseCode.EXITED, `exited with code ${code}`)
    }
    this.#coalescer.dispose()
    this.#finish()
  }

  #onSocketClose(): void {
    this.#socketClosed = true
    this.#resumeInput()
    this.#coalescer.dispose()
    this.#queuedInput = []
    // A viewer leaving detaches its tmux client only: the session lives on in the container.
    if (this.#pty) this.#kill()
    else this.#finish()
  }

  #closeSocket(code: number, reason: string): void {
    if (this.#socketClosed) return
    this.#socketClosed = true
    this.#resumeInput()
    const state = this.#ws.readyState
    if (state === this.#ws.OPEN || state === this.#ws.CONNECTING)
      this.#ws.close(code, closeReason(reason))
  }

  #kill(): void {
    if (this.#exited || !this.#pty || this.#killTimer) return
    const pty = this.#pty
    // SIGHUP first: `incus exec` passes it on, so tmux detaches cleanly; SIGKILL if it lingers.
    this.#signal(pty, 'SIGHUP')
    this.#killTimer = setTimeout(() => {
      this.#log.warn({ pid: pty.pid }, 'pty did not exit after SIGHUP; killing it')
      this.#signal(pty, 'SIGKILL')
    }, this.#killGraceMs)
  }

  #signal(pty: PtyProcess, signal: NodeJS.Signals): void {
    try {
      pty.kill(signal)
    } catch (err) {
      this.#log.debug({ err, signal }, 'pty kill failed')
    }
  }

  #finish(): void {
    if (this.#pty && !this.#exited) return
    if (!this.#socketClosed) return
    this.#resolveDone()
  }
}
