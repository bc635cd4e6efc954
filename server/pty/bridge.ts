// One terminal WebSocket and its PTY: output framing and backpressure, the connection's life
// (attach, reject, close, exit, kill). The input side is bridge-input.ts; the wire protocols and
// the decoding of client frames are bridge-protocol.ts.
import type { Logger } from 'pino'
import type { WebSocket } from '@fastify/websocket'
import {
  CloseCode,
  errorFrame,
  exitFrame,
  FLOW,
  frame,
  jsonMessage,
  Op,
} from '../../shared/ws/terminal.ts'
import { closeReason } from '../events/ws-keepalive.ts'
import { InputPump } from './bridge-input.ts'
import {
  decodeClientFrame,
  ProtocolSniffer,
  sizeError,
  toBuffer,
  validSize,
  type TerminalProtocol,
} from './bridge-protocol.ts'
import { DEFAULT_COALESCE, OutputCoalescer, type CoalesceOptions } from './coalescer.ts'
import { FlowCounter, PauseGate, type Watermarks } from './flow-control.ts'
import type { PtyExit, PtyProcess } from './spawner.ts'
import { Utf8Splitter, utf8TextPayload } from './utf8.ts'

export type { TerminalProtocol } from './bridge-protocol.ts'

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
/** The pause reason while the coalescer holds output for a window (coalescer.ts onHold). */
const WINDOW = 'window'
const DEFAULT_MAX_QUEUED_INPUT = 256 * 1024
const textDecoder = new TextDecoder('utf-8', { fatal: false })

/**
 * One WebSocket ↔ one PTY. Created synchronously with the socket, so no frame is lost while the
 * session is looked up (input queues, the last resize is kept), then `attach`ed to the PTY.
 *
 * Output: PTY → coalescer → (raw: UTF-8 splitter → text frame | v1: OUTPUT frame) → socket.
 * While the coalescer holds a stream of tiny writes for a window (≤ 4 ms) the PTY is not read
 * either, so the program's writes of that window arrive in one read.
 * Backpressure: the PTY is paused while the socket holds more than `flow.high` unsent bytes, or
 * (v1) the client has not acknowledged that many, and resumed under `flow.low`. A paused PTY
 * stops the Incus daemon (or `incus exec`) reading the container's PTY, so the tmux client
 * inside blocks, and tmux holds back redraws for that one client only: other viewers and the
 * tool itself keep running.
 *
 * Input backpressure: InputPump (bridge-input.ts) stops reading the socket while the PTY holds
 * more than `inputFlow.high` bytes it could not write.
 */
export class TerminalBridge {
  readonly #ws: WebSocket
  #protocol: TerminalProtocol
  readonly #sniffer: ProtocolSniffer
  readonly #log: Logger
  readonly #killGraceMs: number
  readonly #onDelivered: () => void
  readonly #coalescer: OutputCoalescer
  readonly #splitter = new Utf8Splitter()
  readonly #socketFlow: FlowCounter
  readonly #ackFlow: FlowCounter
  readonly #gate: PauseGate
  readonly #in: InputPump
  #pty: PtyProcess | null = null
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
    this.#sniffer = new ProtocolSniffer(opts.protocol)
    this.#log = opts.log
    this.#killGraceMs = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS
    this.#onDelivered = opts.onDelivered ?? (() => undefined)
    const flow = opts.flow ?? DEFAULT_FLOW
    this.#in = new InputPump({
      ws,
      log: this.#log,
      flow: opts.inputFlow ?? DEFAULT_INPUT_FLOW,
      maxQueued: opts.maxQueuedInput ?? DEFAULT_MAX_QUEUED_INPUT,
      closed: () => this.#socketClosed,
      overflow: () => {
        this.reject(CloseCode.BAD_REQUEST, 'too much input before the terminal was ready')
      },
    })
    this.#socketFlow = new FlowCounter(flow)
    this.#ackFlow = new FlowCounter(flow)
    this.#gate = new PauseGate(
      () => {
        // Only flow control is worth a line: a coalescing window pauses ~250 times a second.
        if (this.paused) this.#log.debug({ bytesOut: this.#bytesOut }, 'pty paused')
        this.#pty?.pause()
      },
      () => {
        if (!this.#gate.has(WINDOW)) this.#log.debug({ bytesOut: this.#bytesOut }, 'pty resumed')
        this.#pty?.resume()
      },
    )
    this.#coalescer = new OutputCoalescer(
      opts.coalesce ?? DEFAULT_COALESCE,
      (data) => {
        this.#output(data)
      },
      (held) => {
        this.#gate.set(WINDOW, held)
      },
    )
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

  /** Whether the PTY is paused for flow control (not for a coalescing window). */
  get paused(): boolean {
    return this.#gate.has('socket') || this.#gate.has('ack')
  }

  /** Whether the socket is not being read because the PTY has not taken the input yet. */
  get inputPaused(): boolean {
    return this.#in.paused
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
    this.#in.attach(pty)
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
    const prelude = this.#sniffer.first(buf)
    if (prelude) this.#useJson(prelude)
    const a = decodeClientFrame(this.#protocol, buf, isBinary)
    switch (a.kind) {
      case 'input':
        this.#input(a.data)
        return
      case 'resize':
        this.resize(a.cols, a.rows)
        return
      case 'ack':
        if (this.#ackFlow.release(a.bytes)) this.#gate.set('ack', false)
        return
      case 'violation':
        this.#protocolError(a.message)
        return
      case 'bad':
        // Answered, never fatal; while the client does not read (its socket is over the output
        // bound) answers are dropped, so a flood of bad frames cannot grow the server's buffer.
        if (a.malformed) this.#log.debug('terminal json message malformed')
        this.#answerJson(a.message)
    }
  }

  /** From here on the connection speaks json; output sent raw so far is sent again, as json. */
  #useJson(prelude: Buffer): void {
    this.#protocol = 'json'
    this.#log.debug({ prelude: prelude.length }, 'terminal speaks the json framing')
    if (prelude.length === 0) return
    const data = textDecoder.decode(prelude)
    this.#send(jsonMessage({ type: 'output', data }), false)
  }

  /** Applies a size (v1 RESIZE frames; also used for the initial size). */
  resize(cols: number, rows: number): void {
    if (!validSize(cols, rows)) {
      this.#protocolError(sizeError(cols, rows))
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
    if (this.#exited) return
    this.#in.push(data)
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
    this.#sniffer.keep(bytes)
    this.#send(utf8TextPayload(bytes), false)
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
    this.#in.resume()
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
    this.#in.resume()
    this.#coalescer.dispose()
    this.#in.drop()
    // A viewer leaving detaches its tmux client only: the session lives on in the container.
    if (this.#pty) this.#kill()
    else this.#finish()
  }

  #closeSocket(code: number, reason: string): void {
    if (this.#socketClosed) return
    this.#socketClosed = true
    this.#in.resume()
    const state = this.#ws.readyState
    if (state === this.#ws.OPEN || state === this.#ws.CONNECTING)
      this.#ws.close(code, closeReason(reason))
  }

  #kill(): void {
    if (this.#exited || !this.#pty || this.#killTimer) return
    const pty = this.#pty
    // SIGHUP first: the exec passes it on, so tmux detaches cleanly; SIGKILL if it lingers.
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
