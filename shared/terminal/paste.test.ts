import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  C1_SYMBOL,
  ESCAPE_SYMBOL,
  PASTE_END,
  PASTE_START,
  preparePaste,
  sanitizePaste,
} from './paste.ts'

/** Issue 14 row 6: a split end marker that a single marker-removal pass turns into a real one. */
const SPLIT_MARKER = 'echo x\x1b[20\x1b[201~1~\rtouch /tmp/p\r'

/** ESC bytes in a paste's output other than the two markers around it. */
function strayEscapes(out: string): number {
  const inner = out.startsWith(PASTE_START) ? out.slice(PASTE_START.length) : out
  const body = inner.endsWith(PASTE_END) ? inner.slice(0, -PASTE_END.length) : inner
  return body.split('').filter((c) => c === '\x1b' || c === '\x9b').length
}

/**
 * fast-check builds its table for `unit: 'binary'` strings on first use: about 1 s of CPU on this
 * machine (3 ms for each later property). At load 12 on two cores that took 4-12 s of wall time,
 * past vitest's default 5 s, with nothing else racing. A pure test has no deadline to meet, so
 * the tests that may be first to use it get a stated budget instead of the scheduler's luck.
 */
const BINARY_PROPERTY_TIMEOUT = 60_000

describe('sanitizePaste', { timeout: BINARY_PROPERTY_TIMEOUT }, () => {
  it('turns every ESC into U+241B and every C1 control (U+009B CSI too) into U+FFFD', () => {
    expect(sanitizePaste('a\x1b[31mb\x9b201~c\x90d')).toBe(
      `a${ESCAPE_SYMBOL}[31mb${C1_SYMBOL}201~c${C1_SYMBOL}d`,
    )
  })

  it('keeps tabs, newlines and any other Unicode as they are', () => {
    const text = 'col1\tcol2\r\nline2\n✅ 日本語 👩‍💻 é'
    expect(sanitizePaste(text)).toBe(text)
  })

  it('leaves no ESC in the split end-of-paste marker of issue 14 row 6', () => {
    expect(sanitizePaste(SPLIT_MARKER)).toBe(
      `echo x${ESCAPE_SYMBOL}[20${ESCAPE_SYMBOL}[201~1~\rtouch /tmp/p\r`,
    )
  })

  it('red team: turns ^C, ^B, ^Z, ^\\, ^D, NUL, backspace and DEL into visible symbols (they act before bracketed paste protects)', () => {
    // ^C in a bracket: the pty sends SIGINT, bash drops the bracket and runs the rest as typed.
    expect(sanitizePaste('echo x\x03  touch /tmp/p\r')).toBe('echo x\u2403  touch /tmp/p\r')
    // ^B alone in tmux's read is its prefix, inside a bracket too: `^B:run-shell …⏎` runs.
    expect(sanitizePaste('\x02:run-shell "touch /tmp/p"\r')).toBe(
      '\u2402:run-shell "touch /tmp/p"\r',
    )
    expect(sanitizePaste('\x00\x04\x08\x15\x17\x1a\x1c\x7f')).toBe(
      '\u2400\u2404\u2408\u2415\u2417\u241a\u241c\u2421',
    )
  })

  it('red team: no output keeps a C0 control other than tab, LF and CR, for any text', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 200 }),
        (s) =>
          // eslint-disable-next-line no-control-regex -- no control character may remain
          !/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(sanitizePaste(s)),
      ),
    )
  })

  it('is a fixed point: sanitising twice changes nothing, for any text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        const once = sanitizePaste(s)
        // eslint-disable-next-line no-control-regex -- no escape character may remain
        return sanitizePaste(once) === once && !/[\x1b\x80-\x9f]/.test(once)
      }),
    )
  })
})

describe('preparePaste', () => {
  it('turns newlines into carriage returns', () => {
    expect(preparePaste('a\nb\r\nc', false)).toBe('a\rb\rc')
  })

  it('wraps the paste in bracketed-paste markers when the application enabled them', () => {
    expect(preparePaste('line 1\nline 2', true)).toBe(`${PASTE_START}line 1\rline 2${PASTE_END}`)
  })

  it('cannot end the bracket early: the split marker lands inside one bracket as text', () => {
    const out = preparePaste(SPLIT_MARKER, true)
    expect(out.startsWith(PASTE_START)).toBe(true)
    expect(out.endsWith(PASTE_END)).toBe(true)
    expect(out.indexOf(PASTE_END)).toBe(out.length - PASTE_END.length)
    expect(strayEscapes(out)).toBe(0)
  })

  it('never lets a paste contain an escape other than its own two markers, for any text', () => {
    const pieces = fc.constantFrom('\x1b', '\x9b', '[', '200~', '201~', '20', '1~', '\r', '\n', 'x')
    fc.assert(
      fc.property(fc.array(fc.oneof(pieces, fc.string())), fc.boolean(), (parts, bracketed) => {
        const out = preparePaste(parts.join(''), bracketed)
        if (strayEscapes(out) !== 0) return false
        return bracketed
          ? out.indexOf(PASTE_END) === out.length - PASTE_END.length
          : !out.includes('\x1b')
      }),
    )
  })
})
