import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import {
  AuthStateSchema,
  SignInBodySchema,
  SignInResponseSchema,
  TicketResponseSchema,
  type AuthState,
  type SignInResponse,
  type TicketResponse,
} from '../../shared/schemas/auth.ts'
import { errorResponses } from '../../shared/schemas/common.ts'
import { unauthorized, type Security } from '../security/plugin.ts'
import { safeEqual } from '../security/token.ts'

const iso = (ms: number): string => new Date(ms).toISOString()

/**
 * Browser sign-in and its credentials: exchange the token or a banner code for a sign-in session,
 * inspect it, revoke it (sign out), and mint single-use WebSocket tickets.
 */
export function authRoutes(sec: Security): FastifyPluginAsyncTypebox {
  const { auth, credentials } = sec

  /** Whether a sign-in body would succeed (checked without using a code up). */
  const validSignIn = (body: unknown): boolean => {
    if (!Value.Check(SignInBodySchema, body)) return false
    if (auth.mode === 'none') return true
    if (body.token !== undefined) return safeEqual(body.token, auth.token)
    return body.code !== undefined && credentials.peekCode(body.code)
  }

  return async (app) => {
    app.post('/api/auth/login', {
      config: {
        public: true,
        // Every local user is 127.0.0.1, so failed attempts are limited per address, and a
        // correct credential is never refused: an attacker's flood cannot lock the owner out.
        rateLimit: {
          keyGenerator: (req: FastifyRequest) => `signin:${req.ip}`,
          allowList: (req: FastifyRequest) => validSignIn(req.body),
        },
      },
      schema: {
        tags: ['auth'],
        summary: 'Sign a browser in: the token or a sign-in code for a sign-in session',
        description:
          'Body `{"token": …}` or `{"code": …}` (the single-use code in the link the server prints). ' +
          'The returned session is sent as `Authorization: Bearer <session>`; it ends after a day unused, ' +
          'a week at most, or on DELETE /api/auth/session.',
        body: SignInBodySchema,
        response: { 200: SignInResponseSchema, ...errorResponses },
      },
      handler: async (req, reply): Promise<SignInResponse> => {
        const { token, code } = req.body
        const ok =
          auth.mode === 'none' ||
          (token !== undefined && safeEqual(token, auth.token)) ||
          (code !== undefined && credentials.consumeCode(code))
        if (!ok)
          throw unauthorized(
            code !== undefined
              ? 'that sign-in code is not valid (it works once, for 10 minutes)'
              : 'that token is not valid',
            code !== undefined ? 'invalid_code' : 'invalid_token',
          )
        const { secret, session } = credentials.createSession()
        req.log.info({ session: session.id.slice(0, 12) }, 'signed in')
        void reply.header('cache-control', 'no-store')
        return { session: secret, expires_at: iso(session.expiresAt) }
      },
    })

    app.get('/api/auth/session', {
      schema: {
        tags: ['auth'],
        summary: 'How this request is signed in (200); 401 otherwise',
        response: { 200: AuthStateSchema, ...errorResponses },
      },
      handler: async (req): Promise<AuthState> => {
        const via = req.auth?.via ?? 'none'
        const out: AuthState = { auth: auth.mode, via }
        if (req.auth?.session) {
          const presented = req.headers.authorization?.replace(/^Bearer\s+/i, '').trim()
          const s = presented ? credentials.useSession(presented) : null
          if (s) out.expires_at = iso(s.expiresAt)
        }
        return out
      },
    })

    app.delete('/api/auth/session', {
      schema: {
        tags: ['auth'],
        summary: 'Sign out: revoke the sign-in session this request carries (and its tickets)',
        response: { 204: Type.Null(), ...errorResponses },
      },
      handler: async (req, reply) => {
        if (req.auth?.session) credentials.revokeSession(req.auth.session)
        return reply.code(204).send(null)
      },
    })

    app.post('/api/auth/ticket', {
      schema: {
        tags: ['auth'],
        summary: 'A single-use WebSocket ticket (30 s): open /ws/… with ?ticket=<ticket>',
        response: { 200: TicketResponseSchema, ...errorResponses },
      },
      handler: async (req, reply): Promise<TicketResponse> => {
        const { ticket, expiresAt } = credentials.issueTicket(req.auth?.session ?? null)
        void reply.header('cache-control', 'no-store')
        return { ticket, expires_at: iso(expiresAt) }
      },
    })
  }
}
