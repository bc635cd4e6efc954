// The one owner of session state: the session cache, the `session.*` events on the hub and the
// history file are written here and nowhere else. Three inputs feed it: Incus lifecycle events
// (the table in lifecycle.ts), the outcomes commands report (create, resume, stop, delete), and
// full resyncs (monitor (re)connect, or a list while the monitor is down).
import type { Logger } from 'pino'
import type {
  AgentStart,
  AgentStatus,
  LaunchPath,
  LaunchTimings,
  SessionInfo,
  SessionStatus,
  WarmKind,
} from '../../shared/schemas/sessions.ts'
import type { EventHub } from '../events/hub.ts'
import type { HistoryStore, StartInfo } from '../history/store.ts'
import type { IncusDriver, LifecycleEvent } from '../incus/driver.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import {
  ACTION_RULES,
  parseAction,
  transitionEvents,
  type ActionRule,
  type FollowUp,
} from './lifecycle.ts'
import { isSessionName } from './naming.ts'
import { SessionCache, toSession } from './registry.ts'
import { KeyedMutex } from './slots.ts'

/** A launch is over in these statuses (frozen is paused, not over). */
const ENDED: ReadonlySet<SessionStatus> = new Set(['stopped', 'error'])

/** What routes and terminals read; nothing outside the reconciler writes sessions. */
export interface SessionReader {
  readonly prefix: string
  /** Sessions sorted by id (from the cache while the monitor is live). */
  list(): Promise<SessionInfo[]>
}

export interface ReconcilerDeps {
  driver: IncusDriver
  prefix: string
  hub: EventHub
  history: HistoryStore
  log: Logger
  /** While the monitor is down, how old the cache may be before a list reads Incus again. */
  ttlMs?: number
  /**
   * Whether `name` is an unclaimed warm pool container (server/pool/): its lifecycle events are
   * ignored (without the managed label it would never become a session, but its deletion would
   * still reach the end listeners and history).
   */
  poolMember?: (name: string) => boolean
}

/** Called when a launch ended (stopped, deleted): `gone` when the instance no longer exists. */
export type EndListener = (id: string, gone: boolean) => void | Promise<void>

export class SessionReconciler implements SessionReader {
  readonly #d: ReconcilerDeps
  readonly #cache = new SessionCache()
  readonly #chains = new KeyedMutex()
  /** Per session, bumped by every change applied: a read older than a change is not applied. */
  readonly #version = new Map<string, number>()
  readonly #inFlight = new Set<Promise<unknown>>()
  readonly #endListeners = new Set<EndListener>()
  /** Issue 17: each session's last agent status, shown while it runs, dropped when it ends. */
  readonly #agents = new Map<string, AgentStatus>()
  #loadedAt = 0
  #live = false
  #seeded = false
  #resyncing: Promise<void> | null = null

  constructor(deps: ReconcilerDeps) {
    this.#d = deps
  }

  get prefix(): string {
    return this.#d.prefix
  }

  onEnd(listener: EndListener): () => void {
    this.#endListeners.add(listener)
    return () => this.#endListeners.delete(listener)
  }

  /** The monitor is connected (the cache is kept right by events) or not (lists read Incus). */
  setLive(live: boolean): void {
    this.#live = live
    if (!live) this.#loadedAt = 0
  }

