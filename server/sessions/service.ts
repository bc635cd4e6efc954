// Session commands (create, stop, resume) and crash recovery: orchestration only. What a creation
// does is the step list in launch-steps.ts; what the commands change is reported to the reconciler,
// the one writer of the session cache, session events and history.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { ImageState } from '../../shared/schemas/health.ts'
import type { CreatedSession, CreateSessionBody } from '../../shared/schemas/sessions.ts'
import type { LaunchTimings, SessionInfo } from '../../shared/schemas/sessions.ts'
import { runSteps, StepFailure, timeSteps } from '../../shared/steps.ts'
import type { ConfigStore } from '../config/store.ts'
import { AppError, NotFoundError } from '../errors.ts'
import type { IncusDriver } from '../incus/driver.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import type { EgressService } from '../network/egress.ts'
import type { AgentTracker } from './agent/tracker.ts'
import { DeadlineScheduler, type DeadlineAction } from './deadlines.ts'
import { planLaunch, PoolDriverCache, type LaunchPlan } from './launch-plan.ts'
import { launchError, launchSteps, type LaunchTarget } from './launch-steps.ts'
import { containerName, isSessionName, parseContainerName, workspaceHash } from './naming.ts'
import { specForPlan } from './pool/key.ts'
import type { WarmPool } from './pool/manager.ts'
import { parseProtectLabel, removeCreatedDirs, type ProtectionPlan } from './protect.ts'
import type { SessionReconciler } from './reconciler.ts'
import { LABEL, slotOf } from './registry.ts'
import { resumeSession } from './resume.ts'
import { PROTECTION } from './session-config.ts'
import { SlotAllocator } from './slots.ts'

const STOP_TIMEOUT_S = 30

/** The client of a creation went away before the answer: the work is undone, nothing is sent. */
export class CreationCancelledError extends AppError {
  constructor() {
    super(499, 'client_closed', 'the client closed the connection; the session was rolled back')
  }
}

export interface SessionServiceDeps {
  driver: IncusDriver
  reconciler: SessionReconciler
  config: ConfigStore
  log: Logger
  prefix: string
  /** The host user's home: tool config is copied from here. */
  home: string
  /** The state of an image being built, if it is (creating then answers 503). */
  imageState?: (alias: string) => ImageState | null
  readyTimeoutMs?: number
  /** Network egress (issue 12): the proxy device, environment, policy and `lo`. */
  egress?: EgressService
  /** Agent status (issue 17): the hook channel's device and the hooks in the tool config. */
  agents?: AgentTracker
  /** The warm pool (issue 16); without it every create is cold ("pool disabled"). */
  pool?: WarmPool
}

export class SessionService {
  readonly #d: SessionServiceDeps
  readonly #slots: SlotAllocator
  readonly #pool: PoolDriverCache
  readonly #deadlines: DeadlineScheduler
  readonly #abort = new AbortController()
  readonly #inFlight = new Set<Promise<unknown>>()
  /** Half-created containers whose rollback failed. */
  readonly #orphans = new Set<string>()
  /** Warm pool containers being turned into sessions (their names carry no slot). */
  readonly #claiming = new Set<string>()
  readonly #startedAt = Date.now()
  readonly #unsubscribe: () => void

