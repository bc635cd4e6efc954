import { Type, type Static } from 'typebox'
import { ToolNameSchema } from './config.ts'
import { SessionNetworkSummarySchema } from './network.ts'

export const SessionStatusSchema = Type.Union([
  Type.Literal('running'),
  Type.Literal('stopped'),
  Type.Literal('starting'),
  Type.Literal('stopping'),
  Type.Literal('frozen'),
  Type.Literal('error'),
  Type.Literal('unknown'),
])
export type SessionStatus = Static<typeof SessionStatusSchema>

export const IdMappingSchema = Type.Union([Type.Literal('shift'), Type.Literal('raw.idmap')], {
  description:
    'How workspace files map to the host owner: raw.idmap from the owner to the code user (every new session); shift only on sessions created before issue 11',
})
export type IdMapping = Static<typeof IdMappingSchema>

/**
 * Issue 17: what the agent in a running session is doing, apart from the container's `status`.
 * `working`: producing output or running tools; `waiting`: asked the user something (a question or
 * a permission) and waits; `idle`: finished its turn, at its prompt; `exited`: the tool process
 * ended (the pane is back at the shell or dead).
 */
export const AgentStatusNameSchema = Type.Union(
  [Type.Literal('working'), Type.Literal('waiting'), Type.Literal('idle'), Type.Literal('exited')],
  { description: 'What the agent is doing' },
)
export type AgentStatusName = Static<typeof AgentStatusNameSchema>

export const AgentStatusSchema = Type.Object(
  {
    status: AgentStatusNameSchema,
    /** For `waiting`: the question or permission asked, trimmed (at most 200 characters). */
    reason: Type.Optional(
      Type.String({
        maxLength: 200,
        description: 'For waiting: the question or permission asked, trimmed',
      }),
    ),
    since: Type.String({ description: 'ISO 8601 time the agent entered this status' }),
  },
  { $id: 'AgentStatus' },
)
export type AgentStatus = Static<typeof AgentStatusSchema>

export const SessionInfoSchema = Type.Object(
  {
    id: Type.String({ description: 'Container name (used in all other API calls)' }),
    workspace: Type.String({ description: 'Host workspace path' }),
    tool: Type.String({ description: 'AI tool name' }),
    slot: Type.Integer({ description: 'Slot number' }),
    status: SessionStatusSchema,
    persistent: Type.Boolean(),
    created_at: Type.Optional(Type.String({ description: 'ISO 8601 creation time' })),
    started_at: Type.Optional(
      Type.String({
        description: 'ISO 8601 time of the last launch or resume (uptime counts from here)',
      }),
    ),
    profile: Type.Optional(Type.String()),
    id_mapping: Type.Optional(IdMappingSchema),
    network: Type.Optional(SessionNetworkSummarySchema),
    // Issue 13 (additive): the tool's version in the image the session was created from (Incus
    // copies image properties into the instance as `image.*` at create); null when that image
    // recorded none (the test image, images built before issue 13).
    tool_version: Type.Optional(
      Type.Union([Type.String(), Type.Null()], {
        description: "The tool's version in the session's image, or null",
      }),
    ),
    agent: Type.Optional(AgentStatusSchema),
  },
  { $id: 'SessionInfo' },
)
export type SessionInfo = Static<typeof SessionInfoSchema>

export const SessionListSchema = Type.Array(SessionInfoSchema)

/**
 * Issue 16: how a create was served. `cold`: a new container from the image; `warm`: a ready
 * container claimed from the warm pool (server/pool/).
 */
export const LaunchPathSchema = Type.Union([Type.Literal('warm'), Type.Literal('cold')])
export type LaunchPath = Static<typeof LaunchPathSchema>

/**
 * Issue 16: which warm container served a `warm` create. `primed`: one made for this very request
 * (workspace mounted, started, frozen; only the tool started at the claim); `stopped`: a generic
 * pool container (made from the image, stopped; the cold steps after `init` ran).
 */