  #fresh(): boolean {
    const ttl = this.#d.ttlMs ?? 1000
    return this.#loadedAt > 0 && (this.#live || Date.now() - this.#loadedAt < ttl)
  }

  async list(): Promise<SessionInfo[]> {
    if (!this.#fresh()) await this.resync()
    return this.#cache.list()
  }

  async instances(): Promise<IncusInstance[]> {
    if (!this.#fresh()) await this.resync()
    return this.#cache.instances()
  }

  cached(id: string): SessionInfo | undefined {
    return this.#cache.get(id)
  }

  /** One session read from Incus now (before acting on it); what it finds is applied. */
  async fetch(id: string): Promise<{ session: SessionInfo; instance: IncusInstance } | null> {
    if (!isSessionName(this.#d.prefix, id)) return null
    const since = this.#versionOf(id)
    const inst = await this.#d.driver.getInstance(id, { timeoutMs: 10_000 })
    const session = inst ? toSession(this.#d.prefix, inst) : null
    this.#applyRead(id, inst, since)
    return inst && session ? { session, instance: inst } : null
  }

  /**
   * Reads every instance and publishes what changed since the cache last saw it (nothing the
   * first time: that is the starting point). Closes the history of every session not running.
   * Concurrent callers share one read.
   */
  resync(): Promise<void> {
    this.#resyncing ??= this.#resync().finally(() => {
      this.#resyncing = null
    })
    return this.#resyncing
  }

  async #resync(): Promise<void> {
    const since = new Map(this.#version)
    const list = await this.#d.driver.listInstances({ timeoutMs: 10_000 })
    const seen = new Map<string, IncusInstance>()
    for (const inst of list) if (toSession(this.#d.prefix, inst)) seen.set(inst.name, inst)
    const ids = new Set([...this.#cache.ids(), ...seen.keys()])
    const publish = this.#seeded
    for (const id of ids) {
      // Changed by an event during the read: the event is newer than the list.
      if ((this.#version.get(id) ?? 0) !== (since.get(id) ?? 0)) continue
      const had = this.#cache.get(id) !== undefined
      const inst = seen.get(id) ?? null
      this.#applyInstance(id, inst, publish)
      if (had && !inst) await this.#end(id, true)
    }
    this.#seeded = true
    this.#loadedAt = Date.now()
    for (const s of this.#cache.list()) if (ENDED.has(s.status)) await this.#end(s.id, false)
  }

  /** Takes one monitor event (never throws; work for one instance runs in order). */
  onLifecycle(e: LifecycleEvent): void {
    // A warm pool member is no session: its events never reach the cache, events or history.
    if (!isSessionName(this.#d.prefix, e.name) || this.#d.poolMember?.(e.name)) return
    const action = parseAction(e.action)
    if (!action) {
      this.#d.log.debug({ action: e.action, session: e.name }, 'lifecycle action ignored')
      return
    }
    const rule = ACTION_RULES[action]
    this.#track(
      this.#chains.run(e.name, async () => {
        await this.#applyRule(e.name, rule)
        const at = new Date(e.timestamp)
        await this.#followUp(e.name, rule.followUp, Number.isNaN(at.getTime()) ? new Date() : at)
      }),
    )
  }

  /** The status change of one rule; a session not in the cache is read (events carry it). */
  async #applyRule(id: string, rule: ActionRule): Promise<void> {
    const { status } = rule
    if (status === null) return
    if (status === 'read' || (status !== 'gone' && !this.#cache.get(id))) {
      await this.#read(id)
      return
    }
    const published =
      status === 'gone' ? this.#applyInstance(id, null, true) : this.#setStatus(id, status)
    const session = this.#cache.get(id)
    if (session && published === 0)
      for (const type of rule.always ?? []) this.#publish(type, id, session)
  }

  async #followUp(id: string, steps: readonly FollowUp[], at: Date): Promise<void> {
    for (const step of steps) {
      if (step === 'end') await this.#end(id, !this.#cache.get(id), at)
      // Off the chain: the next event of this instance does not wait for Incus.
      else this.#track(this.#read(id))
    }
  }

  /** `session.launching`: a creation's step, then `done` or `failed` (with the reason). */
  launching(
    id: string,
    step: string,
    progress: number,
    error?: string,
    launch?: {
      path: LaunchPath
      warm?: WarmKind
      timings: LaunchTimings
      cold_reason?: string
      agent_start?: AgentStart
      agent_start_reason?: string
    },
  ): void {
    this.#d.hub.publish({
      type: 'session.launching',
      id,
      step,
      progress,
      ...(error === undefined ? {} : { error }),
      ...(launch ?? {}),
    })
  }

  /** A creation finished: the instance as read at its end, and the launch for the history. */
  async created(inst: IncusInstance, start: StartInfo): Promise<SessionInfo | null> {
    await this.#d.history.recordStart(start)
    this.#applyInstance(inst.name, inst, true)
    return this.#cache.get(inst.name) ?? null
  }

  /**
   * A resume relaunched the tool: the previous launch ends, this one starts. `relaunchOnly`: the
   * container was running already (only the tool was started again), so no Incus event says so
   * and `session.started` is published here, with the new start time.
   */
  async resumed(id: string, start: StartInfo, opts: { relaunchOnly: boolean }): Promise<void> {
    await this.#d.history.recordEnd(id, start.time)
    await this.#d.history.recordStart(start)
    const published = await this.#read(id)
    const session = this.#cache.get(id)
    if (opts.relaunchOnly && published === 0 && session?.status === 'running')
      this.#publish('session.started', id, session)
  }

  /** A command stopped the session (Stop, a deadline, a failed resume). */
  async stopped(id: string): Promise<void> {
    this.#setStatus(id, 'stopped')
    await this.#end(id, false)
  }

  /** A command deleted the instance (Stop with force, a rollback, a leftover removed). */
  async deleted(id: string): Promise<void> {
    this.#applyInstance(id, null, true)
    await this.#end(id, true)
  }

  /**
   * Issue 17: the agent status tracker (agent/tracker.ts) announces a session's agent status.
   * Kept until the launch ends (stopped, deleted); on the session (and `session.agent`) only
   * while it is running: a session that is not running has no `agent`.
   */
  agent(id: string, agent: AgentStatus): void {
    this.#agents.set(id, agent)
    const before = this.#cache.get(id)
    if (before?.status !== 'running') return
    this.#cache.put({ ...before, agent }, this.#cache.instance(id))
    this.#d.hub.publish({ type: 'session.agent', id, agent })
  }

  /**
   * Drops the agent status kept for `id` when it is no session (a primed member whose agent was
   * started ahead, removed unclaimed): nothing else would, as no launch of it ends.
   */
  forgetAgent(id: string): void {
    if (!this.#cache.get(id)) this.#agents.delete(id)
  }

  /** `s` with its agent status when it runs, without one otherwise. */
  #withAgent(s: SessionInfo): SessionInfo {
    const agent = this.#agents.get(s.id)
    if (s.status === 'running' && agent) return { ...s, agent }
    if (s.agent === undefined) return s
    const out = { ...s }
    delete out.agent
    return out
  }

  /** Waits for the follow-ups in flight (shutdown). */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight])
  }

  async #end(id: string, gone: boolean, at = new Date()): Promise<void> {
    this.#agents.delete(id)
    const s = this.#cache.get(id)
    if (s?.agent) this.#cache.put(this.#withAgent(s), this.#cache.instance(id))
    for (const l of this.#endListeners) await l(id, gone)
    await this.#d.history.recordEnd(id, at)
  }

  /** Re-reads one instance; errors are logged and the next resync repairs the cache. */
  /** The number of events it published. */
  async #read(id: string): Promise<number> {
    const since = this.#versionOf(id)
    try {
      const inst = await this.#d.driver.getInstance(id, { timeoutMs: 10_000 })
      return this.#applyRead(id, inst, since)
    } catch (err) {
      this.#d.log.warn({ err, id }, 'session read failed')
      this.#loadedAt = 0
      return 0
    }
  }

  #applyRead(id: string, inst: IncusInstance | null, since: number): number {
    if (this.#versionOf(id) !== since) return 0
    return this.#applyInstance(id, inst, true)
  }

  #versionOf(id: string): number {
    return this.#version.get(id) ?? 0
  }

  #bump(id: string): void {
    this.#version.set(id, this.#versionOf(id) + 1)
  }

  /** The number of events published. */
  #setStatus(id: string, status: SessionStatus): number {
    const before = this.#cache.get(id)
    if (!before) return 0
    this.#bump(id)
    const after = this.#withAgent({ ...before, status })
    this.#cache.put(after, this.#cache.instance(id))
    return this.#publishChange(id, before, after)
  }

  /** Puts what Incus said (null: no such session of ours) in the cache, publishing the change. */
  #applyInstance(id: string, inst: IncusInstance | null, publish: boolean): number {
    const before = this.#cache.get(id)
    const read = inst ? toSession(this.#d.prefix, inst) : null
    const after = read ? this.#withAgent(read) : null
    if (after && inst) this.#cache.put(after, inst)
    else this.#cache.drop(id)
    if (after || before) this.#bump(id)
    return publish ? this.#publishChange(id, before, after ?? undefined) : 0
  }

  #publishChange(id: string, before?: SessionInfo, after?: SessionInfo): number {
    const types = transitionEvents(before?.status, after?.status)
    for (const type of types) {
      // A deletion: `stopped` says stopped; `deleted` carries the session as last seen.
      const last =
        before && type === 'session.stopped' ? { ...before, status: 'stopped' as const } : before
      const session = after ?? last
      if (session) this.#publish(type, id, session)
    }
    return types.length
  }

  #publish(
    type: ReturnType<typeof transitionEvents>[number],
    id: string,
    session: SessionInfo,
  ): void {
    this.#d.hub.publish({ type, id, session })
  }

  #track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => {
      this.#d.log.warn({ err }, 'session follow-up failed')
    })
    this.#inFlight.add(tracked)
    void tracked.finally(() => this.#inFlight.delete(tracked))
  }
}
