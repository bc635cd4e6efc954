// Issue 14 in Debian's Chromium, against the real server and a live session: the wheel over the
// agent tab, search in what scrolled off, emoji widths, OSC 52 copies, Option on a Mac layout,
// Shift+Enter, a paste with a split end marker, and touch scrolling with the phone key bar.
// Each test states the bytes the page sent (WebSocket INPUT frames) or what the shell received.
import { mkdtemp, realpath, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import {
  describeIncus,
  execAsCode,
  startLiveServer,
  type LiveServer,
} from '../../server/test/incus-harness.ts'
import { waitUntil } from '../../server/test/ws-client.ts'
import { Op } from '../../shared/ws/terminal.ts'
import { buildSpa, launchChromium, newContext, PageProblems } from './support.ts'

type Kind = 'agent' | 'shell'

let home: string
let server: LiveServer
let browser: Browser
let desktop: BrowserContext
let page: Page
let sessionId = ''
const problems = new PageProblems()

/** INPUT frames a page sent, per terminal, decoded as UTF-8. */
class InputLog {
  readonly sent: Record<Kind, string[]> = { agent: [], shell: [] }

  watch(p: Page): Page {
    p.on('websocket', (ws) => {
      const kind: Kind | null = ws.url().includes('/ws/shell/')
        ? 'shell'
        : ws.url().includes('/ws/terminal/')
          ? 'agent'
          : null
      if (!kind) return
      ws.on('framesent', ({ payload }) => {
        if (typeof payload === 'string' || payload[0] !== Op.INPUT) return
        this.sent[kind].push(payload.subarray(1).toString('utf8'))
      })
    })
    return p
  }

  /** Everything sent to `kind` from frame `from` on. */
  since(kind: Kind, from: number): string[] {
    return this.sent[kind].slice(from)
  }
}

const inputs = new InputLog()

function pane(p: Page, kind: Kind): string {
  return `[data-terminal="${kind}"]`
}

/** What a terminal pane shows (the DOM renderer keeps the rows as text). */
function termText(p: Page, kind: Kind): Promise<string> {
  return p.locator(`${pane(p, kind)} .xterm-rows`).innerText()
}

async function typeLine(p: Page, kind: Kind, text: string): Promise<void> {
  await p.locator(`${pane(p, kind)} .term`).click()
  await p.keyboard.type(text)
  await p.keyboard.press('Enter')
}

async function showTab(p: Page, kind: Kind): Promise<void> {
  await p.getByRole('tab', { name: kind === 'agent' ? 'Agent' : 'Shell' }).click()
  await p.locator(`${pane(p, kind)}[data-state="open"]`).waitFor({ timeout: 30_000 })
}

async function openSession(c: BrowserContext, label: string): Promise<Page> {
  const p = inputs.watch(problems.watch(await c.newPage(), label))
  await p.goto(`${server.url}/sessions/${encodeURIComponent(sessionId)}`)
  await p.locator(`${pane(p, 'agent')}[data-state="open"]`).waitFor({ timeout: 30_000 })
  return p
}

/** The terminal behind a pane, from its test hook (web/src/lib/terminal/test-hooks.ts). */
type Hooked = Window & {
  __clincusTerminals?: Partial<Record<string, { term: import('@xterm/xterm').Terminal }>>
}

/** The scroll position of a terminal's buffer (ydisp) and its bottom (ybase). */
function scroll(p: Page, kind: Kind): Promise<{ viewportY: number; baseY: number; rows: number }> {
  return p.evaluate((kind) => {
    const term = (window as Hooked).__clincusTerminals?.[kind]?.term
    if (!term) throw new Error(`no test hook for the ${kind} terminal`)
    const buf = term.buffer.active
    return { viewportY: buf.viewportY, baseY: buf.baseY, rows: term.rows }
  }, kind)
}

/**
 * Runs a shell command that reads raw input after printing a marker (split by quotes so the
 * echoed command line never matches), and waits for the marker: the command is reading.
 */
async function readingRaw(p: Page, kind: Kind, command: string): Promise<void> {
  await typeLine(p, kind, `clear; stty raw -echo; printf 'REA''DY\\r\\n'; ${command}; stty sane`)
  await expect.poll(() => termText(p, kind), { timeout: 15_000 }).toMatch(/^READY\s*$/m)
}

/** The copy-mode position indicator tmux draws at the top right, e.g. `[12/318]`. */
const COPY_MODE = /\[\d+\/\d+\]/

/** A one-finger swipe, as a touch screen delivers it. */
async function swipe(cdp: CDPSession, x: number, fromY: number, toY: number): Promise<void> {
  await cdp.send('Input.dispatchTouchEvent', {
    type: 'touchStart',
    touchPoints: [{ x, y: fromY }],
  })
  const steps = 12
  for (let i = 1; i <= steps; i++) {
    await cdp.send('Input.dispatchTouchEvent', {
      type: 'touchMove',
      touchPoints: [{ x, y: fromY + ((toY - fromY) * i) / steps }],
    })
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] })
}

