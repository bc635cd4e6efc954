// The two readers of the fidelity suite agree on the same screen, and tell a real difference.
// xterm.js runs here headless (happy-dom): written to, never opened.
import { Terminal } from '@xterm/xterm'
import { describe, expect, it } from 'vitest'
import { blankCell, diffScreens, diffSummary, screenText, type Screen } from './screen.ts'
import { parseCapture, type WidthOf } from './tmux-capture.ts'
import { dumpBuffer, xtermScreen } from './xterm-cells.ts'

/** glibc's widths for the characters used here. */
const width: WidthOf = (cp) => {
  if (cp === 0x301 || cp === 0xfe0f) return 0
  if (cp === 0x4e2d || cp === 0x6587 || cp === 0x2705 || cp === 0x1f600) return 2
  return 1
}

function capture(text: string, cols: number, rows: number, cursor = { x: 0, y: 0 }): Screen {
  return parseCapture(text, { cols, rows, width, cursor })
}

async function xterm(data: string, cols: number, rows: number): Promise<Screen> {
  const term = new Terminal({ cols, rows, allowProposedApi: true })
  try {
    await new Promise<void>((resolve) => {
      term.write(data, resolve)
    })
    return xtermScreen(dumpBuffer(term.buffer.active, { top: 0, left: 0, cols, rows }))
  } finally {
    term.dispose()
  }
}

describe('parseCapture (tmux capture-pane -p -e -N)', () => {
  it('reads palette, bright, 256 and 24-bit colours in both SGR forms, carried across rows', () => {
    const s = capture(
      '\x1b[31mr\x1b[91mR\x1b[38;5;173mp\x1b[38;2;215;119;87mt\x1b[48:2::1:2:3mu\n\x1b[39mv\x1b[49mw\n',
      5,
      2,
    )
    const [r0, r1] = s.cells
    expect(r0?.map((c) => c?.fg)).toEqual([
      { kind: 'palette', index: 1 },
      { kind: 'palette', index: 9 },
      { kind: 'palette', index: 173 },
      { kind: 'rgb', rgb: 0xd77757 },
      { kind: 'rgb', rgb: 0xd77757 },
    ])
    expect(r0?.[4]?.bg).toEqual({ kind: 'rgb', rgb: 0x010203 })
    // The second row starts with the pen the first ended with.
    expect(r1?.[0]).toMatchObject({ chars: 'v', fg: { kind: 'default' }, bg: { kind: 'rgb' } })
    expect(r1?.[1]).toMatchObject({ chars: 'w', bg: { kind: 'default' } })
  })

  it('reads attributes on and off, 22 clearing bold and dim, 0 clearing all', () => {
    const s = capture('\x1b[1;2;3;4:3;7;9;53ma\x1b[22;24mb\x1b[0mc', 3, 1)
    expect(s.cells[0]?.map((c) => c?.attrs)).toEqual([
      ['bold', 'dim', 'italic', 'underline', 'inverse', 'strikethrough', 'overline'],
      ['italic', 'inverse', 'strikethrough', 'overline'],
      [],
    ])
  })

  it("reads tmux 3.3a's `5:3` as overline (how its capture writes SGR 53), plain 5 as blink", () => {
    const s = capture('\x1b[5:3mo\x1b[0m\x1b[39m\x1b[49m \x1b[5mb', 3, 1)
    expect(s.cells[0]?.map((c) => c?.attrs)).toEqual([['overline'], [], ['blink']])
  })

  it('gives a wide character two columns, combining marks to the cell before, SO/SI line drawing', () => {
    const s = capture('中e\u0301\x0eqx\x0f|', 6, 1)
    expect(s.cells[0]?.map((c) => (c ? `${c.chars}/${c.width}` : null))).toEqual([
      '中/2',
      null,
      'e\u0301/1',
      '─/1',
      '│/1',
      '|/1',
    ])
  })

  it('pads a short row with blanks of unknown colour, and refuses a row wider than the pane', () => {
    const s = capture('ab\n', 4, 1)
    expect(s.cells[0]?.[3]).toEqual({ ...blankCell(), loose: true })
    expect(() => capture('中中中', 5, 1)).toThrow(/covers 6 columns/)
    expect(() => capture('a\nb\n', 2, 1)).toThrow(/2 rows/)
  })
})

describe('xterm cells against the capture of the same screen', () => {
  it('agree cell for cell on colours, attributes, CJK and a wrap', async () => {
    const data =
      '\x1b[1;38;2;215;119;87mX\x1b[0m \x1b[38;5;173m中\x1b[44mab\x1b[0m\r\n\x1b[4;31mu\x1b[0m e\u0301 abcdefgh'
    const want = capture(
      '\x1b[1m\x1b[38;2;215;119;87mX\x1b[0m \x1b[38;5;173m中\x1b[44mab\n\x1b[0m\x1b[4m\x1b[31mu\x1b[0m e\u0301 abcd\nefgh\n',
      8,
      3,
      { x: 4, y: 2 },
    )
    const got = await xterm(data, 8, 3)
    expect(screenText(got)).toBe(screenText(want))
    expect(diffScreens(want, got)).toEqual([])
  })

  it('reports an emoji xterm draws one column wide where tmux counts two (no Unicode 11 widths)', async () => {
    const got = await xterm('\u2705|\r\nab|', 4, 2)
    const want = capture('\u2705|\nab|\n', 4, 2, { x: 3, y: 1 })
    const diffs = diffScreens(want, got)
    expect(diffs.map((d) => `${d.row},${d.col}`)).toEqual(['0,0', '0,1', '0,2'])
    expect(diffSummary(diffs)).toBe('width 1, tail 1, chars 1')
  })

  it('reports 24-bit colour the browser got as a 256-colour index (tmux without RGB)', async () => {
    const got = await xterm('\x1b[38;5;173mX', 2, 1)
    const want = capture('\x1b[38;2;215;119;87mX\n', 2, 1, { x: 1, y: 0 })
    expect(diffSummary(diffScreens(want, got))).toBe('fg 1')
  })

  it('compares a row tail capture-pane does not report by its text only', async () => {
    const got = await xterm('ab\x1b[44m\x1b[K\x1b[0m', 4, 1)
    expect(diffScreens(capture('ab\n', 4, 1, { x: 2, y: 0 }), got)).toEqual([])
    const typed = await xterm('abc', 4, 1)
    expect(diffSummary(diffScreens(capture('ab\n', 4, 1, { x: 3, y: 0 }), typed))).toBe('chars 1')
  })
})
