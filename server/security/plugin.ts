import type { Socket } from 'node:net'
import fastifyRateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ConfigStore } from '../config/store.ts'
import { AppError } from '../errors.ts'
import { Credentials, secretHash, type CredentialLimits } from './credentials.ts'
import { nonCanonicalTarget } from './request-target.ts'
import { safeEqual } from './token.ts'

export type AuthSetting = { mode: 'token'; token: string } | { mode: 'none' }

/** How a request proved who it is (set by the security hook on every non-public route). */
export interface RequestAuth {
  via: 'none' | 'token' | 'session' | 'ticket'
  /** The sign-in session's id (a hash) when a session or one of its tickets was used. */
  session: string | null
  /** The rate limiter's key: a hash of the credential (or the client address without auth). */
  limitKey: string
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without credentials. Every route is protected unless it says so. */
    public?: boolean
    /** A WebSocket route (set by the security plugin): the only kind a ticket opens. */
    websocket?: boolean
    /** A long-lived response (an event stream): closed when its sign-in session is revoked. */
    stream?: boolean
  }
  interface FastifyRequest {
    auth: RequestAuth | null
  }
}

export interface SecurityOptions {
  auth: AuthSetting
  config: ConfigStore
  /** The address the server is bound to; a non-loopback IP is also an allowed Host. */
  bindHost?: string
  /** Lifetimes and bounds of the browser credentials (tests shorten them). */
  limits?: Partial<CredentialLimits>
  now?: () => number
}

export interface Security {
  auth: AuthSetting
  credentials: Credentials
}

const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]', '::1']
export const MUTATING = new Set(['POST', 'PUT', 'DELETE', 'PATCH'])
/** Routes anyone may call: the health probe (version, uptime, Incus reachability). */
export const PUBLIC_ROUTES = new Set(['GET /api/health', 'HEAD /api/health'])

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

/** An origin in canonical form (`https://Dash.example:443` → `https://dash.example`), or null. */
export function normalOrigin(origin: string): string | null {
  try {
    const o = new URL(origin)
    if (o.protocol !== 'http:' && o.protocol !== 'https:') return null
    return o.origin
  } catch {
    return null
  }
}

function fail(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): AppError {
  return new AppError(status, code, message, { headers })
}

export function unauthorized(message: string, code = 'unauthorized'): AppError {
  return fail(401, code, message, { 'www-authenticate': 'Bearer realm="clincus"' })
}

function presentedSecret(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization
  if (typeof header === 'string' && /^Bearer\s+/i.test(header))
    return header.replace(/^Bearer\s+/i, '').trim()
  const apiKey = req.headers['x-api-key']
  return typeof apiKey === 'string' ? apiKey.trim() : undefined
}

function isUpgrade(req: FastifyRequest): boolean {
  return (req.headers.upgrade ?? '').toLowerCase() === 'websocket'
}

function ticketParam(url: string): string | null {
  const q = url.indexOf('?')
  return q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get('ticket')
}

/**
 * The browser guards and access control. One onRequest hook, after routing and before any
 * handler work: security headers; the Host allow-list (DNS rebinding); the request target in
 * canonical form; the Origin check on WebSocket upgrades and mutating requests (own origin or
 * `[dashboard] public_origins`); then, unless the **matched route** is marked `public` (or no
 * route matched: the not-found handler only answers 404/405/index.html), a credential: the
 * long-term token or a sign-in session as `Authorization: Bearer` / `X-Api-Key`, or on a
 * WebSocket upgrade a single-use ticket. There is no cookie: browsers send cookies to every port
 * of a host, so a cookie would reach any other local user's listener.
 * Mutating requests are rate-limited per credential by @fastify/rate-limit.
 */
