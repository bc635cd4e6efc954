import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { errorResponses } from '../../shared/schemas/common.ts'
import type { ConfigStore } from '../config/store.ts'
import { AppError } from '../errors.ts'
import { RateLimiter } from './rate-limit.ts'
import { cookieValue, safeEqual } from './token.ts'

export const COOKIE_NAME = 'clincus_session'

export type AuthSetting = { mode: 'token'; token: string } | { mode: 'none' }

export interface SecurityOptions {
  auth: AuthSetting
  config: ConfigStore
  /** The address the server is bound to; a non-loopback IP is also an allowed Host. */
  bindHost?: string
}

const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]', '::1']
const MUTATING = new Set(['POST', 'PUT', 'DELETE', 'PATCH'])

// No inline script anywhere; styles may be inline because xterm.js sets element styles.
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '')
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h)
}

/** The host name of a Host header or origin authority, without the port ("[::1]:3000" → "[::1]"). */
export function hostName(authority: string): string {
  if (authority.startsWith('[')) return authority.slice(0, authority.indexOf(']') + 1).toLowerCase()
  return authority.split(':')[0]?.toLowerCase() ?? ''
}

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=')
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim())
  }
  return out
}

/** Whether an Origin header names this server (same host and port, default ports normalised). */
export function sameOrigin(origin: string, host: string): boolean {
  try {
    const o = new URL(origin)
    if (o.protocol !== 'http:' && o.protocol !== 'https:') return false
    return o.host === new URL(`${o.protocol}//${host}`).host
  } catch {
    return false
  }
}

type Credential = { kind: 'header' | 'cookie'; key: string } | null

function fail(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): AppError {
  return new AppError(status, code, message, { headers })
}

/**
 * The browser guards and access control, in one onRequest hook that runs before routing work:
 * Host allow-list (DNS rebinding), Origin check on WebSocket upgrades and cookie-authenticated
 * mutating requests (CSRF / cross-site WebSocket hijacking), the token, a rate limit on mutating
 * requests, and security headers on every response.
 */
