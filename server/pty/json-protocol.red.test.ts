// Red team: the JSON framing's parser (a client is authenticated, but its frames are still
// input from outside). Absurd sizes, wrong types and broken UTF-16 must be refused or made safe,
// never thrown on.
import { describe, expect, it } from 'vitest'
import { parseJsonClientMessage } from './json-protocol.ts'

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('red team: JSON framing messages', () => {
  it('refuses non-integer sizes (floats, strings, null, booleans, huge exponents that are not integers)', () => {
    for (const v of ['80.5', '"80"', 'null', 'true', '1e400', '[80]', '{}'])
      expect(parseJsonClientMessage(enc(`{"type":"resize","cols":${v},"rows":24}`))).toBeNull()
  })

  it('parses integer sizes of any magnitude as resizes (the bridge then checks the range)', () => {
    expect(parseJsonClientMessage(enc('{"type":"resize","cols":1e9,"rows":-1}'))).toEqual({
      type: 'resize',
      cols: 1e9,
      rows: -1,
    })
  })

  it('takes a lone surrogate in input as a string; its UTF-8 is U+FFFD, not a broken byte', () => {
    const m = parseJsonClientMessage(enc('{"type":"input","data":"a\\ud800b"}'))
    expect(m).toEqual({ type: 'input', data: 'a\ud800b' })
    if (m?.type !== 'input') throw new Error('not input')
    expect(Buffer.from(m.data, 'utf8')).toEqual(Buffer.from([0x61, 0xef, 0xbf, 0xbd, 0x62]))
  })

  it('refuses invalid UTF-8, deep nesting and a non-object without throwing', () => {
    expect(parseJsonClientMessage(new Uint8Array([0x7b, 0xff, 0x7d]))).toBeNull()
    expect(parseJsonClientMessage(enc(`{"type":"input","data":${'['.repeat(100_000)}`))).toBeNull()
    expect(parseJsonClientMessage(enc('  \n'))).toBeNull()
    expect(parseJsonClientMessage(new Uint8Array(0))).toBeNull()
    expect(
      parseJsonClientMessage(enc('{"type":"input","data":"x","__proto__":{"type":"resize"}}')),
    ).toMatchObject({ type: 'input', data: 'x' })
  })
})
