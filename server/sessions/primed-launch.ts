// Primed pool members from the session side (issue 16): the Primer the pool calls to make one (a
// cold create of a recent request up to `tmpfs`, then frozen) and to remove one (as a rollback
// does), and the claim a create tries first (its fresh plan must hash to the member's key).
import { randomUUID } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { runSteps } from '../../shared/steps.ts'
import type { IncusDriver } from '../incus/driver.ts'
import type { EgressService } from '../network/egress.ts'
import { readWorkspaceNetwork } from '../network/session-policy.ts'
import type { AgentHandover, LaunchTarget } from './launch-config.ts'
import type { LaunchContext } from './launch.ts'
import { planLaunch, type LaunchPlan, type PlanDeps } from './launch-plan.ts'
import { launchSteps } from './launch-steps.ts'
import { agentView } from './pool/agent-view.ts'
import { waitSettled } from './pool/settle.ts'
import type { WarmPool } from './pool/manager.ts'
import { primedKey, type PrimeRequest } from './pool/primed-key.ts'
import {
  mergeCreated,
  PRIMED_PREFIX,
  type PrimedInfo,
  type PrimedMade,
  type Primer,
} from './pool/primed.ts'
import { deleteWithRetry } from './readiness.ts'

/** What making a member needs: a plan's inputs and the launch context's (service.ts gives both). */
export type PrimerDeps = PlanDeps &
  Pick<
    LaunchContext,
    | 'driver'
    | 'log'
    | 'home'
    | 'readyTimeoutMs'
    | 'egress'
    | 'agents'
    | 'deadlines'
    | 'removeCreated'
  >

/**
 * The egress config a session of `workspace` gets at creation (egress.prepareCreate: the proxy
 * environment and the workspace's `[network]` table as recorded), read without preparing one: the
 * network part of a claim's key.
 */
export async function networkConfig(
  egress: EgressService | undefined,
  workspace: string,
): Promise<Record<string, string>> {
  return egress ? egress.networkConfig(await readWorkspaceNetwork(workspace)) : {}
}

/** The plan with the directories the member's protection made (removed when the session goes). */
export function withMemberCreated(plan: LaunchPlan, made: PrimedMade): LaunchPlan {
  const had = made.protection?.created ?? []
  if (!plan.protection || had.length === 0) return plan
  const created = mergeCreated(had, plan.protection.created)
  return { ...plan, protection: { ...plan.protection, created } }
}

/**
 * A create's claim of the member primed for its request: its key from the fresh plan and, with
 * `prestart` (`[pool] prestart` of the global config), the agent's view of the workspace now (agent-view.ts), then the pool's
 * synchronous pick (a member whose agent started from another view is stale, never restarted in
 * place: primed.ts). `{name, made, agent}` to launch (`agent`: the member's agent started ahead,
 * to hand over); `{reason}` when the request's member could not serve it (stale: the pool removes
 * it); null when the request has none.
 */
export async function claimPrimed(
  pool: WarmPool,
  egress: EgressService | undefined,
  plan: LaunchPlan,
  home: string,
  prestart: boolean,
): Promise<
  { name: string; made: PrimedMade; agent: AgentHandover | undefined } | { reason: string } | null
> {
  const key = primedKey(plan, await networkConfig(egress, plan.workspace))
  // Taken before the pick (which is synchronous); without prestart (the global files' setting),
  // none (a member whose agent was started ahead is then not claimed).
  const view = prestart ? await agentView(plan.workspace, home, plan.tool) : null
  const got = pool.claimPrimed(
    { workspace: plan.workspace, tool: plan.tool, profile: plan.profile },
    key,
    view,
  )
  if (!got) return null
  if ('name' in got) return { ...got, agent: got.made.agent ? {} : undefined }
  return { reason: got.reason }
}

/** The Primer the pool runs (pool/primed.ts). */
export function createPrimer(d: PrimerDeps): Primer {
  const forget = async (name: string): Promise<void> => {
    await d.egress?.forget(name).catch(() => undefined)
    await d.agents?.forget(name).catch(() => undefined)
  }
  const remove = async (name: string, info: PrimedInfo | null): Promise<void> => {
    if (!(await deleteWithRetry(d.driver, name, d.log).catch(() => false)))
      d.log.warn({ container: name }, 'could not delete a primed container')
    await forget(name)
    if (info) await d.removeCreated(info.workspace, info.protection, name, null)
  }
  return {
    remove,
    async make(name: string, req: PrimeRequest, signal: AbortSignal): Promise<PrimedMade> {
      const plan = await planLaunch(d, req, signal)
      let stepsDone = false
      try {
        const network =
          (await d.egress?.prepareCreate(name, plan.workspace, plan.profile, plan.tool)) ?? {}
        const key = primedKey(plan, network)
        // `[pool] prestart` (the global file's: a workspace cannot turn it on): the agent starts
        // too. Its view is taken before it starts, so a change while it starts counts as one. A
        // workspace with no view (past the walk's bounds) gets no agent started ahead: no claim
        // could tell it is still current.
        const prestart = d.config.current.pool.prestart
        const view = prestart ? await agentView(plan.workspace, d.home, plan.tool) : null
        if (prestart && view === null)
          d.log.info(
            { container: name },
            'no view of the workspace: the agent is not started ahead',
          )
        const agent = view !== null
        const t: LaunchTarget = {
          name,
          sessionId: randomUUID(),
          created: new Date(),
          prime: { label: `${PRIMED_PREFIX}${key.key}`, network, agent },
        }
        const log = d.log.child({ container: name })
        const env = {
          ...d,
          log,
          serverSignal: signal,
          created: () => Promise.resolve(),
          deleted: () => Promise.resolve(),
          // Left for the pool's sweep at the next (re)connect (it carries the pool label).
          orphan: (n: string) => {
            log.warn({ container: n }, 'could not delete a primed container; swept later')
          },
        }
        await runSteps(launchSteps(env, plan, t), { signal })
        stepsDone = true
        // An agent started ahead is frozen once it is done starting, not at its first output.
        if (agent) {
          const settled = await waitSettled(
            {
              cpuNs: () => d.driver.cpuUsage(name, { signal, timeoutMs: 10_000 }),
              now: () => performance.now(),
              wait: (ms, s) => delay(ms, undefined, { signal: s }),
            },
            signal,
          )
          log.info({ ...settled, ms: Math.round(settled.ms) }, 'agent started ahead')
        }
        await d.driver.freeze(name, { signal })
        const memoryBytes = await memoryOf(d.driver, name, signal)
        return {
          key,
          workspace: plan.workspace,
          protection: plan.protection,
          memoryBytes,
          agent: view === null ? null : { sessionId: t.sessionId, view },
        }
      } catch (err) {
        // The steps undid themselves (the container deleted); after them it is ours to delete.
        if (stepsDone) await deleteWithRetry(d.driver, name, d.log).catch(() => false)
        await forget(name)
        await d.removeCreated(plan.workspace, plan.protection, name, null)
        throw err
      }
    },
  }
}

/** The container's memory use in bytes, from Incus (0 when it cannot tell). */
async function memoryOf(driver: IncusDriver, name: string, signal: AbortSignal): Promise<number> {
  const usage = await driver.memoryUsage(name, { signal, timeoutMs: 10_000 }).catch(() => null)
  return usage === null ? 0 : Math.round(usage)
}