export async function registerSecurity(
  app: FastifyInstance,
  opts: SecurityOptions,
): Promise<Security> {
  const { auth, config } = opts
  const credentials = new Credentials(opts.limits, opts.now)
  const tokenKey = auth.mode === 'token' ? secretHash(auth.token) : ''

  const allowedHosts = (): Set<string> => {
    const set = new Set(LOOPBACK_HOSTS)
    for (const h of config.current.dashboard.allowed_hosts) set.add(hostName(h))
    if (opts.bindHost && !['0.0.0.0', '::'].includes(opts.bindHost)) {
      set.add(opts.bindHost.includes(':') ? `[${opts.bindHost}]` : opts.bindHost.toLowerCase())
    }
    return set
  }

  const originAllowed = (origin: string, host: string): boolean => {
    if (sameOrigin(origin, host)) return true
    const o = normalOrigin(origin)
    if (o === null) return false
    return config.current.dashboard.public_origins.some((p) => normalOrigin(p) === o)
  }

  const authenticate = (req: FastifyRequest, upgrade: boolean): RequestAuth | null => {
    if (auth.mode === 'none') return { via: 'none', session: null, limitKey: `ip:${req.ip}` }
    const presented = presentedSecret(req)
    if (presented !== undefined) {
      if (safeEqual(presented, auth.token))
        return { via: 'token', session: null, limitKey: tokenKey }
      const s = credentials.useSession(presented)
      return s ? { via: 'session', session: s.id, limitKey: s.id } : null
    }
    // A ticket rides on a URL: it opens the WebSocket routes and nothing else, whatever the
    // headers (an `Upgrade` header without `Connection: upgrade` is routed as a plain request).
    if (upgrade && req.routeOptions.config.websocket === true) {
      const ticket = ticketParam(req.url)
      const t = ticket === null ? null : credentials.consumeTicket(ticket)
      if (t) return { via: 'ticket', session: t.owner, limitKey: t.owner ?? tokenKey }
    }
    return null
  }

  // The explicit allow-list of routes served without credentials that do not say so themselves
  // (the sign-in route and the SPA's static files carry `config.public`).
  // WebSocket routes are marked too: a ticket is a credential on those only.
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (methods.every((m) => PUBLIC_ROUTES.has(`${m} ${route.url}`)))
      route.config = { ...route.config, public: true }
    if (route.websocket === true) route.config = { ...route.config, websocket: true }
  })

  app.decorateRequest('auth', null)
  app.addHook('onRequest', async (req, reply) => {
    reply.header('content-security-policy', CSP)
    reply.header('x-content-type-options', 'nosniff')
    reply.header('referrer-policy', 'same-origin')
    reply.header('x-frame-options', 'DENY')
    reply.header('cross-origin-opener-policy', 'same-origin')
    const upgrade = isUpgrade(req)
    if (upgrade) reply.header('connection', 'close')

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
    const why = nonCanonicalTarget(req.raw.url ?? '')
    if (why !== null) throw fail(400, 'bad_request_target', why)

    const origin = req.headers.origin
    if (
      origin !== undefined &&
      (upgrade || MUTATING.has(req.method)) &&
      !originAllowed(origin, host)
    )
      throw fail(403, 'origin_not_allowed', 'cross-origin request refused')

    // An upgrade to a route that is no WebSocket would be accepted by @fastify/websocket only
    // to be closed again, after it logs the raw URL (a ticket or code in it unredacted).
    if (upgrade && !req.is404 && req.routeOptions.config.websocket !== true)
      throw fail(
        400,
        'not_a_websocket',
        `${req.method} ${req.routeOptions.url ?? ''} is no WebSocket`,
      )

    if (req.is404 || req.routeOptions.config.public === true) return
    const cred = authenticate(req, upgrade)
    if (!cred) {
      throw unauthorized(
        'a token is required: send "Authorization: Bearer <token>" (the token is in ~/.config/clincus/token) or sign in',
      )
    }
    req.auth = cred
    // A WebSocket or event stream lives on after this check: it is closed when the sign-in
    // session that opened it is revoked (sign out), so a copied session keeps no open shell.
    const config = req.routeOptions.config
    const socket = req.raw.socket as Socket | undefined
    if (
      cred.session !== null &&
      socket !== undefined &&
      ((upgrade && config.websocket === true) || config.stream === true)
    ) {
      const off = credentials.onRevoke(cred.session, () => socket.destroy())
      socket.once('close', off)
    }
  })

  // A refused upgrade is answered on the raw socket, which no HTTP parser reads any more and
  // Node does not close by itself: end it once the answer is out (an accepted upgrade is
  // hijacked by @fastify/websocket and never gets here).
  app.addHook('onResponse', async (req) => {
    if (isUpgrade(req)) req.raw.socket.end()
  })

  // Registered before any route: its onRoute hook adds a preHandler (after the hook above has
  // named the credential, and after the body is parsed for the sign-in route's allow-list).
  await app.register(fastifyRateLimit, {
    global: true,
    hook: 'preHandler',
    timeWindow: 60_000,
    max: () => config.current.dashboard.rate_limit_per_minute,
    // A bounded LRU: a flood of keys evicts the oldest buckets instead of growing or clearing all.
    cache: 10_000,
    keyGenerator: (req) => req.auth?.limitKey ?? `ip:${req.ip}`,
    // Reads are not limited; the sign-in route sets its own rule.
    allowList: (req) => !MUTATING.has(req.method),
    errorResponseBuilder: (_req, ctx) =>
      fail(429, 'rate_limited', `too many requests; retry in ${ctx.after}`),
  })

  return { auth, credentials }
}
