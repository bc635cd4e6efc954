// Issue 14, fidelity suite: each file of web/e2e/fixtures/terminal-corpus is replayed into the
// agent's tmux pane of a live session (the bytes `cat`ed onto the pane's tty, raw), and the
// browser terminal's buffer in Chromium is compared with `tmux capture-pane -e -p -N` of the
// same pane, cell for cell (character, width, colours, attributes) and the cursor. Zero
// differing cells for every file. How the corpus was recorded: its README.
import { readdir, readFile, mkdtemp, realpath, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  describeIncus,
  execArgvAsCode,
  startLiveServer,
  type LiveServer,
} from '../../server/test/incus-harness.ts'
import { tmuxSessionName } from '../../server/sessions/naming.ts'
import {
  diffScreens,
  formatDiffs,
  screenText,
  type CellDiff,
  type Screen,
} from './fidelity/screen.ts'
import { parseCapture } from './fidelity/tmux-capture.ts'
import { dumpScript, xtermScreen, type RawScreen } from './fidelity/xterm-cells.ts'
import { buildSpa, launchChromium, newContext, PageProblems } from './support.ts'

const CORPUS = join(import.meta.dirname, 'fixtures', 'terminal-corpus')
const WIDTHS_SCRIPT = join(import.meta.dirname, 'fidelity', 'tmux-widths.sh')
/** The size every corpus file was recorded (or written) for. */
const COLS = 120
const ROWS = 40
const IN_CONTAINER = '/tmp/fidelity'

const files = (await readdir(CORPUS)).filter((f) => f !== 'README.md').sort()

let home: string
let server: LiveServer | undefined
let browser: Browser | undefined
let context: BrowserContext
let page: Page
let id = ''
let pane = ''
const widths = new Map<number, 0 | 1 | 2>()
const problems = new PageProblems()

async function asCode(argv: string[]): Promise<string> {
  // A capture's last row may be empty: its newline is part of the answer (kept as written).
  const r = await execArgvAsCode(id, argv)
  if (r.exitCode !== 0) throw new Error(`${argv.join(' ')}: exit ${r.exitCode}: ${r.stderr}`)
  return r.stdout
}

function tmux(...args: string[]): Promise<string> {
  return asCode(['tmux', ...args])
}

/** Code points outside ASCII in the corpus: tmux is asked for its width of each. */
async function corpusCodePoints(): Promise<number[]> {
  const set = new Set<number>()
  for (const f of files) {
    for (const ch of (await readFile(join(CORPUS, f))).toString('utf8')) {
      const cp = ch.codePointAt(0) ?? 0
      if (cp >= 0xa0 && cp !== 0xfffd) set.add(cp)
    }
  }
  return [...set].sort((a, b) => a - b)
}

function printfFormat(cp: number): string {
  return [...Buffer.from(String.fromCodePoint(cp), 'utf8')]
    .map((b) => `\\x${b.toString(16).padStart(2, '0')}`)
    .join('')
}

async function probeWidths(): Promise<void> {
  const cps = await corpusCodePoints()
  const quoted = cps.map((cp) => `'${printfFormat(cp)}'`).join(' ')
  await tmux(
    'new-window',
    '-d',
    '-t',
    `=${tmuxSessionName(id)}:`,
    `bash ${IN_CONTAINER}/tmux-widths.sh ${IN_CONTAINER}/widths.txt fid-widths ${quoted}`,
  )
  await tmux('wait-for', 'fid-widths')
  const out = (await asCode(['cat', `${IN_CONTAINER}/widths.txt`])).trim().split('\n')
  expect(out).toHaveLength(cps.length)
  cps.forEach((cp, i) => {
    const w = Number(out[i])
    if (w !== 0 && w !== 1 && w !== 2) throw new Error(`tmux width of U+${cp.toString(16)}: ${w}`)
    widths.set(cp, w)
  })
}

function widthOf(cp: number): 0 | 1 | 2 {
  if (cp >= 0x20 && cp < 0x7f) return 1
  const w = widths.get(cp)
  if (w === undefined) throw new Error(`no tmux width for U+${cp.toString(16)}`)
  return w
}

/** The pane as tmux holds it, and where it sits on the client's screen. */
async function tmuxScreen(): Promise<{ screen: Screen; top: number; left: number }> {
  const fmt =
    '#{pane_width} #{pane_height} #{cursor_x} #{cursor_y} #{cursor_flag} #{pane_top} #{pane_left} #{status} #{status-position}'
  const out = await asCode([
    'sh',
    '-c',
    'tmux display -p -t "$1" "$2" && tmux capture-pane -p -e -N -t "$1"',
    'sh',
    pane,
    fmt,
  ])
  const nl = out.indexOf('\n')
  const [w, h, cx, cy, cflag, top, left, status, position] = out.slice(0, nl).split(' ')
  const cols = Number(w)
  const rows = Number(h)
  const statusLines = status === 'off' ? 0 : status === 'on' ? 1 : Number(status)
  const screen = parseCapture(out.slice(nl + 1), {
    cols,
    rows,
    width: widthOf,
    cursor: { x: Number(cx), y: Number(cy) },
  })
  // A hidden cursor is not drawn, so the client's cursor may be anywhere: not compared.
  if (cflag !== '1') screen.cursor = { x: -1, y: -1 }
  return {
    screen,
    top: Number(top) + (position === 'top' ? statusLines : 0),
    left: Number(left),
  }
}

