// Issue 15 acceptance (browser): the dashboard applies the state that events carry instead of
// refetching. A session paused and resumed outside clincus (`incus pause` / `incus resume`) shows
// as "paused" and back as "running" with no request to /api/sessions; adding a workspace root in
// Settings costs one request, and the config.reloaded it causes none. Requests are counted with
// playwright's page.on('request'). Real server, live Incus daemon, Debian's Chromium.
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describeIncus, startLiveServer, type LiveServer } from '../../server/test/incus-harness.ts'
import { buildSpa, launchChromium, newContext, PageProblems } from './support.ts'

let home: string
let server: LiveServer
let browser: Browser
let context: BrowserContext
let page: Page
let sessionId = ''
const problems = new PageProblems()

/** Every request the page made to the API, "METHOD /path", in order; and those still open. */
const requests: string[] = []
let pending = 0
/** Resolvers waiting for an event of a type on the page's events socket. */
const frameWaiters: { type: string; resolve: () => void }[] = []

function apiPath(url: string): string | null {
  const path = new URL(url).pathname
  return path.startsWith('/api/') ? path : null
}

/** The requests since index `from`, but the health poll's (its timer may fire at any time). */
function since(from: number): string[] {
  return requests.slice(from).filter((r) => r !== 'GET /api/health')
}

function count(what: string): number {
  return requests.filter((r) => r === what).length
}

/** Resolves when the page's events socket next receives an event of `type`. */
function nextEvent(type: string): Promise<void> {
  return new Promise((resolve) => frameWaiters.push({ type, resolve }))
}

/** The status badge of the session's card in the sidebar. */
function badge(p: Page, id: string): Promise<string> {
  return p.locator(`article[data-session="${id}"] [data-testid="session-status"]`).innerText()
}

/** Waits until every API request the page started has finished. */
async function settled(): Promise<void> {
  await expect.poll(() => pending, { timeout: 30_000 }).toBe(0)
}

async function incus(...args: string[]): Promise<void> {
  await execa('incus', args, { timeout: 60_000 })
}

describeIncus('state from events in Chromium (issue 15)', () => {
  beforeAll(async () => {
    home = await realpath(await mkdtemp(join(tmpdir(), 'clincus-e2e-live-')))
    const webRoot = join(home, 'web')
    await buildSpa(webRoot)
    server = await startLiveServer({ home, webRoot })
    sessionId = await server.launch('pause-demo')
    browser = await launchChromium()
    context = await newContext(browser, { width: 1280, height: 800 })
    page = problems.watch(await context.newPage(), 'desktop')
    page.on('request', (r) => {
      const path = apiPath(r.url())
      if (!path) return
      requests.push(`${r.method()} ${path}`)
      pending++
    })
    const done = (r: { url(): string }): void => {
      if (apiPath(r.url())) pending--
    }
    page.on('requestfinished', done)
    page.on('requestfailed', done)
    page.on('websocket', (ws) => {
      ws.on('framereceived', ({ payload }) => {
        if (typeof payload !== 'string') return
        let type: unknown
        try {
          type = (JSON.parse(payload) as { type?: unknown }).type
        } catch {
          return
        }
        for (const w of frameWaiters.filter((x) => x.type === type)) {
          frameWaiters.splice(frameWaiters.indexOf(w), 1)
          w.resolve()
        }
      })
    })
  })

  afterAll(async () => {
    // A frozen container is resumed before the harness deletes it.
    if (sessionId) await execa('incus', ['resume', sessionId], { reject: false, timeout: 60_000 })
    await browser.close().catch(() => undefined)
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('shows a session paused outside clincus as "paused", and resumed as running, without refetching', async () => {
    await page.goto(server.url)
    await page.getByRole('status').filter({ hasText: 'Live updates' }).waitFor()
    await expect.poll(() => badge(page, sessionId), { timeout: 30_000 }).toBe('running')
    // The loads of the start and of the socket's open are over: from here, nothing may ask.
    await settled()
    const before = count('GET /api/sessions')

    await incus('pause', '--', sessionId)
    await expect.poll(() => badge(page, sessionId), { timeout: 5_000 }).toBe('paused')
    expect(
      await page.locator(`article[data-session="${sessionId}"]`).getAttribute('data-status'),
    ).toBe('frozen')
    expect(count('GET /api/sessions')).toBe(before)

    await incus('resume', '--', sessionId)
    await expect.poll(() => badge(page, sessionId), { timeout: 5_000 }).toBe('running')
    await settled()
    expect(count('GET /api/sessions')).toBe(before)
  })

  it('adds a workspace root in Settings with one request; its config.reloaded costs none', async () => {
    const root = join(home, 'more-projects')
    await mkdir(root)
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Settings' })
      .click()
    await page.getByRole('heading', { level: 1, name: 'Settings' }).waitFor()
    await settled()
    const from = requests.length

    const reloaded = nextEvent('config.reloaded')
    await page.getByLabel('New workspace root').fill(root)
    await page.getByRole('button', { name: 'Add root' }).click()
    await page.getByRole('button', { name: `Remove workspace root ${root}` }).waitFor()
    await reloaded
    // The page has handled the event once a task queued after it has run.
    await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 0)))
    await settled()
    expect(since(from)).toEqual(['POST /api/workspaces'])

    // The new root's projects are fetched when the project list is shown: one GET.
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Projects' })
      .click()
    await page.getByRole('heading', { level: 2, name: /more-projects/ }).waitFor()
    await settled()
    expect(since(from)).toEqual(['POST /api/workspaces', 'GET /api/workspaces'])
  })

  it('logged no console errors and no unexpected failed requests', () => {
    expect(problems.list).toEqual([])
  })
})
