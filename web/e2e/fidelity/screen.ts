// One model of a terminal screen, for comparing what tmux holds in a pane with what the browser
// terminal shows, cell for cell. Both sides are normalised to it by their own readers
// (tmux-capture.ts: `tmux capture-pane -e -p -N`; xterm-cells.ts: xterm.js's buffer API).

/** A colour as the application asked for it: the default, a palette index (0–255), or 24-bit. */
export type Color =
  { kind: 'default' } | { kind: 'palette'; index: number } | { kind: 'rgb'; rgb: number }

/** The attributes both tmux's grid and xterm.js keep per cell (underline style is folded in). */
export const ATTRS = [
  'bold',
  'dim',
  'italic',
  'underline',
  'blink',
  'inverse',
  'invisible',
  'strikethrough',
  'overline',
] as const
export type Attr = (typeof ATTRS)[number]

export interface Cell {
  /** The cell's text: one character plus any combining marks; ' ' for an empty cell. */
  chars: string
  /** Columns the cell takes: 1, or 2 for a wide character (its second column is not a cell). */
  width: 1 | 2
  fg: Color
  bg: Color
  /** Set attributes, in ATTRS order. */
  attrs: Attr[]
  /**
   * Only the text is known (a blank past the end of what tmux reports for a row: capture-pane
   * stops at the last cell written, so the colours of a row's cleared tail are not in it).
   */
  loose?: true
}

/** A screen: `rows` rows, each indexed by column; a wide cell's second column holds null. */
export interface Screen {
  cols: number
  rows: number
  cells: (Cell | null)[][]
  /** Zero-based cursor position. */
  cursor: { x: number; y: number }
}

export const DEFAULT: Color = { kind: 'default' }

export function blankCell(): Cell {
  return { chars: ' ', width: 1, fg: DEFAULT, bg: DEFAULT, attrs: [] }
}

export function colorText(c: Color): string {
  if (c.kind === 'default') return 'default'
  if (c.kind === 'palette') return `p${c.index}`
  return `#${c.rgb.toString(16).padStart(6, '0')}`
}

export function cellText(c: Cell | null): string {
  if (c === null) return '(wide tail)'
  const ch = JSON.stringify(c.chars)
  const attrs = c.attrs.length > 0 ? ` ${c.attrs.join('+')}` : ''
  return `${ch} w${c.width} fg=${colorText(c.fg)} bg=${colorText(c.bg)}${attrs}`
}

export interface CellDiff {
  row: number
  col: number
  expected: string
  actual: string
  /** What differs: chars, width, fg, bg, attrs, tail (a wide character's second column), cursor. */
  what: string[]
}

function whatDiffers(e: Cell | null | undefined, a: Cell | null | undefined): string[] {
  if (e === undefined || a === undefined) return ['size']
  if (e === null && a === null) return []
  if (e === null || a === null) return ['tail']
  const out: string[] = []
  if (e.chars !== a.chars) out.push('chars')
  if (e.width !== a.width) out.push('width')
  if (e.loose || a.loose) return out
  if (colorText(e.fg) !== colorText(a.fg)) out.push('fg')
  if (colorText(e.bg) !== colorText(a.bg)) out.push('bg')
  if (e.attrs.join() !== a.attrs.join()) out.push('attrs')
  return out
}

/**
 * Every cell (and the cursor, as row -1) where `actual` differs from `expected`. Screens of
 * different sizes differ in every cell outside the common area.
 */
export function diffScreens(expected: Screen, actual: Screen): CellDiff[] {
  const out: CellDiff[] = []
  const rows = Math.max(expected.rows, actual.rows)
  const cols = Math.max(expected.cols, actual.cols)
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const e = expected.cells[y]?.[x]
      const a = actual.cells[y]?.[x]
      const et = e === undefined ? '(outside)' : cellText(e)
      const at = a === undefined ? '(outside)' : cellText(a)
      const what = whatDiffers(e, a)
      if (what.length > 0) out.push({ row: y, col: x, expected: et, actual: at, what })
    }
  }
  if (expected.cursor.x !== actual.cursor.x || expected.cursor.y !== actual.cursor.y)
    out.push({
      row: -1,
      col: -1,
      expected: `cursor ${expected.cursor.x},${expected.cursor.y}`,
      actual: `cursor ${actual.cursor.x},${actual.cursor.y}`,
      what: ['cursor'],
    })
  return out
}

/** How many cells differ in each respect, e.g. `fg 120, width 4`. */
export function diffSummary(diffs: readonly CellDiff[]): string {
  const counts = new Map<string, number>()
  for (const d of diffs) for (const w of d.what) counts.set(w, (counts.get(w) ?? 0) + 1)
  return [...counts].map(([k, n]) => `${k} ${n}`).join(', ')
}

/** A summary, then the first `limit` differences, one per line, for a failure message. */
export function formatDiffs(diffs: readonly CellDiff[], limit = 20): string {
  const lines = [`  differing: ${diffSummary(diffs)}`]
  lines.push(
    ...diffs
      .slice(0, limit)
      .map((d) =>
        d.row < 0
          ? `  ${d.expected} ≠ ${d.actual}`
          : `  row ${d.row} col ${d.col}: tmux ${d.expected} ≠ browser ${d.actual}`,
      ),
  )
  if (diffs.length > limit) lines.push(`  … and ${diffs.length - limit} more`)
  return lines.join('\n')
}

/** The screen's text, one line per row (wide tails skipped), trailing blanks trimmed. */
export function screenText(s: Screen): string {
  return s.cells
    .map((row) =>
      row
        .filter((c): c is Cell => c !== null)
        .map((c) => c.chars)
        .join('')
        .trimEnd(),
    )
    .join('\n')
}
