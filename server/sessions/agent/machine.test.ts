// The debounce state machine, driven by a fake clock (ms): grace, urgency, cooldown, coalescing,
// and a steady state that never flaps.
import { describe, expect, it } from 'vitest'
import type { AgentSignal } from './hooks.ts'
import { DEFAULT_MACHINE, INITIAL, signal, tick, type MachineState, type Timed } from './machine.ts'

/** Feeds signals at times and runs the timers; returns what was announced and when. */
function run(inputs: Array<[number, AgentSignal]>, until: number, opts = DEFAULT_MACHINE) {
  let state: MachineState = INITIAL
  let wake: number | undefined
  const out: Array<{ at: number } & Timed> = []
  let i = 0
  for (let now = 0; now <= until; now += 10) {
    if (wake !== undefined && now >= wake) {
      const s = tick(state, now, opts)
      state = s.state
      wake = s.wakeAt
      if (s.announce) out.push({ at: now, ...s.announce })
    }
    while (i < inputs.length && (inputs[i]?.[0] ?? Infinity) <= now) {
      const sig = inputs[i]?.[1]
      i++
      if (!sig) continue
      const s = signal(state, sig, now, opts)
      state = s.state
      wake = s.wakeAt
      if (s.announce) out.push({ at: now, ...s.announce })
    }
  }
  return out
}

const working: AgentSignal = { status: 'working' }
const idle: AgentSignal = { status: 'idle' }

describe('agent status machine', () => {
  it('announces a change at once, and a steady state once (30 s of tool calls: one event)', () => {
    const inputs: Array<[number, AgentSignal]> = []
    for (let t = 0; t < 30_000; t += 200) inputs.push([t, working])
    inputs.push([30_000, idle])
    const out = run(inputs, 31_000)
    expect(out.map((e) => [e.at, e.status])).toEqual([
      [0, 'working'],
      [30_000, 'idle'],
    ])
    expect(out[0]?.since).toBe(0)
  })

  it('announces waiting after the grace, since when it began', () => {
    const out = run([[1000, { status: 'waiting', reason: 'Which colour?' }]], 10_000)
    expect(out).toEqual([{ at: 4000, status: 'waiting', reason: 'Which colour?', since: 1000 }])
  })

  it('never announces a question answered within the grace', () => {
    const out = run(
      [
        [0, working],
        [1000, { status: 'waiting', reason: 'q' }],
        [2500, working],
        [2600, idle],
      ],
      10_000,
    )
    expect(out.map((e) => e.status)).toEqual(['working', 'idle'])
  })

  it('a permission prompt is announced at once', () => {
    const out = run([[500, { status: 'waiting', reason: 'Bash?', urgent: true }]], 5000)
    expect(out).toEqual([{ at: 500, status: 'waiting', reason: 'Bash?', urgent: true, since: 500 }])
  })

  it('a repeated waiting keeps its grace; a new reason within the cooldown is not announced', () => {
    const q = (reason: string): AgentSignal => ({ status: 'waiting', reason })
    const out = run(
      [
        [0, q('a')],
        [2000, q('a')],
        [3500, q('b')],
        [20_000, q('c')],
        [40_000, q('d')],
      ],
      50_000,
    )
    expect(out.map((e) => [e.at, e.reason])).toEqual([
      [3000, 'a'],
      [43_000, 'd'],
    ])
  })

  it('coalesces changes closer than minGapMs (the latest wins, no flapping)', () => {
    const out = run(
      [
        [0, working],
        [50, idle],
        [100, working],
        [150, idle],
      ],
      2000,
    )
    expect(out.map((e) => [e.at, e.status])).toEqual([
      [0, 'working'],
      [250, 'idle'],
    ])
  })

  it('exited, then a new start', () => {
    const out = run(
      [
        [0, idle],
        [1000, { status: 'exited' }],
        [5000, idle],
      ],
      6000,
    )
    expect(out.map((e) => e.status)).toEqual(['idle', 'exited', 'idle'])
  })
})
