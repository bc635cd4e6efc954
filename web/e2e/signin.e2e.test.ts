// Signing in, in Chromium, against the real app with token auth over the in-memory Incus (no
// daemon needed): the page asks for the token and says plainly when it is wrong; the printed
// link's code works once and leaves the address bar; the sign-in session lives in the origin's own
// storage (no cookie), so a listener on another port of 127.0.0.1 gets no credential, and two
// clincus servers on two ports stay signed in side by side; Sign out ends one of them.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp, type App } from '../../server/app.ts'
import { configLocations } from '../../server/config/paths.ts'
import { ConfigStore } from '../../server/config/store.ts'
import { HistoryStore } from '../../server/history/store.ts'
import { FakeIncusDriver } from '../../server/incus/fake-driver.ts'
import { Listener } from '../../server/listener.ts'
import { loggerOptions } from '../../server/security/log-redaction.ts'
import {
  buildSpa,
  CHROMIUM,
  chromiumAvailable,
  launchChromium,
  newContext,
  PageProblems,
  repo,
} from './support.ts'

const TOKEN = 'e2e-token-0123456789-abcdefghijklmnopqrstuvwxyz'
const TOKEN_B = 'e2e-token-b-0123456789-abcdefghijklmnopqrstuvwxyz'

interface Dashboard {
  built: App
  listener: Listener
  url: string
  token: string
}

let home: string
let webRoot: string
let a: Dashboard
let b: Dashboard
let browser: Browser

const describeBrowser = chromiumAvailable
  ? describe
  : (((name: string, fn: () => void) => {
      describe.skip(`${name} [skipped: no Chromium at ${CHROMIUM}]`, fn)
    }) as unknown as typeof describe)

async function startDashboard(name: string, token: string): Promise<Dashboard> {
  const dir = join(home, name)
  const root = join(dir, 'projects')
  await mkdir(join(root, 'site', '.git'), { recursive: true })
  await mkdir(join(dir, '.config', 'clincus'), { recursive: true })
  await writeFile(
    join(dir, '.config', 'clincus', 'config.toml'),
    `[dashboard]\nworkspace_roots = ["${root}"]\n`,
  )
  const env = { HOME: dir, CLINCUS_SYSTEM_CONFIG: join(dir, 'etc-clincus.toml') }
  const built = await buildApp({
    driver: new FakeIncusDriver(),
    config: await ConfigStore.open(configLocations(env, dir), env, dir),
    history: new HistoryStore(join(dir, '.clincus', 'history.jsonl')),
    log: pino(loggerOptions('silent')),
    prefix: 'clincus-',
    home: dir,
    version: '0.0.0-e2e',
    webRoot,
    watchConfig: false,
    auth: { mode: 'token', token },
  })
  await built.app.ready()
  const listener = new Listener(built.app.server)
  const url = `http://127.0.0.1:${await listener.listen(0, '127.0.0.1')}`
  return { built, listener, url, token }
}

async function stopDashboard(d: Dashboard | undefined): Promise<void> {
  if (!d) return
  await d.listener.close()
  await d.built.app.close()
  d.listener.destroySockets()
}

/** The printed link: a fresh single-use code. */
function link(d: Dashboard): string {
  return `${d.url}/?code=${d.built.security.credentials.issueCode().code}`
}

async function live(page: Page): Promise<void> {
  await page.getByRole('article', { name: 'site', exact: true }).waitFor()
  await page.getByRole('status').filter({ hasText: 'Live updates' }).waitFor()
}

const storedSession = (page: Page): Promise<string | null> =>
  page.evaluate(() => localStorage.getItem('clincus.session'))

