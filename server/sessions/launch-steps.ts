// A session's creation as data: the steps of LaunchStepSchema, each with its undo, run by the one
// step loop (shared/steps.ts) that publishes progress and rolls back in reverse order.
import type { Logger } from 'pino'
import { LAUNCH_STEP_LABELS, type LaunchStep } from '../../shared/schemas/launch.ts'
import { StepFailure, type Step } from '../../shared/steps.ts'
import { findProfile } from '../config/load.ts'
import { AppError, IncusCommandError, incusReason } from '../errors.ts'
import type { IncusDriver } from '../incus/driver.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import type { EgressService } from '../network/egress.ts'
import type { AgentTracker } from './agent/tracker.ts'
import {
  CONTAINER_WORKSPACE,
  codeHome,
  startToolCommand,
  SUDOERS_PATH,
  TOOL_GONE_EXIT,
  TOOL_OUTPUT_DEADLINE_S,
  TOOL_SILENT_EXIT,
  sudoersLine,
  tmpfsCommand,
  toolArgv,
} from './commands.ts'
import { deadlineAction, type DeadlineScheduler } from './deadlines.ts'
import { rawIdmapHint } from './id-mapping.ts'
import type { LaunchPlan } from './launch-plan.ts'
import { instanceLimitConfig, tmpfsSize } from './limits.ts'
import { protectLabel, verifyMounted, type ProtectionPlan } from './protect.ts'
import { deleteWithRetry, waitReady } from './readiness.ts'
import { LABEL } from './registry.ts'
import { CREATED_LIMITS, PROTECTION } from './session-config.ts'
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

/** One creation: the container's name and the launch's ids and time. */
export interface LaunchTarget {
  name: string
  sessionId: string
  created: Date
  /**
   * Warm (issue 16): `name` is a pool container (made from the image, stopped) claimed for this
   * creation; its name carries no slot, which goes in a label.
   */
  warm?: { slot: number }
}

/** Rough shares of a creation's time (a local image on `dir`: start and init dominate). */
const WEIGHT: Record<LaunchStep, number> = {
  init: 3,
  claim: 1,
  workspace: 1,
  mounts: 1,
  protect: 1,
  start: 3,
  ready: 2,
  tmpfs: 1,
  'tool-config': 1,
  tool: 2,
}

/** Checks that what Incus mounted is what the protection plan checked (host view of the root). */
export async function verifyProtection(
  driver: IncusDriver,
  name: string,
  plan: ProtectionPlan,
  signal: AbortSignal,
): Promise<void> {
  const root = await driver.containerRoot(name, { signal })
  if (root !== null) await verifyMounted(root, CONTAINER_WORKSPACE, plan)
}

/**
 * Instance config every session has whatever its workspace. Set at init (cold) or baked into the
 * warm pool's containers, which are made with it before any workspace is known.
 */
export const BASE_CONFIG: Readonly<Record<string, string>> = {
  // After a host or daemon restart a session comes back stopped (and resumable), never running
  // without its agent.
  'boot.autostart': 'false',
  // /dev/incus would tell the agent the host path of its workspace and our labels.
  'security.guestapi': 'false',
  // Its own range of host ids: container root (and every id but the code user) of one session is
  // no id of another session's container.
  'security.idmap.isolated': 'true',
}

/**
 * The config a warm pool container is made with (before any workspace is known): the base config.
 * With the image and the root disk, what a pool container must match (server/sessions/pool/key.ts).
 */
export function bakedConfig(): Record<string, string> {
  return { ...BASE_CONFIG }
}

/**
 * The config a session gets on top of {@link bakedConfig}, all of it settable on a stopped
 * container before its first start: labels, limits, the id mapping (raw.idmap) and the egress
 * environment (`network`, from egress.prepareCreate). The one list both paths use: init sets it,
 * a claim sets it on the pool container.
 */
export function sessionConfig(
  plan: LaunchPlan,
  t: LaunchTarget,
  network: Record<string, string>,
): Record<string, string> {
  return {
    ...creationLabels(plan, t),
    ...(t.warm ? { [LABEL.slot]: String(t.warm.slot) } : {}),
    ...instanceLimitConfig(plan.config.limits),
    ...plan.mapping.config,
    ...network,
  }
}

/** The labels a session's instance is created with (what makes it recognisably ours). */
export function creationLabels(plan: LaunchPlan, t: LaunchTarget): Record<string, string> {
  const at = t.created.toISOString()
  return {
    [LABEL.managed]: 'true',
    [LABEL.workspace]: plan.workspace,
    [LABEL.tool]: plan.tool,
    [LABEL.persistent]: String(plan.persistent),
    [LABEL.created]: at,
    [LABEL.started]: at,
    [LABEL.sessionId]: t.sessionId,
    // What resume applies again, without re-reading the workspace's file.
    [CREATED_LIMITS]: JSON.stringify(plan.config.limits),
    ...(plan.profile ? { [LABEL.profile]: plan.profile } : {}),
    [LABEL.idMapping]: plan.mapping.method,
    ...(plan.protection ? { [PROTECTION]: protectLabel(plan.protection) } : {}),
  }
}

