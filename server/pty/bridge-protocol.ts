// The terminal bridge's wire protocols (shared/ws/terminal.ts): which one a connection speaks,
// and what one client frame asks for.
//   raw   the contract's protocol: output as text frames, input as text or binary frames.
//   v1    the clincus.v1 subprotocol: binary frames only (INPUT, RESIZE, ACK from the client).
//   json  the original dashboard's JSON messages ({"type":"input"|"resize",...}), recognised on
//         a raw connection from the client's first frame (json-protocol.ts).
// A raw connection is undecided until its client's first frame; the output sent before (up to
// PRELUDE_LIMIT bytes) is kept so that a json client gets it again as its first message.
import type { RawData } from 'ws'
import { FLOW, Op, parseFrame, TERMINAL_SIZE } from '../../shared/ws/terminal.ts'
import { parseJsonClientMessage } from './json-protocol.ts'

/**
 * `raw`: the contract's protocol (text out, text/binary in); `v1`: the clincus.v1 subprotocol;
 * `json`: the original dashboard's JSON messages, recognised on a `raw` connection from the
 * client's first frame.
 */
export type TerminalProtocol = 'raw' | 'v1' | 'json'

/**
 * What one client frame asks for. `violation`: a v1 protocol error (the connection is closed
 * with BAD_REQUEST); `bad`: a json frame that is not a valid message (answered, never fatal;
 * `malformed`: not a message at all, as opposed to a size out of range).
 */
export type ClientAction =
  | { kind: 'input'; data: Buffer }
  | { kind: 'resize'; cols: number; rows: number }
  | { kind: 'ack'; bytes: number }
  | { kind: 'violation'; message: string }
  | { kind: 'bad'; message: string; malformed: boolean }

/**
 * Output a connection without subprotocol may receive before the client's first frame says
 * which framing it speaks; past it the connection stays raw. Up to it, the output is kept, so a
 * JSON client (which cannot read the raw frames) gets it again as its first output message.
 */
export const PRELUDE_LIMIT = FLOW.HIGH_WATER

export function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

/** Whether a terminal size is within TERMINAL_SIZE (whole columns and rows). */
export function validSize(cols: number, rows: number): boolean {
  const ok = (n: number): boolean =>
    Number.isInteger(n) && n >= TERMINAL_SIZE.MIN && n <= TERMINAL_SIZE.MAX
  return ok(cols) && ok(rows)
}

export function sizeError(cols: number, rows: number): string {
  return `size ${cols}x${rows} is outside ${TERMINAL_SIZE.MIN}-${TERMINAL_SIZE.MAX}`
}

/**
 * A raw connection whose client has not sent a frame yet: it may still turn out to be json. Keeps
 * the output sent meanwhile, up to PRELUDE_LIMIT bytes (past it the connection is raw for good).
 */
export class ProtocolSniffer {
  #undecided: boolean
  #prelude: Buffer[] = []
  #bytes = 0

  constructor(protocol: 'raw' | 'v1') {
    this.#undecided = protocol === 'raw'
  }

  /** Output sent as raw text while undecided (nothing once decided). */
  keep(bytes: Buffer): void {
    if (!this.#undecided) return
    this.#bytes += bytes.length
    if (this.#bytes > PRELUDE_LIMIT) {
      // No client of the json framing stays silent this long: the connection is raw.
      this.#decided()
      return
    }
    this.#prelude.push(Buffer.from(bytes))
  }

  /**
   * A client frame. The first one of an undecided connection decides: when it is a JSON client
   * message, returns the output kept so far (maybe empty), to be sent again as json. Otherwise
   * (raw, or decided before) null.
   */
  first(frame: Buffer): Buffer | null {
    if (!this.#undecided) return null
    const json = parseJsonClientMessage(frame) !== null
    const kept = json ? Buffer.concat(this.#prelude) : null
    this.#decided()
    return kept
  }

  #decided(): void {
    this.#undecided = false
    this.#prelude = []
    this.#bytes = 0
  }
}

/**
 * Decodes one client frame of a connection speaking `protocol`. A v1 RESIZE is passed on
 * unchecked (the bridge's resize checks the size, fatally); a json resize is checked here.
 */
export function decodeClientFrame(
  protocol: TerminalProtocol,
  buf: Buffer,
  isBinary: boolean,
): ClientAction {
  if (protocol === 'raw') return { kind: 'input', data: buf }
  if (protocol === 'json') {
    const m = parseJsonClientMessage(buf)
    if (!m)
      return {
        kind: 'bad',
        malformed: true,
        message:
          'malformed message: expected {"type":"input","data":"…"} or {"type":"resize","cols":N,"rows":N}',
      }
    if (m.type === 'input') return { kind: 'input', data: Buffer.from(m.data, 'utf8') }
    if (!validSize(m.cols, m.rows))
      return { kind: 'bad', malformed: false, message: sizeError(m.cols, m.rows) }
    return { kind: 'resize', cols: m.cols, rows: m.rows }
  }
  if (!isBinary) return { kind: 'violation', message: 'clincus.v1 takes binary frames only' }
  const f = parseFrame(buf)
  if (!f) return { kind: 'violation', message: 'malformed frame' }
  switch (f.op) {
    case Op.INPUT:
      return {
        kind: 'input',
        data: Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength),
      }
    case Op.RESIZE:
      return { kind: 'resize', cols: f.cols, rows: f.rows }
    case Op.ACK:
      return { kind: 'ack', bytes: f.bytes }
    default:
      return { kind: 'violation', message: `opcode ${f.op} is server-to-client only` }
  }
}
