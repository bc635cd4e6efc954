import { Type, type Static } from 'typebox'

/**
 * The steps of a session's creation, in order (server/sessions/launch-steps.ts runs them;
 * `session.launching` events carry one of these ids, then `done` or `failed`).
 */
export const LaunchStepSchema = Type.Union([
  Type.Literal('init'),
  Type.Literal('claim'),
  Type.Literal('thaw'),
  Type.Literal('verify'),
  Type.Literal('workspace'),
  Type.Literal('mounts'),
  Type.Literal('protect'),
  Type.Literal('start'),
  Type.Literal('ready'),
  Type.Literal('tmpfs'),
  Type.Literal('tool-config'),
  Type.Literal('tool'),
  Type.Literal('agent'),
])
export type LaunchStep = Static<typeof LaunchStepSchema>

/** The steps of a cold creation (a new container from the image), in the order they run. */
export const LAUNCH_STEPS: readonly LaunchStep[] = [
  'init',
  'workspace',
  'mounts',
  'protect',
  'start',
  'ready',
  'tmpfs',
  'tool-config',
  'tool',
]

/**
 * The steps of a warm creation (issue 16): `claim` takes a frozen container from the pool in place
 * of `init`, then the same steps as a cold one ({@link LAUNCH_STEPS}).
 */
export const WARM_LAUNCH_STEPS: readonly LaunchStep[] = ['claim', ...LAUNCH_STEPS.slice(1)]

/**
 * The steps of a primed creation (issue 16): the container was made for this very request up to
 * `tmpfs` and frozen; `thaw` wakes it, `verify` checks the protected paths it has mounted against
 * the plan made at the click, then the tool's config and the tool (whose last config call also
 * puts the session's labels on: the claim).
 */
export const PRIMED_LAUNCH_STEPS: readonly LaunchStep[] = ['thaw', 'verify', 'tool-config', 'tool']

/**
 * The steps of a primed creation whose agent was started ahead (`[pool] prestart`): `agent` checks
 * that it still runs (else starts it again) and puts the session's labels on. A member whose view
 * of the workspace changed since its agent started is not claimed (it is stale, removed).
 */
export const PRESTARTED_LAUNCH_STEPS: readonly LaunchStep[] = ['thaw', 'verify', 'agent']

/** Each step in words (lower case: the server also puts it in error messages, "… failed: …"). */
export const LAUNCH_STEP_LABELS: Record<LaunchStep, string> = {
  init: 'creating the container',
  claim: 'claiming a warm container',
  thaw: 'waking the primed container',
  verify: 'verifying protected paths',
  workspace: 'mounting the workspace',
  mounts: 'adding config mounts',
  protect: 'protecting paths read-only',
  start: 'starting the container',
  ready: 'waiting for the container',
  tmpfs: 'mounting tmpfs on /tmp',
  'tool-config': 'copying tool configuration',
  tool: 'starting the tool in tmux',
  agent: 'handing over the agent started ahead',
}

/** How a `session.launching` event ends a launch (after the last step, or on an error). */
export const LaunchEndSchema = Type.Union([Type.Literal('done'), Type.Literal('failed')])
export type LaunchEnd = Static<typeof LaunchEndSchema>
