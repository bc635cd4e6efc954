import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildTestApp, json, tempDir } from '../test/helpers.ts'
import { RateLimiter } from './rate-limit.ts'
import { COOKIE_NAME, CSP } from './plugin.ts'
import { cookieValue, loadOrCreateToken, safeEqual } from './token.ts'

const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuvwxyz'
const ORIGIN = 'http://127.0.0.1:3000'
const HOST = '127.0.0.1:3000'

async function secured(configText?: string) {
  return buildTestApp({ configText, deps: { auth: { mode: 'token', token: TOKEN } } })
}

const bearer = { authorization: `Bearer ${TOKEN}`, host: HOST }
const cookie = `${COOKIE_NAME}=${cookieValue(TOKEN)}`

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
  it('requires the token for /api and /ws except GET /api/health', async () => {
    const t = await secured()
    const none = await t.app.inject({ url: '/api/sessions', headers: { host: HOST } })
    expect(none.statusCode).toBe(401)
    expect(none.headers['www-authenticate']).toBe('Bearer realm="clincus"')
    expect(none.json()).toMatchObject({ code: 'unauthorized' })
    expect((await t.app.inject({ url: '/api/health', headers: { host: HOST } })).statusCode).toBe(
      200,
    )
    expect(
      (
        await t.app.inject({
          url: '/api/sessions',
          headers: { host: HOST, authorization: 'Bearer wrong' },
        })
      ).statusCode,
    ).toBe(401)
    expect((await t.app.inject({ url: '/api/sessions', headers: bearer })).statusCode).toBe(200)
    expect(
      (await t.app.inject({ url: '/api/sessions', headers: { host: HOST, 'x-api-key': TOKEN } }))
        .statusCode,
    ).toBe(200)
    expect(
      (await t.app.inject({ url: '/api/sessions', headers: { host: HOST, cookie } })).statusCode,
    ).toBe(200)
    expect((await t.app.inject({ url: '/ws/events', headers: { host: HOST } })).statusCode).toBe(
      401,
    )
    expect(
      (await t.app.inject({ url: '/api/openapi.json', headers: { host: HOST } })).statusCode,
    ).toBe(401)
  })

  it('signs a browser in through the link, leaving no token in the URL', async () => {
    const t = await secured()
    const res = await t.app.inject({ url: `/?token=${TOKEN}`, headers: { host: HOST } })
    expect(res.statusCode).toBe(303)
    expect(res.headers.location).toBe('/')
    const setCookie = String(res.headers['set-cookie'])
    expect(setCookie).toContain(`${COOKIE_NAME}=${cookieValue(TOKEN)}`)
    expect(setCookie).toContain('HttpOnly')
    expect(setCookie).toContain('SameSite=Strict')
    expect(setCookie).not.toContain(TOKEN)
    const wrong = await t.app.inject({ url: '/settings?token=nope&x=1', headers: { host: HOST } })
    expect(wrong.statusCode).toBe(303)
    expect(wrong.headers.location).toBe('/settings?x=1')
    expect(wrong.headers['set-cookie']).toBeUndefined()
  })

  it('signs in with a pasted token', async () => {
    const t = await secured()
    const bad = await t.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      ...json({ token: 'nope' }),
      headers: { 'content-type': 'application/json', host: HOST, origin: ORIGIN },
    })
    expect(bad.statusCode).toBe(401)
    const ok = await t.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: JSON.stringify({ token: TOKEN }),
      headers: { 'content-type': 'application/json', host: HOST, origin: ORIGIN },
    })
    expect(ok.statusCode).toBe(204)
    expect(String(ok.headers['set-cookie'])).toContain(cookieValue(TOKEN))
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

  it('refuses cross-origin mutations and WebSocket upgrades, and cookie mutations without Origin', async () => {
    const t = await secured()
    const ws = await t.app.inject({
      url: '/ws/events',
      headers: {
        host: HOST,
        cookie,
        origin: 'http://evil.example',
        upgrade: 'websocket',
        connection: 'upgrade',
      },
    })
    expect(ws.statusCode).toBe(403)
    for (const [method, url] of [
      ['POST', '/api/sessions'],
      ['DELETE', '/api/sessions/clincus-12345678-1'],
      ['POST', '/api/sessions/clincus-12345678-1/resume'],
    ] as const) {
      const cross = await t.app.inject({
        method,
        url,
        payload: JSON.stringify({ workspace: t.project }),
        headers: {
          host: HOST,
          cookie,
          origin: 'http://evil.example',
          'content-type': 'application/json',
        },
      })
      expect(cross.statusCode, `${method} ${url}`).toBe(403)
      const noOrigin = await t.app.inject({
        method,
        url,
        payload: JSON.stringify({ workspace: t.project }),
        headers: { host: HOST, cookie, 'content-type': 'application/json' },
      })
      expect(noOrigin.statusCode, `${method} ${url} without Origin`).toBe(403)
    }
    expect(t.driver.callsOf('init')).toHaveLength(0)
    // the dashboard's own page may
    const own = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      payload: JSON.stringify({ workspace: t.project }),
      headers: { host: HOST, cookie, origin: ORIGIN, 'content-type': 'application/json' },
    })
    expect(own.statusCode).toBe(200)
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

  it('rate-limits mutating requests per credential with Retry-After', async () => {
    const t = await secured('[dashboard]\nrate_limit_per_minute = 3\n')
    const codes = []
    for (let i = 0; i < 5; i++) {
      const res = await t.app.inject({
        method: 'DELETE',
        url: '/api/sessions/clincus-12345678-1',
        headers: bearer,
      })
      codes.push(res.statusCode)
      if (res.statusCode === 429)
        expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    }
    expect(codes).toEqual([404, 404, 404, 429, 429])
    // reads are not limited
    expect((await t.app.inject({ url: '/api/sessions', headers: bearer })).statusCode).toBe(200)
  })
})

describe('RateLimiter', () => {
  it('refills over time', () => {
    let now = 0
    const rl = new RateLimiter(60, () => now)
    for (let i = 0; i < 60; i++) expect(rl.take('k').ok).toBe(true)
    expect(rl.take('k')).toEqual({ ok: false, retryAfterS: 1 })
    now += 1000
    expect(rl.take('k').ok).toBe(true)
    expect(rl.take('other').ok).toBe(true)
  })
})
