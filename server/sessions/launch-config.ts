// The instance config of a session (labels, limits, id mapping, environment), one list for the
// cold path (set at init) and the warm pool (set on a claimed member before its first start).
import type { AgentStart } from '../../shared/schemas/sessions.ts'
import { LABEL } from './registry.ts'
import type { LaunchPlan } from './launch-plan.ts'
import { instanceLimitConfig } from './limits.ts'
import { protectLabel } from './protect.ts'
import { CREATED_LIMITS, PROTECTION } from './session-config.ts'

/** One creation: the container's name and the launch's ids and time. */
export interface LaunchTarget {
  name: string
  sessionId: string
  created: Date
  /**
   * Warm (issue 16): `name` is a pool container (made from the image, stopped) claimed for this
   * creation; its name carries no slot, which goes in a label.
   */
  warm?: { slot: number; primed?: boolean; agent?: AgentHandover }
  /**
   * Priming (issue 16): `name` is made as a primed pool member, no session: `key` its pool label's
   * value (pool/primed.ts), `network` the egress config prepared for it before the steps; `agent`:
   * the tool is started too (`[pool] prestart`), with this target's session id.
   */
  prime?: { label: string; network: Record<string, string>; agent?: boolean }
}

/**
 * `[pool] prestart`: the claimed primed member's agent was started ahead (with this target's
 * session id) from the workspace as it is now (a member whose agent's view changed is never
 * claimed: pool/primed.ts). The steps fill in `result`: handed over, or started again because it
 * had ended.
 */
export interface AgentHandover {
  result?: { start: AgentStart; reason?: string }
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

/**
 * The config a primed member is made with (issue 16): what the session's container gets at init
 * but its session labels (it is no session until claimed: never listed, counted or in history):
 * limits, id mapping, egress config, the pool label, and what removing it needs (the workspace,
 * the directories its protection made).
 */
export function primeConfig(
  plan: LaunchPlan,
  prime: NonNullable<LaunchTarget['prime']>,
): Record<string, string> {
  return {
    ...bakedConfig(),
    ...instanceLimitConfig(plan.config.limits),
    ...plan.mapping.config,
    ...prime.network,
    [LABEL.pool]: prime.label,
    [LABEL.primedWorkspace]: plan.workspace,
    ...(plan.protection ? { [PROTECTION]: protectLabel(plan.protection) } : {}),
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