export const WarmKindSchema = Type.Union([Type.Literal('primed'), Type.Literal('stopped')], {
  description: 'For a warm create: a container primed for this request, or a generic stopped one',
})
export type WarmKind = Static<typeof WarmKindSchema>

/** Why a create took the cold path ("pool disabled", "pool empty", "id mapping differs", ...). */
export const ColdReasonSchema = Type.String({
  maxLength: 200,
  description: 'Why the create took the cold path instead of claiming a warm container',
})

/**
 * Issue 16, `[pool] prestart`: for a create served by a primed container whose agent was started
 * ahead, `prestarted` when that agent was handed over as it ran, `restarted` when it was started
 * again at the claim (`agent_start_reason` says why: it had ended). A member whose agent's view of
 * the workspace changed is not used at all (server/sessions/pool/primed.ts).
 */
export const AgentStartSchema = Type.Union(
  [Type.Literal('prestarted'), Type.Literal('restarted')],
  {
    description: 'For a primed create with [pool] prestart: the agent started ahead, or restarted',
  },
)
export type AgentStart = Static<typeof AgentStartSchema>

/** Why an agent started ahead was started again at the claim. */
export const AgentReasonSchema = Type.String({
  maxLength: 200,
  description: 'Why the agent started ahead was restarted at the claim',
})

/** Milliseconds each launch step took, by step id (shared/schemas/launch.ts). */
export const LaunchTimingsSchema = Type.Record(Type.String(), Type.Integer({ minimum: 0 }), {
  description: 'Milliseconds per launch step, by step id',
})
export type LaunchTimings = Static<typeof LaunchTimingsSchema>

/** POST /api/sessions: the session, plus how it was launched (additive to the contract). */
export const CreatedSessionSchema = Type.Object(
  {
    ...SessionInfoSchema.properties,
    path: LaunchPathSchema,
    warm: Type.Optional(WarmKindSchema),
    timings: LaunchTimingsSchema,
    cold_reason: Type.Optional(ColdReasonSchema),
    agent_start: Type.Optional(AgentStartSchema),
    agent_start_reason: Type.Optional(AgentReasonSchema),
  },
  { description: 'The new session, with the launch path and per-step timings (ms)' },
)
export type CreatedSession = Static<typeof CreatedSessionSchema>

export const CreateSessionBodySchema = Type.Object(
  {
    workspace: Type.String({
      minLength: 1,
      maxLength: 4096,
      description: 'Absolute path to the workspace directory',
    }),
    tool: Type.Optional(
      Type.Union(ToolNameSchema.anyOf, {
        description: 'AI tool name (default: the configured tool.name, "claude")',
      }),
    ),
    persistent: Type.Optional(
      Type.Boolean({ description: 'Persistent mode (default: defaults.persistent)' }),
    ),
    profile: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9_-]+$',
        maxLength: 128,
        description: 'A [profiles.<name>] of the config',
      }),
    ),
  },
  { additionalProperties: false },
)
export type CreateSessionBody = Static<typeof CreateSessionBodySchema>

// A session id is one of our container names; the route checks the prefix and labels too.
export const SessionParamsSchema = Type.Object({
  id: Type.String({ maxLength: 128 }),
})

export const DeleteSessionQuerySchema = Type.Object(
  {
    force: Type.Optional(Type.Boolean({ description: 'Force-delete the container' })),
  },
  { additionalProperties: false },
)

export const ResumeResponseSchema = Type.Object({
  id: Type.String(),
  status: Type.Literal('running'),
})

export const HistoryEntrySchema = Type.Object({
  session_id: Type.String(),
  id: Type.String({ description: 'Container name' }),
  workspace: Type.String(),
  tool: Type.String(),
  persistent: Type.Boolean(),
  started_at: Type.String(),
  ended_at: Type.Union([Type.String(), Type.Null()]),
})
export type HistoryEntry = Static<typeof HistoryEntrySchema>

export const HistoryQuerySchema = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 10000, default: 50 })),
    offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
  },
  { additionalProperties: false },
)
