// A session's creation as data: the steps of LaunchStepSchema, each with its undo, run by the one
// step loop (shared/steps.ts) that publishes progress and rolls back in reverse order.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { LAUNCH_STEP_LABELS, type LaunchStep } from '../../shared/schemas/launch.ts'
import type { Step } from '../../shared/steps.ts'
import type { IncusDriver } from '../incus/driver.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import type { EgressService } from '../network/egress.ts'
import type { AgentTracker } from './agent/tracker.ts'
import {
  CONTAINER_WORKSPACE,
  codeHome,
  SUDOERS_PATH,
  sudoersLine,
  TOOL_OUTPUT_DEADLINE_S,
  toolArgv,
} from './commands.ts'
import { deadlineAction, type DeadlineScheduler } from './deadlines.ts'
import {
  bakedConfig,
  creationLabels,
  primeConfig,
  sessionConfig,
  type LaunchTarget,
} from './launch-config.ts'
import { withIdmapHint } from './launch-error.ts'
import type { LaunchPlan } from './launch-plan.ts'
import { mountTmpfs, startTool, stopTool, toolAlive, verifyProtection } from './launch-tool.ts'
import { deleteWithRetry, waitReady } from './readiness.ts'
import { LABEL } from './registry.ts'
import { copyToolConfig } from './tool-config.ts'
import { TOOL_SPECS } from './tools.ts'

export interface LaunchEnv {
  driver: IncusDriver
  log: Logger
  egress?: EgressService
  /** Issue 17: the agent status channel's device and hooks. */
  agents?: AgentTracker
  deadlines: DeadlineScheduler
  /** The host user's home: tool config is copied from here. */
  home: string
  readyTimeoutMs?: number
  /** The server's shutdown: `incus init` runs under it only (see the init step). */
  serverSignal: AbortSignal
  /** The finished session, read at the end (the reconciler records and publishes it). */
  created(inst: IncusInstance): Promise<void>
  /** The rollback deleted the container. */
  deleted(name: string): Promise<void>
  /** The rollback could not delete it (Incus down): deleted when Incus is back (restore). */
  orphan(name: string): void
}

/** Rough shares of a creation's time (a local image on `dir`: start and init dominate). */
const WEIGHT: Record<LaunchStep, number> = {
  init: 3,
  claim: 1,
  thaw: 1,
  verify: 1,
  workspace: 1,
  mounts: 1,
  protect: 1,
  start: 3,
  ready: 2,
  tmpfs: 1,
  'tool-config': 1,
  tool: 2,
  agent: 1,
}

/**
 * The steps of creating `t.name` from `plan`: LAUNCH_STEPS (cold), WARM_LAUNCH_STEPS (`t.warm`, a
 * stopped pool container), PRIMED_LAUNCH_STEPS (`t.warm.primed`, a member primed for this
 * request), or, priming (`t.prime`), the cold steps up to `tmpfs` with the member's config.
 */
