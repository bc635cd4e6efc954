// Issue 5 acceptance: the dashboard in Debian's Chromium (driven by playwright-core, never a
// downloaded browser) against the real server and the live Incus daemon. The steps run in order
// on one page, like a person would; each saves a screenshot under test-results/e2e/.
//
// UPDATE_SCREENSHOTS=1 also copies the README's three (projects, live terminal, phone) into
// docs/screenshots/.
import { copyFile, mkdir, mkdtemp, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describeIncus, startLiveServer, type LiveServer } from '../../server/test/incus-harness.ts'
import { buildSpa, launchChromium, newContext, PageProblems, repo } from './support.ts'

const shots = join(repo, 'test-results', 'e2e')
const readme = join(repo, 'docs', 'screenshots')

let home: string
let webRoot: string
let server: LiveServer
let browser: Browser
let context: BrowserContext
let page: Page
let sessionId = ''
const problems = new PageProblems()

async function shot(p: Page, name: string, readmeName?: string): Promise<void> {
  const file = join(shots, `${name}.png`)
  await p.screenshot({ path: file })
  if (readmeName && process.env.UPDATE_SCREENSHOTS === '1') {
    await mkdir(readme, { recursive: true })
    await copyFile(file, join(readme, `${readmeName}.png`))
  }
}

/** What a terminal pane shows (the DOM renderer keeps the rows as text). */
function termText(p: Page, kind: 'agent' | 'shell'): Promise<string> {
  return p.locator(`[data-terminal="${kind}"] .xterm-rows`).innerText()
}

async function typeInto(p: Page, kind: 'agent' | 'shell', text: string): Promise<void> {
  await p.locator(`[data-terminal="${kind}"] .term`).click()
  await p.keyboard.type(text)
  await p.keyboard.press('Enter')
}

async function newPage(c: BrowserContext, label: string): Promise<Page> {
  return problems.watch(await c.newPage(), label)
}