describeBrowser('signing in to the dashboard', () => {
  beforeAll(async () => {
    home = await realpath(await mkdtemp(join(tmpdir(), 'clincus-signin-')))
    webRoot = join(home, 'web')
    await buildSpa(webRoot)
    a = await startDashboard('a', TOKEN)
    b = await startDashboard('b', TOKEN_B)
    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser.close().catch(() => undefined)
    await stopDashboard(a)
    await stopDashboard(b)
    await rm(home, { recursive: true, force: true })
  })

  it('asks for the token, refuses a wrong one plainly, and goes live with the right one', async () => {
    const context = await newContext(browser, { width: 1280, height: 800 })
    const problems = new PageProblems()
    // Signed out, the first requests are refused: that is how the page learns it must ask.
    for (const refused of [
      'GET /api/sessions 401',
      'GET /api/workspaces 401',
      'GET /api/config 401',
      'GET /api/tools 401',
      'POST /api/auth/login 401',
    ])
      problems.expected.add(refused)
    const page = problems.watch(await context.newPage(), 'signin')
    await page.goto(a.url)
    await page.getByRole('heading', { name: 'Sign in to clincus' }).waitFor()
    await page.screenshot({ path: join(repo, 'test-results', 'e2e', '00-sign-in.png') })

    const input = page.getByLabel('Access token')
    await input.fill('not-the-token')
    await page.getByRole('button', { name: 'Sign in' }).click()
    const alert = page.getByRole('alert')
    await alert.waitFor()
    expect(await alert.innerText()).toBe(
      'That token is not valid. Copy it again from the token file.',
    )

    await input.fill(TOKEN)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await live(page)
    // No cookie at all; the page holds a sign-in session, not the token.
    expect(await context.cookies()).toEqual([])
    const session = await storedSession(page)
    expect(session).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(session).not.toBe(TOKEN)

    // The session holds across a reload: no second sign-in.
    await page.reload()
    await live(page)
    expect(problems.list).toEqual([])
    await context.close()
  })

  it('signs in once through the printed link and drops the code from the address bar', async () => {
    const context = await newContext(browser, { width: 1280, height: 800 })
    const page = await context.newPage()
    const url = link(a)
    await page.goto(url)
    await live(page)
    expect(page.url()).toBe(`${a.url}/`)
    await context.close()

    // The same link a second time (from the history, a log, a shoulder): refused, plainly.
    const again = await newContext(browser, { width: 1280, height: 800 })
    const second = await again.newPage()
    await second.goto(url)
    await second.getByRole('heading', { name: 'Sign in to clincus' }).waitFor()
    expect(await second.getByRole('alert').innerText()).toMatch(/expired or was used already/)
    expect(second.url()).toBe(`${a.url}/`)
    await again.close()
  })

  it('keeps two servers on two ports signed in side by side; Sign out ends only one', async () => {
    const context = await newContext(browser, { width: 1280, height: 800 })
    const pageA = await context.newPage()
    await pageA.goto(link(a))
    await live(pageA)
    const pageB = await context.newPage()
    await pageB.goto(link(b))
    await live(pageB)
    const sessionA = await storedSession(pageA)
    const sessionB = await storedSession(pageB)
    expect(sessionA).not.toBeNull()
    expect(sessionB).not.toBeNull()
    expect(sessionA).not.toBe(sessionB)

    // Signing in to B did not sign A out.
    await pageA.reload()
    await live(pageA)

    await pageB.goto(`${b.url}/settings`)
    await pageB.getByRole('button', { name: 'Sign out' }).click()
    await pageB.getByRole('heading', { name: 'Sign in to clincus' }).waitFor()
    expect(await storedSession(pageB)).toBeNull()
    // Revoked on the server, not only forgotten by the page.
    const revoked = await fetch(`${b.url}/api/sessions`, {
      headers: { authorization: `Bearer ${sessionB ?? ''}` },
    })
    expect(revoked.status).toBe(401)
    await pageB.reload()
    await pageB.getByRole('heading', { name: 'Sign in to clincus' }).waitFor()

    // A is still signed in.
    await pageA.reload()
    await live(pageA)
    await context.close()
  })

  it('gives a listener on another port of 127.0.0.1 no usable credential', async () => {
    const context = await newContext(browser, { width: 1280, height: 800 })
    const page = await context.newPage()
    await page.goto(link(a))
    await live(page)
    const session = (await storedSession(page)) ?? ''
    expect(session).not.toBe('')

    // Another local user's server: records every request it gets, and serves a page that loads
    // sub-resources, fetches and WebSockets both from itself and from the dashboard.
    const seen: IncomingMessage[] = []
    const raw: string[] = []
    const target = a.url
    const attack = `<!doctype html><img src="/pixel.png"><img src="${target}/api/sessions">
      <script src="/app.js"></script><link rel="stylesheet" href="${target}/api/config">
      <script>
      const target = ${JSON.stringify(target)}
      function socket(url) {
        return new Promise((resolve) => {
          const s = new WebSocket(url)
          s.onopen = () => { resolve('opened'); s.close() }
          s.onerror = () => resolve('refused')
        })
      }
      async function get(url) {
        try { return (await fetch(url, { credentials: 'include' })).status } catch { return 'blocked' }
      }
      (async () => {
        const own = location.origin.replace('http', 'ws')
        window.results = {
          stored: localStorage.getItem('clincus.session'),
          ownFetch: await get('/data'),
          ownSocket: await socket(own + '/ws'),
          sessions: await get(target + '/api/sessions'),
          events: await socket(target.replace('http', 'ws') + '/ws/events'),
          shell: await socket(target.replace('http', 'ws') + '/ws/shell/clincus-12345678-1'),
        }
        document.title = 'done'
      })()
      </script>`
    const evil: Server = createServer((req, res) => {
      seen.push(req)
      raw.push(JSON.stringify({ url: req.url, headers: req.headers }))
      if (req.url === '/') {
        res.writeHead(200, { 'content-type': 'text/html' })
        res.end(attack)
      } else {
        res.writeHead(404)
        res.end()
      }
    })
    evil.on('upgrade', (req, sock) => {
      seen.push(req)
      raw.push(JSON.stringify({ url: req.url, headers: req.headers }))
      sock.destroy()
    })
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve))
    const evilPort = (evil.address() as AddressInfo).port
    try {
      const attacked = await context.newPage()
      await attacked.goto(`http://127.0.0.1:${evilPort}/`)
      await attacked.waitForFunction(() => document.title === 'done', undefined, {
        timeout: 30_000,
      })
      const results = await attacked.evaluate(
        () => (globalThis as unknown as { results: Record<string, unknown> }).results,
      )
      expect(results.stored).toBeNull()
      expect(results.sessions).toBe('blocked')
      expect(results.events).toBe('refused')
      expect(results.shell).toBe('refused')
      expect(seen.map((r) => r.url)).toEqual(expect.arrayContaining(['/', '/pixel.png', '/data']))
      for (const r of seen) {
        expect(r.headers.cookie, r.url).toBeUndefined()
        expect(r.headers.authorization, r.url).toBeUndefined()
      }
      expect(raw.join('\n')).not.toContain(session)
      expect(raw.join('\n')).not.toContain(TOKEN)
    } finally {
      evil.closeAllConnections()
      await new Promise((resolve) => evil.close(resolve))
    }
    // The dashboard page is still signed in and unaffected.
    await page.reload()
    await live(page)
    await context.close()
  })
})
