// Red team, in Debian's Chromium against the real server: paste bypasses (a drop, a phone
// keyboard's clipboard strip), OSC 8 and OSC 52 from the agent, and a resize of the agent tab.
// Dropping text onto the terminal (a drag from a malicious page or document) is the classic
// bypass of paste protections: it must send nothing, or go through the paste path
// (shared/terminal/paste.ts).
import { mkdtemp, realpath, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, expect, it, onTestFinished } from 'vitest'
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
let page: Page
let sessionId = ''
const problems = new PageProblems()
const sent: string[] = []
/** INPUT frames the page sent to the agent tab. */
const sentAgent: string[] = []

/** The terminal behind a pane, from its test hook (web/src/lib/terminal/test-hooks.ts). */
type Hooked = Window & {
  __clincusTerminals?: Partial<Record<string, { term: import('@xterm/xterm').Terminal }>>
}

const pane = (kind: Kind): string => `[data-terminal="${kind}"]`

function termText(p: Page, kind: Kind): Promise<string> {
  return p.locator(`${pane(kind)} .xterm-rows`).innerText()
}

/** Drags `text` from outside the page and drops it at (x, y), as Chromium delivers it. */
async function dropText(p: Page, x: number, y: number, text: string): Promise<void> {
  const cdp = await p.context().newCDPSession(p)
  const data = { items: [{ mimeType: 'text/plain', data: text }], dragOperationsMask: 1 }
  for (const type of ['dragEnter', 'dragOver', 'drop'] as const)
    await cdp.send('Input.dispatchDragEvent', { type, x, y, data })
  await cdp.detach()
}

let agentAtShell = false

/** The agent tab at a bash prompt: the fake tool exited (its wrapper leaves a login bash). */
async function agentShell(): Promise<void> {
  await page.locator(`${pane('agent')} .term`).click()
  if (agentAtShell) {
    // Whatever an earlier test left on the prompt line goes.
    await page.keyboard.press('Control+U')
    return
  }
  await expect
    .poll(() => termText(page, 'agent'), { timeout: 30_000 })
    .toContain('clincus fake tool')
  await page.keyboard.type('exit')
  await page.keyboard.press('Enter')
  await expect
    .poll(() => termText(page, 'agent'), { timeout: 30_000 })
    .toContain('exited with code 0')
  agentAtShell = true
}