export function registerSecurity(app: FastifyInstance, opts: SecurityOptions): void {
  const { auth, config } = opts
  const expectedCookie = auth.mode === 'token' ? cookieValue(auth.token) : ''
  let limiter = new RateLimiter(config.current.dashboard.rate_limit_per_minute)
  let perMinute = config.current.dashboard.rate_limit_per_minute

  const allowedHosts = (): Set<string> => {
    const set = new Set(LOOPBACK_HOSTS)
    for (const h of config.current.dashboard.allowed_hosts) set.add(hostName(h))
    if (opts.bindHost && !['0.0.0.0', '::'].includes(opts.bindHost)) {
      set.add(opts.bindHost.includes(':') ? `[${opts.bindHost}]` : opts.bindHost.toLowerCase())
    }
    return set
  }

  const credential = (req: FastifyRequest): Credential => {
    if (auth.mode === 'none') return { kind: 'header', key: 'anonymous' }
    const header = req.headers.authorization
    const bearer =
      typeof header === 'string' && /^Bearer\s+/i.test(header)
        ? header.replace(/^Bearer\s+/i, '').trim()
        : undefined
    const apiKey = req.headers['x-api-key']
    const presented = bearer ?? (typeof apiKey === 'string' ? apiKey.trim() : undefined)
    if (presented !== undefined) {
      return safeEqual(presented, auth.token) ? { kind: 'header', key: 'token' } : null
    }
    const cookie = parseCookies(req.headers.cookie).get(COOKIE_NAME)
    if (cookie !== undefined && safeEqual(cookie, expectedCookie))
      return { kind: 'cookie', key: 'cookie' }
    return null
  }

  const setCookie = (reply: FastifyReply): void => {
    reply.header(
      'set-cookie',
      `${COOKIE_NAME}=${expectedCookie}; Path=/; HttpOnly; SameSite=Strict`,
    )
  }

  app.addHook('onRequest', async (req, reply) => {
    reply.header('content-security-policy', CSP)
    reply.header('x-content-type-options', 'nosniff')
    reply.header('referrer-policy', 'same-origin')
    reply.header('x-frame-options', 'DENY')
    reply.header('cross-origin-opener-policy', 'same-origin')

    // Node's HTTP server refuses requests without a Host header (requireHostHeader), so only
    // in-process injections arrive without one.
    const host = req.headers.host ?? 'localhost'
    if (!allowedHosts().has(hostName(host))) {
      throw fail(
        403,
        'host_not_allowed',
        `host "${hostName(host)}" is not allowed; add it to [dashboard] allowed_hosts`,
      )
    }

    const url = req.url
    const path = url.split('?')[0] ?? '/'
    const isApi =
      path === '/api' || path.startsWith('/api/') || path === '/ws' || path.startsWith('/ws/')
    const isUpgrade = (req.headers.upgrade ?? '').toLowerCase() === 'websocket'
    const origin = req.headers.origin
    const originOk = origin === undefined ? undefined : sameOrigin(origin, host)
    if (originOk === false && (isUpgrade || MUTATING.has(req.method))) {
      throw fail(403, 'origin_not_allowed', 'cross-origin request refused')
    }

    // Sign-in link: /?token=… sets the cookie and redirects to the same page without the token.
    if (!isApi && req.method === 'GET' && auth.mode === 'token') {
      const q = new URL(url, 'http://x').searchParams
      const given = q.get('token')
      if (given !== null) {
        q.delete('token')
        const rest = q.toString()
        const location = `${path}${rest ? `?${rest}` : ''}`
        if (safeEqual(given, auth.token)) setCookie(reply)
        return reply
          .code(303)
          .header('location', location)
          .header('cache-control', 'no-store')
          .send()
      }
      return undefined
    }
    if (!isApi) return undefined
    if (path === '/api/health' && req.method === 'GET') return undefined

    if (path === '/api/auth/login' && req.method === 'POST') {
      // Unauthenticated by design, so limited per client address (the token is 256 bits anyway).
      const verdict = limiter.take(`login:${req.ip}`)
      if (!verdict.ok) {
        throw fail(
          429,
          'rate_limited',
          `too many sign-in attempts; retry in ${verdict.retryAfterS} s`,
          {
            'retry-after': String(verdict.retryAfterS),
          },
        )
      }
      return undefined
    }
    const cred = credential(req)
    if (!cred) {
      throw fail(
        401,
        'unauthorized',
        'a token is required: send "Authorization: Bearer <token>" (the token is in ~/.config/clincus/token) or sign in',
        {
          'www-authenticate': 'Bearer realm="clincus"',
        },
      )
    }
    // A browser always sends Origin on WebSocket upgrades and on its own cross-site POSTs; a
    // cookie without one on those requests is not our page.
    if (cred.kind === 'cookie' && (isUpgrade || MUTATING.has(req.method)) && originOk !== true) {
      throw fail(403, 'origin_required', 'cross-origin request refused')
    }
    if (MUTATING.has(req.method)) {
      const current = config.current.dashboard.rate_limit_per_minute
      if (current !== perMinute) {
        perMinute = current
        limiter = new RateLimiter(current)
      }
      const key = cred.key === 'anonymous' ? `ip:${req.ip}` : cred.key
      const verdict = limiter.take(createHash('sha256').update(key).digest('hex'))
      if (!verdict.ok) {
        throw fail(429, 'rate_limited', `too many requests; retry in ${verdict.retryAfterS} s`, {
          'retry-after': String(verdict.retryAfterS),
        })
      }
    }
    return undefined
  })

  app.post('/api/auth/login', {
    schema: {
      tags: ['auth'],
      summary: 'Exchange the token for an HttpOnly session cookie (browser sign-in)',
      body: Type.Object(
        { token: Type.String({ minLength: 1, maxLength: 1024 }) },
        { additionalProperties: false },
      ),
      response: { 204: Type.Null(), ...errorResponses },
    },
    handler: async (req, reply) => {
      const { token } = req.body as { token: string }
      if (auth.mode === 'none') return reply.code(204).send(null)
      if (!safeEqual(token, auth.token))
        throw fail(401, 'invalid_token', 'that token is not valid', {
          'www-authenticate': 'Bearer realm="clincus"',
        })
      setCookie(reply)
      return reply.code(204).send(null)
    },
  })

  app.get('/api/auth/session', {
    schema: {
      tags: ['auth'],
      summary: 'Whether this request is signed in (200) — 401 otherwise',
      response: { 200: Type.Object({ auth: Type.String() }), ...errorResponses },
    },
    handler: async () => ({ auth: auth.mode }),
  })
}
