import { Type, type Static } from 'typebox'

const Secret = Type.String({ minLength: 1, maxLength: 1024 })

/** POST /api/auth/login: exactly one of the long-term token or a banner sign-in code. */
export const SignInBodySchema = Type.Object(
  { token: Type.Optional(Secret), code: Type.Optional(Secret) },
  { additionalProperties: false, minProperties: 1, maxProperties: 1 },
)
export type SignInBody = Static<typeof SignInBodySchema>

export const SignInResponseSchema = Type.Object({
  session: Type.String({
    description:
      'The sign-in session secret: send it as "Authorization: Bearer <session>"; revoke it with DELETE /api/auth/session',
  }),
  expires_at: Type.String({
    description: 'When it ends at the latest (it also ends after a day unused)',
  }),
})
export type SignInResponse = Static<typeof SignInResponseSchema>

/** GET /api/auth/session: how this request was authenticated. */
export const AuthStateSchema = Type.Object({
  auth: Type.Union([Type.Literal('token'), Type.Literal('none')]),
  via: Type.Union([
    Type.Literal('token'),
    Type.Literal('session'),
    Type.Literal('ticket'),
    Type.Literal('none'),
  ]),
  expires_at: Type.Optional(Type.String()),
})
export type AuthState = Static<typeof AuthStateSchema>

/** POST /api/auth/ticket: a single-use WebSocket ticket, passed as `?ticket=` on the upgrade. */
export const TicketResponseSchema = Type.Object({
  ticket: Type.String(),
  expires_at: Type.String(),
})
export type TicketResponse = Static<typeof TicketResponseSchema>