  constructor(deps: SessionServiceDeps) {
    this.#d = deps
    this.#slots = new SlotAllocator(deps.driver, deps.prefix)
    this.#pool = new PoolDriverCache(deps.driver, deps.log)
    this.#deadlines = new DeadlineScheduler(
      (id, action) => this.#expire(id, action),
      deps.log.child({ component: 'deadlines' }),
    )
    // A launch that ended (whoever ended it) has no deadline; a deleted one no egress proxy.
    this.#unsubscribe = deps.reconciler.onEnd(async (id, gone) => {
      this.#deadlines.cancel(id)
      if (gone) await deps.egress?.forget(id).catch(() => undefined)
    })
  }

  get deadlines(): DeadlineScheduler {
    return this.#deadlines
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p)
    void p.finally(() => this.#inFlight.delete(p)).catch(() => undefined)
    return p
  }

  /** Cancels in-flight work (rolling it back) and drops timers. */
  async dispose(): Promise<void> {
    this.#abort.abort()
    this.#deadlines.dispose()
    this.#unsubscribe()
    await Promise.allSettled([...this.#inFlight])
    await this.#d.reconciler.settled()
  }

  /**
   * Creates a session. `signal` is the client's: when it aborts before the answer (the client
   * went away), the creation stops at the next step and is rolled back like a failure.
   */
  async create(body: CreateSessionBody, signal?: AbortSignal): Promise<CreatedSession> {
    return this.#track(this.#create(body, signal))
  }

  async #create(body: CreateSessionBody, clientSignal?: AbortSignal): Promise<CreatedSession> {
    const d = this.#d
    // Cancelled by the client going away or by the server shutting down.
    const server = this.#abort.signal
    const signal = clientSignal ? AbortSignal.any([server, clientSignal]) : server
    // The pool makes no container while a create runs (it refills after).
    const idle = d.pool?.beginCreate()
    try {
      const plan = await planLaunch({ ...d, pool: this.#pool }, body, signal)
      const hash = workspaceHash(plan.workspace)
      let slot: number
      try {
        slot = await this.#slots.reserve(hash, signal)
      } catch (err) {
        // Like every other rollback: not while another session of the workspace exists or is
        // being created (it planned after this one and may mount what this one made).
        await this.#removeCreated(plan.workspace, plan.protection, '', null)
        throw err
      }
      try {
        const claim = d.pool ? d.pool.claim(specForPlan(plan)) : { reason: 'pool disabled' }
        if ('name' in claim) {
          try {
            return await this.#launch(plan, slot, claim.name, clientSignal, signal, true)
          } catch (err) {
            // A claimed container that failed is deleted (never back in the pool); the create
            // is tried once more cold, unless it was cancelled.
            if (signal.aborted || err instanceof CreationCancelledError) {
              await this.#removeCreated(plan.workspace, plan.protection, claim.name, slot)
              throw err
            }
            d.log.warn({ err, container: claim.name }, 'warm launch failed; trying cold')
            return await this.#launch(
              plan,
              slot,
              containerName(d.prefix, hash, slot),
              clientSignal,
              signal,
              false,
              'the warm container failed',
            )
          }
        }
        const name = containerName(d.prefix, hash, slot)
        return await this.#launch(plan, slot, name, clientSignal, signal, false, claim.reason)
      } finally {
        this.#slots.release(hash, slot)
      }
    } finally {
      idle?.()
    }
  }

  /**
   * Runs the launch steps for `name`: a new container (cold), or a claimed pool container (warm,
   * the `claim` step in place of `init`). Rolls back and throws the API error on failure.
   */
  async #launch(
    plan: LaunchPlan,
    slot: number,
    name: string,
    clientSignal: AbortSignal | undefined,
    signal: AbortSignal,
    warm: boolean,
    coldReason?: string,
  ): Promise<CreatedSession> {
    const d = this.#d
    const r = d.reconciler
    const server = this.#abort.signal
    const t: LaunchTarget = {
      name,
      sessionId: randomUUID(),
      created: new Date(),
      ...(warm ? { warm: { slot } } : {}),
    }
    const log = d.log.child({ session: name })
    const steps = launchSteps(
      {
        ...d,
        log,
        deadlines: this.#deadlines,
        serverSignal: server,
        created: async (inst) => {
          const { workspace, tool, persistent } = plan
          await r.created(inst, { ...t, id: name, workspace, tool, persistent, time: t.created })
        },
        deleted: (n) => r.deleted(n),
        orphan: (n) => this.#orphans.add(n),
      },
      plan,
      t,
    )
    const timings: LaunchTimings = {}
    if (warm) this.#claiming.add(name)
    try {
      await runSteps(steps, {
        signal,
        onProgress: (p) => {
          r.launching(name, p.step, p.progress)
        },
        around: timeSteps(timings),
      })
      const path = warm ? ('warm' as const) : ('cold' as const)
      log.info(
        { workspace: plan.workspace, tool: plan.tool, slot, path, timings },
        'session created',
      )
      const launch = { path, timings, ...(coldReason ? { cold_reason: coldReason } : {}) }
      r.launching(name, 'done', 1, undefined, launch)
      const { workspace, tool, persistent } = plan
      const at = t.created.toISOString()
      const session: SessionInfo = r.cached(name) ?? {
        id: name,
        workspace,
        tool,
        slot,
        status: 'running',
        persistent,
        created_at: at,
      }
      return { ...session, ...launch }
    } catch (err) {
      const step: unknown = err instanceof StepFailure ? err.step : undefined
      const byClient = clientSignal?.aborted === true && !server.aborted
      if (byClient) log.info({ step }, 'session creation cancelled by the client; rolling back')
      else log.warn({ err, step }, 'session creation failed; rolling back')
      // Warm: the caller removes them, unless it tries cold with them.
      if (!warm) await this.#removeCreated(plan.workspace, plan.protection, name, slot)
      const failure = byClient ? new CreationCancelledError() : launchError(err)
      r.launching(name, 'failed', 1, failure instanceof Error ? failure.message : String(failure))
      throw failure
    } finally {
      this.#claiming.delete(name)
    }
  }

  /**
   * Removes the empty directories a session's protection made, unless another session of the
   * workspace exists or is being created (it may have them mounted, or be about to).
   */
  async #removeCreated(
    workspace: string,
    plan: ProtectionPlan | null,
    self: string,
    selfSlot: number | null,
  ): Promise<void> {
    if (!plan || plan.created.length === 0) return
    const hash = workspaceHash(workspace)
    try {
      const creating = this.#slots.reserved(hash, undefined, selfSlot ?? undefined)
      const existing = (await this.#d.reconciler.list()).some(
        (s) => s.id !== self && s.workspace === workspace,
      )
      if (!creating && !existing) await removeCreatedDirs(workspace, plan.created)
    } catch (err) {
      this.#d.log.warn({ err, workspace }, 'could not remove the directories made for protection')
    }
  }

  /** Looks a session up for an action; anything not ours is 404 without reaching incus. */
  async #need(id: string): Promise<{ session: SessionInfo; instance: IncusInstance }> {
    const found = isSessionName(this.#d.prefix, id) ? await this.#d.reconciler.fetch(id) : null
    if (!found) throw new NotFoundError('session not found', 'session_not_found')
    return found
  }

  async stop(id: string, force: boolean): Promise<void> {
    const { session, instance } = await this.#need(id)
    this.#deadlines.cancel(id)
    if (force) {
      await this.#d.driver.delete(id, { force: true, signal: this.#abort.signal })
      await this.#d.reconciler.deleted(id)
      await this.#removeCreated(
        session.workspace,
        parseProtectLabel(instance.config[PROTECTION]),
        id,
        session.slot,
      )
      return
    }
    if (session.status !== 'stopped' && session.status !== 'stopping') {
      // Also a status we do not know: better an error from incus than a silent 204 while the
      // container runs on.
      await this.#d.driver.stop(id, { timeoutS: STOP_TIMEOUT_S, signal: this.#abort.signal })
    }
    await this.#d.reconciler.stopped(id)
  }

  async #expire(id: string, action: DeadlineAction): Promise<void> {
    if (action === 'none') return
    const found = await this.#d.reconciler.fetch(id)
    if (!found || found.session.status === 'stopped' || found.session.status === 'stopping') return
    await this.#d.driver.stop(
      id,
      action === 'force' ? { force: true } : { timeoutS: STOP_TIMEOUT_S },
    )
    await this.#d.reconciler.stopped(id)
  }

  async resume(id: string): Promise<{ id: string; status: 'running' }> {
    return this.#track(this.#resume(id))
  }

  async #resume(id: string): Promise<{ id: string; status: 'running' }> {
    const found = await this.#need(id)
    await resumeSession(
      { ...this.#d, deadlines: this.#deadlines, signal: this.#abort.signal },
      found,
    )
    return { id, status: 'running' }
  }

  /**
   * After (re)start of the server or of Incus: resync the sessions, remove half-created
   * leftovers and re-arm deadlines.
   */
  async restore(): Promise<void> {
    const { driver, reconciler: r, log } = this.#d
    await r.resync()
    for (const inst of await r.instances()) {
      const created = Date.parse(inst.config[LABEL.created] ?? '')
      const parsed = parseContainerName(this.#d.prefix, inst.name)
      const creating =
        (parsed !== null && this.#slots.reserved(parsed.hash, parsed.slot)) ||
        this.#claiming.has(inst.name)
      const leftover =
        inst.config[LABEL.ready] !== 'true' &&
        !creating &&
        (this.#orphans.has(inst.name) || Number.isNaN(created) || created < this.#startedAt)
      if (leftover) {
        log.warn({ session: inst.name }, 'removing a half-created container')
        try {
          await driver.delete(inst.name, { force: true, timeoutMs: 60_000 })
          this.#orphans.delete(inst.name)
          await r.deleted(inst.name)
          const ws = inst.config[LABEL.workspace]
          if (ws)
            await this.#removeCreated(
              ws,
              parseProtectLabel(inst.config[PROTECTION]),
              inst.name,
              slotOf(this.#d.prefix, inst),
            )
        } catch (err) {
          log.error({ err, session: inst.name }, 'could not remove a half-created container')
        }
        continue
      }
      await this.#d.egress?.attach(inst).catch((err: unknown) => {
        log.warn({ err, session: inst.name }, 'could not open the egress proxy')
      })
      await this.#d.agents?.attach(inst).catch((err: unknown) => {
        log.warn({ err, session: inst.name }, 'could not open the agent status channel')
      })
      const deadline = inst.config[LABEL.deadline]
      const action = (inst.config[LABEL.deadlineAction] ?? 'graceful') as DeadlineAction
      if (
        r.cached(inst.name)?.status === 'running' &&
        deadline &&
        !Number.isNaN(Date.parse(deadline))
      )
        this.#deadlines.schedule(inst.name, new Date(deadline), action)
    }
  }
}
