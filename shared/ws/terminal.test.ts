import { describe, expect, it } from 'vitest'
import {
  ackFrame,
  errorFrame,
  exitFrame,
  frame,
  inputFrame,
  Op,
  parseFrame,
  resizeFrame,
} from './terminal.ts'

describe('clincus.v1 frames', () => {
  it('round-trips every frame type', () => {
    expect(parseFrame(resizeFrame(132, 43))).toEqual({ op: Op.RESIZE, cols: 132, rows: 43 })
    expect(parseFrame(ackFrame(65536))).toEqual({ op: Op.ACK, bytes: 65536 })
    expect(parseFrame(exitFrame(-1))).toEqual({ op: Op.EXIT, code: -1 })
    expect(parseFrame(errorFrame('session not found'))).toEqual({
      op: Op.ERROR,
      message: 'session not found',
    })
    const input = parseFrame(inputFrame('héllo'))
    expect(input?.op).toBe(Op.INPUT)
    expect(Buffer.from((input as { data: Uint8Array }).data).toString()).toBe('héllo')
  })

  it('rejects malformed frames', () => {
    expect(parseFrame(new Uint8Array(0))).toBeNull()
    expect(parseFrame(frame(0x7f as never))).toBeNull()
    expect(parseFrame(frame(Op.RESIZE, new Uint8Array(3)))).toBeNull()
    expect(parseFrame(frame(Op.ACK, new Uint8Array(5)))).toBeNull()
    expect(parseFrame(frame(Op.EXIT, new Uint8Array(0)))).toBeNull()
  })

  it('parses a frame that is a view into a larger buffer', () => {
    const big = new Uint8Array(10)
    big.set(resizeFrame(80, 24), 3)
    expect(parseFrame(big.subarray(3, 8))).toEqual({ op: Op.RESIZE, cols: 80, rows: 24 })
  })
})