async function centre(p: Page, kind: Kind): Promise<{ x: number; y: number }> {
  const box = await p.locator(`${pane(p, kind)} .term`).boundingBox()
  if (!box) throw new Error(`the ${kind} terminal is not visible`)
  return { x: box.x + box.width / 2, y: box.y + box.height / 2 }
}

/**
 * Puts the shared page back at a clean prompt in both panes after a failed test, so one failure
 * does not fail the tests after it: a failed test can leave the mouse button down, the search
 * box open (holding the focus), tmux in copy mode, or a command reading raw input (`readingRaw`)
 * that would swallow the next test's keys. Each step waits for its effect, never for a time.
 */
async function recover(p: Page): Promise<void> {
  await p.mouse.up().catch(() => undefined)
  const close = p.locator(pane(p, 'agent')).getByRole('button', { name: 'Close' })
  if (await close.isVisible()) await close.click()
  // The raw readers the tests start are `head -c N` (their command lines end with `stty sane`):
  // end them by name from /proc (no procps needed). Leaving copy mode fails harmlessly when tmux
  // is not in it.
  await execAsCode(
    sessionId,
    'for d in /proc/[0-9]*; do [ "$(cat "$d/comm" 2>/dev/null)" = head ] && kill "${d#/proc/}"; done; ' +
      'tmux send-keys -X cancel 2>/dev/null; true',
  )
  for (const kind of ['agent', 'shell'] as const) {
    await showTab(p, kind)
    await p.locator(`${pane(p, kind)} .xterm-helper-textarea`).focus()
    await p.keyboard.press('Control+U')
    await p.keyboard.type(`stty sane; clear; printf 'RE''COVERED-${kind}\\n'`)
    await p.keyboard.press('Enter')
    await expect
      .poll(() => termText(p, kind), { timeout: 15_000 })
      .toMatch(new RegExp(`^RECOVERED-${kind}\\s*$`, 'm'))
  }
}

