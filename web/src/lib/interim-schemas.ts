// Client-side schemas for the shapes of issues 12 (network egress) and 13 (images), written from
// the lead's design (ISSUE12.md, issue 13 §5) while the server side was built in parallel, and
// aligned with the shared schemas on h-egress (shared/schemas/network.ts, events.ts) and h-image
// (shared/schemas/images.ts, events.ts, sessions.ts).
// MERGE NOTE: once those are merged, replace this file's body with re-exports of the shared
// schemas under these names (SessionSchema = SessionInfoSchema, ClientEventSchema =
// ServerEventSchema, NetworkMode from NetworkModeValueSchema, ...). Every web module imports
// these shapes from here only, so that is a one-file switch; it was tried on a trial merge of the
// three branches: svelte-check, eslint and the web tests pass.
import { Type, type Static } from 'typebox'
import { ServerEventSchema } from '../../../shared/schemas/events.ts'
import { SessionInfoSchema } from '../../../shared/schemas/sessions.ts'

// ---- issue 12: network -------------------------------------------------------------------------

export const NetworkModeSchema = Type.Union([
  Type.Literal('allowlist'),
  Type.Literal('open'),
  Type.Literal('none'),
])
export type NetworkMode = Static<typeof NetworkModeSchema>

/** `session.network` on the session object: enough for the "refused in the last minute" badge. */
export const SessionNetworkSummarySchema = Type.Object({
  mode: NetworkModeSchema,
  /** ISO-8601 time of the last refused connection, or null. */
  last_refused_at: Type.Union([Type.String(), Type.Null()]),
})
export type SessionNetworkSummary = Static<typeof SessionNetworkSummarySchema>

/** One proxied connection, as `GET /api/sessions/{id}/network` lists them (newest first). */
export const NetworkConnectionSchema = Type.Object({
  /** ISO-8601 start of the connection. */
  time: Type.String(),
  host: Type.String(),
  port: Type.Integer({ minimum: 0, maximum: 65535 }),
  allowed: Type.Boolean(),
  /** Why it was refused (or which entry allowed it). */
  reason: Type.String(),
  bytes_up: Type.Number({ minimum: 0 }),
  bytes_down: Type.Number({ minimum: 0 }),
  duration_ms: Type.Number({ minimum: 0 }),
})
export type NetworkConnection = Static<typeof NetworkConnectionSchema>

/** `GET /api/sessions/{id}/network?limit=&offset=` (limit 1..1000). */
export const SessionNetworkSchema = Type.Object({
  mode: NetworkModeSchema,
  /** The effective allow entries, built-ins included. */
  allow: Type.Array(Type.String()),
  /** All connections recorded for the session (the page holds at most `limit`). */
  total: Type.Integer({ minimum: 0 }),
  connections: Type.Array(NetworkConnectionSchema),
})
export type SessionNetwork = Static<typeof SessionNetworkSchema>

/** `POST /api/network/allow` answer: the `[network] allow` list now in the user's config file. */
export const NetworkAllowResponseSchema = Type.Object({
  allow: Type.Array(Type.String()),
})

export const SessionNetworkEventSchema = Type.Object({
  type: Type.Literal('session.network'),
  id: Type.String(),
  host: Type.String(),
  port: Type.Integer(),
  allowed: Type.Boolean(),
})
export type SessionNetworkEvent = Static<typeof SessionNetworkEventSchema>

// ---- issue 13: images --------------------------------------------------------------------------

export const ImageStateSchema = Type.Union([
  Type.Literal('ready'),
  Type.Literal('building'),
  Type.Literal('missing'),
  Type.Literal('outdated'),
])
export type ImageState = Static<typeof ImageStateSchema>

// As h-image's shared/schemas/images.ts has it: nullable fields are always present.
const Nullable = Type.Union([Type.String(), Type.Null()])

/** One entry of `GET /api/images`. */
export const ImageInfoSchema = Type.Object({
  alias: Type.String(),
  /** null while the alias names no image (`missing`). */
  fingerprint: Nullable,
  size_bytes: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
  /** ISO-8601. */
  created_at: Nullable,
  state: ImageStateSchema,
  /** 0..1 while building, else null. */
  progress: Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()]),
  /** The build step while building, else null. */
  step: Nullable,
  /** Versions recorded at build time; null where absent. */
  tools: Type.Object({ claude: Nullable, copilot: Nullable, opencode: Nullable, node: Nullable }),
  /** The last build's failure (apt's own message), until the next build starts. */
  error: Type.Optional(Type.String()),
})
export type ImageInfo = Static<typeof ImageInfoSchema>
export const ImageListSchema = Type.Array(ImageInfoSchema)

export const ImageBuildingEventSchema = Type.Object({
  type: Type.Literal('image.building'),
  alias: Type.String(),
  step: Type.String(),
  progress: Type.Number({ minimum: 0, maximum: 1 }),
})
export const ImageBuiltEventSchema = Type.Object({
  type: Type.Literal('image.built'),
  alias: Type.String(),
})
export const ImageFailedEventSchema = Type.Object({
  type: Type.Literal('image.failed'),
  alias: Type.String(),
  /** The build's own message (apt's, for a bad package name). */
  error: Type.String(),
})
export type ImageEvent =
  | Static<typeof ImageBuildingEventSchema>
  | Static<typeof ImageBuiltEventSchema>
  | Static<typeof ImageFailedEventSchema>

// ---- the additive fields of the session object, and every event the page understands -----------

export const SessionSchema = Type.Object(
  {
    ...SessionInfoSchema.properties,
    network: Type.Optional(SessionNetworkSummarySchema),
    /** The agent's version in the image the session runs (issue 13), when known. */
    tool_version: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  },
  { $id: 'Session' },
)
/** A session as the page sees it: SessionInfo plus the issue 12/13 fields. */
export type Session = Static<typeof SessionSchema>
export const SessionListSchema = Type.Array(SessionSchema)

export const ClientEventSchema = Type.Union([
  ServerEventSchema,
  SessionNetworkEventSchema,
  ImageBuildingEventSchema,
  ImageBuiltEventSchema,
  ImageFailedEventSchema,
])
export type ClientEvent = Static<typeof ClientEventSchema>
