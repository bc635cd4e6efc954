// Issue 17 acceptance (browser): with notifications granted and turned on in Settings, a session
// turning `waiting` while another session's page is open produces exactly one desktop
// notification; clicking it opens the waiting session; the tab title shows "(1)" and the favicon
// a badge. The real app over the in-memory Incus (no daemon needed), Debian's Chromium; the
// `session.agent` events are published on the app's hub by the test, as the status tracker would.
//
// Headless Chromium shows no OS notification to click: an init script wraps `Notification` so each
// instance the page creates is kept, and the test dispatches `click` on it, as the OS would.
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AgentStatus } from '../../shared/schemas/sessions.ts'
import { buildApp, type App } from '../../server/app.ts'
import { configLocations } from '../../server/config/paths.ts'
import { ConfigStore } from '../../server/config/store.ts'
import { HistoryStore } from '../../server/history/store.ts'
import { FakeIncusDriver } from '../../server/incus/fake-driver.ts'
import { Listener } from '../../server/listener.ts'
import { loggerOptions } from '../../server/security/log-redaction.ts'
import { containerName, workspaceHash } from '../../server/sessions/naming.ts'
import { LABEL } from '../../server/sessions/registry.ts'
import { FakeSpawner } from '../../server/test/fake-pty.ts'
import {
  buildSpa,
  CHROMIUM,
  chromiumAvailable,
  launchChromium,
  newContext,
  PageProblems,
} from './support.ts'

const describeBrowser = chromiumAvailable
  ? describe
  : (((name: string, fn: () => void) => {
      describe.skip(`${name} [skipped: no Chromium at ${CHROMIUM}]`, fn)
    }) as unknown as typeof describe)

let home: string
let built: App
let listener: Listener
let url: string
let browser: Browser
let context: BrowserContext
let page: Page
const problems = new PageProblems()
/** The two running sessions: the one the user looks at, and the one that will wait. */
let viewed = ''
let waiting = ''

interface Recorded {
  title: string
  body: string
  tag: string
}

declare global {
  interface Window {
    __notifications?: { title: string; options: NotificationOptions | undefined; n: Notification }[]
  }
}

function agent(status: AgentStatus['status'], reason?: string): AgentStatus {
  return { status, since: new Date().toISOString(), ...(reason ? { reason } : {}) }
}

function publish(id: string, a: AgentStatus): void {
  built.services.hub.publish({ type: 'session.agent', id, agent: a })
}

function notifications(p: Page): Promise<Recorded[]> {
  return p.evaluate(() =>
    (window.__notifications ?? []).map((x) => ({
      title: x.title,
      body: x.options?.body ?? '',
      tag: x.options?.tag ?? '',
    })),
  )
}

function favicon(p: Page): Promise<string | null> {
  return p.evaluate(() => document.querySelector('link[rel~="icon"]')?.getAttribute('href') ?? null)
}

