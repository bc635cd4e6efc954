import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { incompleteUtf8Tail, Utf8Splitter, utf8TextPayload } from './utf8.ts'

const bytes = (...b: number[]): Buffer => Buffer.from(b)

describe('incompleteUtf8Tail', () => {
  it.each([
    ['empty', bytes(), 0],
    ['ascii', Buffer.from('abc'), 0],
    ['complete 2-byte', Buffer.from('é'), 0],
    ['complete 3-byte', Buffer.from('─'), 0],
    ['complete 4-byte', Buffer.from('🎉'), 0],
    ['lead of 2-byte', bytes(0x61, 0xc3), 1],
    ['1 of 3', bytes(0xe2), 1],
    ['2 of 3', bytes(0xe2, 0x94), 2],
    ['1 of 4', bytes(0xf0), 1],
    ['2 of 4', bytes(0xf0, 0x9f), 2],
    ['3 of 4', bytes(0x61, 0xf0, 0x9f, 0x8e), 3],
    ['stray continuation bytes are not held', bytes(0x80, 0x80, 0x80), 0],
    ['invalid lead 0xff is not held', bytes(0xff), 0],
    ['invalid lead 0xc0 is not held', bytes(0xc0), 0],
    ['lead then ascii is broken, not incomplete', bytes(0xe2, 0x41), 0],
  ])('%s', (_name, buf, expected) => {
    expect(incompleteUtf8Tail(buf)).toBe(expected)
  })
})

/**
 * fast-check builds its table for `unit: 'binary'` strings on first use: about 1 s of CPU on this
 * machine (3 ms for each later property). At load 12 on two cores that took 4-12 s of wall time,
 * past vitest's default 5 s, with nothing else racing. A pure test has no deadline to meet, so
 * the tests that may be first to use it get a stated budget instead of the scheduler's luck.
 */
const BINARY_PROPERTY_TIMEOUT = 60_000

describe('Utf8Splitter', { timeout: BINARY_PROPERTY_TIMEOUT }, () => {
  it('holds back a split character until the rest arrives', () => {
    const s = new Utf8Splitter()
    const emoji = Buffer.from('🎉')
    expect(s.push(Buffer.concat([Buffer.from('a'), emoji.subarray(0, 2)])).toString()).toBe('a')
    expect(s.held).toBe(2)
    expect(s.push(emoji.subarray(2)).toString()).toBe('🎉')
    expect(s.flush().length).toBe(0)
  })

  it('reassembles any text cut at any points into valid chunks, byte for byte', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (text, cuts) => {
          const input = Buffer.from(text, 'utf8')
          const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b)
          const s = new Utf8Splitter()
          const out: Buffer[] = []
          let from = 0
          for (const p of [...points, input.length]) {
            const chunk = s.push(input.subarray(from, p))
            // Every emitted chunk decodes without loss on its own.
            expect(Buffer.from(chunk.toString('utf8'), 'utf8').equals(chunk)).toBe(true)
            out.push(chunk)
            from = p
          }
          out.push(s.flush())
          expect(Buffer.concat(out).equals(input)).toBe(true)
        },
      ),
    )
  })
})

describe('utf8TextPayload', () => {
  it('passes valid UTF-8 through as the same bytes', () => {
    const b = Buffer.from('┌─┐ 日本 🎉')
    expect(utf8TextPayload(b)).toBe(b)
  })

  it('replaces invalid bytes so a text frame is always valid', () => {
    expect(utf8TextPayload(bytes(0x61, 0xff, 0x62))).toBe('a\uFFFDb')
  })
})