describeIncus('the terminal in Chromium (issue 14)', () => {
  beforeAll(async () => {
    home = await realpath(await mkdtemp(join(tmpdir(), 'clincus-e2e-term-')))
    const webRoot = join(home, 'web')
    await buildSpa(webRoot)
    server = await startLiveServer({ home, webRoot })
    sessionId = await server.launch('term')
    browser = await launchChromium()
    desktop = await newContext(browser, { width: 1280, height: 800 }, { testHooks: true })
    await desktop.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url })
    page = await openSession(desktop, 'desktop')
    // The fake tool reads lines without a line editor; its wrapper leaves a login bash in the
    // pane, which the tests below drive through tmux.
    await waitUntil(
      'the fake tool',
      async () => (await termText(page, 'agent')).includes('clincus fake tool'),
      { timeoutMs: 30_000 },
    )
    await typeLine(page, 'agent', 'exit')
    await waitUntil(
      'the tool to exit',
      async () => (await termText(page, 'agent')).includes('exited with code 0'),
      { timeoutMs: 30_000 },
    )
  })

  afterEach(async ({ task }) => {
    if (task.result?.state === 'fail') await recover(page)
  })

  afterAll(async () => {
    await browser.close().catch(() => undefined)
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('row 1: search finds a line that scrolled off the agent tab', async () => {
    // Lines at an agent's pace: tmux draws each batch, scrolling the browser's screen. (A burst
    // of more than a screen in one read, tmux draws as its last screen only: those lines are
    // in tmux's history, reached with the wheel, not in the browser's scrollback.) Each batch is
    // awaited on the page before the next, so a busy machine cannot merge batches into a burst.
    for (let first = 1; first <= 400; first += 20) {
      await typeLine(page, 'agent', `seq -f needle-%g-end ${first} ${first + 19}`)
      await expect
        .poll(() => termText(page, 'agent'), { timeout: 15_000 })
        .toContain(`needle-${first + 19}-end`)
    }
    expect(await termText(page, 'agent')).not.toContain('needle-17-end')
    await page.locator(pane(page, 'agent')).getByRole('button', { name: 'Search' }).click()
    try {
      await page.getByRole('searchbox', { name: 'Find in output' }).fill('needle-17-end')
      await page.getByRole('searchbox', { name: 'Find in output' }).press('Enter')
      expect(await page.locator(`${pane(page, 'agent')} .nomatch`).innerText()).toBe('')
      const selected = await page.evaluate(
        () => (window as Hooked).__clincusTerminals?.agent?.term.getSelection() ?? null,
      )
      expect(selected).toBe('needle-17-end')
      await expect
        .poll(() => termText(page, 'agent'), { timeout: 15_000 })
        .toContain('needle-17-end')
    } finally {
      // Later tests type into the terminal: the search box must not keep the focus.
      await page.locator(pane(page, 'agent')).getByRole('button', { name: 'Close' }).click()
    }
  })

  it('row 1: the wheel over the agent tab scrolls tmux, never a key to the agent', async () => {
    const from = inputs.sent.agent.length
    const { x, y } = await centre(page, 'agent')
    await page.mouse.move(x, y)
    // One wheel event at a time, each awaited as the report it sends: a late one would enter
    // copy mode again after the q below.
    for (let i = 1; i <= 3; i++) {
      await page.mouse.wheel(0, -300)
      await expect.poll(() => inputs.since('agent', from).length, { timeout: 15_000 }).toBe(i)
    }
    // The first tick enters copy mode, the next ones scroll back: the position is above 0.
    await expect
      .poll(() => termText(page, 'agent'), { timeout: 15_000 })
      .toMatch(/\[[1-9]\d*\/\d+\]/)
    const sent = inputs.since('agent', from)
    // Every byte is an SGR mouse report of the wheel (button 64 up / 65 down).
    // eslint-disable-next-line no-control-regex -- the bytes are escape sequences
    for (const bytes of sent) expect(bytes).toMatch(/^(?:\x1b\[<6[45];\d+;\d+M)+$/)
    // Leave copy mode.
    await page.keyboard.press('q')
    await expect.poll(() => termText(page, 'agent'), { timeout: 15_000 }).not.toMatch(COPY_MODE)
  })

  it('row 2: ✅ and 👩‍💻 take tmux’s two cells, so the bars line up with ab|', async () => {
    await typeLine(
      page,
      'agent',
      "clear; printf '\\xe2\\x9c\\x85|\\nab|\\n\\xf0\\x9f\\x91\\xa9\\xe2\\x80\\x8d\\xf0\\x9f\\x92\\xbb|\\n'",
    )
    await expect.poll(() => termText(page, 'agent'), { timeout: 15_000 }).toMatch(/^ab\|/m)
    const bars = await page.evaluate(() => {
      const term = (window as Hooked).__clincusTerminals?.agent?.term
      if (!term) throw new Error('no test hook for the agent terminal')
      const buf = term.buffer.active
      const out: Record<string, number> = {}
      for (let y = 0; y < buf.length; y++) {
        const line = buf.getLine(y)
        if (!line) continue
        const text = line.translateToString(true)
        if (!/^(✅|ab|👩‍💻)\|$/u.test(text)) continue
        for (let x = 0; x < line.length; x++) {
          if (line.getCell(x)?.getChars() === '|') out[text] = x
        }
      }
      return out
    })
    expect(bars).toEqual({ '✅|': 2, 'ab|': 2, '👩‍💻|': 2 })
  })

  it('row 3: an OSC 52 copy reaches the browser clipboard from both tabs', async () => {
    await typeLine(page, 'agent', `printf '\\e]52;c;%s\\a' "$(printf agent-copy | base64)"`)
    await expect
      .poll(() => page.evaluate(() => navigator.clipboard.readText()), { timeout: 15_000 })
      .toBe('agent-copy')
    await showTab(page, 'shell')
    await typeLine(page, 'shell', `printf '\\e]52;c;%s\\a' "$(printf x | base64)"`)
    await expect
      .poll(() => page.evaluate(() => navigator.clipboard.readText()), { timeout: 15_000 })
      .toBe('x')
  })

  it("row 3: a drag in the agent tab selects in tmux's copy mode, and tmux's copy reaches the clipboard", async () => {
    await showTab(page, 'agent')
    await typeLine(page, 'agent', "clear; echo 'drag''-me-please'")
    const row = page.locator(`${pane(page, 'agent')} .xterm-rows > div`, {
      hasText: /^drag-me-please\s*$/,
    })
    await row.waitFor({ timeout: 15_000 })
    const box = await row.boundingBox()
    const screen = await page.locator(`${pane(page, 'agent')} .xterm-screen`).boundingBox()
    const cols = await page.evaluate(
      () => (window as Hooked).__clincusTerminals?.agent?.term.cols ?? 0,
    )
    if (!box || !screen || cols === 0) throw new Error('the row or the terminal size is unknown')
    const cell = screen.width / cols
    const at = (col: number): number => screen.x + col * cell + cell / 2
    const y = box.y + box.height / 2
    await page.mouse.move(at(0), y)
    await page.mouse.down()
    // The first drag makes tmux enter copy mode (a command it runs after the event): the rest
    // of the drag extends the selection once it is in.
    await page.mouse.move(at(1), y)
    await expect.poll(() => termText(page, 'agent'), { timeout: 15_000 }).toMatch(COPY_MODE)
    // tmux's selection ends before the cell the button is released on.
    await page.mouse.move(at(14), y, { steps: 4 })
    await page.mouse.up()
    // tmux copies the selection with an OSC 52 whose selection field is empty.
    await expect
      .poll(() => page.evaluate(() => navigator.clipboard.readText()), { timeout: 15_000 })
      .toBe('drag-me-please')
    await expect.poll(() => termText(page, 'agent'), { timeout: 15_000 }).not.toMatch(COPY_MODE)
  })

  it('row 3: a program asking to read the clipboard (OSC 52 ?) gets no answer', async () => {
    await showTab(page, 'shell')
    await page.evaluate(() => navigator.clipboard.writeText('secret-clip'))
    const from = inputs.sent.shell.length
    await readingRaw(page, 'shell', `printf '\\e]52;c;?\\a'; head -c 1 | od -An -c`)
    await page.keyboard.type('Z')
    // The first byte the program read is the one typed, not the start of a reply.
    await expect.poll(() => termText(page, 'shell'), { timeout: 15_000 }).toMatch(/^\s+Z\s*$/m)
    // After the command line's Enter, the page sent the typed Z and nothing else.
    const sent = inputs.since('shell', from)
    expect(sent.slice(sent.lastIndexOf('\r') + 1).join('')).toBe('Z')
  })

  it('row 5: a, Shift+Enter, b, Enter sends a ESC CR b CR, through the shell and through tmux', async () => {
    for (const kind of ['shell', 'agent'] as const) {
      await showTab(page, kind)
      await readingRaw(page, kind, 'head -c 5 | od -An -c')
      await page.keyboard.type('a')
      await page.keyboard.press('Shift+Enter')
      await page.keyboard.type('b')
      await page.keyboard.press('Enter')
      await expect
        .poll(() => termText(page, kind), { timeout: 15_000 })
        .toMatch(/^\s*a\s+033\s+\\r\s+b\s+\\r\s*$/m)
    }
  })

  it('row 6: a paste with a split end marker lands as text; only Enter runs it', async () => {
    await showTab(page, 'shell')
    await typeLine(page, 'shell', 'clear')
    const file = '/tmp/p-e2e'
    await page.locator(`${pane(page, 'shell')} .term`).evaluate((el, data) => {
      const dt = new DataTransfer()
      dt.setData('text/plain', data)
      el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true }))
    }, `echo x\x1b[20\x1b[201~1~\rtouch ${file}\r`)
    // bash reads input in order: once the typed text shows, a smuggled command would have run.
    await page.keyboard.type(' #typed')
    await expect.poll(() => termText(page, 'shell'), { timeout: 15_000 }).toContain('#typed')
    expect((await execAsCode(sessionId, `test -e ${file}`)).exitCode).toBe(1)
    await page.keyboard.press('Enter')
    await expect
      .poll(() => termText(page, 'shell'), { timeout: 15_000 })
      .toMatch(/^x␛\[20␛\[201~1~\s*$/m)
  })

  it('row 4: Option+L on a Mac types @ by default, ESC l with "Option as Meta" on (live)', async () => {
    const mac = await newContext(browser, { width: 1280, height: 800 }, { mac: true })
    try {
      const p = await openSession(mac, 'mac')
      await showTab(p, 'shell')
      await p.locator(`${pane(p, 'shell')} .term`).click()
      const cdp = await mac.newCDPSession(p)
      // What Chromium on a Mac delivers for Option+L on a German layout: key '@', code KeyL.
      const optionL = async (): Promise<void> => {
        const key = {
          modifiers: 1,
          key: '@',
          code: 'KeyL',
          windowsVirtualKeyCode: 76,
          nativeVirtualKeyCode: 76,
        }
        await cdp.send('Input.dispatchKeyEvent', {
          ...key,
          type: 'keyDown',
          text: '@',
          unmodifiedText: 'l',
        })
        await cdp.send('Input.dispatchKeyEvent', { ...key, type: 'keyUp' })
      }
      let from = inputs.sent.shell.length
      await optionL()
      await expect.poll(() => inputs.since('shell', from).join(''), { timeout: 15_000 }).toBe('@')

      // Settings, in another tab of the same browser: the open terminal follows at once.
      const settings = problems.watch(await mac.newPage(), 'mac-settings')
      await settings.goto(`${server.url}/settings`)
      await settings.getByRole('checkbox', { name: 'Use Option as Meta (Mac)' }).check()
      await p.bringToFront()
      from = inputs.sent.shell.length
      await optionL()
      await expect
        .poll(() => inputs.since('shell', from).join(''), { timeout: 15_000 })
        .toBe('\x1bl')
      await settings.close()
    } finally {
      await mac.close()
    }
  })

  it('row 10: on a 390×844 phone a swipe scrolls both tabs, and the key bar pages', async () => {
    const phone = await newContext(
      browser,
      { width: 390, height: 844 },
      { testHooks: true, hasTouch: true },
    )
    try {
      const p = await openSession(phone, 'phone')
      const cdp = await phone.newCDPSession(p)
      // Agent tab (tmux, mouse on): a swipe down enters copy mode and scrolls back.
      await typeLine(p, 'agent', "clear; seq -f 'swipe-%g' 1 300")
      await expect.poll(() => termText(p, 'agent'), { timeout: 15_000 }).toContain('swipe-300')
      const a = await centre(p, 'agent')
      await swipe(cdp, a.x, a.y - 150, a.y + 250)
      await expect.poll(() => termText(p, 'agent'), { timeout: 15_000 }).toMatch(COPY_MODE)
      await p.keyboard.press('q')
      await expect.poll(() => termText(p, 'agent'), { timeout: 15_000 }).not.toMatch(COPY_MODE)
      // PgUp on the key bar: a page of tmux's wheel.
      await p
        .locator(pane(p, 'agent'))
        .getByRole('toolbar', { name: 'Terminal keys' })
        .getByRole('button', { name: 'Page up' })
        .click()
      await expect.poll(() => termText(p, 'agent'), { timeout: 15_000 }).toMatch(COPY_MODE)
      await p.keyboard.press('q')

      // Shell tab: the browser's own scrollback.
      await showTab(p, 'shell')
      await typeLine(p, 'shell', "seq -f 'row-%g' 1 300")
      await expect.poll(() => termText(p, 'shell'), { timeout: 15_000 }).toContain('row-300')
      const bottom = await scroll(p, 'shell')
      expect(bottom.viewportY).toBe(bottom.baseY)
      const s = await centre(p, 'shell')
      await swipe(cdp, s.x, s.y - 150, s.y + 250)
      await expect
        .poll(async () => (await scroll(p, 'shell')).viewportY, { timeout: 15_000 })
        .toBeLessThan(bottom.baseY)
      const keys = p.locator(pane(p, 'shell')).getByRole('toolbar', { name: 'Terminal keys' })
      await keys.getByRole('button', { name: 'Page down' }).click()
      await keys.getByRole('button', { name: 'Page down' }).click()
      await keys.getByRole('button', { name: 'Page down' }).click()
      await expect
        .poll(async () => (await scroll(p, 'shell')).viewportY, { timeout: 15_000 })
        .toBe(bottom.baseY)
      await keys.getByRole('button', { name: 'Page up' }).click()
      await expect
        .poll(async () => (await scroll(p, 'shell')).viewportY, { timeout: 15_000 })
        .toBe(bottom.baseY - (bottom.rows - 1))
    } finally {
      await phone.close()
    }
  })

  it('logged no console errors and no unexpected failed requests', () => {
    expect(problems.list).toEqual([])
  })
})
