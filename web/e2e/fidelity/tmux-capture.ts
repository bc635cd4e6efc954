// Reads `tmux capture-pane -p -e -N` (tmux 3.3a) into the screen model: the text of each row with
// the SGR sequences tmux writes where a cell's attributes change (the state carries over from one
// row to the next, as tmux computes it against the previous cell), SO/SI around cells drawn with
// the DEC line-drawing set, and with -N every row covering the pane's whole width.
//
// capture-pane writes a wide character once (its second column is implied), and appends
// combining marks to the cell before them, so the reader needs tmux's own width of each code
// point: `width` (tmux 3.3a in Debian uses the C library's wcwidth(); tmux-widths.ts asks the
// pane's tmux for them).
import {
  ATTRS,
  blankCell,
  DEFAULT,
  type Attr,
  type Cell,
  type Color,
  type Screen,
} from './screen.ts'

export type WidthOf = (codePoint: number) => 0 | 1 | 2

/** The VT100 line-drawing set, as xterm.js maps it (characters ` to ~). */
const DEC_GRAPHICS: Record<string, string> = {
  '`': '◆',
  a: '▒',
  b: '␉',
  c: '␌',
  d: '␍',
  e: '␊',
  f: '°',
  g: '±',
  h: '␤',
  i: '␋',
  j: '┘',
  k: '┐',
  l: '┌',
  m: '└',
  n: '┼',
  o: '⎺',
  p: '⎻',
  q: '─',
  r: '⎼',
  s: '⎽',
  t: '├',
  u: '┤',
  v: '┴',
  w: '┬',
  x: '│',
  y: '≤',
  z: '≥',
  '{': 'π',
  '|': '≠',
  '}': '£',
  '~': '·',
}

interface Pen {
  fg: Color
  bg: Color
  attrs: Set<Attr>
  charset: boolean
}

function freshPen(): Pen {
  return { fg: DEFAULT, bg: DEFAULT, attrs: new Set(), charset: false }
}

/** Reads an extended colour (38/48) starting at `params[i]`; returns it and how many it used. */
function extendedColor(
  params: readonly string[],
  i: number,
): { color: Color | null; used: number } {
  const head = params[i] ?? ''
  // Colon form in one parameter: 38:5:n, 38:2:r:g:b or 38:2::r:g:b (with a colour space id).
  if (head.includes(':')) {
    const sub = head.split(':').slice(1)
    if (sub[0] === '5') return { color: { kind: 'palette', index: Number(sub[1]) }, used: 1 }
    if (sub[0] === '2') {
      const rgb = sub.length >= 5 ? sub.slice(2, 5) : sub.slice(1, 4)
      const [r, g, b] = rgb.map(Number)
      return { color: { kind: 'rgb', rgb: ((r ?? 0) << 16) | ((g ?? 0) << 8) | (b ?? 0) }, used: 1 }
    }
    return { color: null, used: 1 }
  }
  const mode = params[i + 1]
  if (mode === '5') return { color: { kind: 'palette', index: Number(params[i + 2]) }, used: 3 }
  if (mode === '2') {
    const [r, g, b] = [params[i + 2], params[i + 3], params[i + 4]].map(Number)
    return { color: { kind: 'rgb', rgb: ((r ?? 0) << 16) | ((g ?? 0) << 8) | (b ?? 0) }, used: 5 }
  }
  return { color: null, used: 2 }
}