describeIncus('red team: the browser terminal', () => {
  beforeAll(async () => {
    home = await realpath(await mkdtemp(join(tmpdir(), 'clincus-e2e-red-')))
    const webRoot = join(home, 'web')
    await buildSpa(webRoot)
    server = await startLiveServer({ home, webRoot })
    const ws = await server.project('red')
    const res = await fetch(`${server.url}/api/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workspace: ws }),
    })
    const body = (await res.json()) as { id: string }
    expect(res.status, JSON.stringify(body)).toBe(200)
    sessionId = body.id
    browser = await launchChromium()
    const ctx = await newContext(browser, { width: 1280, height: 800 }, { testHooks: true })
    page = problems.watch(await ctx.newPage(), 'red')
    page.on('websocket', (w) => {
      if (w.url().includes('/ws/terminal/'))
        w.on('framesent', ({ payload }) => {
          if (typeof payload !== 'string' && payload[0] === Op.INPUT)
            sentAgent.push(payload.subarray(1).toString('utf8'))
        })
      if (!w.url().includes('/ws/shell/')) return
      w.on('framesent', ({ payload }) => {
        if (typeof payload !== 'string' && payload[0] === Op.INPUT)
          sent.push(payload.subarray(1).toString('utf8'))
      })
    })
    await page.goto(`${server.url}/sessions/${encodeURIComponent(sessionId)}`)
    await page.getByRole('tab', { name: 'Shell' }).click()
    await page.locator(`${pane('shell')}[data-state="open"]`).waitFor({ timeout: 30_000 })
    await page.locator(`${pane('shell')} .term`).click()
    await page.keyboard.type('clear')
    await page.keyboard.press('Enter')
    await waitUntil('the prompt', async () => /\$\s*$/m.test(await termText(page, 'shell')), {
      timeoutMs: 30_000,
    })
  })

  // The tests share one page: after a failed one, the window gets its size back and the shell's
  // prompt line is emptied (a leftover ` #typed...` would turn the next command into a comment).
  // A passing test leaves both as they were, so this does nothing then.
  afterEach(async ({ task }) => {
    if (task.result?.state !== 'fail') return
    await page.setViewportSize({ width: 1280, height: 800 })
    await page.getByRole('tab', { name: 'Shell' }).click()
    await page.locator(`${pane('shell')} .xterm-helper-textarea`).focus()
    await page.keyboard.press('Control+U')
  })

  afterAll(async () => {
    await browser.close().catch(() => undefined)
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  for (const where of ['the middle of the screen', 'the cursor'] as const) {
    it(`text dropped on ${where} sends no escape, control or bare line end`, async () => {
      const file = `/tmp/drop-${where === 'the cursor' ? 'cursor' : 'middle'}`
      const from = sent.length
      let box
      if (where === 'the cursor') {
        box = await page.locator(`${pane('shell')} .xterm-helper-textarea`).boundingBox()
      } else {
        box = await page.locator(`${pane('shell')} .xterm-screen`).boundingBox()
      }
      if (!box) throw new Error('no box')
      // Record the drop as the page sees it, so the test shows the drop did reach the terminal.
      await page.evaluate(() => {
        const w = window as unknown as { __drops?: string[] }
        const fresh = w.__drops === undefined
        w.__drops = []
        if (fresh)
          document.addEventListener(
            'drop',
            (e) => {
              const t = e.target instanceof Element ? e.target.className : ''
              w.__drops?.push(`${t}|${e.dataTransfer?.getData('text/plain') ?? ''}`)
            },
            { capture: true },
          )
      })
      const text = `echo x\x1b[201~\x03  touch ${file}\ntouch ${file}\n`
      const dropAt = (b: { x: number; y: number; width: number; height: number }) =>
        dropText(page, b.x + Math.max(1, b.width / 2), b.y + Math.max(1, b.height / 2), text)
      await dropAt(box)
      // xterm moves its helper textarea to the cursor on the next render frame; a box read just
      // before that frame (the previous test's Ctrl+U had just moved the cursor) lies beside the
      // textarea, and that drop falls on the screen, where nothing accepts it. Read the box again
      // after the frames and drop again until the page has seen one drop (each must send nothing).
      if (where === 'the cursor') {
        const seen = () =>
          page.evaluate(() => (window as unknown as { __drops: string[] }).__drops.length)
        for (let attempt = 0; attempt < 5 && (await seen()) === 0; attempt++) {
          await page.evaluate(
            () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))),
          )
          const again = await page.locator(`${pane('shell')} .xterm-helper-textarea`).boundingBox()
          if (again) await dropAt(again)
        }
      }
      // bash reads input in order: once the typed text shows, a dropped command would have run.
      await page.locator(`${pane('shell')} .term`).click()
      const typed = ` #typed-drop-${where === 'the cursor' ? 'cursor' : 'middle'}`
      await page.keyboard.type(typed)
      await expect.poll(() => termText(page, 'shell'), { timeout: 15_000 }).toContain(typed.trim())
      const drops = await page.evaluate(() => (window as unknown as { __drops: string[] }).__drops)
      // Over the screen nobody accepts the drag, so Chromium fires no drop; over the cursor the
      // drop lands in xterm's helper textarea (an editable element).
      if (where === 'the cursor') {
        expect(drops).toHaveLength(1)
        expect(drops[0]).toContain(`touch ${file}`)
      } else {
        expect(drops).toEqual([])
      }
      const bytes = sent.slice(from).join('')
      expect(JSON.stringify(bytes)).toBe(JSON.stringify(typed))
      expect((await execAsCode(sessionId, `test -e ${file}`)).exitCode).toBe(1)
      await page.keyboard.press('Control+U')
    })
  }

  // tmux draws in the browser's normal screen (terminal-overrides smcup@:rmcup@), so xterm.js
  // reflows what tmux drew when the window is resized, and tmux then redraws the screen. A user
  // who narrows and widens the window must not find the agent's lines doubled in the
  // scrollback (search then finds each line twice).
  it('resizing the window does not duplicate the agent tab lines in the scrollback', async () => {
    await page.getByRole('tab', { name: 'Agent' }).click()
    await page.locator(`${pane('agent')}[data-state="open"]`).waitFor({ timeout: 30_000 })
    await agentShell()
    await page.keyboard.type(
      'clear; for i in $(seq 1 60); do echo "row-$i-$(printf %0100d 0)"; done',
    )
    await page.keyboard.press('Enter')
    await expect.poll(() => termText(page, 'agent'), { timeout: 15_000 }).toContain('row-60-')
    for (const width of [700, 1280, 500, 1280]) {
      await page.setViewportSize({ width, height: 800 })
      await expect
        .poll(
          () => page.evaluate(() => (window as Hooked).__clincusTerminals?.agent?.term.cols ?? 0),
          { timeout: 15_000 },
        )
        .toBeLessThan(width / 5)
      // tmux's redraw at the new size ends with its cursor back on the prompt line.
      await page.keyboard.type(' #w' + String(width))
      await expect
        .poll(() => termText(page, 'agent'), { timeout: 15_000 })
        .toContain('#w' + String(width))
    }
    const all = await page.evaluate(() => {
      const term = (window as Hooked).__clincusTerminals?.agent?.term
      if (!term) throw new Error('no test hook')
      const buf = term.buffer.active
      const lines: string[] = []
      let line = ''
      for (let y = 0; y < buf.length; y++) {
        const l = buf.getLine(y)
        if (!l) continue
        line += l.translateToString(true)
        if (!buf.getLine(y + 1)?.isWrapped) {
          lines.push(line)
          line = ''
        }
      }
      return lines
    })
    const rows = all.filter((l) => /^row-30-/.test(l))
    expect(rows, all.join('\n')).toHaveLength(1)
  })

  // A phone keyboard's clipboard strip (Gboard, SwiftKey) inserts the clip as text input, not as
  // a paste event: Chromium delivers it as `insertText` (CDP Input.insertText does the same).
  // A clip with a line end must not run as typed lines.
  it('text a keyboard inserts in one piece goes through the paste path (clipboard strip)', async () => {
    await page.getByRole('tab', { name: 'Shell' }).click()
    await page.locator(`${pane('shell')} .term`).click()
    const file = '/tmp/insert-text'
    const from = sent.length
    const cdp = await page.context().newCDPSession(page)
    await cdp.send('Input.insertText', { text: `echo x\x03\ntouch ${file}\n` })
    await cdp.detach()
    await page.keyboard.type(' #typed-insert')
    await expect.poll(() => termText(page, 'shell'), { timeout: 15_000 }).toContain('#typed-insert')
    const bytes = sent.slice(from).join('')
    expect(bytes).toContain('echo x')
    // eslint-disable-next-line no-control-regex -- no control character but the markers' ESC and a CR
    expect(bytes.replace(/\x1b\[20[01]~/g, '')).not.toMatch(/[\x00-\x0c\x0e-\x1f]/)
    expect((await execAsCode(sessionId, `test -e ${file}`)).exitCode).toBe(1)
    await page.keyboard.press('Control+U')
  })

  // An agent prints an OSC 8 hyperlink whose target is `javascript:`. xterm.js's default link
  // handler would open it in a window the page creates (about:blank, the dashboard's origin),
  // where a script could drive the API with the user's session. xterm.js 6 ignores OSC 8 links
  // other than http(s) (and the page's CSP, script-src 'self', is the second line). A control
  // link to http:// shows the click does reach the link handler.
  it('an OSC 8 javascript: link is not a link; an http one asks first', async () => {
    await page.getByRole('tab', { name: 'Shell' }).click()
    await page.locator(`${pane('shell')} .term`).click()
    const osc8 = (uri: string, text: string): string =>
      `\\e]8;;${uri}\\e\\\\${text}\\e]8;;\\e\\\\\\n`
    await page.keyboard.type(
      `clear; printf '${osc8('http://127.0.0.1:9/x', 'HTTPLINK')}${osc8('javascript:localStorage.setItem("pwned","1")', 'JSLINK')}'`,
    )
    await page.keyboard.press('Enter')
    const lineOf = async (text: string): Promise<number> =>
      (await termText(page, 'shell')).split('\n').indexOf(text)
    await expect.poll(() => lineOf('JSLINK'), { timeout: 15_000 }).toBeGreaterThan(-1)
    const screen = await page.locator(`${pane('shell')} .xterm-screen`).boundingBox()
    const rows = await page.evaluate(
      () => (window as Hooked).__clincusTerminals?.shell?.term.rows ?? 0,
    )
    if (!screen || rows === 0) throw new Error('no screen')
    const dialogs: string[] = []
    const onDialog = (d: import('playwright-core').Dialog): void => {
      dialogs.push(d.message())
      void d.dismiss()
    }
    page.on('dialog', onDialog)
    onTestFinished(() => {
      page.off('dialog', onDialog)
    })
    const click = async (text: string): Promise<void> => {
      const y = screen.y + (screen.height / rows) * ((await lineOf(text)) + 0.5)
      await page.mouse.move(screen.x + 5, y)
      await page.mouse.move(screen.x + 20, y)
      await page.mouse.click(screen.x + 20, y)
    }
    await click('HTTPLINK')
    await expect.poll(() => dialogs.length, { timeout: 15_000 }).toBe(1)
    expect(dialogs[0]).toContain('http://127.0.0.1:9/x')
    await click('JSLINK')
    await page.mouse.move(screen.x + 5, screen.y + 5)
    // The http link's dialog came at once; the javascript: one never does.
    await click('HTTPLINK')
    await expect.poll(() => dialogs.length, { timeout: 15_000 }).toBe(2)
    expect(dialogs.join('\n')).not.toContain('javascript:')
    expect(await page.evaluate(() => localStorage.getItem('pwned'))).toBeNull()
  })

  // An agent asks tmux to fetch the browser's clipboard: `tmux refresh-client -l` makes tmux send
  // OSC 52 `?` to the browser, and with `allow-passthrough` (which the agent can set: tmux is
  // its own) a DCS passthrough reaches the browser as is. The browser must answer neither.
  it('the agent tab answers no clipboard query: tmux refresh-client -l, DCS passthrough', async () => {
    await page.getByRole('tab', { name: 'Agent' }).click()
    await page.locator(`${pane('agent')}[data-state="open"]`).waitFor({ timeout: 30_000 })
    await agentShell()
    const secret = 'clipboard-secret-' + String(Date.now())
    await page.evaluate((t) => navigator.clipboard.writeText(t), secret).catch(() => undefined)
    // Record the OSC 52 the terminal receives (a handler registered last runs first; returning
    // false passes the sequence on), to show the queries did reach the browser.
    await page.evaluate(() => {
      const w = window as Hooked & { __osc52?: string[] }
      w.__osc52 = []
      w.__clincusTerminals?.agent?.term.parser.registerOscHandler(52, (d) => {
        w.__osc52?.push(d)
        return false
      })
    })
    const from = sentAgent.length
    await page.keyboard.type(
      "clear; tmux set -p allow-passthrough on; tmux refresh-client -l; printf '\\ePtmux;\\e\\e]52;c;?\\a\\e\\\\'; tmux show-buffer 2>&1 | head -c 80; echo; echo DONE-$((6*7))",
    )
    await page.keyboard.press('Enter')
    await expect.poll(() => termText(page, 'agent'), { timeout: 15_000 }).toContain('DONE-42')
    const bytes = sentAgent.slice(from).join('')
    expect(bytes).not.toContain('\x1b]52')
    const seen = await page.evaluate(
      () => (window as Hooked & { __osc52?: string[] }).__osc52 ?? [],
    )
    // tmux's query (`;?`) and the passthrough's (`c;?`) both arrived, and went unanswered.
    expect(seen).toEqual(expect.arrayContaining([';?', 'c;?']))
    expect(await termText(page, 'agent')).not.toContain(secret)
  })
})