async function browserScreen(top: number, left: number, hideCursor: boolean): Promise<Screen> {
  const raw = await page.evaluate<RawScreen>(
    dumpScript('agent', { top, left, cols: COLS, rows: ROWS }),
  )
  const s = xtermScreen(raw)
  if (hideCursor) s.cursor = { x: -1, y: -1 }
  return s
}

async function compareNow(): Promise<{ diffs: CellDiff[]; tmux: Screen; browser: Screen }> {
  const t = await tmuxScreen()
  const b = await browserScreen(t.top, t.left, t.screen.cursor.x < 0)
  return { diffs: diffScreens(t.screen, b), tmux: t.screen, browser: b }
}

describeIncus('fidelity: the browser terminal shows what tmux holds, cell for cell', () => {
  beforeAll(async () => {
    home = await realpath(await mkdtemp(join(tmpdir(), 'clincus-fidelity-')))
    const webRoot = join(home, 'web')
    await buildSpa(webRoot)
    const live = await startLiveServer({ home, webRoot })
    server = live
    id = await live.launch('fidelity')
    await asCode(['mkdir', '-p', IN_CONTAINER])
    for (const f of [...files.map((n) => join(CORPUS, n)), WIDTHS_SCRIPT]) {
      const name = f.slice(f.lastIndexOf('/') + 1)
      await execa('incus', [
        'file',
        'push',
        '--uid',
        '1000',
        '--gid',
        '1000',
        f,
        `${id}${IN_CONTAINER}/${name}`,
      ])
    }
    browser = await launchChromium()
    // Large enough for the 120×40 pane plus tmux's status line.
    context = await newContext(browser, { width: 1800, height: 1200 })
    await context.addInitScript(() => {
      localStorage.setItem('clincus.testHooks', 'on')
    })
    page = problems.watch(await context.newPage(), 'fidelity')
    await page.goto(`${live.url}/sessions/${encodeURIComponent(id)}`)
    await page.locator('[data-terminal="agent"][data-state="open"]').waitFor({ timeout: 60_000 })
    pane = (await tmux('display', '-p', '-t', `=${tmuxSessionName(id)}:`, '#{pane_id}')).trim()
    await probeWidths()
  })

  afterAll(async () => {
    await browser?.close().catch(() => undefined)
    await server?.close()
    if (home) await rm(home, { recursive: true, force: true })
  })

  it('has a browser terminal larger than the corpus pane, and the pane at 120×40', async () => {
    const size = await page.locator('[data-terminal="agent"]').getAttribute('data-size')
    const [cols = 0, rows = 0] = (size ?? '').split('x').map(Number)
    expect(cols).toBeGreaterThanOrEqual(COLS)
    expect(rows).toBeGreaterThan(ROWS)
    await tmux(
      'resize-window',
      '-t',
      `=${tmuxSessionName(id)}:`,
      '-x',
      String(COLS),
      '-y',
      String(ROWS),
    )
    const t = await tmuxScreen()
    expect([t.screen.cols, t.screen.rows]).toEqual([COLS, ROWS])
  })

  it.each(files)('%s: zero differing cells', async (file) => {
    const channel = `fid-${file.replace(/[^a-z0-9]/gi, '-')}`
    // Leave any alternate screen, reset the terminal state (RIS), then the file's bytes as
    // they are: no newline translation, no echo of what tmux answers to the file's queries.
    await tmux(
      'respawn-pane',
      '-k',
      '-t',
      pane,
      `stty raw -echo; printf '\\033[?1049l\\033c'; cat ${IN_CONTAINER}/${file}; tmux wait-for -S ${channel}; exec sleep 1000000`,
    )
    await tmux('wait-for', channel)
    let last = await compareNow()
    try {
      await expect
        .poll(
          async () => {
            last = await compareNow()
            return last.diffs.length
          },
          { timeout: 20_000, interval: 200 },
        )
        .toBe(0)
    } catch {
      // Fall through: the assertion below says which cells differ.
    }
    expect(
      last.diffs.length === 0
        ? ''
        : `${last.diffs.length} cells differ\n${formatDiffs(last.diffs)}\n--- tmux:\n${screenText(last.tmux)}\n--- browser:\n${screenText(last.browser)}`,
    ).toBe('')
    expect(screenText(last.tmux).trim()).not.toBe('')
  })

  it('logged no page problem', () => {
    expect(problems.list).toEqual([])
  })
})
