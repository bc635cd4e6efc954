// Reads xterm.js's buffer into the screen model, through its public buffer API (IBuffer,
// IBufferLine.getCell, IBufferCell): what the browser terminal holds, independent of renderer
// (the serialize addon's output would have to be parsed back into cells; this reads them).
//
// `dumpBuffer` runs inside the page (it is sent as source text, so it refers to nothing outside
// itself) and returns plain data; `xtermScreen` turns that into a Screen in the test.
import { ATTRS, DEFAULT, type Attr, type Cell, type Color, type Screen } from './screen.ts'

/** The part of xterm.js's IBufferCell the reader uses. */
export interface CellLike {
  getChars(): string
  getWidth(): number
  isFgDefault(): boolean
  isFgPalette(): boolean
  isFgRGB(): boolean
  getFgColor(): number
  isBgDefault(): boolean
  isBgPalette(): boolean
  isBgRGB(): boolean
  getBgColor(): number
  isBold(): number
  isDim(): number
  isItalic(): number
  isUnderline(): number
  isBlink(): number
  isInverse(): number
  isInvisible(): number
  isStrikethrough(): number
  isOverline(): number
}

/** The part of xterm.js's IBuffer the reader uses. */
export interface BufferLike {
  readonly baseY: number
  readonly cursorX: number
  readonly cursorY: number
  getLine(y: number): { getCell(x: number): CellLike | undefined } | undefined
}

/** One cell as dumped: chars, width, colour modes (0 default, 1 palette, 2 rgb), values, attrs. */
export interface RawCell {
  c: string
  w: number
  fm: number
  f: number
  bm: number
  b: number
  /** Bit i set: ATTRS[i]. */
  a: number
}

export interface RawScreen {
  cells: RawCell[][]
  cursor: { x: number; y: number }
}

export interface Region {
  top: number
  left: number
  cols: number
  rows: number
}

/**
 * Dumps `region` of the screen (not the scrollback: rows count from `baseY`). Self-contained:
 * it is evaluated in the page as source text.
 */
export function dumpBuffer(buffer: BufferLike, region: Region): RawScreen {
  const mode = (isDefault: boolean, isPalette: boolean): number =>
    isDefault ? 0 : isPalette ? 1 : 2
  const cells: RawCell[][] = []
  for (let r = 0; r < region.rows; r++) {
    const line = buffer.getLine(buffer.baseY + region.top + r)
    const row: RawCell[] = []
    for (let x = region.left; x < region.left + region.cols; x++) {
      const cell = line?.getCell(x)
      if (!cell) {
        row.push({ c: '', w: 1, fm: 0, f: 0, bm: 0, b: 0, a: 0 })
        continue
      }
      const flags = [
        cell.isBold(),
        cell.isDim(),
        cell.isItalic(),
        cell.isUnderline(),
        cell.isBlink(),
        cell.isInverse(),
        cell.isInvisible(),
        cell.isStrikethrough(),
        cell.isOverline(),
      ]
      let a = 0
      flags.forEach((v, i) => {
        if (v) a |= 1 << i
      })
      row.push({
        c: cell.getChars(),
        w: cell.getWidth(),
        fm: mode(cell.isFgDefault(), cell.isFgPalette()),
        f: cell.getFgColor(),
        bm: mode(cell.isBgDefault(), cell.isBgPalette()),
        b: cell.getBgColor(),
        a,
      })
    }
    cells.push(row)
  }
  return {
    cells,
    cursor: { x: buffer.cursorX - region.left, y: buffer.cursorY - region.top },
  }
}

function color(m: number, v: number): Color {
  if (m === 0) return DEFAULT
  if (m === 1) return { kind: 'palette', index: v }
  return { kind: 'rgb', rgb: v }
}

/**
 * The dumped cells as a Screen: a width-0 cell (the second column of a wide character) becomes
 * null, an empty cell (never written) a blank.
 */
export function xtermScreen(raw: RawScreen): Screen {
  const cells = raw.cells.map((row) =>
    row.map((r): Cell | null => {
      if (r.w === 0) return null
      const attrs: Attr[] = ATTRS.filter((_, i) => (r.a & (1 << i)) !== 0)
      return {
        chars: r.c === '' ? ' ' : r.c,
        width: r.w === 2 ? 2 : 1,
        fg: color(r.fm, r.f),
        bg: color(r.bm, r.b),
        attrs,
      }
    }),
  )
  return {
    cols: raw.cells[0]?.length ?? 0,
    rows: raw.cells.length,
    cells,
    cursor: raw.cursor,
  }
}

/**
 * Page-side source: reads the `kind` terminal the dashboard exposes to tests
 * (`window.__clincusTerminals`, web/src/lib/terminal/test-hooks.ts; the page must have set
 * localStorage `clincus.testHooks` = `on` before it loaded).
 */
export function dumpScript(kind: 'agent' | 'shell', region: Region): string {
  return `(() => {
    const hook = window.__clincusTerminals && window.__clincusTerminals[${JSON.stringify(kind)}]
    if (!hook) throw new Error('no ${kind} terminal exposed (clincus.testHooks)')
    return (${dumpBuffer.toString()})(hook.term.buffer.active, ${JSON.stringify(region)})
  })()`
}
