import type { Logger } from 'pino'
import type { SessionInfo, SessionStatus } from '../../shared/schemas/sessions.ts'
import type { IncusDriver } from '../incus/driver.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import { parseContainerName } from './naming.ts'

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
} as const

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

/** Ours = our name pattern AND our managed label (a same-named stranger is not ours). */
export function toSession(prefix: string, inst: IncusInstance): SessionInfo | null {
  const parsed = parseContainerName(prefix, inst.name)
  if (!parsed || inst.config[LABEL.managed] !== 'true') return null
  const info: SessionInfo = {
    id: inst.name,
    workspace: inst.config[LABEL.workspace] ?? '',
    tool: inst.config[LABEL.tool] ?? '',
    slot: parsed.slot,
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
 * The session list, cached. While the lifecycle monitor is connected (`live`), the cache is kept
 * right by events and our own operations, so listing costs no incus call; otherwise entries older
 * than `ttlMs` are refreshed with one cheap query (concurrent callers share it).
 */
export class SessionRegistry {
  readonly #driver: IncusDriver
  readonly #prefix: string
  readonly #log: Logger
  readonly #ttlMs: number
  #sessions = new Map<string, SessionInfo>()
  #instances = new Map<string, IncusInstance>()
  #loadedAt = 0
  #refreshing: Promise<void> | null = null
  #live = false
  #generation = 0

  constructor(driver: IncusDriver, prefix: string, log: Logger, ttlMs = 1000) {
    this.#driver = driver
    this.#prefix = prefix
    this.#log = log
    this.#ttlMs = ttlMs
  }

  get prefix(): string {
    return this.#prefix
  }

  setLive(live: boolean): void {
    this.#live = live
    if (!live) this.#loadedAt = 0
  }

  #fresh(): boolean {
    return this.#loadedAt > 0 && (this.#live || Date.now() - this.#loadedAt < this.#ttlMs)
  }

  refresh(): Promise<void> {
    if (this.#refreshing) return this.#refreshing
    const gen = ++this.#generation
    this.#refreshing = (async () => {
      try {
        const list = await this.#driver.listInstances({ timeoutMs: 10_000 })
        if (gen !== this.#generation) return
        const sessions = new Map<string, SessionInfo>()
        const instances = new Map<string, IncusInstance>()
        for (const inst of list) {
          const s = toSession(this.#prefix, inst)
          if (s) {
            sessions.set(s.id, s)
            instances.set(s.id, inst)
          }
        }
        this.#sessions = sessions
        this.#instances = instances
        this.#loadedAt = Date.now()
      } finally {
        this.#refreshing = null
      }
    })()
    return this.#refreshing
  }

  async list(): Promise<SessionInfo[]> {
    if (!this.#fresh()) await this.refresh()
    return [...this.#sessions.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  async instances(): Promise<IncusInstance[]> {
    if (!this.#fresh()) await this.refresh()
    return [...this.#instances.values()]
  }

  /** One session, asking incus directly (used before acting on it). */
  async fetch(id: string): Promise<{ session: SessionInfo; instance: IncusInstance } | null> {
    if (!parseContainerName(this.#prefix, id)) return null
    const inst = await this.#driver.getInstance(id, { timeoutMs: 10_000 })
    const session = inst ? toSession(this.#prefix, inst) : null
    if (!inst || !session) {
      this.remove(id)
      return null
    }
    this.#sessions.set(id, session)
    this.#instances.set(id, inst)
    return { session, instance: inst }
  }

  upsert(inst: IncusInstance): SessionInfo | null {
    const s = toSession(this.#prefix, inst)
    if (s) {
      this.#sessions.set(s.id, s)
      this.#instances.set(s.id, inst)
    }
    return s
  }

  setStatus(id: string, status: SessionStatus): void {
    const s = this.#sessions.get(id)
    if (s) this.#sessions.set(id, { ...s, status })
  }

  remove(id: string): void {
    this.#sessions.delete(id)
    this.#instances.delete(id)
  }

  cached(id: string): SessionInfo | undefined {
    return this.#sessions.get(id)
  }

  /** Re-reads one instance after an event (errors logged: the next refresh repairs the cache). */
  async sync(id: string): Promise<SessionInfo | null> {
    try {
      return (await this.fetch(id))?.session ?? null
    } catch (err) {
      this.#log.warn({ err, id }, 'session sync failed')
      this.#loadedAt = 0
      return null
    }
  }
}
