// Steps run inside a started session container, shared by creation (launch-steps.ts) and resume
// (resume.ts): the protection check, the tmpfs on /tmp and the tool's tmux session.
import { findProfile } from '../config/load.ts'
import type { IncusDriver } from '../incus/driver.ts'
import {
  CONTAINER_WORKSPACE,
  startToolCommand,
  stopToolCommand,
  toolExitCommand,
  TOOL_GONE_EXIT,
  TOOL_OUTPUT_DEADLINE_S,
  TOOL_SILENT_EXIT,
  tmpfsCommand,
} from './commands.ts'
import type { LaunchPlan } from './launch-plan.ts'
import { tmpfsSize } from './limits.ts'
import { verifyMounted, type ProtectionPlan } from './protect.ts'

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

/** Output kept of the tmux calls that look at or end an agent started ahead (more: they throw). */
const TOOL_OUTPUT_MAX_BYTES = 4096

/**
 * Whether the tool still runs in its tmux session (issue 16, `[pool] prestart`: the agent started
 * ahead in a primed member): false when the session is gone or the tool's wrapper recorded its
 * exit. One `incus exec`.
 */
export async function toolAlive(
  driver: IncusDriver,
  name: string,
  config: LaunchPlan['config'],
  signal: AbortSignal,
): Promise<boolean> {
  const cmd = toolExitCommand(name, config)
  // The option is the agent's to set (same user as its tmux): an exit code, or nothing, is short.
  const res = await driver.exec(name, cmd.argv, {
    ...cmd.opts,
    signal,
    timeoutMs: 10_000,
    maxOutputBytes: TOOL_OUTPUT_MAX_BYTES,
  })
  return res.exitCode === 0 && res.stdout.trim() === ''
}

/** Ends the tool's tmux session when there is one (before the tool is started again). */
export async function stopTool(
  driver: IncusDriver,
  name: string,
  config: LaunchPlan['config'],
  signal: AbortSignal,
): Promise<void> {
  const cmd = stopToolCommand(name, config)
  // Non-zero when there was no session: nothing to stop.
  await driver.exec(name, cmd.argv, {
    ...cmd.opts,
    signal,
    timeoutMs: 10_000,
    maxOutputBytes: TOOL_OUTPUT_MAX_BYTES,
  })
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
