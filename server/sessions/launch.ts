// One launch: runs the creation steps (launch-steps.ts) for a container, reports progress and the
// outcome to the reconciler, and rolls back on failure. The session service decides which
// container (a new one, or a claimed warm pool member) and calls this.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { CreatedSession, LaunchTimings, SessionInfo } from '../../shared/schemas/sessions.ts'
import { runSteps, StepFailure, timeSteps } from '../../shared/steps.ts'
import { AppError } from '../errors.ts'
import type { IncusDriver } from '../incus/driver.ts'
import type { EgressService } from '../network/egress.ts'
import type { AgentTracker } from './agent/tracker.ts'
import type { DeadlineScheduler } from './deadlines.ts'
import type { AgentHandover, LaunchTarget } from './launch-config.ts'
import { launchError } from './launch-error.ts'
import type { LaunchPlan } from './launch-plan.ts'
import { launchSteps } from './launch-steps.ts'
import type { ProtectionPlan } from './protect.ts'
import type { SessionReconciler } from './reconciler.ts'

/** The client of a creation went away before the answer: the work is undone, nothing is sent. */
export class CreationCancelledError extends AppError {
  constructor() {
    super(499, 'client_closed', 'the client closed the connection; the session was rolled back')
  }
}

/**
 * Removes the empty directories a protection plan made in `workspace`, unless another session of
 * it (not `self`, slot `selfSlot`) exists or is being created (service.ts). Never throws.
 */
export type RemoveCreated = (
  workspace: string,
  plan: ProtectionPlan | null,
  self: string,
  selfSlot: number | null,
) => Promise<void>

/** What every launch of one session service shares. */
export interface LaunchContext {
  driver: IncusDriver
  reconciler: SessionReconciler
  log: Logger
  /** The host user's home: tool config is copied from here. */
  home: string
  readyTimeoutMs?: number
  egress?: EgressService
  agents?: AgentTracker
  deadlines: DeadlineScheduler
  /** The server's shutdown (a client's cancellation is `LaunchRun.clientSignal`). */
  serverSignal: AbortSignal
  /** Half-created containers whose rollback failed (deleted by the next restore). */
  orphans: Set<string>
  /** Warm pool containers being turned into sessions (restore leaves them alone). */
  claiming: Set<string>
  /** Removes the directories the protection made, unless the workspace is in use elsewhere. */
  removeCreated: RemoveCreated
}

/** One launch: the plan, the container and how it was chosen. */
export interface LaunchRun {
  plan: LaunchPlan
  slot: number
  /** The container: a new one (cold), or a claimed pool container (warm). */
  name: string
  /** The client's signal: aborted when it went away (rolled back, 499). */
  clientSignal?: AbortSignal
  /** The client's and the server's signals together. */
  signal: AbortSignal
  /** A claimed pool container: the `claim` step in place of `init`. */
  warm: boolean
  /**
   * The claimed container was primed for this request (PRIMED_LAUNCH_STEPS). `agent`: its agent
   * was started ahead under `sessionId` (`[pool] prestart`), handed over or started again.
   */
  primed?: { agent: AgentHandover | undefined; sessionId: string | undefined }
  /** Why a launch is cold (the pool was empty, disabled, …): in the answer and the done event. */
  coldReason?: string
}

/**
 * Runs the launch steps for `run.name` and answers the created session with its path and step
 * timings. On failure: rolls back (a cold container is deleted with the directories it made; a
 * warm one is left to the caller, which deletes it or retries cold with it), reports `failed` to
 * the reconciler and throws the API error (CreationCancelledError when the client went away).
 */
export async function runLaunch(ctx: LaunchContext, run: LaunchRun): Promise<CreatedSession> {
  const { plan, slot, name, clientSignal, signal, warm, coldReason, primed } = run
  const r = ctx.reconciler
  const server = ctx.serverSignal
  const agent = primed?.agent
  const t: LaunchTarget = {
    name,
    // An agent handed over keeps the session id it was started with (a restart takes a new one).
    sessionId: (agent ? primed.sessionId : undefined) ?? randomUUID(),
    created: new Date(),
    ...(warm ? { warm: { slot, primed: primed !== undefined, ...(agent ? { agent } : {}) } } : {}),
  }
  const log = ctx.log.child({ session: name })
  const steps = launchSteps(
    {
      ...ctx,
      log,
      created: async (inst) => {
        const { workspace, tool, persistent } = plan
        await r.created(inst, { ...t, id: name, workspace, tool, persistent, time: t.created })
      },
      deleted: (n) => r.deleted(n),
      orphan: (n) => ctx.orphans.add(n),
    },
    plan,
    t,
  )
  const timings: LaunchTimings = {}
  if (warm) ctx.claiming.add(name)
  try {
    await runSteps(steps, {
      signal,
      onProgress: (p) => {
        r.launching(name, p.step, p.progress)
      },
      around: timeSteps(timings),
    })
    const path = warm ? ('warm' as const) : ('cold' as const)
    const started = agent?.result
    log.info(
      { workspace: plan.workspace, tool: plan.tool, slot, path, timings, agent: started },
      'session created',
    )
    const launch = {
      path,
      ...(warm ? { warm: primed ? ('primed' as const) : ('stopped' as const) } : {}),
      timings,
      ...(coldReason ? { cold_reason: coldReason } : {}),
      ...(started ? { agent_start: started.start } : {}),
      ...(started?.reason ? { agent_start_reason: started.reason } : {}),
    }
    r.launching(name, 'done', 1, undefined, launch)
    const { workspace, tool, persistent } = plan
    const session: SessionInfo = r.cached(name) ?? {
      id: name,
      workspace,
      tool,
      slot,
      status: 'running',
      persistent,
      created_at: t.created.toISOString(),
    }
    return { ...session, ...launch }
  } catch (err) {
    const step: unknown = err instanceof StepFailure ? err.step : undefined
    const byClient = clientSignal?.aborted === true && !server.aborted
    if (byClient) log.info({ step }, 'session creation cancelled by the client; rolling back')
    else log.warn({ err, step }, 'session creation failed; rolling back')
    // Warm: the caller removes them, unless it tries cold with them.
    if (!warm) await ctx.removeCreated(plan.workspace, plan.protection, name, slot)
    const failure = byClient ? new CreationCancelledError() : launchError(err)
    r.launching(name, 'failed', 1, failure instanceof Error ? failure.message : String(failure))
    throw failure
  } finally {
    ctx.claiming.delete(name)
  }
}
