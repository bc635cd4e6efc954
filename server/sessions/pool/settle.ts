// When an agent started ahead (`[pool] prestart`, issue 16) is done starting. Its pane shows
// output long before it takes keys (Copilot CLI draws its intro at once, its menu after ~3 s and
// reads keys ~2.5 s after that): a member frozen at the first output would make the click wait for
// the rest of the start. So the primer waits, off the click's path, until the container's CPU use
// falls quiet: at most `maxShare` of one core over the last `windowMs`, read every `intervalMs`
// from Incus (the instance state's `cpu.usage`), or `deadlineMs` at most: an agent that never
// quiets (Copilot CLI without a network kept 1.3 cores busy for the whole minute measured) is
// frozen at the deadline, long after it took keys (~6 s here, 14–23 s under heavy load).

/** How the primer decides that an agent started ahead has settled (ms; share of one core). */
export interface SettleOptions {
  intervalMs: number
  windowMs: number
  maxShare: number
  deadlineMs: number
}

export const SETTLE: SettleOptions = {
  intervalMs: 250,
  windowMs: 1000,
  maxShare: 0.1,
  deadlineMs: 20_000,
}

/** What waitSettled needs of the world: the CPU reading, the clock and a timer. */
export interface SettleDeps {
  /** CPU time used so far, ns; null when unknown (then the wait ends: nothing to wait on). */
  cpuNs: () => Promise<number | null>
  now: () => number
  /** Resolves after `ms` (rejects when `signal` aborts). */
  wait: (ms: number, signal: AbortSignal) => Promise<void>
}

/**
 * Waits until the CPU use read through `d` has been at most `o.maxShare` of one core over a whole
 * window, or the deadline passed. `settled` false: the deadline passed (or the reading is not
 * available) first. `ms`: how long it waited. Throws when `signal` aborts.
 */
export async function waitSettled(
  d: SettleDeps,
  signal: AbortSignal,
  o: SettleOptions = SETTLE,
): Promise<{ settled: boolean; ms: number }> {
  const start = d.now()
  const samples: { at: number; ns: number }[] = []
  for (;;) {
    signal.throwIfAborted()
    const ns = await d.cpuNs()
    const at = d.now()
    if (ns === null) return { settled: false, ms: at - start }
    samples.push({ at, ns })
    // The oldest reading at least a window back, so the share covers a whole window.
    while (samples.length > 1 && (samples[1]?.at ?? at) <= at - o.windowMs) samples.shift()
    const first = samples[0]
    if (first && at - first.at >= o.windowMs) {
      const share = (ns - first.ns) / 1e6 / (at - first.at)
      if (share <= o.maxShare) return { settled: true, ms: at - start }
    }
    if (at - start >= o.deadlineMs) return { settled: false, ms: at - start }
    await d.wait(o.intervalMs, signal)
  }
}
