import { Type, type Static } from 'typebox'
import {
  AgentReasonSchema,
  AgentStartSchema,
  AgentStatusSchema,
  LaunchPathSchema,
  WarmKindSchema,
  ColdReasonSchema,
  LaunchTimingsSchema,
  SessionInfoSchema,
} from './sessions.ts'

/**
 * Issue 15: every `session.*` lifecycle event carries the session as it is after the change, so a
 * client applies it without refetching (additive to the contract's `{type, id}`). `session.deleted`
 * carries the session as it was last seen. Optional only so that the contract's `{type, id}` shape
 * still validates.
 */
const session = Type.Optional(SessionInfoSchema)

// Events on /ws/events and /api/events. session.started / session.stopped / config.reloaded are
// the contract's; the others are additive (clients ignore types they do not know).
export const SessionStartedEventSchema = Type.Object({
  type: Type.Literal('session.started'),
  id: Type.String(),
  session,
})
export const SessionStoppedEventSchema = Type.Object({
  type: Type.Literal('session.stopped'),
  id: Type.String(),
  session,
})
export const SessionCreatedEventSchema = Type.Object({
  type: Type.Literal('session.created'),
  id: Type.String(),
  session,
})
export const SessionDeletedEventSchema = Type.Object({
  type: Type.Literal('session.deleted'),
  id: Type.String(),
  session,
})
/** The container was paused (frozen) inside or outside clincus: `incus pause`. */
export const SessionFrozenEventSchema = Type.Object({
  type: Type.Literal('session.frozen'),
  id: Type.String(),
  session,
})
/** A frozen container was resumed (thawed): `incus resume` / `incus start`. */
export const SessionThawedEventSchema = Type.Object({
  type: Type.Literal('session.thawed'),
  id: Type.String(),
  session,
})
export const SessionLaunchingEventSchema = Type.Object({
  type: Type.Literal('session.launching'),
  id: Type.String(),
  /** A creation step; `done` or `failed` (with `error`) ends the launch. */
  step: Type.String(),
  progress: Type.Number({ minimum: 0, maximum: 1 }),
  error: Type.Optional(Type.String()),
  /** With `done` (issue 16): how the session was launched and what each step took (ms). */
  path: Type.Optional(LaunchPathSchema),
  warm: Type.Optional(WarmKindSchema),
  timings: Type.Optional(LaunchTimingsSchema),
  cold_reason: Type.Optional(ColdReasonSchema),
  agent_start: Type.Optional(AgentStartSchema),
  agent_start_reason: Type.Optional(AgentReasonSchema),
})
export const ConfigReloadedEventSchema = Type.Object({
  type: Type.Literal('config.reloaded'),
  timestamp: Type.String(),
})
export const ConfigInvalidEventSchema = Type.Object({
  type: Type.Literal('config.invalid'),
  file: Type.String(),
  error: Type.String(),
})

// Issue 12: every refused connection, and the first allowed one per (session, host).
export const SessionNetworkEventSchema = Type.Object({
  type: Type.Literal('session.network'),
  id: Type.String(),
  host: Type.String(),
  port: Type.Integer(),
  allowed: Type.Boolean(),
})

// Image builds (issue 13): building (repeated, in order), then built or failed.
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
  /** apt's own message when the package step failed. */
  error: Type.String(),
})

// Issue 17: the agent status of a running session changed (debounced; see server/sessions/agent/).
export const SessionAgentEventSchema = Type.Object({
  type: Type.Literal('session.agent'),
  id: Type.String(),
  agent: AgentStatusSchema,
})

export const ServerEventSchema = Type.Union([
  SessionStartedEventSchema,
  SessionStoppedEventSchema,
  SessionCreatedEventSchema,
  SessionDeletedEventSchema,
  SessionFrozenEventSchema,
  SessionThawedEventSchema,
  SessionLaunchingEventSchema,
  ConfigReloadedEventSchema,
  ConfigInvalidEventSchema,
  SessionNetworkEventSchema,
  SessionAgentEventSchema,
  ImageBuildingEventSchema,
  ImageBuiltEventSchema,
  ImageFailedEventSchema,
])
export type ServerEvent = Static<typeof ServerEventSchema>

/** GET /api/events: where to resume (EventSource sends the Last-Event-ID header by itself). */
export const EventsQuerySchema = Type.Object({
  last_event_id: Type.Optional(
    Type.Integer({
      minimum: 0,
      description: 'Replay the events after this id (like Last-Event-ID)',
    }),
  ),
})
export const EventsHeadersSchema = Type.Object({
  'last-event-id': Type.Optional(Type.String({ pattern: '^\\s*[0-9]{1,16}\\s*$' })),
})

/** Sent (as SSE event type `reset`) when the replay cannot reach back to Last-Event-ID. */
export const StreamResetSchema = Type.Object({
  type: Type.Literal('stream.reset'),
  reason: Type.String(),
})
export type StreamReset = Static<typeof StreamResetSchema>
