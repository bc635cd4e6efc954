import { readFile, stat, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { buildTestApp, tempDir, type TestApp } from '../test/helpers.ts'
import { rawRequest, upgradeHeaders } from '../test/raw-http.ts'
import { Credentials, secretHash } from './credentials.ts'
import { loggerOptions, redactUrl } from './log-redaction.ts'
import { CSP } from './plugin.ts'
import { nonCanonicalTarget } from './request-target.ts'
import { loadOrCreateToken, safeEqual } from './token.ts'

const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuvwxyz'
const ORIGIN = 'http://127.0.0.1:3000'
const HOST = '127.0.0.1:3000'
const SESSION_ID = 'clincus-12345678-1'

async function secured(configText?: string, deps: Parameters<typeof buildTestApp>[0] = {}) {
  return buildTestApp({
    ...deps,
    configText,
    deps: { auth: { mode: 'token', token: TOKEN }, ...deps.deps },
  })
}

async function listening(t: TestApp): Promise<number> {
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  return (t.app.server.address() as AddressInfo).port
}

const bearer = { authorization: `Bearer ${TOKEN}`, host: HOST }

async function signIn(t: TestApp, body: Record<string, string>) {
  return t.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: JSON.stringify(body),
    headers: { 'content-type': 'application/json', host: HOST, origin: ORIGIN },
  })
}

async function sessionSecret(t: TestApp): Promise<string> {
  const res = await signIn(t, { token: TOKEN })
  expect(res.statusCode).toBe(200)
  return res.json<{ session: string }>().session
}

describe('token file', () => {
  it('creates a 0600 token once and reuses it; tightens a loose mode', async () => {
    const dir = await tempDir()
    const file = join(dir, 'clincus', 'token')
    const a = await loadOrCreateToken(file)
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(await loadOrCreateToken(file)).toBe(a)
    await writeFile(file, `${a}\n`, { mode: 0o644 })
    expect(await loadOrCreateToken(file)).toBe(a)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await readFile(file, 'utf8')).trim()).toBe(a)
  })

  it('compares in constant time regardless of length', () => {
    expect(safeEqual('abc', 'abc')).toBe(true)
    expect(safeEqual('abc', 'abd')).toBe(false)
    expect(safeEqual('abc', 'abcd')).toBe(false)
  })
})

describe('access', () => {
  it('requires a credential on every route but the public ones', async () => {
    const t = await secured()
    const none = await t.app.inject({ url: '/api/sessions', headers: { host: HOST } })
    expect(none.statusCode).toBe(401)
    expect(none.headers['www-authenticate']).toBe('Bearer realm="clincus"')
    expect(none.json()).toMatchObject({ code: 'unauthorized' })
    expect((await t.app.inject({ url: '/api/health', headers: { host: HOST } })).statusCode).toBe(
      200,
    )
    const wrong = { host: HOST, authorization: 'Bearer wrong' }
    expect((await t.app.inject({ url: '/api/sessions', headers: wrong })).statusCode).toBe(401)
    expect((await t.app.inject({ url: '/api/sessions', headers: bearer })).statusCode).toBe(200)
    expect(
      (await t.app.inject({ url: '/api/sessions', headers: { host: HOST, 'x-api-key': TOKEN } }))
        .statusCode,
    ).toBe(200)
    expect((await t.app.inject({ url: '/ws/events', headers: { host: HOST } })).statusCode).toBe(
      401,
    )
    expect(
      (await t.app.inject({ url: '/api/openapi.json', headers: { host: HOST } })).statusCode,
    ).toBe(401)
    const head = (url: string) => t.app.inject({ method: 'HEAD', url, headers: { host: HOST } })
    expect((await head('/api/health')).statusCode).toBe(200)
    expect((await head('/api/sessions')).statusCode).toBe(401)
    expect((await head('/api/config')).statusCode).toBe(401)
    // The SPA and unknown paths are public: they hold no data.
    expect((await t.app.inject({ url: '/settings', headers: { host: HOST } })).statusCode).toBe(200)
    expect((await t.app.inject({ url: '/api/nope', headers: { host: HOST } })).statusCode).toBe(404)
  })

  it('ignores cookies entirely (the old session cookie is no credential)', async () => {
    const t = await secured()
    const res = await t.app.inject({
      url: '/api/sessions',
      headers: { host: HOST, cookie: `clincus_session=${TOKEN}; token=${TOKEN}` },
    })
    expect(res.statusCode).toBe(401)
  })

  it('protects every route of the OpenAPI document, every method', async () => {
    const t = await secured()
    const doc = (await t.app.inject({ url: '/api/openapi.json', headers: bearer })).json<{
      paths: Record<string, Record<string, unknown>>
    }>()
    const checked: string[] = []
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) {
        const url = path.replace(/\{[^}]+\}/g, SESSION_ID)
        if (method === 'get' && url === '/api/health') continue
        if (method === 'post' && url === '/api/auth/login') continue
        const res = await t.app.inject({
          method: method.toUpperCase() as 'GET',
          url,
          headers: { host: HOST, origin: ORIGIN, 'content-type': 'application/json' },
          payload: method === 'get' ? undefined : '{}',
        })
        expect(res.statusCode, `${method} ${url}`).toBe(401)
        checked.push(`${method} ${url}`)
      }
    }
    expect(checked.length).toBeGreaterThan(12)
    expect(t.driver.callsOf('init')).toHaveLength(0)
  })
})

