// Session commands (create, stop, resume) and crash recovery: orchestration only. What a creation
// does is the step list in launch-steps.ts; what the commands change is reported to the reconciler,
// the one writer of the session cache, session events and history.
import type { Logger } from 'pino'
import type { ImageState } from '../../shared/schemas/health.ts'
import type { CreatedSession, CreateSessionBody } from '../../shared/schemas/sessions.ts'
import type { SessionInfo } from '../../shared/schemas/sessions.ts'
import type { ConfigStore } from '../config/store.ts'
import { NotFoundError } from '../errors.ts'
import type { IncusDriver } from '../incus/driver.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import type { EgressService } from '../network/egress.ts'
import type { AgentTracker } from './agent/tracker.ts'
import { DeadlineScheduler, type DeadlineAction } from './deadlines.ts'
import { CreationCancelledError, runLaunch, type LaunchContext } from './launch.ts'
import { planLaunch, PoolDriverCache } from './launch-plan.ts'
import { containerName, isSessionName, workspaceHash } from './naming.ts'
import { specForPlan } from './pool/key.ts'
import type { WarmPool } from './pool/manager.ts'
import type { AgentHandover } from './launch-config.ts'
import { claimPrimed, createPrimer, withMemberCreated } from './primed-launch.ts'
import { parseProtectLabel, removeCreatedDirs, type ProtectionPlan } from './protect.ts'
import type { SessionReconciler } from './reconciler.ts'
import { resumeSession } from './resume.ts'
import { restoreSessions } from './restore.ts'
import { PROTECTION } from './session-config.ts'
import { SlotAllocator } from './slots.ts'

export { CreationCancelledError } from './launch.ts'

const STOP_TIMEOUT_S = 30

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
    deps.pool?.usePrimer(createPrimer({ ...deps, ...this.#launchContext(), pool: this.#pool }))
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
      const ctx = this.#launchContext()
      let run = plan
      const launch = async (
        name: string,
        warm: boolean,
        reason?: string,
        primed?: { agent: AgentHandover | undefined; sessionId: string | undefined },
      ) => {
        const r = { plan: run, slot, name, clientSignal, signal, warm, coldReason: reason, primed }
        const created = await runLaunch(ctx, r)
        // The next launch of this request is primed (pool/primed.ts).
        d.pool?.remember({ workspace: plan.workspace, tool: plan.tool, profile: plan.profile })
        return created
      }
      try {
        // A container primed for this very request first (its key is this plan's), else a
        // generic stopped one, else cold.
        const primed = d.pool
          ? await claimPrimed(d.pool, d.egress, plan, d.home, d.config.current.pool.prestart)
          : null
        let primedReason = primed && 'reason' in primed ? primed.reason : undefined
        if (primed && 'name' in primed) {
          run = withMemberCreated(plan, primed.made)
          try {
            const { agent } = primed
            return await launch(primed.name, true, undefined, {
              agent,
              sessionId: primed.made.agent?.sessionId,
            })
          } catch (err) {
            if (signal.aborted || err instanceof CreationCancelledError) {
              await this.#removeCreated(run.workspace, run.protection, primed.name, slot)
              throw err
            }
            d.log.warn({ err, container: primed.name }, 'primed launch failed; trying cold')
            primedReason = 'the primed container failed'
          }
        }
        const claim = d.pool ? d.pool.claim(specForPlan(plan)) : { reason: 'pool disabled' }
        if ('name' in claim) {
          try {
            return await launch(claim.name, true)
          } catch (err) {
            // A claimed container that failed is deleted (never back in the pool); the create
            // is tried once more cold, unless it was cancelled.
            if (signal.aborted || err instanceof CreationCancelledError) {
              await this.#removeCreated(run.workspace, run.protection, claim.name, slot)
              throw err
            }
            d.log.warn({ err, container: claim.name }, 'warm launch failed; trying cold')
            const cold = containerName(d.prefix, hash, slot)
            return await launch(cold, false, 'the warm container failed')
          }
        }
        const cold = containerName(d.prefix, hash, slot)
        return await launch(cold, false, primedReason ?? claim.reason)
      } finally {
        this.#slots.release(hash, slot)
      }
    } finally {
      idle?.()
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
      if (creating || existing) return
      // A primed member of the workspace has them mounted: they become its (removed with it).
      if (this.#d.pool?.adoptCreated(workspace, plan.created, self)) return
      await removeCreatedDirs(workspace, plan.created, plan.root)
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
   * leftovers and re-arm deadlines (restore.ts).
   */
  async restore(): Promise<void> {
    await restoreSessions({
      ...this.#launchContext(),
      prefix: this.#d.prefix,
      startedAt: this.#startedAt,
      creating: (hash, slot) => this.#slots.reserved(hash, slot),
    })
  }

  /** What every launch shares (launch.ts). */
  #launchContext(): LaunchContext {
    return {
      ...this.#d,
      deadlines: this.#deadlines,
      serverSignal: this.#abort.signal,
      orphans: this.#orphans,
      claiming: this.#claiming,
      removeCreated: (workspace, plan, self, selfSlot) =>
        this.#removeCreated(workspace, plan, self, selfSlot),
    }
  }
}