export function launchSteps(env: LaunchEnv, plan: LaunchPlan, t: LaunchTarget): Step<LaunchStep>[] {
  const { driver } = env
  const { name } = t
  const config = plan.config
  let initDone = false
  const step = (
    id: LaunchStep,
    run: (signal: AbortSignal) => Promise<void>,
    undo?: () => Promise<void>,
  ): Step<LaunchStep> => ({ id, label: LAUNCH_STEP_LABELS[id], weight: WEIGHT[id], run, undo })
  const disks = async (
    list: ReadonlyArray<{ device: string; props: Record<string, string> }>,
    signal: AbortSignal,
  ): Promise<void> => {
    for (const disk of list) await driver.deviceAdd(name, disk.device, disk.props, { signal })
  }
  // No disk is shifted: container ids other than the code user never meet host ids.
  const disk = (source: string, path: string, readonly = false): Record<string, string> => ({
    type: 'disk',
    source,
    path,
    ...(readonly ? { readonly: 'true' } : {}),
  })

  // The container is this creation's: deleted on rollback (never handed back to the pool).
  const undoCreate = async (ours: boolean): Promise<void> => {
    if (ours && (await deleteWithRetry(driver, name, env.log))) await env.deleted(name)
    else {
      if (ours)
        env.log.error({ session: name }, 'rollback could not delete the container; will retry')
      env.orphan(name)
    }
    await env.egress?.forget(name).catch(() => undefined)
    await env.agents?.forget(name).catch(() => undefined)
  }
  const network = (): Promise<Record<string, string>> =>
    t.prime
      ? Promise.resolve(t.prime.network)
      : (env.egress?.prepareCreate(name, plan.workspace, plan.profile, plan.tool) ??
        Promise.resolve({}))

  const copyConfig = async (signal: AbortSignal): Promise<void> => {
    const copied = await copyToolConfig(TOOL_SPECS[plan.tool], {
      driver,
      name,
      hostHome: env.home,
      containerHome: codeHome(config),
      uid: config.incus.code_uid,
      effortLevel: config.tool.claude.effort_level,
      ...(env.agents ? { hooks: env.agents.hookInstall(plan.tool, codeHome(config)) } : {}),
      signal,
    })
    env.log.debug({ session: name, copied }, 'tool config copied')
  }
  // Starts the tool in its tmux session (under t.sessionId) and waits until its pane shows output.
  const startOnly = async (signal: AbortSignal): Promise<void> => {
    const argv = toolArgv(TOOL_SPECS[plan.tool].start(t.sessionId), config.tool.binary)
    const started = await startTool(driver, name, config, argv, plan.profile, signal)
    if (!started.shown)
      env.log.warn(
        { session: name, deadlineS: TOOL_OUTPUT_DEADLINE_S },
        "the tool's pane showed nothing by the deadline; the session answers anyway",
      )
  }
  // The claim and the end of a creation: the session's labels and the ready label in one config
  // call with the runtime deadline (label), then the instance read for the reconciler (complete).
  const finish = async (signal: AbortSignal): Promise<void> => {
    await label(signal)
    await complete(signal)
  }
  const label = async (signal: AbortSignal): Promise<void> => {
    const finishing: Record<string, string> = { ...claimLabels(), [LABEL.ready]: 'true' }
    const deadline = plan.maxDurationMs
      ? {
          at: new Date(Date.now() + plan.maxDurationMs),
          action: deadlineAction(config.limits.runtime),
        }
      : null
    if (deadline) {
      finishing[LABEL.deadline] = deadline.at.toISOString()
      finishing[LABEL.deadlineAction] = deadline.action
    }
    await driver.configSet(name, finishing, { signal })
    if (deadline) env.deadlines.schedule(name, deadline.at, deadline.action)
  }
  const complete = async (signal: AbortSignal): Promise<void> => {
    const inst = await driver.getInstance(name, { signal })
    // The last point of no return: a client gone by now gets its session rolled back too.
    signal.throwIfAborted()
    if (!inst) throw new Error('the container disappeared')
    await env.created(inst)
  }

  const first = t.warm
    ? step(
        'claim',
        async (signal) => {
          // A stopped pool container (made from the image already): the session's labels (the
          // pool label removed), limits and id mapping in one call. Then the same steps as cold.
          const config = { ...sessionConfig(plan, t, await network()), [LABEL.pool]: '' }
          await driver.configSet(name, config, { signal })
        },
        () => undoCreate(true),
      )
    : step(
        'init',
        async () => {
          // Labels go on at creation, so a half-created container is already recognisably ours.
          // The client's signal does not reach init: killing `incus init` does not stop the
          // daemon's creation, which would leave a container behind after the rollback. It ends
          // (bounded by its timeout), then the cancellation is noticed and the container deleted.
          await driver.init(plan.image, name, {
            config: t.prime
              ? primeConfig(plan, t.prime)
              : { ...sessionConfig(plan, t, await network()), ...bakedConfig() },
            rootDisk: plan.rootDisk,
            signal: env.serverSignal,
          })
          initDone = true
        },
        async () => {
          // A failed (or interrupted) init may still have left the instance behind: a timed-out
          // `incus init` whose creation the daemon finished. Deleted when it carries this
          // creation's session id (never another container that happens to have the name).
          const ours =
            initDone ||
            (await driver.getInstance(name).then(
              (i) =>
                t.prime
                  ? i?.config[LABEL.pool] === t.prime.label
                  : i?.config[LABEL.sessionId] === t.sessionId,
              () => false,
            ))
          await undoCreate(ours)
        },
      )

  // A primed member (made for this request up to tmpfs, frozen): woken and checked; its session
  // labels go on with the ready label, in the tool step's one config call (each call on a running
  // container costs ~0.15-0.3 s), so until then it is still a pool member (swept if we die).
  const primed = t.warm?.primed
    ? [
        step(
          'thaw',
          (signal) => driver.unfreeze(name, { signal }),
          () => undoCreate(true),
        ),
        step('verify', async (signal) => {
          // What the member has mounted is what the plan made at the click checked, or no tool.
          if (plan.protection) await verifyProtection(driver, name, plan.protection, signal)
        }),
      ]
    : null
  const claimLabels = (): Record<string, string> =>
    t.warm?.primed
      ? {
          ...creationLabels(plan, t),
          [LABEL.slot]: String(t.warm.slot),
          [LABEL.pool]: '',
          [LABEL.primedWorkspace]: '',
        }
      : {}
  const steps = [
    first,
    step('workspace', (signal) =>
      disks([{ device: 'workspace', props: disk(plan.workspace, CONTAINER_WORKSPACE) }], signal),
    ),
    step('mounts', (signal) =>
      disks(
        plan.mounts.map((m) => ({ device: m.device, props: disk(m.source, m.path) })),
        signal,
      ),
    ),
    step('protect', (signal) =>
      disks(
        (plan.protection?.devices ?? []).map((p) => ({
          device: p.device,
          props: disk(p.source, p.path, p.readonly),
        })),
        signal,
      ),
    ),
    step('start', async (signal) => {
      await env.egress?.addDevice(name, signal)
      try {
        await driver.start(name, { signal })
      } catch (err) {
        throw await withIdmapHint(err, plan.owner)
      }
      // What Incus mounted is what was checked, or the session does not start.
      if (plan.protection) await verifyProtection(driver, name, plan.protection, signal)
    }),
    step('ready', async (signal) => {
      await waitReady(driver, name, signal, env.readyTimeoutMs)
      await env.egress?.afterStart(name, signal)
    }),
    step('tmpfs', async (signal) => {
      await mountTmpfs(driver, name, config.limits.disk.tmpfs_size, signal)
      if (config.security.agent_sudo)
        await driver.filePush(name, sudoersLine(config), SUDOERS_PATH, {
          uid: 0,
          gid: 0,
          mode: '0440',
          signal,
        })
    }),
    step('tool-config', copyConfig),
    step(
      'tool',
      async (signal) => {
        await startOnly(signal)
        if (!t.prime) await finish(signal)
      },
      async () => {
        env.deadlines.cancel(name)
      },
    ),
  ]
  // `[pool] prestart` priming: the cold steps, then the tool's config and the tool (no labels).
  if (t.prime?.agent) return steps
  if (t.prime)
    return steps.slice(
      0,
      steps.findIndex((s) => s.id === 'tool-config'),
    )
  if (primed && t.warm?.agent)
    return [
      ...primed,
      step(
        'agent',
        async (signal) => {
          const handover = t.warm?.agent
          if (!handover) throw new Error('no agent to hand over')
          // The look at the agent and the labels at once (each is a round trip to Incus).
          const [alive] = await Promise.all([
            toolAlive(driver, name, config, signal),
            label(signal),
          ])
          if (alive) handover.result = { start: 'prestarted' }
          else {
            // It ended while primed (a tool that could not reach its API, say): started again,
            // under a new session id (the old one may be taken by the tool's own records).
            handover.result = { start: 'restarted', reason: 'the agent started ahead had ended' }
            t.sessionId = randomUUID()
            await stopTool(driver, name, config, signal)
            await copyConfig(signal)
            await startOnly(signal)
            await driver.configSet(name, { [LABEL.sessionId]: t.sessionId }, { signal })
          }
          await complete(signal)
        },
        async () => {
          env.deadlines.cancel(name)
        },
      ),
    ]
  if (primed) return [...primed, ...steps.filter((s) => s.id === 'tool-config' || s.id === 'tool')]
  return steps
}
