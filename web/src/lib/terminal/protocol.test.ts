import { describe, expect, it } from 'vitest'
import { FLOW, Op, parseFrame } from '../../../../shared/ws/terminal.ts'
import { preparePaste } from '../../../../shared/terminal/paste.ts'
import { AckCounter, INPUT_CHUNK, inputFrames } from './protocol.ts'

describe('AckCounter', () => {
  it('acks nothing until ACK_EVERY bytes are rendered, then exactly what was rendered', () => {
    const acks = new AckCounter()
    expect(acks.rendered(FLOW.ACK_EVERY - 1)).toBe(0)
    expect(acks.rendered(10)).toBe(FLOW.ACK_EVERY + 9)
    expect(acks.pending).toBe(0)
    expect(acks.rendered(5)).toBe(0)
    expect(acks.flush()).toBe(5)
    expect(acks.flush()).toBe(0)
    expect(acks.total).toBe(FLOW.ACK_EVERY + 14)
  })

  it('sums of acks equal the bytes rendered, however output is split', () => {
    const acks = new AckCounter(1000)
    let acked = 0
    let rendered = 0
    for (let i = 1; i <= 500; i++) {
      const n = (i * 37) % 311
      rendered += n
      acked += acks.rendered(n)
    }
    acked += acks.flush()
    expect(acked).toBe(rendered)
  })
})

describe('inputFrames', () => {
  it('splits input into INPUT frames of at most INPUT_CHUNK payload bytes, in order', () => {
    const bytes = new Uint8Array(INPUT_CHUNK * 2 + 10).map((_, i) => i % 251)
    const frames = inputFrames(bytes)
    expect(frames.map((f) => f.length - 1)).toEqual([INPUT_CHUNK, INPUT_CHUNK, 10])
    const joined: number[] = []
    for (const f of frames) {
      const parsed = parseFrame(f)
      expect(parsed?.op).toBe(Op.INPUT)
      if (parsed?.op === Op.INPUT) joined.push(...parsed.data)
    }
    expect(joined).toEqual([...bytes])
  })

  it('sends one frame for a keystroke and none for nothing', () => {
    expect(inputFrames(new TextEncoder().encode('a'))).toHaveLength(1)
    expect(inputFrames(new Uint8Array(0))).toHaveLength(0)
  })
})

describe('a paste split into input frames', () => {
  it('keeps multi-byte text intact across chunk boundaries once re-joined', () => {
    const text = '日本語→🎉'.repeat(2000)
    const bytes = new TextEncoder().encode(preparePaste(text, true))
    const frames = inputFrames(bytes)
    expect(frames.length).toBeGreaterThan(1)
    const joined = new Uint8Array(bytes.length)
    let at = 0
    for (const f of frames) {
      joined.set(f.subarray(1), at)
      at += f.length - 1
    }
    expect(new TextDecoder().decode(joined)).toBe(`\x1b[200~${text}\x1b[201~`)
  })
})
