import type { SessionInfo, SessionStatus } from '../../shared/schemas/sessions.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import { isWarmName, MAX_SLOTS, parseContainerName } from './naming.ts'

export const LABEL = {
  managed: 'user.clincus.managed',
  workspace: 'user.clincus.workspace',
  tool: 'user.clincus.tool',
  persistent: 'user.clincus.persistent',
  created: 'user.clincus.created',
  profile: 'user.clincus.profile',
  sessionId: 'user.clincus.session_id',
  deadline: 'user.clincus.deadline',
  deadlineAction: 'user.clincus.deadline_action',
  /** Set as the last step of creation: without it a container is a half-made leftover. */
  ready: 'user.clincus.ready',
  started: 'user.clincus.started',
  /** The id mapping chosen at creation: shift or raw.idmap. */
  idMapping: 'user.clincus.id_mapping',
  /**
   * A warm session's slot (issue 16): its name is the pool container's and carries none. Slots of
   * a workspace are counted by the workspace label for warm names (slots.ts).
   */
  slot: 'user.clincus.slot',
  /**
   * A warm pool member (never a session): the spec key it was made for, or `primed:<key>` for a
   * primed member (server/sessions/pool/).
   */
  pool: 'user.clincus.pool',
  /** A primed pool member's workspace (a member is no session: not LABEL.workspace). */
  primedWorkspace: 'user.clincus.primed_workspace',
} as const

/**
 * The slot an instance holds: from a cold name, or a warm session's slot label; null for neither
 * (a pool member, a stranger, a warm name whose label is missing or malformed).
 */
export function slotOf(prefix: string, inst: IncusInstance): number | null {
  const parsed = parseContainerName(prefix, inst.name)
  if (parsed) return parsed.slot
  if (!isWarmName(prefix, inst.name)) return null
  const slot = Number(inst.config[LABEL.slot])
  return Number.isInteger(slot) && slot >= 1 && slot <= MAX_SLOTS ? slot : null
}

const STATUS: Record<string, SessionStatus> = {
  running: 'running',
  // A running instance whose root told /dev/incus it is ready (any agent with sudo can): still
  // running, and treated as such by Stop and max_duration.
  ready: 'running',
  stopped: 'stopped',
  starting: 'starting',
  stopping: 'stopping',
  frozen: 'frozen',
  error: 'error',
}

export function toStatus(incusStatus: string): SessionStatus {
  return STATUS[incusStatus.toLowerCase()] ?? 'unknown'
}

/**
 * Ours = our name pattern (cold, or warm with its slot label) AND our managed label (a same-named
 * stranger is not ours; a warm pool member carries no managed label until it is claimed).
 */
export function toSession(prefix: string, inst: IncusInstance): SessionInfo | null {
  const slot = slotOf(prefix, inst)
  if (slot === null || inst.config[LABEL.managed] !== 'true') return null
  const info: SessionInfo = {
    id: inst.name,
    workspace: inst.config[LABEL.workspace] ?? '',
    tool: inst.config[LABEL.tool] ?? '',
    slot,
    status: toStatus(inst.status),
    persistent: inst.config[LABEL.persistent] === 'true',
    // Set by Incus from the image's properties at create (images/recipe.ts TOOL_PROPERTY_PREFIX).
    tool_version: inst.config[`image.clincus.tool.${inst.config[LABEL.tool] ?? ''}`] ?? null,
  }
  const created = inst.config[LABEL.created]
  if (created) info.created_at = created
  const started = inst.config[LABEL.started]
  if (started) info.started_at = started
  const profile = inst.config[LABEL.profile]
  if (profile) info.profile = profile
  const mapping = inst.config[LABEL.idMapping]
  if (mapping === 'shift' || mapping === 'raw.idmap') info.id_mapping = mapping
  return info
}

/**
 * The session list as last seen: a plain cache with no Incus access and no events. Only the
 * reconciler (reconciler.ts) holds one and writes it; everything else reads through the reconciler.
 */
export class SessionCache {
  readonly #sessions = new Map<string, SessionInfo>()
  readonly #instances = new Map<string, IncusInstance>()

  get(id: string): SessionInfo | undefined {
    return this.#sessions.get(id)
  }

  instance(id: string): IncusInstance | undefined {
    return this.#instances.get(id)
  }

  /** Sessions sorted by id. */
  list(): SessionInfo[] {
    return [...this.#sessions.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  instances(): IncusInstance[] {
    return [...this.#instances.values()]
  }

  ids(): string[] {
    return [...this.#sessions.keys()]
  }

  put(session: SessionInfo, inst?: IncusInstance): void {
    this.#sessions.set(session.id, session)
    if (inst) this.#instances.set(session.id, inst)
  }

  drop(id: string): void {
    this.#sessions.delete(id)
    this.#instances.delete(id)
  }
}