describeIncus('the dashboard in Chromium', () => {
  beforeAll(async () => {
    home = await realpath(await mkdtemp(join(tmpdir(), 'clincus-e2e-')))
    webRoot = join(home, 'web')
    await buildSpa(webRoot)
    server = await startLiveServer({ home, webRoot })
    await server.project('demo')
    await server.project('api-server')
    await writeFile(join(await server.project('docs-site'), '.clincus.toml'), '[defaults]\n')
    await mkdir(shots, { recursive: true })
    browser = await launchChromium()
    context = await newContext(browser, { width: 1280, height: 800 })
    page = await newPage(context, 'desktop')
  })

  afterAll(async () => {
    await browser.close().catch(() => undefined)
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('opens the dashboard: projects grouped by root, live updates on', async () => {
    await page.goto(server.url)
    await expect.poll(() => page.title()).toBe('Projects · clincus')
    const card = page.getByRole('article', { name: 'demo', exact: true })
    await card.waitFor()
    expect(await card.innerText()).toContain(join(server.root, 'demo'))
    await page.getByRole('status').filter({ hasText: 'Live updates' }).waitFor()
    const docs = page.getByRole('article', { name: 'docs-site', exact: true })
    expect(await docs.innerText()).toContain('.clincus.toml')
    await shot(page, '01-projects')
  })

  it('launches a session on a project with one click, showing launch progress', async () => {
    await page.getByRole('button', { name: 'Launch a session in demo' }).click()
    // The card follows session.launching events until the server answers.
    await page
      .getByRole('progressbar', { name: 'Launch progress for demo' })
      .waitFor({ timeout: 10_000 })
    await shot(page, '02-launching')
    await page.waitForURL(/\/sessions\/[^/]+$/, { timeout: 120_000 })
    sessionId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop() ?? '')
    expect(sessionId.startsWith(server.prefix)).toBe(true)
    await page.locator('[data-terminal="agent"][data-state="open"]').waitFor({ timeout: 30_000 })
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('demo')
  })

  it('types hello + Enter in the agent terminal and sees hello-BACK', async () => {
    await expect
      .poll(() => termText(page, 'agent'), { timeout: 30_000 })
      .toContain('clincus fake tool')
    await typeInto(page, 'agent', 'hello')
    await expect.poll(() => termText(page, 'agent'), { timeout: 30_000 }).toContain('hello-BACK')
    await shot(page, '03-terminal', 'session')
  })

  it('opens the shell tab and runs id -u: 1000', async () => {
    await page.getByRole('tab', { name: 'Shell' }).click()
    await page.locator('[data-terminal="shell"][data-state="open"]').waitFor({ timeout: 30_000 })
    // The hidden agent pane kept its size: a hidden tab is never fitted to zero.
    expect(await page.locator('[data-terminal="agent"]').getAttribute('data-size')).toMatch(
      /^\d{2,}x\d{2,}$/,
    )
    await typeInto(page, 'shell', 'id -u')
    await expect.poll(() => termText(page, 'shell'), { timeout: 30_000 }).toMatch(/^1000\s*$/m)
    await shot(page, '04-shell')
  })

  it('pastes 190 KB into the shell intact (chunked), and a multi-line paste bracketed', async () => {
    const lines = Array.from(
      { length: 3000 },
      (_, i) => `${String(i).padStart(5, '0')} ${'x'.repeat(57)}`,
    )
    const text = `${lines.join('\n')}\n`
    const paste = (t: string): Promise<void> =>
      page.locator('[data-terminal="shell"] .term').evaluate((el, data) => {
        const dt = new DataTransfer()
        dt.setData('text/plain', data)
        el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true }))
      }, t)
    await typeInto(page, 'shell', 'stty -echo; cat > /tmp/paste.txt; stty echo')
    await paste(text)
    await page.keyboard.press('Control+D')
    await typeInto(page, 'shell', 'clear; wc -c < /tmp/paste.txt; md5sum < /tmp/paste.txt')
    const md5 = createHash('md5').update(text).digest('hex')
    await expect
      .poll(() => termText(page, 'shell'), { timeout: 60_000 })
      .toMatch(new RegExp(`^${Buffer.byteLength(text)}\\s*$[\\s\\S]*${md5}`, 'm'))

    // bash turns on bracketed paste at its prompt: the two lines arrive as one paste and wait
    // for Enter instead of running line by line.
    await typeInto(page, 'shell', 'clear')
    await paste('echo first-line\necho second-line')
    await expect.poll(() => termText(page, 'shell')).toContain('echo second-line')
    expect(await termText(page, 'shell')).not.toMatch(/^first-line\s*$/m)
    await page.keyboard.press('Enter')
    await expect.poll(() => termText(page, 'shell')).toMatch(/^second-line\s*$/m)

    // The terminal takes Tab for itself; Ctrl+Shift+M is the keyboard's way out, to the tabs,
    // and the arrow keys move between them.
    await page.keyboard.press('Control+Shift+M')
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('tab-shell')
    await page.keyboard.press('ArrowLeft')
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('tab-agent')
    expect(await page.getByRole('tab', { name: 'Agent' }).getAttribute('aria-selected')).toBe(
      'true',
    )
  })

  it('keeps the terminal output across a reload in the middle of the session', async () => {
    await page.reload()
    await page.locator('[data-terminal="agent"][data-state="open"]').waitFor({ timeout: 30_000 })
    await expect.poll(() => termText(page, 'agent'), { timeout: 30_000 }).toContain('hello-BACK')
    await shot(page, '05-after-reload')
  })

  it('counts the running session on its project card', async () => {
    const main = page.getByRole('navigation', { name: 'Main' })
    await main.getByRole('link', { name: 'Projects' }).click()
    const card = page.getByRole('article', { name: 'demo', exact: true })
    expect(await card.getByTestId('active-count').innerText()).toBe('1 active')
    await shot(page, '05b-projects-active', 'projects')
    await page.goBack()
    await page.locator('[data-terminal="agent"][data-state="open"]').waitFor({ timeout: 30_000 })
  })

  it('works on a 390×844 phone', async () => {
    const phone = await newContext(browser, { width: 390, height: 844 })
    try {
      const p = await newPage(phone, 'phone')
      await p.goto(server.url)
      await p.getByRole('article', { name: 'demo', exact: true }).waitFor()
      await p.getByTestId('active-count').waitFor()
      const overflow = await p.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      )
      expect(overflow).toBe(0)
      await shot(p, '06-phone-projects')
      await p.goto(`${server.url}/sessions/${encodeURIComponent(sessionId)}`)
      await p.locator('[data-terminal="agent"][data-state="open"]').waitFor({ timeout: 30_000 })
      await expect.poll(() => termText(p, 'agent'), { timeout: 30_000 }).toContain('hello-BACK')
      await shot(p, '07-phone-session', 'phone')
      // The session list lives in a drawer on a phone.
      await p.getByRole('button', { name: /Sessions/ }).click()
      await p.getByRole('article', { name: 'Session demo (slot 1)' }).waitFor()
      await shot(p, '08-phone-drawer')
    } finally {
      await phone.close()
    }
  })

  it('renders with WebGL when the browser has it, else the DOM renderer, in the dark theme', async () => {
    const dark = await newContext(
      browser,
      { width: 1280, height: 800 },
      {
        renderer: 'auto',
        colorScheme: 'dark',
      },
    )
    try {
      const p = await newPage(dark, 'auto-renderer')
      await p.goto(`${server.url}/sessions/${encodeURIComponent(sessionId)}`)
      const pane = p.locator('[data-terminal="agent"][data-state="open"]')
      await pane.waitFor({ timeout: 30_000 })
      const webgl = await p.evaluate(
        () => document.createElement('canvas').getContext('webgl2') !== null,
      )
      expect(await pane.getAttribute('data-renderer')).toBe(webgl ? 'webgl' : 'dom')
      await shot(p, '08b-dark-session')
    } finally {
      await dark.close()
    }
  })

  it('stops the session from its card and shows the new status without a reload', async () => {
    await page.evaluate(() => {
      sessionStorage.setItem('e2e-marker', 'same page')
      Object.assign(window, { e2eMarker: true })
    })
    const card = page.getByRole('article', { name: 'Session demo (slot 1)' })
    expect(await card.getAttribute('data-status')).toBe('running')
    await card.getByRole('button', { name: 'Stop demo (slot 1)' }).click()
    await page
      .locator(`[data-session="${sessionId}"][data-status="stopped"]`)
      .waitFor({ timeout: 60_000 })
    expect(await page.evaluate(() => 'e2eMarker' in window)).toBe(true)
    // The terminal notices too, and offers to resume.
    await page.getByRole('button', { name: 'Resume the session' }).waitFor()
    await shot(page, '09-stopped')
  })

  it('resumes the stopped session and the terminal reconnects by itself', async () => {
    await page.getByRole('button', { name: 'Resume the session' }).click()
    await page
      .locator(`[data-session="${sessionId}"][data-status="running"]`)
      .waitFor({ timeout: 60_000 })
    await page.locator('[data-terminal="agent"][data-state="open"]').waitFor({ timeout: 30_000 })
    await typeInto(page, 'agent', 'again')
    await expect.poll(() => termText(page, 'agent'), { timeout: 30_000 }).toContain('again-BACK')
  })

  it('creates a project folder', async () => {
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Projects' })
      .click()
    await page.getByRole('button', { name: 'New project in projects' }).click()
    const dialog = page.getByRole('dialog', { name: 'New project in projects' })
    const name = dialog.getByRole('textbox', { name: 'Folder name' })
    await name.fill('Not Valid')
    await dialog.getByRole('button', { name: 'Create', exact: true }).click()
    await dialog.getByText('Use lowercase letters, digits and single hyphens').waitFor()
    await name.fill('fresh-app')
    await shot(page, '10-new-project')
    await dialog.getByRole('button', { name: 'Create', exact: true }).click()
    await page.getByRole('article', { name: 'fresh-app', exact: true }).waitFor()
    expect((await stat(join(server.root, 'fresh-app'))).isDirectory()).toBe(true)
    // The same name again: the server's refusal is shown as a sentence.
    problems.expected.add('POST /api/workspaces/folder 409')
    await page.getByRole('button', { name: 'New project in projects' }).click()
    await dialog.getByRole('textbox', { name: 'Folder name' }).fill('fresh-app')
    await dialog.getByRole('button', { name: 'Create', exact: true }).click()
    const alert = dialog.getByRole('alert')
    await alert.waitFor()
    expect(await alert.innerText()).toMatch(/already exists/)
    expect(await alert.innerText()).not.toContain('{')
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    await shot(page, '11-project-created')
  })

  it('adds and removes a workspace root in settings (saved to the config file)', async () => {
    const extra = join(home, 'more-projects')
    await mkdir(join(extra, 'other', '.git'), { recursive: true })
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Settings' })
      .click()
    await page.getByRole('heading', { name: 'Workspace roots' }).waitFor()
    await page.getByRole('textbox', { name: 'New workspace root' }).fill(extra)
    await page.getByRole('button', { name: 'Add root' }).click()
    const remove = page.getByRole('button', { name: `Remove workspace root ${extra}` })
    await remove.waitFor()
    await expect.poll(() => readFile(server.configFile, 'utf8')).toContain(extra)
    await shot(page, '12-settings-root-added')
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Projects' })
      .click()
    await page.getByRole('article', { name: 'other', exact: true }).waitFor()
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Settings' })
      .click()
    await remove.click()
    await remove.waitFor({ state: 'detached' })
    await expect.poll(() => readFile(server.configFile, 'utf8')).not.toContain(extra)
    await shot(page, '13-settings-root-removed')
  })

  it('shows a config file that stopped parsing until it is fixed', async () => {
    const good = await readFile(server.configFile, 'utf8')
    await writeFile(server.configFile, `${good}\n[dashboard\nbroken = \n`)
    const banner = page.getByTestId('config-invalid')
    await banner.waitFor({ timeout: 30_000 })
    expect(await banner.innerText()).toContain(server.configFile)
    await shot(page, '13b-config-invalid')
    await writeFile(server.configFile, good)
    await banner.waitFor({ state: 'detached', timeout: 30_000 })
  })

  it('shows the history, one page at a time', async () => {
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'History' })
      .click()
    const row = page.getByRole('row').filter({ hasText: sessionId }).first()
    await row.waitFor()
    expect(await row.innerText()).toContain('demo')
    await shot(page, '14-history')
  })

  it('names every control for assistive technology on every page', async () => {
    for (const path of [
      '/',
      `/sessions/${encodeURIComponent(sessionId)}`,
      '/history',
      '/settings',
    ]) {
      await page.goto(server.url + path)
      await page.getByRole('heading', { level: 1 }).first().waitFor()
      const unnamed = await page.evaluate(() => {
        const named = (el: Element): boolean => {
          const label = el.getAttribute('aria-label') ?? el.getAttribute('aria-labelledby')
          if (label) return true
          if ((el as HTMLElement).innerText.trim() !== '') return true
          const id = el.getAttribute('id')
          if (id && document.querySelector(`label[for="${CSS.escape(id)}"]`)) return true
          return el.closest('label') !== null
        }
        return [...document.querySelectorAll('button, a[href], input, select, textarea')]
          .filter((el) => !el.closest('.xterm') && !(el as HTMLElement).hidden && !named(el))
          .map((el) => el.outerHTML.slice(0, 120))
      })
      expect(unnamed, path).toEqual([])
    }
  })

  it('logged no console errors and no unexpected failed requests', () => {
    expect(problems.list).toEqual([])
  })
})