describeBrowser('agent attention in Chromium (issue 17)', () => {
  beforeAll(async () => {
    home = await realpath(await mkdtemp(join(tmpdir(), 'clincus-e2e-attention-')))
    const webRoot = join(home, 'web')
    await buildSpa(webRoot)
    const root = join(home, 'projects')
    await mkdir(join(home, '.config', 'clincus'), { recursive: true })
    await writeFile(
      join(home, '.config', 'clincus', 'config.toml'),
      `[dashboard]\nworkspace_roots = ["${root}"]\n`,
    )
    const driver = new FakeIncusDriver()
    const seed = (project: string, minutesAgo: number): string => {
      const workspace = join(root, project)
      const name = containerName('clincus-', workspaceHash(workspace), 1)
      driver.addInstance(name, {
        status: 'Running',
        config: {
          [LABEL.managed]: 'true',
          [LABEL.ready]: 'true',
          [LABEL.workspace]: workspace,
          [LABEL.tool]: 'claude',
          [LABEL.persistent]: 'false',
          [LABEL.created]: new Date(Date.now() - minutesAgo * 60_000).toISOString(),
        },
      })
      return name
    }
    for (const p of ['shop', 'billing']) await mkdir(join(root, p, '.git'), { recursive: true })
    viewed = seed('shop', 5)
    waiting = seed('billing', 30)
    const env = { HOME: home, CLINCUS_SYSTEM_CONFIG: join(home, 'etc-clincus.toml') }
    built = await buildApp({
      driver,
      config: await ConfigStore.open(configLocations(env, home), env, home),
      history: new HistoryStore(join(home, '.clincus', 'history.jsonl')),
      log: pino(loggerOptions('silent')),
      prefix: 'clincus-',
      home,
      version: '0.0.0-e2e',
      webRoot,
      watchConfig: false,
      monitor: false,
      // The session page opens its terminals: PTYs in memory, never an `incus exec`.
      pty: new FakeSpawner(),
    })
    await built.app.ready()
    listener = new Listener(built.app.server)
    url = `http://127.0.0.1:${await listener.listen(0, '127.0.0.1')}`

    browser = await launchChromium()
    context = await newContext(browser, { width: 1280, height: 800 })
    await context.grantPermissions(['notifications'], { origin: url })
    // Keeps every Notification the page creates (the real one is still made and shown).
    await context.addInitScript(() => {
      const Real = window.Notification
      const made: NonNullable<Window['__notifications']> = []
      const Recording = function (title: string, options?: NotificationOptions): Notification {
        const n = new Real(title, options)
        made.push({ title, options, n })
        return n
      } as unknown as typeof Notification
      Object.defineProperty(Recording, 'permission', { get: () => Real.permission })
      Object.defineProperty(Recording, 'requestPermission', {
        value: (cb?: NotificationPermissionCallback) => Real.requestPermission(cb),
      })
      Object.defineProperty(Recording, 'prototype', { value: Real.prototype })
      window.Notification = Recording
      window.__notifications = made
    })
    page = problems.watch(await context.newPage(), 'attention')
  })

  afterAll(async () => {
    await browser.close().catch(() => undefined)
    await listener.close()
    await built.app.close()
    listener.destroySockets()
    await rm(home, { recursive: true, force: true })
  })

  it('turns notifications on from Settings: granted, no prompt, saved in this browser', async () => {
    await page.goto(`${url}/settings`)
    await page.getByRole('status').filter({ hasText: 'Live updates' }).waitFor()
    const box = page.getByRole('checkbox', {
      name: 'Desktop notifications when an agent waits for you or exits',
    })
    expect(await box.isChecked()).toBe(false)
    await box.check()
    await expect.poll(() => box.isChecked(), { timeout: 10_000 }).toBe(true)
    expect(await page.evaluate(() => localStorage.getItem('clincus.attention'))).toBe(
      '{"notify":true,"sound":false}',
    )
    expect(await page.getByTestId('notify-permission').innerText()).toContain('On.')
  })

  it('notifies once when another session turns waiting; clicking it opens that session', async () => {
    // The user looks at one session's page (in the sidebar, the other sorts below it for now).
    await page.locator(`article[data-session="${viewed}"] a.title`).click()
    await page.waitForURL(`${url}/sessions/${viewed}`)
    await expect.poll(() => page.title()).toBe(`${viewed} · clincus`)
    const order = (): Promise<(string | null)[]> =>
      page
        .locator('aside article[data-session]')
        .evaluateAll((els) => els.map((e) => e.getAttribute('data-session')))
    expect(await order()).toEqual([viewed, waiting])
    expect(await page.evaluate(() => document.visibilityState)).toBe('visible')

    publish(waiting, agent('working'))
    publish(waiting, agent('waiting', 'Allow Bash(npm test)?'))
    await expect.poll(() => page.title(), { timeout: 10_000 }).toBe(`(1) ${viewed} · clincus`)
    await expect.poll(() => notifications(page), { timeout: 10_000 }).toHaveLength(1)
    expect(await notifications(page)).toEqual([
      {
        title: 'billing: the agent waits for you',
        body: 'Allow Bash(npm test)?',
        tag: `clincus-session:${waiting}`,
      },
    ])
    // The attention view: the waiting session comes first, with its badge and its question.
    expect(await order()).toEqual([waiting, viewed])
    const card = page.locator(`article[data-session="${waiting}"]`)
    // Words, not colour alone (the hidden "Agent" is for screen readers).
    expect((await card.getByTestId('agent-status').innerText()).replace(/\s+/g, ' ')).toBe(
      'Agent waiting for you',
    )
    expect(await card.getByTestId('agent-reason').innerText()).toContain('Allow Bash(npm test)?')
    expect(decodeURIComponent((await favicon(page)) ?? '')).toMatch(
      /^data:image\/svg\+xml,<svg.*>1<\/text>/,
    )

    // The same status again (a new question) is no transition; the viewed session turning
    // waiting is not announced. The title counting two shows both events were applied.
    publish(waiting, agent('waiting', 'Allow Bash(npm test)? (again)'))
    publish(viewed, agent('waiting', 'Proceed?'))
    await expect.poll(() => page.title(), { timeout: 10_000 }).toBe(`(2) ${viewed} · clincus`)
    expect(await notifications(page)).toHaveLength(1)

    // The OS reports a click on the notification: the page opens the waiting session.
    await page.evaluate(() => {
      window.__notifications?.[0]?.n.dispatchEvent(new Event('click'))
    })
    await page.waitForURL(`${url}/sessions/${waiting}`, { timeout: 10_000 })
    await expect.poll(() => page.title()).toBe(`(2) ${waiting} · clincus`)

    // Both answered: the count and the badge go away.
    publish(waiting, agent('working'))
    publish(viewed, agent('idle'))
    await expect.poll(() => page.title(), { timeout: 10_000 }).toBe(`${waiting} · clincus`)
    expect(await favicon(page)).toBe('/favicon.svg')
    expect(await notifications(page)).toHaveLength(1)
    expect(problems.list).toEqual([])
  })
})
