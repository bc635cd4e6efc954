// What the browser tests share: Debian's Chromium (never a downloaded browser) with the flags
// that keep it off the network, and a build of this tree's SPA for the server to serve.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { execa } from 'execa'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'

export const repo = resolve(import.meta.dirname, '..', '..')
export const CHROMIUM = process.env.CLINCUS_IT_CHROMIUM ?? '/usr/bin/chromium'
export const chromiumAvailable = existsSync(CHROMIUM)

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** Builds the SPA into `outDir` (each test file serves exactly this tree's code). */
export async function buildSpa(outDir: string): Promise<void> {
  await execa('npx', ['vite', 'build', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'], {
    cwd: repo,
    timeout: 120_000,
  })
}

/** A fresh headless Chromium; playwright gives each launch a temporary profile. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS })
}

export async function newContext(
  browser: Browser,
  viewport: { width: number; height: number },
  opts: {
    renderer?: 'dom' | 'auto'
    colorScheme?: 'light' | 'dark'
    /** Exposes each terminal as `window.__clincusTerminals[kind]` (test-hooks.ts). */
    testHooks?: boolean
    /** A touch screen (phones): `Input.dispatchTouchEvent` reaches the page. */
    hasTouch?: boolean
    /** Looks like a Mac to the page and to xterm.js (navigator.platform and the user agent). */
    mac?: boolean
  } = {},
): Promise<BrowserContext> {
  const c = await browser.newContext({
    viewport,
    colorScheme: opts.colorScheme ?? 'light',
    reducedMotion: 'reduce',
    hasTouch: opts.hasTouch ?? false,
    ...(opts.mac
      ? {
          userAgent:
            'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
        }
      : {}),
  })
  // Terminal text is read from the DOM renderer's rows; the WebGL one draws pixels.
  if ((opts.renderer ?? 'dom') === 'dom') {
    await c.addInitScript(() => {
      localStorage.setItem('clincus.renderer', 'dom')
    })
  }
  if (opts.testHooks) {
    await c.addInitScript(() => {
      localStorage.setItem('clincus.testHooks', 'on')
    })
  }
  if (opts.mac) {
    // xterm.js decides "Mac" from navigator.platform when its module loads.
    await c.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'platform', { get: () => 'MacIntel' })
    })
  }
  return c
}

/**
 * Collects what would show in the console as a problem: script errors, console.error calls, and
 * failed HTTP responses other than the ones a test provokes on purpose ("METHOD path status").
 */
export class PageProblems {
  readonly list: string[] = []
  readonly expected = new Set<string>()

  watch(page: Page, label: string): Page {
    page.on('console', (m) => {
      // Chromium logs every 4xx/5xx response as a console error; those are checked one by
      // one below, against what the test provoked on purpose.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
        this.list.push(`${label} console.error: ${m.text()}`)
    })
    page.on('pageerror', (e) => this.list.push(`${label} page error: ${e.message}`))
    page.on('response', (r) => {
      if (r.status() < 400) return
      const what = `${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`
      if (!this.expected.has(what)) this.list.push(`${label} unexpected response: ${what}`)
    })
    return page
  }
}