describe('request targets (row 1: authentication from the matched route)', () => {
  it('refuses non-canonical targets', () => {
    for (const ok of [
      '/',
      '/api/sessions',
      '/api/sessions/clincus-1?force=true',
      '/assets/index-Ab_1.js',
      '/api/sessions/%C3%A9',
      '/session/a%20b',
      '/x/',
      '/api/sessions/..%2Fx',
    ])
      expect(nonCanonicalTarget(ok), ok).toBeNull()
    for (const bad of [
      'http://127.0.0.1:3000/api/sessions',
      '*',
      '//api/sessions',
      '/api//sessions',
      '/api/./sessions',
      '/x/../api/sessions',
      '/api/sessions/..',
      '/%61pi/config',
      '/api/%2e%2e/api/config',
      '/api\\config',
      '/api/%zz',
      '/api/%',
      '/api/%00',
    ])
      expect(nonCanonicalTarget(bad), bad).not.toBeNull()
  })

  it('never answers a protected route without credentials, however the target is spelled', async () => {
    const t = await secured()
    const port = await listening(t)
    const doc = (await t.app.inject({ url: '/api/openapi.json', headers: bearer })).json<{
      paths: Record<string, Record<string, unknown>>
    }>()
    const routes = new Set<string>(['/api/openapi.json', '/ws/events'])
    for (const path of Object.keys(doc.paths))
      if (path !== '/api/health' && path !== '/api/auth/login')
        routes.add(path.replace(/\{[^}]+\}/g, SESSION_ID))
    routes.add(`/ws/terminal/${SESSION_ID}`)
    routes.add(`/ws/shell/${SESSION_ID}`)

    const enc = (c: string, lower: boolean): string => {
      const hex = c.charCodeAt(0).toString(16).padStart(2, '0')
      return `%${lower ? hex : hex.toUpperCase()}`
    }
    const targets = new Set<string>()
    for (const route of routes) {
      const chars = route.split('') // the routes are ASCII
      chars.forEach((c, i) => {
        if (c === '/') return
        for (const lower of [false, true])
          targets.add(chars.map((d, j) => (j === i ? enc(d, lower) : d)).join(''))
      })
      targets.add(chars.map((c) => (c === '/' ? c : enc(c, false))).join(''))
      const segs = route.split('/')
      targets.add(`/${route}`)
      targets.add(route.replace('/', '//'))
      targets.add(segs.join('//'))
      targets.add(`/x/..${route}`)
      targets.add(`/.${route}`)
      targets.add(`/%2e%2e${route}`)
      targets.add(`/x/%2E%2E${route}`)
      targets.add(route.replace(/\//g, '%2F'))
      targets.add(`http://127.0.0.1:${port}${route}`)
      targets.add(`http://evil.example${route}`)
    }
    // A target the router decodes to a protected route still needs the credential.
    targets.add('/api/sessions/%C3%A9')
    const methods = ['GET', 'POST', 'PUT', 'DELETE'] as const
    const failures: string[] = []
    for (const target of targets) {
      const upgrade = target.includes('ws') || target.includes('%77') || target.includes('%57')
      for (const method of upgrade ? (['GET'] as const) : methods) {
        const res = await rawRequest(port, target, {
          method,
          headers: upgrade ? upgradeHeaders() : { 'content-type': 'application/json' },
          body: method === 'GET' ? undefined : `{"workspace":"${t.project}"}`,
        })
        const leaked =
          res.body.includes(t.root) || res.body.includes('"sessions"') || res.body.includes('"id"')
        if (res.status < 300 || res.status === 101 || leaked)
          failures.push(`${method} ${target} → ${res.status}`)
      }
    }
    expect(failures).toEqual([])
    expect(targets.size).toBeGreaterThan(400)
    expect(t.driver.callsOf('init')).toHaveLength(0)
  }, 120_000)

  it('refuses absolute-form and encoded targets with 400 before anything else', async () => {
    const t = await secured()
    const port = await listening(t)
    for (const target of [
      `http://127.0.0.1:${port}/api/sessions`,
      '/%61pi/config',
      '//api/config',
      '/x/../api/config',
    ]) {
      const res = await rawRequest(port, target, { headers: { authorization: `Bearer ${TOKEN}` } })
      expect(res.status, target).toBe(400)
      expect(JSON.parse(res.body)).toMatchObject({ code: 'bad_request_target' })
    }
  })
})

describe('no open redirect (row 4)', () => {
  it('never answers with a Location off this origin', async () => {
    const t = await secured()
    const port = await listening(t)
    for (const target of [
      '//evil.example:8183/x?token=abc',
      '//evil.example:8183/x?code=abc',
      `/?token=${TOKEN}`,
      '/?code=abc',
      '/settings?token=x&y=1',
      '/\\evil.example/x?token=1',
      '/%2F%2Fevil.example/x?token=1',
      '/%5Cevil.example?token=1',
      '///evil.example/?token=1',
      'http://evil.example/?token=1',
      '/assets',
      '/assets/',
    ]) {
      const res = await rawRequest(port, target)
      const location = res.headers.location
      if (location !== undefined) {
        expect(location, target).toMatch(/^\/(?![/\\])/)
        expect(new URL(location, `http://127.0.0.1:${port}`).origin).toBe(
          `http://127.0.0.1:${port}`,
        )
      }
      expect(res.status, target).not.toBe(301)
      expect(res.status, target).not.toBe(302)
      expect(res.status, target).not.toBe(303)
    }
  })
})

describe('browser sign-in (row 2)', () => {
  it('trades the token for a sign-in session that works as Bearer, and signs out', async () => {
    const t = await secured()
    expect((await signIn(t, { token: 'nope' })).statusCode).toBe(401)
    const res = await signIn(t, { token: TOKEN })
    expect(res.statusCode).toBe(200)
    expect(res.headers['set-cookie']).toBeUndefined()
    expect(res.headers['cache-control']).toBe('no-store')
    const { session, expires_at } = res.json<{ session: string; expires_at: string }>()
    expect(session).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(session).not.toContain(TOKEN)
    expect(Date.parse(expires_at)).toBeGreaterThan(Date.now())
    const auth = { host: HOST, authorization: `Bearer ${session}` }
    expect((await t.app.inject({ url: '/api/sessions', headers: auth })).statusCode).toBe(200)
    const state = await t.app.inject({ url: '/api/auth/session', headers: auth })
    expect(state.json()).toMatchObject({ auth: 'token', via: 'session' })
    // Two browsers (or two servers' pages) hold independent sessions: one signing out leaves
    // the other signed in.
    const other = await sessionSecret(t)
    const out = await t.app.inject({ method: 'DELETE', url: '/api/auth/session', headers: auth })
    expect(out.statusCode).toBe(204)
    expect((await t.app.inject({ url: '/api/sessions', headers: auth })).statusCode).toBe(401)
    expect(
      (
        await t.app.inject({
          url: '/api/sessions',
          headers: { host: HOST, authorization: `Bearer ${other}` },
        })
      ).statusCode,
    ).toBe(200)
    // The long-term token is untouched by signing out.
    expect((await t.app.inject({ url: '/api/sessions', headers: bearer })).statusCode).toBe(200)
  })

  it('accepts a banner code exactly once', async () => {
    const t = await secured()
    const { code } = t.security.credentials.issueCode()
    expect((await signIn(t, { code: 'not-a-code' })).statusCode).toBe(401)
    const first = await signIn(t, { code })
    expect(first.statusCode).toBe(200)
    const again = await signIn(t, { code })
    expect(again.statusCode).toBe(401)
    expect(again.json()).toMatchObject({ code: 'invalid_code' })
    // Neither a code nor anything but the token is accepted as a Bearer credential.
    const { code: unused } = t.security.credentials.issueCode()
    expect(
      (
        await t.app.inject({
          url: '/api/sessions',
          headers: { host: HOST, authorization: `Bearer ${unused}` },
        })
      ).statusCode,
    ).toBe(401)
    expect((await signIn(t, { code: unused, token: TOKEN })).statusCode).toBe(400)
  })

  it('opens WebSockets with single-use tickets that die with their session', async () => {
    const t = await secured()
    const port = await listening(t)
    const session = await sessionSecret(t)
    const auth = { host: HOST, authorization: `Bearer ${session}`, origin: ORIGIN }
    const ticket = async (): Promise<string> => {
      const res = await t.app.inject({ method: 'POST', url: '/api/auth/ticket', headers: auth })
      expect(res.statusCode).toBe(200)
      return res.json<{ ticket: string }>().ticket
    }
    const open = (url: string): Promise<number | 'open'> =>
      new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}${url}`)
        ws.once('open', () => {
          ws.close()
          resolve('open')
        })
        ws.once('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0)
          ws.terminate()
        })
        ws.once('error', () => undefined)
      })
    const one = await ticket()
    expect(await open(`/ws/events?ticket=${one}`)).toBe('open')
    expect(await open(`/ws/events?ticket=${one}`)).toBe(401)
    expect(await open('/ws/events')).toBe(401)
    // A ticket only opens a WebSocket; it is no credential for REST.
    const two = await ticket()
    expect(
      (await t.app.inject({ url: `/api/sessions?ticket=${two}`, headers: { host: HOST } }))
        .statusCode,
    ).toBe(401)
    const three = await ticket()
    await t.app.inject({ method: 'DELETE', url: '/api/auth/session', headers: auth })
    expect(await open(`/ws/events?ticket=${three}`)).toBe(401)
    // Scripts still send the token on the upgrade itself.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/events`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        resolve()
      })
      ws.once('error', reject)
    })
    ws.close()
  })

  it('expires codes, tickets and idle or old sessions', () => {
    let now = 0
    const c = new Credentials(
      { codeTtlMs: 1000, ticketTtlMs: 100, idleMs: 1000, absoluteMs: 5000 },
      () => now,
    )
    const { code } = c.issueCode()
    now = 1000
    expect(c.consumeCode(code)).toBe(false)
    now = 0
    const s = c.createSession()
    expect(s.session.id).toBe(secretHash(s.secret))
    const t = c.issueTicket(s.session.id)
    now = 100
    expect(c.consumeTicket(t.ticket)).toBeNull()
    for (now = 900; now <= 4900; now += 900)
      expect(c.useSession(s.secret), String(now)).not.toBeNull()
    now = 5000
    expect(c.useSession(s.secret)).toBeNull()
    const idle = c.createSession()
    now = 6000
    expect(c.useSession(idle.secret)).toBeNull()
  })

  it('bounds every store, dropping the oldest first', () => {
    const c = new Credentials({ maxSessions: 3, maxCodes: 2, maxTickets: 2 })
    const sessions = [1, 2, 3, 4].map(() => c.createSession().secret)
    expect(c.useSession(sessions[0] ?? '')).toBeNull()
    expect(c.useSession(sessions[3] ?? '')).not.toBeNull()
    const codes = [1, 2, 3].map(() => c.issueCode().code)
    expect(c.peekCode(codes[0] ?? '')).toBe(false)
    expect(c.peekCode(codes[2] ?? '')).toBe(true)
  })
})

