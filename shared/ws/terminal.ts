// The `clincus.v1` terminal protocol (WebSocket subprotocol "clincus.v1"): binary frames, the
// first byte an opcode, the rest its payload. Browser-safe: no Node imports.
//
// Without the subprotocol, /ws/terminal/{id} speaks the contract's raw protocol: output as text
// frames of whole UTF-8 characters, input as text or binary frames, size from ?cols=&rows=; or,
// when the client's first frame is one of the JSON messages below, the original dashboard's JSON
// framing for the rest of the connection.

import { Type, type Static } from 'typebox'

export const TERMINAL_SUBPROTOCOL = 'clincus.v1'

export const Op = {
  /** server → client: terminal output bytes. */
  OUTPUT: 0x01,
  /** client → server: keyboard input bytes. */
  INPUT: 0x02,
  /** client → server: uint16 BE cols, uint16 BE rows. */
  RESIZE: 0x03,
  /**
   * client → server: uint32 BE count of OUTPUT payload bytes the client has processed since its
   * previous ACK (incremental, so it never wraps on long sessions).
   */
  ACK: 0x04,
  /** server → client: int32 BE exit code of the process behind the socket. */
  EXIT: 0x05,
  /** server → client: a UTF-8 error message. */
  ERROR: 0x06,
} as const
export type OpCode = (typeof Op)[keyof typeof Op]

/** WebSocket close codes the terminal and event sockets use (4000-4999 are application codes). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  INTERNAL: 1011,
  BAD_REQUEST: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  NOT_RUNNING: 4409,
  TOO_MANY: 4429,
  /** /ws/events: the client read too slowly and its backlog passed the server's bound. */
  SLOW_CLIENT: 4408,
  EXITED: 4000,
} as const
export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode]

/** Terminal size bounds: the query string and RESIZE frames outside them are rejected. */
export const TERMINAL_SIZE = {
  MIN: 1,
  MAX: 1000,
  DEFAULT_COLS: 80,
  DEFAULT_ROWS: 24,
} as const

/** The query string of /ws/terminal/{id} and /ws/shell/{id}: the initial size (both protocols). */
export const TerminalQuerySchema = Type.Object({
  cols: Type.Optional(Type.Integer({ minimum: TERMINAL_SIZE.MIN, maximum: TERMINAL_SIZE.MAX })),
  rows: Type.Optional(Type.Integer({ minimum: TERMINAL_SIZE.MIN, maximum: TERMINAL_SIZE.MAX })),
})
export type TerminalQuery = Static<typeof TerminalQuerySchema>

/** Flow-control defaults: the client acks at least every ACK_EVERY bytes it has rendered. */
export const FLOW = {
  ACK_EVERY: 64 * 1024,
  HIGH_WATER: 1024 * 1024,
  LOW_WATER: 256 * 1024,
} as const

export function frame(op: OpCode, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(payload.length + 1)
  out[0] = op
  out.set(payload, 1)
  return out
}

export function resizeFrame(cols: number, rows: number): Uint8Array {
  const payload = new Uint8Array(4)
  const view = new DataView(payload.buffer)
  view.setUint16(0, cols)
  view.setUint16(2, rows)
  return frame(Op.RESIZE, payload)
}

export function ackFrame(bytes: number): Uint8Array {
  const payload = new Uint8Array(4)
  new DataView(payload.buffer).setUint32(0, bytes)
  return frame(Op.ACK, payload)
}

export function inputFrame(data: Uint8Array | string): Uint8Array {
  return frame(Op.INPUT, typeof data === 'string' ? new TextEncoder().encode(data) : data)
}

export function errorFrame(message: string): Uint8Array {
  return frame(Op.ERROR, new TextEncoder().encode(message))
}

export function exitFrame(code: number): Uint8Array {
  const payload = new Uint8Array(4)
  new DataView(payload.buffer).setInt32(0, code)
  return frame(Op.EXIT, payload)
}

export type ParsedFrame =
  | { op: typeof Op.OUTPUT | typeof Op.INPUT; data: Uint8Array }
  | { op: typeof Op.RESIZE; cols: number; rows: number }
  | { op: typeof Op.ACK; bytes: number }
  | { op: typeof Op.EXIT; code: number }
  | { op: typeof Op.ERROR; message: string }

/** Parses one binary frame; null for anything malformed (the caller decides how to react). */
export function parseFrame(buf: Uint8Array): ParsedFrame | null {
  if (buf.length === 0) return null
  const op = buf[0]
  const payload = buf.subarray(1)
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  switch (op) {
    case Op.OUTPUT:
    case Op.INPUT:
      return { op, data: payload }
    case Op.RESIZE:
      if (payload.length !== 4) return null
      return { op, cols: view.getUint16(0), rows: view.getUint16(2) }
    case Op.ACK:
      if (payload.length !== 4) return null
      return { op, bytes: view.getUint32(0) }
    case Op.EXIT:
      if (payload.length !== 4) return null
      return { op, code: view.getInt32(0) }
    case Op.ERROR:
      return { op, message: new TextDecoder().decode(payload) }
    default:
      return null
  }
}

// The original clincus dashboard's framing (a third protocol, recognised from the client's first
// frame on a connection without subprotocol): JSON text frames, one message each.

/** client → server: keyboard input (a string; it reaches the PTY as UTF-8). */
export const JsonInputMessageSchema = Type.Object({
  type: Type.Literal('input'),
  data: Type.String(),
})

/**
 * client → server: the terminal's size. Any integers are recognised as this message; sizes
 * outside TERMINAL_SIZE are then answered with an error message and otherwise ignored (the
 * original ignored sizes that were not positive).
 */
export const JsonResizeMessageSchema = Type.Object({
  type: Type.Literal('resize'),
  cols: Type.Integer(),
  rows: Type.Integer(),
})

export const JsonClientMessageSchema = Type.Union([JsonInputMessageSchema, JsonResizeMessageSchema])
export type JsonClientMessage = Static<typeof JsonClientMessageSchema>

/** server → client: output, always whole UTF-8 characters (a split one waits for its rest). */
export const JsonOutputMessageSchema = Type.Object({
  type: Type.Literal('output'),
  data: Type.String(),
})
/** server → client: the process exited with `code` (128 + signal when a signal ended it). */
export const JsonExitMessageSchema = Type.Object({
  type: Type.Literal('exit'),
  code: Type.Integer(),
})
/** server → client: a message the server could not take, or why the terminal was refused. */
export const JsonErrorMessageSchema = Type.Object({
  type: Type.Literal('error'),
  message: Type.String(),
})
export const JsonServerMessageSchema = Type.Union([
  JsonOutputMessageSchema,
  JsonExitMessageSchema,
  JsonErrorMessageSchema,
])
export type JsonServerMessage = Static<typeof JsonServerMessageSchema>

export function jsonMessage(m: JsonServerMessage | JsonClientMessage): string {
  return JSON.stringify(m)
}
