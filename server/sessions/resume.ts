// Resume: start a stopped session's container again (checking its mounts are still what creation
// checked) and relaunch the tool where it left off; or only relaunch the tool when the container
// runs but the tool's tmux session is gone.
import { randomUUID } from 'node:crypto'
import type { SessionInfo } from '../../shared/schemas/sessions.ts'
import { isToolName } from '../../shared/tools.ts'
import type { ConfigStore } from '../config/store.ts'
import { ConflictError } from '../errors.ts'
import type { IncusDriver } from '../incus/driver.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import type { EgressService } from '../network/egress.ts'
import type { AgentTracker } from './agent/tracker.ts'
import { toolArgv } from './commands.ts'
import { deadlineAction, type DeadlineScheduler } from './deadlines.ts'
import { mountTmpfs, startTool, verifyProtection } from './launch-tool.ts'
import { parseDuration } from './limits.ts'
import { parseProtectLabel } from './protect.ts'
import { toolRunning, waitReady } from './readiness.ts'
import type { SessionReconciler } from './reconciler.ts'
import { LABEL } from './registry.ts'
import { configFor, CREATED_LIMITS, hasProfile, PROTECTION } from './session-config.ts'
import { TOOL_SPECS } from './tools.ts'

export interface ResumeEnv {
  driver: IncusDriver
  reconciler: SessionReconciler
  config: ConfigStore
  deadlines: DeadlineScheduler
  egress?: EgressService
  agents?: AgentTracker
  readyTimeoutMs?: number
  signal: AbortSignal
}

/**
 * Resumes `found` (read from Incus just before). Throws ConflictError `legacy_session` (shifted
 * mounts, made before issue 11) or `unknown_tool`; a changed mount source stops the container
 * again and throws the protection's error. Outcomes are reported to the reconciler.
 */
export async function resumeSession(
  env: ResumeEnv,
  found: { session: SessionInfo; instance: IncusInstance },
): Promise<void> {
  const { driver, reconciler: r, signal } = env
  const { session, instance } = found
  const id = session.id
  const labels = instance.config
  // Made before issue 11: shifted disks map container root to host root, and its image granted
  // sudo. It is not started again; a new session gets the current containment.
  if (Object.values(instance.devices ?? {}).some((dev) => dev.shift === 'true'))
    throw new ConflictError(
      `session ${id} was created with shifted mounts, which let container root act as host root; ` +
        'delete it and launch a new session',
      'legacy_session',
    )
  const toolName = labels[LABEL.tool] ?? 'claude'
  if (!isToolName(toolName))
    throw new ConflictError(`unknown tool '${toolName}' on session ${id}`, 'unknown_tool')
  const profile = labels[LABEL.profile]
  const known = profile && hasProfile(env.config.current, profile) ? profile : undefined
  const config = await configFor(env.config, session.workspace, known, {
    limits: labels[CREATED_LIMITS],
  })
  const wasRunning = session.status === 'running'
  if (wasRunning && (await toolRunning(driver, id, config))) return
  await env.egress?.attach(instance, { fix: true, signal })
  await env.agents?.attach(instance, { fix: true, signal })
  const started = new Date()
  if (!wasRunning) {
    // Before the start, so the session.started its start publishes carries the new time.
    await driver.configSet(id, { [LABEL.started]: started.toISOString() }, { signal })
    await r.fetch(id)
    await driver.start(id, { signal })
    // Incus resolved the device sources again: they must still be what creation checked.
    const protection = parseProtectLabel(labels[PROTECTION])
    if (protection) {
      try {
        await verifyProtection(driver, id, protection, signal)
      } catch (err) {
        await driver.stop(id, { force: true }).catch(() => undefined)
        await r.stopped(id)
        throw err
      }
    }
    await waitReady(driver, id, signal, env.readyTimeoutMs)
    await env.egress?.afterStart(id, signal)
    await mountTmpfs(driver, id, config.limits.disk.tmpfs_size, signal)
  }
  const sessionId = randomUUID()
  const argv = toolArgv(TOOL_SPECS[toolName].resume(labels[LABEL.sessionId]), config.tool.binary)
  await startTool(driver, id, config, argv, profile, signal)
  const patch: Record<string, string> = {
    [LABEL.sessionId]: sessionId,
    [LABEL.started]: started.toISOString(),
  }
  const maxMs = parseDuration(config.limits.runtime.max_duration)
  if (maxMs && !wasRunning) {
    const action = deadlineAction(config.limits.runtime)
    const deadline = new Date(Date.now() + maxMs)
    patch[LABEL.deadline] = deadline.toISOString()
    patch[LABEL.deadlineAction] = action
    env.deadlines.schedule(id, deadline, action)
  }
  await driver.configSet(id, patch, { signal })
  const { workspace, persistent } = session
  await r.resumed(
    id,
    { sessionId, id, workspace, tool: toolName, persistent, time: started },
    { relaunchOnly: wasRunning },
  )
}