/** The steps of creating `t.name` from `plan`, in LAUNCH_STEPS order. */
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
    env.egress?.prepareCreate(name, plan.workspace, plan.profile, plan.tool) ?? Promise.resolve({})

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
            config: { ...sessionConfig(plan, t, await network()), ...bakedConfig() },
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
              (i) => i?.config[LABEL.sessionId] === t.sessionId,
              () => false,
            ))
          await undoCreate(ours)
        },
      )

  return [
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
    step('tool-config', async (signal) => {
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
    }),
    step(
      'tool',
      async (signal) => {
        const argv = toolArgv(TOOL_SPECS[plan.tool].start(t.sessionId), config.tool.binary)
        const started = await startTool(driver, name, config, argv, plan.profile, signal)
        if (!started.shown)
          env.log.warn(
            { session: name, deadlineS: TOOL_OUTPUT_DEADLINE_S },
            "the tool's pane showed nothing by the deadline; the session answers anyway",
          )
        const finish: Record<string, string> = { [LABEL.ready]: 'true' }
        const deadline = plan.maxDurationMs
          ? {
              at: new Date(Date.now() + plan.maxDurationMs),
              action: deadlineAction(config.limits.runtime),
            }
          : null
        if (deadline) {
          finish[LABEL.deadline] = deadline.at.toISOString()
          finish[LABEL.deadlineAction] = deadline.action
        }
        await driver.configSet(name, finish, { signal })
        if (deadline) env.deadlines.schedule(name, deadline.at, deadline.action)
        const inst = await driver.getInstance(name, { signal })
        // The last point of no return: a client gone by now gets its session rolled back too.
        signal.throwIfAborted()
        if (!inst) throw new Error('the container disappeared')
        await env.created(inst)
      },
      async () => {
        env.deadlines.cancel(name)
      },
    ),
  ]
}

/** Mounts a tmpfs on /tmp when `limits.disk.tmpfs_size` is set (after start). */
export async function mountTmpfs(
  driver: IncusDriver,
  name: string,
  size: string,
  signal: AbortSignal,
): Promise<void> {
  if (!size) return
  const cmd = tmpfsCommand(tmpfsSize(size))
  const res = await driver.exec(name, cmd.argv, { ...cmd.opts, signal })
  if (res.exitCode !== 0) throw new Error(`mount tmpfs failed: ${res.stderr.trim()}`)
}

/** How startTool ended: `shown` false when the pane was still blank at the deadline. */
export interface ToolStart {
  shown: boolean
}

/**
 * Starts the tool's tmux session with the profile's environment and resolves once its pane has
 * shown output (issue 16: the create answers when the agent accepts keys), in one `incus exec`.
 * A tool still silent after `deadlineS` (TOOL_OUTPUT_DEADLINE_S) does not fail the launch: its
 * pane exists and takes keys (a tool may wait for input before drawing), so the create answers
 * with `shown: false` and the caller logs a warning; failing would throw away a working session.
 * Throws when tmux could not start or its session went away before showing anything.
 */
export async function startTool(
  driver: IncusDriver,
  name: string,
  config: LaunchPlan['config'],
  argv: readonly string[],
  profile: string | undefined,
  signal: AbortSignal,
  deadlineS: number = TOOL_OUTPUT_DEADLINE_S,
): Promise<ToolStart> {
  const env = profile ? (findProfile(config, profile)?.environment ?? {}) : {}
  const cmd = startToolCommand(name, config, argv, env, deadlineS)
  const res = await driver.exec(name, cmd.argv, {
    ...cmd.opts,
    signal,
    // The deadline is the script's; this one only ends an exec that hangs past it.
    timeoutMs: (deadlineS + 30) * 1000,
  })
  if (res.exitCode === 0) return { shown: true }
  if (res.exitCode === TOOL_SILENT_EXIT) return { shown: false }
  if (res.exitCode === TOOL_GONE_EXIT)
    throw new Error(`the tool's tmux session ended before it showed anything: ${res.stderr.trim()}`)
  throw new Error(`tmux exited with ${String(res.exitCode)}: ${res.stderr.trim()}`)
}

/** A refused raw.idmap fails deep in LXC ("forkstart ... exit status 1"): names the cause. */
async function withIdmapHint(err: unknown, owner: LaunchPlan['owner']): Promise<unknown> {
  if (!(err instanceof IncusCommandError)) return err
  const hint = await rawIdmapHint(owner)
  if (!hint) return err
  return new IncusCommandError({
    argv: err.argv,
    exitCode: err.exitCode,
    // incus' reason is its last "Error:" line: the hint goes on a new one.
    stderr: `${err.stderr.trimEnd()}\nError: ${incusReason(err.stderr)}${hint}`,
    cause: err,
  })
}

/**
 * The API error of a creation that failed in a step: 502 for Incus' refusals (container_create_failed
 * in init, else session_setup_failed), the step's own AppError, else 500 session_setup_failed, each
 * saying which step failed. Anything that is not a step failure is returned as it is.
 */
export function launchError(failure: unknown): unknown {
  if (!(failure instanceof StepFailure)) return failure
  const err: unknown = failure.cause
  const { step, label } = failure
  if (err instanceof IncusCommandError)
    return new AppError(
      502,
      step === 'init' ? 'container_create_failed' : 'session_setup_failed',
      `${label} failed: ${err.message}`,
      { cause: err, expose: true },
    )
  if (err instanceof AppError) return err
  return new AppError(
    500,
    'session_setup_failed',
    `${label} failed: ${err instanceof Error ? err.message : String(err)}`,
    { cause: err, expose: true },
  )
}
