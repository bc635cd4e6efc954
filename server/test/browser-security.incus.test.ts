// Issue 6 in a real browser (Debian's Chromium via playwright-core) against the real entry point:
// the printed sign-in link works and leaves no token in the URL; a page on another origin cannot
// open a terminal or shell socket, nor create, stop or delete a session.
import { createServer, type Server } from 'node:http'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describeIncus, removeInstances, TEST_IMAGE } from './incus-harness.ts'
import { spawnServer, type ServerProcess } from './process-harness.ts'

const CHROMIUM = process.env.CLINCUS_IT_CHROMIUM ?? '/usr/bin/chromium'
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
const prefix = `cb${randomBytes(3).toString('hex')}-`

let home: string
let server: ServerProcess
let browser: Browser
let evil: Server

describeIncus('browser security', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-browser-'))
    const root = join(home, 'projects')
    await mkdir(join(root, 'app', '.git'), { recursive: true })
    await mkdir(join(home, '.config', 'clincus'), { recursive: true })
    await writeFile(
      join(home, '.config', 'clincus', 'config.toml'),
      `[defaults]\nimage = "${TEST_IMAGE}"\n[dashboard]\nworkspace_roots = ["${root}"]\n`,
    )
    server = await spawnServer({ home, prefix })
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
  })

  afterAll(async () => {
    await browser.close()
    evil.close()
    server.child.kill('SIGTERM')
    await server.exited
    await removeInstances(prefix)
    await rm(home, { recursive: true, force: true })
  })

  it('signs in through the printed link, leaving no token in the address bar', async () => {
    const link = /sign in:\s+(\S+)/.exec(server.output())?.[1] ?? ''
    expect(link).toContain('?token=')
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(link)
    expect(page.url()).toBe(`${server.url}/`)
    const cookies = await context.cookies()
    expect(cookies).toContainEqual(
      expect.objectContaining({ name: 'clincus_session', httpOnly: true, sameSite: 'Strict' }),
    )
    expect(JSON.stringify(cookies)).not.toContain(server.token)
    // the page's own API calls are now authorised
    const status = await page.evaluate(async () => (await fetch('/api/sessions')).status)
    expect(status).toBe(200)
    await context.close()
  })

  it('keeps a page on another origin out of terminals, shells and session changes', async () => {
    const ws = join(home, 'projects', 'app')
    const created = await fetch(`${server.url}/api/sessions`, {
      method: 'POST',
      headers: { ...server.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ workspace: ws }),
    })
    expect(created.status).toBe(200)
    const { id } = (await created.json()) as { id: string }

    // The victim is signed in: the browser holds the session cookie.
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${server.url}/?token=${server.token}`)

    // An attacker page on another origin (same machine, another port: same site, so the
    // SameSite cookie would even be sent — the Origin check is what stops it).
    const target = server.url
    const attack = `<!doctype html><script>
      const target = ${JSON.stringify(target)}, id = ${JSON.stringify(id)}, ws = ${JSON.stringify(ws)};
      function socket(path) {
        return new Promise((resolve) => {
          const s = new WebSocket(target.replace('http', 'ws') + path)
          s.onopen = () => { resolve('opened'); s.close() }
          s.onerror = () => resolve('refused')
        })
      }
      async function send(method, path, body) {
        try {
          await fetch(target + path, { method, mode: 'no-cors', credentials: 'include', headers: body ? { 'content-type': 'text/plain' } : {}, body })
        } catch {}
        try {
          const r = await fetch(target + path, { method, credentials: 'include', headers: { 'content-type': 'application/json' }, body })
          return r.status
        } catch { return 'blocked' }
      }
      (async () => {
        const results = {
          terminal: await socket('/ws/terminal/' + id),
          shell: await socket('/ws/shell/' + id),
          create: await send('POST', '/api/sessions', JSON.stringify({ workspace: ws })),
          stop: await send('DELETE', '/api/sessions/' + id),
          remove: await send('DELETE', '/api/sessions/' + id + '?force=true'),
        }
        window.results = results
        document.title = 'done'
      })()
    </script>`
    evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end(attack)
    })
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve))
    const addr = evil.address()
    const evilPort = typeof addr === 'object' && addr ? addr.port : 0
    await page.goto(`http://127.0.0.1:${evilPort}/`)
    await page.waitForFunction(
      () => (globalThis as unknown as { document: { title: string } }).document.title === 'done',
      undefined,
      { timeout: 30_000 },
    )
    const results = await page.evaluate(
      () => (globalThis as unknown as { results: Record<string, unknown> }).results,
    )
    expect(results.terminal).toBe('refused')
    expect(results.shell).toBe('refused')
    for (const k of ['create', 'stop', 'remove']) expect(['blocked', 403], k).toContain(results[k])

    const list = await fetch(`${server.url}/api/sessions`, { headers: server.headers })
    const sessions = (await list.json()) as Array<{ id: string; status: string }>
    expect(sessions).toEqual([expect.objectContaining({ id, status: 'running' })])
    await context.close()
  }, 120_000)
})
