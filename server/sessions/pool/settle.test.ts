// When an agent started ahead has settled: on a virtual clock (no real waiting), a container busy
// starting, then quiet; one that never quiets (the deadline); no reading at all; an abort.
import { describe, expect, it } from 'vitest'
import { SETTLE, waitSettled, type SettleDeps } from './settle.ts'

/** A virtual clock; `share(t)`: the share of one core in use at virtual ms `t`. */
function world(share: (t: number) => number): SettleDeps & { reads: number } {
  let t = 0
  let ns = 0
  const w = {
    reads: 0,
    cpuNs: () => {
      w.reads++
      return Promise.resolve(ns)
    },
    now: () => t,
    wait: (ms: number, signal: AbortSignal) => {
      signal.throwIfAborted()
      for (let i = 0; i < ms; i++) ns += share(t + i) * 1e6
      t += ms
      return Promise.resolve()
    },
  }
  return w
}

describe('waitSettled', () => {
  it('waits out a busy start and ends after one quiet window', async () => {
    // Busy (a whole core) for 3 s, then 2 % (a cursor blinking).
    const w = world((t) => (t < 3000 ? 1 : 0.02))
    const r = await waitSettled(w, new AbortController().signal)
    expect(r.settled).toBe(true)
    expect(r.ms).toBeGreaterThanOrEqual(3000 + SETTLE.windowMs)
    expect(r.ms).toBeLessThanOrEqual(3000 + SETTLE.windowMs + SETTLE.intervalMs)
  })

  it('does not end on a quiet moment shorter than the window', async () => {
    // Busy, quiet for half a window, busy again until 4 s.
    const w = world((t) => (t < 2000 || (t >= 2500 && t < 4000) ? 0.8 : 0))
    const r = await waitSettled(w, new AbortController().signal)
    expect(r.settled).toBe(true)
    expect(r.ms).toBeGreaterThanOrEqual(4000 + SETTLE.windowMs)
  })

  it('gives up at the deadline when the container never quiets', async () => {
    const w = world(() => 0.5)
    const r = await waitSettled(w, new AbortController().signal)
    expect(r).toEqual({ settled: false, ms: SETTLE.deadlineMs })
  })

  it('ends at once when Incus gives no CPU reading', async () => {
    const w = { ...world(() => 1), cpuNs: () => Promise.resolve(null) }
    expect(await waitSettled(w, new AbortController().signal)).toEqual({ settled: false, ms: 0 })
  })

  it('stops when the primer is aborted (shutdown)', async () => {
    const ac = new AbortController()
    const w = world(() => 1)
    const { wait } = world(() => 1)
    w.wait = (ms, signal) => {
      if (w.reads === 3) ac.abort()
      return wait(ms, signal)
    }
    await expect(waitSettled(w, ac.signal)).rejects.toThrow(/abort/i)
    expect(w.reads).toBe(3)
  })
})
