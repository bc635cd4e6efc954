import { Type, type Static } from 'typebox'

// GET /api/sessions/{id}/network and POST /api/network/allow (issue 12).
export const NetworkModeValueSchema = Type.Union([
  Type.Literal('allowlist'),
  Type.Literal('open'),
  Type.Literal('none'),
])

export const NetworkConnectionSchema = Type.Object({
  time: Type.String({ description: 'ISO 8601 time the connection was asked for' }),
  host: Type.String({ description: 'Host name (normalized) or IP address asked for' }),
  port: Type.Integer(),
  allowed: Type.Boolean(),
  reason: Type.String({ description: 'Why it was allowed or refused' }),
  bytes_up: Type.Integer({ minimum: 0, description: 'Bytes from the session' }),
  bytes_down: Type.Integer({ minimum: 0, description: 'Bytes to the session' }),
  duration_ms: Type.Integer({ minimum: 0 }),
})
export type NetworkConnection = Static<typeof NetworkConnectionSchema>

export const SessionNetworkSchema = Type.Object({
  mode: NetworkModeValueSchema,
  allow: Type.Array(Type.String(), {
    description: 'Effective allow entries, built-ins (tool, host registries) included',
  }),
  total: Type.Integer({ minimum: 0, description: 'Connections recorded (kept in memory)' }),
  connections: Type.Array(NetworkConnectionSchema, { description: 'Newest first' }),
})
export type SessionNetwork = Static<typeof SessionNetworkSchema>

export const SessionNetworkQuerySchema = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
  },
  { additionalProperties: false },
)

export const NetworkAllowBodySchema = Type.Object(
  {
    entry: Type.String({
      minLength: 1,
      maxLength: 300,
      description: '"example.com", "*.example.com", "host:port", "ip:port" or "[v6]:port"',
    }),
  },
  { additionalProperties: false },
)

export const NetworkAllowResponseSchema = Type.Object({
  allow: Type.Array(Type.String(), {
    description: 'The [network] allow list now in the user config file',
  }),
})

/** Additive field of the session object. */
export const SessionNetworkSummarySchema = Type.Object({
  mode: NetworkModeValueSchema,
  last_refused_at: Type.Union([Type.String(), Type.Null()], {
    description: 'ISO 8601 time of the last refused connection (since the server started)',
  }),
})
export type SessionNetworkSummary = Static<typeof SessionNetworkSummarySchema>
