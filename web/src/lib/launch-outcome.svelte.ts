// How a launch went (issue 16): the path (`warm` from the pool, `cold` from the image, with the
// reason the server gives for cold when it gives one), the time from click to the answer, and what
// each server step took. Kept per workspace for the page's life: the project card that launched is
// unmounted while the new session is open, and shows the outcome when the user comes back.
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import {
  LAUNCH_STEPS,
  PRESTARTED_LAUNCH_STEPS,
  PRIMED_LAUNCH_STEPS,
  WARM_LAUNCH_STEPS,
} from '../../../shared/schemas/launch.ts'
import {
  AgentReasonSchema,
  AgentStartSchema,
  ColdReasonSchema,
  LaunchPathSchema,
  LaunchTimingsSchema,
  WarmKindSchema,
} from '../../../shared/schemas/sessions.ts'
import type { AppState } from './state/app.svelte.ts'
import { stepLabel } from './state/sessions.svelte.ts'

/** What the POST /api/sessions answer carries about the launch (`cold_reason` when present). */
const LaunchFieldsSchema = Type.Object({
  path: LaunchPathSchema,
  warm: Type.Optional(WarmKindSchema),
  timings: LaunchTimingsSchema,
  cold_reason: Type.Optional(ColdReasonSchema),
  agent_start: Type.Optional(AgentStartSchema),
  agent_start_reason: Type.Optional(AgentReasonSchema),
})

export interface LaunchOutcome {
  id: string
  path: 'warm' | 'cold'
  /** For a warm launch: a container primed for this request, or a generic stopped one. */
  warm?: 'primed' | 'stopped'
  coldReason?: string
  /** `[pool] prestart`: the agent started ahead was handed over, or started again (why). */
  agentStart?: 'prestarted' | 'restarted'
  agentStartReason?: string
  /** Click to the server's answer, in the browser, ms. */
  totalMs: number
  /** Per server step, ms, by step id. */
  timings: Record<string, number>
}

export interface LaunchStepTime {
  id: string
  /** The step in words (shared/schemas/launch.ts); an unknown id is shown as it is. */
  label: string
  ms: number
}

/** The launch fields of a create's answer, or null when it has none (an older server). */
export function launchOutcome(
  created: { id: string } & Record<string, unknown>,
  totalMs: number,
): LaunchOutcome | null {
  if (!Value.Check(LaunchFieldsSchema, created)) return null
  return {
    id: created.id,
    path: created.path,
    ...(created.warm ? { warm: created.warm } : {}),
    ...(created.cold_reason ? { coldReason: created.cold_reason } : {}),
    ...(created.agent_start ? { agentStart: created.agent_start } : {}),
    ...(created.agent_start_reason ? { agentStartReason: created.agent_start_reason } : {}),
    totalMs,
    timings: created.timings,
  }
}

/**
 * Every step id this page knows, in the order a creation runs them: `init` (cold) or `thaw`
 * (primed), `claim` (warm), the cold steps, `verify` (primed), the tool's two steps, then `agent`
 * (an agent started ahead, handed over).
 */
const STEP_ORDER: readonly string[] = [
  ...new Set([
    ...LAUNCH_STEPS.slice(0, 1),
    ...PRIMED_LAUNCH_STEPS.slice(0, 1),
    ...WARM_LAUNCH_STEPS.slice(0, -2),
    ...PRIMED_LAUNCH_STEPS.slice(1),
    ...PRESTARTED_LAUNCH_STEPS.slice(2),
  ]),
]

/** The steps in the order a creation runs them; steps this page does not know follow, as sent. */
export function launchSteps(timings: Record<string, number>): LaunchStepTime[] {
  const known = STEP_ORDER.filter((id) => Object.hasOwn(timings, id))
  const other = Object.keys(timings).filter((id) => !STEP_ORDER.includes(id))
  return [...known, ...other].map((id) => ({ id, label: stepLabel(id), ms: timings[id] ?? 0 }))
}

/** 640 ms, 1.24 s, 12.4 s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`
}

/** The last launch's outcome per workspace path. */
export class LaunchOutcomes {
  byWorkspace: Record<string, LaunchOutcome> = $state.raw({})

  get(workspace: string): LaunchOutcome | undefined {
    return this.byWorkspace[workspace]
  }

  set(workspace: string, outcome: LaunchOutcome | null): void {
    const next = { ...this.byWorkspace }
    if (outcome) next[workspace] = outcome
    else Reflect.deleteProperty(next, workspace)
    this.byWorkspace = next
  }
}

const perApp = new WeakMap<AppState, LaunchOutcomes>()

/** The outcomes of `app`'s launches (one store per app, so tests never share one). */
export function launchOutcomes(app: AppState): LaunchOutcomes {
  let store = perApp.get(app)
  if (!store) {
    store = new LaunchOutcomes()
    perApp.set(app, store)
  }
  return store
}
