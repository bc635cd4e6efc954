// Issue 10 against the real entry point (`dist/server/main.js serve`, LOG_LEVEL=debug) and the
// live Incus daemon, with Debian's Chromium (playwright-core) for the browser and a real
// unprivileged account for "another local user":
// - row 1: the raw-URL repros (percent-encoded prefixes, absolute-form, dot segments, a
//   WebSocket to /%77s/shell/<id>) from the other user's curl get nothing;
// - row 6: 400 bad sign-ins from the other user do not lock the owner out;
// - row 2: the printed link signs a browser in without any cookie; a page on another port
//   cannot open a terminal or shell, nor create, stop or delete a session, and gets no credential;
// - row 3: no token, sign-in session, code or ticket in any line the process wrote (the one code
//   in the banner aside).
import { createServer, type Server } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { describeIncus, removeInstances } from './incus-harness.ts'
import { canActAsOtherUser, runAsAttacker } from './local-user.ts'
import { prepareHome, spawnServer, type ServerProcess } from './process-harness.ts'

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
/** Every secret the run handled, to look for in the server's output at the end. */
const secrets = new Set<string>()

async function signInWithToken(): Promise<string> {
  const res = await fetch(`${server.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: server.token }),
  })
  expect(res.status).toBe(200)
  const { session } = (await res.json()) as { session: string }
  secrets.add(session)
  return session
}

/** Records the tickets a page puts on its WebSocket URLs. */
function watchTickets(page: Page): void {
  page.on('websocket', (ws) => {
    const t = new URL(ws.url()).searchParams.get('ticket')
    if (t) secrets.add(t)
  })
}

/** The sign-in session the page keeps in its origin's storage (this file has no DOM types). */
function storedSession(page: Page): Promise<string | null> {
  return page.evaluate(() =>
    (
      globalThis as unknown as { localStorage: { getItem(k: string): string | null } }
    ).localStorage.getItem('clincus.session'),
  )
}

async function live(page: Page): Promise<void> {
  await page.getByRole('status').filter({ hasText: 'Live updates' }).waitFor({ timeout: 30_000 })
}

describeIncus('browser and local-user security (live server)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-browser-'))
    await prepareHome(home)
    server = await spawnServer({ home, prefix, logLevel: 'debug' })
    secrets.add(server.token)
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
  })

  afterAll(async () => {
    await browser.close()
    server.child.kill('SIGTERM')
    await server.exited
    await removeInstances(prefix)
    await rm(home, { recursive: true, force: true })
  })

  it('runs the local-user attacks as a real unprivileged user', () => {
    // Said plainly rather than skipped quietly: the suite runs as root in CI.
    expect(canActAsOtherUser).toBe(true)
  })

  it('keeps another local user out, however the request target is spelled (row 1)', async () => {
    const base = server.url
    const id = `${prefix}00000000-1`
    const curl = async (...args: string[]): Promise<{ status: number; body: string }> => {
      const r = await runAsAttacker('curl', [
        '-s',
        '--max-time',
        '10',
        '-o',
        '-',
        '-w',
        '\n%{http_code}',
        ...args,
      ])
      const i = r.stdout.lastIndexOf('\n')
      return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) }
    }
    const attempts: Array<[string, string[]]> = [
      ['/api/config', [`${base}/api/config`]],
      ['/%61pi/config', ['--path-as-is', `${base}/%61pi/config`]],
      ['/%61%70%69/sessions', ['--path-as-is', `${base}/%61%70%69/sessions`]],
      ['/api/%73essions', ['--path-as-is', `${base}/api/%73essions`]],
      ['//api/config', ['--path-as-is', `${base}//api/config`]],
      ['/x/../api/config', ['--path-as-is', `${base}/x/../api/config`]],
      ['/%2e%2e/api/config', ['--path-as-is', `${base}/%2e%2e/api/config`]],
      [
        'absolute-form',
        ['--request-target', `http://127.0.0.1:${server.port}/api/sessions`, `${base}/`],
      ],
      [
        'absolute-form POST',
        [
          '-X',
          'POST',
          '-H',
          'content-type: application/json',
          '-d',
          `{"workspace":"${join(home, 'projects', 'app')}"}`,
          '--request-target',
          `http://127.0.0.1:${server.port}/api/sessions`,
          `${base}/`,
        ],
      ],
    ]
    for (const path of [
      `/%77s/shell/${id}`,
      `/%77s/terminal/${id}`,
      `/ws/%65vents`,
      '/ws/events',
    ]) {
      attempts.push([
        `upgrade ${path}`,
        [
          '--path-as-is',
          '-H',
          'Connection: Upgrade',
          '-H',
          'Upgrade: websocket',
          '-H',
          'Sec-WebSocket-Version: 13',
          '-H',
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
          `${base}${path}`,
        ],
      ])
    }
    for (const [what, args] of attempts) {
      const r = await curl(...args)
      expect(r.status, what).toBeGreaterThanOrEqual(400)
      expect(r.body, what).not.toContain('workspace_roots')
      expect(r.body, what).not.toContain(home)
    }
    const list = await fetch(`${server.url}/api/sessions`, { headers: server.headers })
    expect(await list.json()).toEqual([])
  }, 120_000)

  it('never locks the owner out: 400 bad sign-ins from another local user, then the link and the token work (row 6)', async () => {
    const script = [
      'for i in $(seq 400); do',
      `  curl -s -o /dev/null -w '%{http_code}\\n' -X POST -H 'content-type: application/json' -d "{\\"token\\":\\"bad$i\\"}" ${server.url}/api/auth/login`,
      'done',
    ].join('\n')
    const flood = await runAsAttacker('sh', ['-c', script], { timeoutMs: 120_000 })
    const codes = flood.stdout.trim().split('\n')
    expect(codes).toHaveLength(400)
    expect(codes.filter((c) => c === '429').length).toBeGreaterThan(200)
    expect(codes.every((c) => c === '401' || c === '429')).toBe(true)

    // The owner opens the printed link: signed in, no cookie, the code gone from the address bar.
    const context = await browser.newContext()
    const page = await context.newPage()
    watchTickets(page)
    await page.goto(server.signInLink)
    await live(page)
    expect(page.url()).toBe(`${server.url}/`)
    expect(await context.cookies()).toEqual([])
    const stored = await storedSession(page)
    expect(stored).toMatch(/^[A-Za-z0-9_-]{43}$/)
    if (stored) secrets.add(stored)
    await context.close()
    // and the token too
    await signInWithToken()
  }, 180_000)

  it('keeps a page on another port out of terminals, shells, session changes and credentials', async () => {
    const ws = join(home, 'projects', 'app')
    const created = await fetch(`${server.url}/api/sessions`, {
      method: 'POST',
      headers: { ...server.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ workspace: ws }),
    })
    expect(created.status).toBe(200)
    const { id } = (await created.json()) as { id: string }

    // The victim is signed in, by pasting the token.
    const context = await browser.newContext()
    const page = await context.newPage()
    watchTickets(page)
    await page.goto(`${server.url}/`)
    await page.getByLabel('Access token').fill(server.token)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await live(page)
    const stored = await storedSession(page)
    if (stored) secrets.add(stored)

    // Another local user's listener on 127.0.0.1:<other port> (same site: a cookie would go
    // there; there is none), recording every request it gets.
    const target = server.url
    const attack = `<!doctype html><img src="/x.png"><img src="${target}/api/sessions"><script>
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
        window.results = {
          terminal: await socket('/ws/terminal/' + id),
          shell: await socket('/ws/shell/' + id),
          encoded: await socket('/%77s/shell/' + id),
          create: await send('POST', '/api/sessions', JSON.stringify({ workspace: ws })),
          stop: await send('DELETE', '/api/sessions/' + id),
          remove: await send('DELETE', '/api/sessions/' + id + '?force=true'),
          stored: localStorage.getItem('clincus.session'),
        }
        document.title = 'done'
      })()
    </script>`
    const received: string[] = []
    const evil: Server = createServer((req, res) => {
      received.push(JSON.stringify({ url: req.url, headers: req.headers }))
      res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/html' })
      res.end(req.url === '/' ? attack : '')
    })
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve))
    try {
      const evilPort = (evil.address() as AddressInfo).port
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
      expect(results.encoded).toBe('refused')
      expect(results.stored).toBeNull()
      for (const k of ['create', 'stop', 'remove'])
        expect(['blocked', 403], k).toContain(results[k])
      expect(received.length).toBeGreaterThanOrEqual(2)
      for (const r of received) {
        expect(r).not.toContain('"cookie"')
        expect(r).not.toContain('"authorization"')
        for (const s of secrets) expect(r).not.toContain(s)
      }
    } finally {
      evil.closeAllConnections()
      await new Promise((resolve) => evil.close(resolve))
    }

    const list = await fetch(`${server.url}/api/sessions`, { headers: server.headers })
    const sessions = (await list.json()) as Array<{ id: string; status: string }>
    expect(sessions).toEqual([expect.objectContaining({ id, status: 'running' })])
    await context.close()
  }, 120_000)

  it('writes no secret into any line of its output (row 3)', async () => {
    const session = await signInWithToken()
    const auth = { authorization: `Bearer ${session}` }
    // A WebSocket opened with a ticket, the way the page does.
    const minted = await fetch(`${server.url}/api/auth/ticket`, { method: 'POST', headers: auth })
    const { ticket } = (await minted.json()) as { ticket: string }
    secrets.add(ticket)
    const socket = new WebSocket(`${server.url.replace('http', 'ws')}/ws/events?ticket=${ticket}`)
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => {
        resolve()
      })
      socket.once('error', reject)
    })
    socket.close()
    // Stale links and misplaced credentials in URLs are redacted from the request lines too.
    await fetch(`${server.url}/?token=${server.token}`)
    await fetch(`${server.url}/api/sessions?token=${server.token}`)
    await fetch(`${server.url}/api/health?session=${session}`)
    expect(
      (await fetch(`${server.url}/api/auth/session`, { method: 'DELETE', headers: auth })).status,
    ).toBe(204)

    const out = server.output()
    expect(out).toContain('incoming request')
    const code = new URL(server.signInLink).searchParams.get('code') ?? ''
    expect(code).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(out.split(code).length - 1).toBe(1)
    expect(secrets.size).toBeGreaterThanOrEqual(5)
    for (const s of secrets) expect(out).not.toContain(s)
  }, 60_000)
})
