// What each Incus lifecycle action means for a session: the one table the reconciler applies to
// `incus monitor --type=lifecycle` events, and the one mapping from a status change to the
// `session.*` events clients get (used for live events and for a resync alike).
import { Type, type Static } from 'typebox'
import { Value } from 'typebox/value'
import type { ServerEvent } from '../../shared/schemas/events.ts'
import type { SessionStatus } from '../../shared/schemas/sessions.ts'

/**
 * The instance actions Incus reports (lxc/incus internal/server/lifecycle/instance.go). Anything
 * else is not a literal of this union: the reconciler logs it at debug level and ignores it.
 */
export const LifecycleActionSchema = Type.Union([
  Type.Literal('instance-created'),
  Type.Literal('instance-started'),
  Type.Literal('instance-stopped'),
  Type.Literal('instance-shutdown'),
  Type.Literal('instance-restarted'),
  Type.Literal('instance-paused'),
  Type.Literal('instance-resumed'),
  Type.Literal('instance-deleted'),
  Type.Literal('instance-updated'),
  Type.Literal('instance-renamed'),
  Type.Literal('instance-restored'),
  Type.Literal('instance-ready'),
  Type.Literal('instance-exec'),
  Type.Literal('instance-console'),
  Type.Literal('instance-console-reset'),
  Type.Literal('instance-console-retrieved'),
  Type.Literal('instance-file-pushed'),
  Type.Literal('instance-file-retrieved'),
  Type.Literal('instance-file-deleted'),
  Type.Literal('instance-log-retrieved'),
  Type.Literal('instance-log-deleted'),
  Type.Literal('instance-snapshot-created'),
  Type.Literal('instance-snapshot-deleted'),
  Type.Literal('instance-snapshot-renamed'),
  Type.Literal('instance-snapshot-updated'),
  Type.Literal('instance-backup-created'),
  Type.Literal('instance-backup-deleted'),
  Type.Literal('instance-backup-renamed'),
  Type.Literal('instance-backup-retrieved'),
])
export type LifecycleAction = Static<typeof LifecycleActionSchema>

/** The action as a literal of the union, or null for one this version does not know. */
export function parseAction(action: string): LifecycleAction | null {
  return Value.Check(LifecycleActionSchema, action) ? action : null
}

/**
 * The session's status after the action: a status; `gone` (removed); `read` (ask Incus, e.g. a
 * config change or a new instance whose labels say what it is); null (no change).
 */
export type StatusChange = SessionStatus | 'gone' | 'read' | null

/** Work after the status change, off the event path: `end` closes the launch's history entry and
 * cancels its deadline; `sync` re-reads the instance (labels such as started_at change too). */
export type FollowUp = 'end' | 'sync'

export type SessionEventType = Extract<
  ServerEvent['type'],
  | 'session.created'
  | 'session.started'
  | 'session.stopped'
  | 'session.deleted'
  | 'session.frozen'
  | 'session.thawed'
>

export interface ActionRule {
  status: StatusChange
  /** Published even when the status did not change (a restart is a new start of the tool's box). */
  always?: readonly SessionEventType[]
  followUp: readonly FollowUp[]
}

const NOTHING: ActionRule = { status: null, followUp: [] }

/**
 * The table. The events of an action are {@link transitionEvents} of the status change it makes
 * (so an action seen twice, or after a command already reported it, publishes nothing more),
 * plus its `always` events.
 */
export const ACTION_RULES: Record<LifecycleAction, ActionRule> = {
  'instance-created': { status: 'read', followUp: [] },
  'instance-started': { status: 'running', followUp: ['sync'] },
  'instance-restarted': { status: 'running', always: ['session.started'], followUp: ['sync'] },
  'instance-resumed': { status: 'running', followUp: ['sync'] },
  'instance-paused': { status: 'frozen', followUp: ['sync'] },
  'instance-stopped': { status: 'stopped', followUp: ['end', 'sync'] },
  'instance-shutdown': { status: 'stopped', followUp: ['end', 'sync'] },
  'instance-deleted': { status: 'gone', followUp: ['end'] },
  'instance-updated': { status: 'read', followUp: [] },
  'instance-renamed': { status: 'read', followUp: [] },
  'instance-restored': { status: 'read', followUp: [] },
  // Root inside may tell /dev/incus it is ready (security.guestapi is off for ours): still running.
  'instance-ready': { status: 'read', followUp: [] },
  'instance-exec': NOTHING,
  'instance-console': NOTHING,
  'instance-console-reset': NOTHING,
  'instance-console-retrieved': NOTHING,
  'instance-file-pushed': NOTHING,
  'instance-file-retrieved': NOTHING,
  'instance-file-deleted': NOTHING,
  'instance-log-retrieved': NOTHING,
  'instance-log-deleted': NOTHING,
  'instance-snapshot-created': NOTHING,
  'instance-snapshot-deleted': NOTHING,
  'instance-snapshot-renamed': NOTHING,
  'instance-snapshot-updated': NOTHING,
  'instance-backup-created': NOTHING,
  'instance-backup-deleted': NOTHING,
  'instance-backup-renamed': NOTHING,
  'instance-backup-retrieved': NOTHING,
}

const DOWN: ReadonlySet<SessionStatus> = new Set(['stopped', 'error'])

/**
 * The events that tell a client who saw `before` that the session is now `after` (undefined: no
 * such session). Created → `created` (+ `started`/`frozen`); running from frozen → `thawed`, from
 * anything else → `started`; → frozen → `frozen`; → stopped or error from an up state → `stopped`;
 * gone → `stopped` then `deleted` (the contract: "stopped or was deleted"). Transitional statuses
 * (starting, stopping, unknown) publish nothing until they settle.
 */
export function transitionEvents(
  before: SessionStatus | undefined,
  after: SessionStatus | undefined,
): SessionEventType[] {
  if (before === after) return []
  if (after === undefined) return ['session.stopped', 'session.deleted']
  const out: SessionEventType[] = before === undefined ? ['session.created'] : []
  if (after === 'running') out.push(before === 'frozen' ? 'session.thawed' : 'session.started')
  else if (after === 'frozen') out.push('session.frozen')
  else if (DOWN.has(after) && before !== undefined && !DOWN.has(before)) out.push('session.stopped')
  return out
}
