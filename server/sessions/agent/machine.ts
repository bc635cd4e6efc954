// Issue 17: the debounce of one session's agent status, as a pure state machine (no timers, no
// clock: the caller passes `now` in ms and arms one timer for `wakeAt`). Rules:
//   - the signals say what the agent does (`target`); what was announced is `shown`; an input
//     announces `target` when it differs from `shown` and is due;
//   - `waiting` is due `graceMs` after it began (a question answered at once is never announced),
//     unless urgent (a permission prompt: due at once);
//   - a steady state never flaps: a signal equal to `target` changes nothing, and changes closer
//     than `minGapMs` to the previous announcement are coalesced into one (the latest wins);
//   - cooldown: once `waiting` is announced, a new reason within `cooldownMs` is not announced
//     again (the status did not change).
import type { AgentStatusName } from '../../../shared/schemas/sessions.ts'
import type { AgentSignal } from './hooks.ts'

export interface MachineOptions {
  /** A non-urgent `waiting` is announced this long after it began. Default 3000. */
  graceMs: number
  /** No new `waiting` reason is announced this long after the last `waiting`. Default 30 000. */
  cooldownMs: number
  /** Announcements of one session are at least this far apart. Default 250. */
  minGapMs: number
}

export const DEFAULT_MACHINE: MachineOptions = { graceMs: 3000, cooldownMs: 30_000, minGapMs: 250 }

/** A status with the time (ms) it began. */
export interface Timed {
  status: AgentStatusName
  reason?: string
  urgent?: boolean
  since: number
}

export interface MachineState {
  target: Timed | null
  shown: Timed | null
  /** When the last announcement was made (ms), -Infinity before the first. */
  lastAt: number
}

export const INITIAL: MachineState = { target: null, shown: null, lastAt: -Infinity }

export interface Step {
  state: MachineState
  /** What to announce now, if anything. */
  announce?: Timed
  /** When to call `tick` next (ms), if something is pending. */
  wakeAt?: number
}

function same(a: Timed | null, b: Timed | null, opts: MachineOptions): boolean {
  if (!a || !b || a.status !== b.status) return false
  if (a.reason === b.reason) return true
  // A new reason for a waiting already announced: the cooldown keeps it quiet.
  return a.status === 'waiting' && a.since - b.since < opts.cooldownMs
}

/** A new signal at `now`. */
export function signal(
  state: MachineState,
  sig: AgentSignal,
  now: number,
  opts: MachineOptions = DEFAULT_MACHINE,
): Step {
  const cur = state.target
  // The same status goes on: it began when it began (a waiting keeps its grace running).
  const unchanged = cur !== null && cur.status === sig.status && cur.reason === sig.reason
  const target: Timed = unchanged
    ? { ...cur, ...(sig.urgent ? { urgent: true } : {}) }
    : { ...sig, since: now }
  return tick({ ...state, target }, now, opts)
}

/** Time passed: announces what became due. */
export function tick(
  state: MachineState,
  now: number,
  opts: MachineOptions = DEFAULT_MACHINE,
): Step {
  const { target, shown } = state
  if (!target || same(target, shown, opts)) return { state }
  const graceEnd =
    target.status === 'waiting' && !target.urgent ? target.since + opts.graceMs : -Infinity
  const due = Math.max(graceEnd, state.lastAt + opts.minGapMs)
  if (now < due) return { state, wakeAt: due }
  return { state: { ...state, shown: target, lastAt: now }, announce: target }
}
