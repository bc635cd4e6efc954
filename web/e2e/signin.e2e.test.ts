// The sign-in page in Chromium, against the real app with token auth over the in-memory Incus
// (no daemon needed): without the session cookie the dashboard asks for the token, says plainly
// when it is wrong, and goes live once it is right.
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp, type App } from '../../server/app.ts'
import { configLocations } from '../../server/config/paths.ts'
import { ConfigStore } from '../../server/config/store.ts'
import { HistoryStore } from '../../server/history/store.ts'
import { FakeIncusDriver } from '../../server/incus/fake-driver.ts'
import { Listener } from '../../server/listener.ts'
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

let home: string
let built: App
let listener: Listener
let url: string
let browser: Browser

const describeBrowser = chromiumAvailable
  ? describe
  : (((name: string, fn: () => void) => {
      describe.skip(`${name} [skipped: no Chromium at ${CHROMIUM}]`, fn)
    }) as unknown as typeof describe)

describeBrowser('signing in to the dashboard', () => {
  beforeAll(async () => {
    home = await realpath(await mkdtemp(join(tmpdir(), 'clincus-signin-')))
    const webRoot = join(home, 'web')
    await buildSpa(webRoot)
    const root = join(home, 'projects')
    await mkdir(join(root, 'site', '.git'), { recursive: true })
    await mkdir(join(home, '.config', 'clincus'), { recursive: true })
    await writeFile(
      join(home, '.config', 'clincus', 'config.toml'),
      `[dashboard]\nworkspace_roots = ["${root}"]\n`,
    )
    const env = { HOME: home, CLINCUS_SYSTEM_CONFIG: join(home, 'etc-clincus.toml') }
    built = await buildApp({
      driver: new FakeIncusDriver(),
      config: await ConfigStore.open(configLocations(env, home), env, home),
      history: new HistoryStore(join(home, '.clincus', 'history.jsonl')),
      log: pino({ level: 'silent' }),
      prefix: 'clincus-',
      home,
      version: '0.0.0-e2e',
      webRoot,
      watchConfig: false,
      auth: { mode: 'token', token: TOKEN },
    })
    await built.app.ready()
    listener = new Listener(built.app.server)
    url = `http://127.0.0.1:${await listener.listen(0, '127.0.0.1')}`
    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser.close().catch(() => undefined)
    await listener.close()
    await built.app.close()
    listener.destroySockets()
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
    await page.goto(url)
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
    await page.getByRole('article', { name: 'site', exact: true }).waitFor()
    await page.getByRole('status').filter({ hasText: 'Live updates' }).waitFor()
    const cookies = await context.cookies()
    expect(cookies.map((c) => c.name)).toContain('clincus_session')
    expect(JSON.stringify(cookies)).not.toContain(TOKEN)

    // The cookie holds across a reload: no second sign-in.
    await page.reload()
    await page.getByRole('article', { name: 'site', exact: true }).waitFor()
    expect(problems.list).toEqual([])
    await context.close()
  })
})