describe('browser guards', () => {
  it('refuses a foreign Host (DNS rebinding) even with a valid token', async () => {
    const t = await secured()
    const res = await t.app.inject({
      url: '/api/sessions',
      headers: { ...bearer, host: 'evil.example' },
    })
    expect(res.statusCode).toBe(403)
    expect(res.json()).toMatchObject({ code: 'host_not_allowed' })
    expect(
      (await t.app.inject({ url: '/', headers: { host: 'evil.example:3000' } })).statusCode,
    ).toBe(403)
    for (const host of ['localhost:3000', '127.0.0.1', '[::1]:3000']) {
      expect((await t.app.inject({ url: '/api/health', headers: { host } })).statusCode, host).toBe(
        200,
      )
    }
  })

  it('accepts configured allowed_hosts', async () => {
    const t = await secured('[dashboard]\nallowed_hosts = ["dev.box"]\n')
    expect(
      (await t.app.inject({ url: '/api/health', headers: { host: 'dev.box:3000' } })).statusCode,
    ).toBe(200)
  })

  it('refuses cross-origin mutations and WebSocket upgrades, even with a valid credential', async () => {
    const t = await secured()
    const ws = await t.app.inject({
      url: '/ws/events',
      headers: {
        ...bearer,
        origin: 'http://evil.example',
        upgrade: 'websocket',
        connection: 'upgrade',
      },
    })
    expect(ws.statusCode).toBe(403)
    for (const [method, url] of [
      ['POST', '/api/sessions'],
      ['DELETE', `/api/sessions/${SESSION_ID}`],
      ['POST', `/api/sessions/${SESSION_ID}/resume`],
      ['POST', '/api/auth/login'],
      ['POST', '/api/auth/ticket'],
    ] as const) {
      const cross = await t.app.inject({
        method,
        url,
        payload: JSON.stringify({ workspace: t.project }),
        headers: { ...bearer, origin: 'http://127.0.0.1:4000', 'content-type': 'application/json' },
      })
      expect(cross.statusCode, `${method} ${url}`).toBe(403)
    }
    expect(t.driver.callsOf('init')).toHaveLength(0)
    const own = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      payload: JSON.stringify({ workspace: t.project }),
      headers: { ...bearer, origin: ORIGIN, 'content-type': 'application/json' },
    })
    expect(own.statusCode).toBe(200)
  })

  it('accepts [dashboard] public_origins behind a proxy that rewrites Host (row 14)', async () => {
    const proxied = {
      ...bearer,
      host: '127.0.0.1:3000',
      origin: 'https://dash.example',
      'content-type': 'application/json',
    }
    const plain = await secured()
    const refused = await plain.app.inject({
      method: 'POST',
      url: '/api/sessions',
      payload: JSON.stringify({ workspace: plain.project }),
      headers: proxied,
    })
    expect(refused.statusCode).toBe(403)

    const t = await buildTestApp({ deps: { auth: { mode: 'token', token: TOKEN } } })
    await writeFile(
      t.configFile,
      `[dashboard]\nworkspace_roots = ["${t.root}"]\npublic_origins = ["https://Dash.example:443"]\n`,
    )
    await t.services.config.reload()
    const ok = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      payload: JSON.stringify({ workspace: t.project }),
      headers: proxied,
    })
    expect(ok.statusCode).toBe(200)
    const port = await listening(t)
    const upgrade = await rawRequest(port, '/ws/events', {
      headers: upgradeHeaders({ authorization: `Bearer ${TOKEN}`, origin: 'https://dash.example' }),
    })
    expect(upgrade.status).toBe(101)
    for (const other of [
      'https://evil.example',
      'http://dash.example',
      'https://dash.example.evil',
    ])
      expect(
        (
          await t.app.inject({
            method: 'POST',
            url: '/api/sessions',
            payload: JSON.stringify({ workspace: t.project }),
            headers: { ...proxied, origin: other },
          })
        ).statusCode,
        other,
      ).toBe(403)
  })

  it('sets security headers on every response', async () => {
    const t = await secured()
    for (const url of ['/', '/api/health', '/api/sessions']) {
      const res = await t.app.inject({ url, headers: { host: HOST } })
      expect(res.headers['content-security-policy'], url).toBe(CSP)
      expect(res.headers['x-content-type-options']).toBe('nosniff')
      expect(res.headers['referrer-policy']).toBe('same-origin')
    }
    expect(CSP).toContain("frame-ancestors 'none'")
    expect(CSP).not.toMatch(/script-src[^;]*unsafe-inline/)
  })
})