/** Applies one SGR parameter list (`1;38;5;173`) to the pen. */
export function applySgr(pen: Pen, paramText: string): void {
  const params = paramText === '' ? ['0'] : paramText.split(';')
  for (let i = 0; i < params.length; i++) {
    const p = params[i] ?? ''
    const [code = '0', style] = p.split(':')
    const n = Number(code === '' ? '0' : code)
    if (n === 38 || n === 48 || n === 58) {
      const { color, used } = extendedColor(params, i)
      i += used - 1
      if (color && n === 38) pen.fg = color
      if (color && n === 48) pen.bg = color
      continue // 58: underline colour, which the model does not hold
    }
    if (n === 0) {
      pen.fg = DEFAULT
      pen.bg = DEFAULT
      pen.attrs.clear()
    } else if (n === 1) pen.attrs.add('bold')
    else if (n === 2) pen.attrs.add('dim')
    else if (n === 3) pen.attrs.add('italic')
    else if (n === 4) {
      if (style === '0') pen.attrs.delete('underline')
      else pen.attrs.add('underline')
    } else if (n === 5 && style === '3') {
      // tmux 3.3a's capture-pane writes SGR 53 (overline) as `5:3` (its code ÷ 10 : code % 10,
      // the form it uses for the underline styles 4:2…4:5); what it sends a client is 53.
      pen.attrs.add('overline')
    } else if (n === 5 || n === 6) pen.attrs.add('blink')
    else if (n === 7) pen.attrs.add('inverse')
    else if (n === 8) pen.attrs.add('invisible')
    else if (n === 9) pen.attrs.add('strikethrough')
    else if (n === 21) pen.attrs.add('underline')
    else if (n === 22) {
      pen.attrs.delete('bold')
      pen.attrs.delete('dim')
    } else if (n === 23) pen.attrs.delete('italic')
    else if (n === 24) pen.attrs.delete('underline')
    else if (n === 25) pen.attrs.delete('blink')
    else if (n === 27) pen.attrs.delete('inverse')
    else if (n === 28) pen.attrs.delete('invisible')
    else if (n === 29) pen.attrs.delete('strikethrough')
    else if (n >= 30 && n <= 37) pen.fg = { kind: 'palette', index: n - 30 }
    else if (n === 39) pen.fg = DEFAULT
    else if (n >= 40 && n <= 47) pen.bg = { kind: 'palette', index: n - 40 }
    else if (n === 49) pen.bg = DEFAULT
    else if (n === 53) pen.attrs.add('overline')
    else if (n === 55) pen.attrs.delete('overline')
    else if (n >= 90 && n <= 97) pen.fg = { kind: 'palette', index: n - 90 + 8 }
    else if (n >= 100 && n <= 107) pen.bg = { kind: 'palette', index: n - 100 + 8 }
  }
}

function cellFrom(pen: Pen, chars: string, width: 1 | 2): Cell {
  return {
    chars,
    width,
    fg: pen.fg,
    bg: pen.bg,
    attrs: ATTRS.filter((a) => pen.attrs.has(a)),
  }
}

/**
 * Parses capture-pane output of a `cols`×`rows` pane. A row ends at the last cell written (even
 * with -N); the rest of it is blank cells whose colours are unknown (`loose`). Throws when a row
 * covers more than `cols` columns with the given widths (they are not tmux's) or the row count
 * is wrong.
 */
export function parseCapture(
  text: string,
  opts: { cols: number; rows: number; width: WidthOf; cursor: { x: number; y: number } },
): Screen {
  const lines = text.split('\n')
  if (lines.at(-1) === '') lines.pop()
  if (lines.length !== opts.rows)
    throw new Error(`capture has ${lines.length} rows, the pane ${opts.rows}`)
  const pen = freshPen()
  const cells: (Cell | null)[][] = []
  lines.forEach((line, y) => {
    const row: (Cell | null)[] = []
    let last: Cell | null = null
    for (let i = 0; i < line.length;) {
      const cp = line.codePointAt(i) ?? 0
      const ch = String.fromCodePoint(cp)
      if (cp === 0x1b) {
        // eslint-disable-next-line no-control-regex -- tmux's escape sequences
        const m = /^\x1b\[([0-9;:]*)([@-~])/.exec(line.slice(i))
        if (m) {
          if (m[2] === 'm') applySgr(pen, m[1] ?? '')
          i += m[0].length
          continue
        }
        // eslint-disable-next-line no-control-regex -- an OSC, skipped
        const osc = /^\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/.exec(line.slice(i))
        i += osc ? osc[0].length : 2
        continue
      }
      i += ch.length
      if (cp === 0x0e || cp === 0x0f) {
        pen.charset = cp === 0x0e
        continue
      }
      const w = opts.width(cp)
      if (w === 0 && last) {
        last.chars += ch
        continue
      }
      const shown = pen.charset ? (DEC_GRAPHICS[ch] ?? ch) : ch
      const width: 1 | 2 = w === 2 ? 2 : 1
      last = cellFrom(pen, shown, width)
      row.push(last)
      if (width === 2) row.push(null)
    }
    if (row.length > opts.cols)
      throw new Error(
        `capture row ${y} covers ${row.length} columns, the pane has ${opts.cols}: ${JSON.stringify(line)}`,
      )
    while (row.length < opts.cols) row.push({ ...blankCell(), loose: true })
    cells.push(row)
  })
  return { cols: opts.cols, rows: opts.rows, cells, cursor: opts.cursor }
}