describe('rate limit (row 6)', () => {
  it('limits mutating requests per credential with Retry-After', async () => {
    const t = await secured('[dashboard]\nrate_limit_per_minute = 3\n')
    const codes = []
    for (let i = 0; i < 5; i++) {
      const res = await t.app.inject({
        method: 'DELETE',
        url: `/api/sessions/${SESSION_ID}`,
        headers: bearer,
      })
      codes.push(res.statusCode)
      if (res.statusCode === 429) {
        expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1)
        expect(res.json()).toMatchObject({ code: 'rate_limited' })
      }
    }
    expect(codes).toEqual([404, 404, 404, 429, 429])
    // reads are not limited
    expect((await t.app.inject({ url: '/api/sessions', headers: bearer })).statusCode).toBe(200)
    // another credential has its own budget
    const session = await sessionSecret(t)
    const res = await t.app.inject({
      method: 'DELETE',
      url: `/api/sessions/${SESSION_ID}`,
      headers: { host: HOST, authorization: `Bearer ${session}` },
    })
    expect(res.statusCode).toBe(404)
  })

  it('never refuses a correct credential at sign-in, after 400 bad attempts', async () => {
    const t = await secured()
    let limited = 0
    for (let i = 0; i < 400; i++) {
      const res = await signIn(t, { token: `wrong-${i}` })
      if (res.statusCode === 429) limited++
      else expect(res.statusCode).toBe(401)
    }
    expect(limited).toBeGreaterThan(200)
    expect((await signIn(t, { token: TOKEN })).statusCode).toBe(200)
    const { code } = t.security.credentials.issueCode()
    expect((await signIn(t, { code })).statusCode).toBe(200)
    // and the used code, now wrong, is limited again
    expect((await signIn(t, { code })).statusCode).toBe(429)
  })
})

describe('logs (row 3)', () => {
  it('redacts credentials in URLs', () => {
    expect(redactUrl('/?code=abc&x=1')).toBe('/?code=[redacted]&x=1')
    expect(redactUrl('/ws/events?ticket=t1&cols=80')).toBe('/ws/events?ticket=[redacted]&cols=80')
    expect(redactUrl('/?%74oken=abc')).toBe('/?%74oken=[redacted]')
    expect(redactUrl('/?Access_Token=abc&api_key=k&session=s')).toBe(
      '/?Access_Token=[redacted]&api_key=[redacted]&session=[redacted]',
    )
    expect(redactUrl('/?%zz=abc')).toBe('/?%zz=[redacted]')
    expect(redactUrl('/api/sessions')).toBe('/api/sessions')
  })

  it('writes no secret into any log line of the app, at debug level', async () => {
    let out = ''
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString()
        cb()
      },
    })
    const t = await secured(undefined, { deps: { log: pino(loggerOptions('trace'), sink) } })
    const port = await listening(t)
    const { code } = t.security.credentials.issueCode()
    const session = (await signIn(t, { code })).json<{ session: string }>().session
    const auth = { host: HOST, authorization: `Bearer ${session}`, origin: ORIGIN }
    const ticket = (
      await t.app.inject({ method: 'POST', url: '/api/auth/ticket', headers: auth })
    ).json<{ ticket: string }>().ticket
    await rawRequest(port, `/?code=${code}`)
    await rawRequest(port, `/?token=${TOKEN}`)
    await rawRequest(port, `/api/sessions?token=${TOKEN}`)
    await rawRequest(port, `/ws/events?ticket=${ticket}`, { headers: upgradeHeaders() })
    await rawRequest(port, '/api/sessions', { headers: { 'x-api-key': TOKEN } })
    await t.app.inject({ method: 'DELETE', url: '/api/auth/session', headers: auth })
    expect(out).toContain('incoming request')
    for (const secret of [TOKEN, session, code, ticket]) expect(out).not.toContain(secret)
  })
})
