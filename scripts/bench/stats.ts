// Small numeric helpers for the benchmarks: percentiles by nearest rank, medians, formatting.

/** The q-quantile (0..1) of `values` by nearest rank; NaN for an empty list. */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank] ?? Number.NaN
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  const hi = sorted[mid] ?? Number.NaN
  return sorted.length % 2 === 1 ? hi : ((sorted[mid - 1] ?? hi) + hi) / 2
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

export const MiB = 1024 * 1024
export const MB = 1_000_000

/** Bytes per millisecond → MB/s (decimal megabytes, as the handbook's floors). */
export function mbPerS(bytes: number, ms: number): number {
  return bytes / MB / (ms / 1000)
}

/** Milliseconds since the epoch with sub-millisecond precision (comparable with Incus' clock). */
export function wallNow(): number {
  return performance.timeOrigin + performance.now()
}

/**
 * Parses an RFC 3339 timestamp with up to nanosecond fractions ("2025-01-02T03:04:05.123456789Z"
 * or with an offset) to epoch milliseconds, keeping the sub-millisecond part that Date.parse drops.
 */
export function parseTimestamp(text: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(text)
  if (!m?.[1] || !m[3]) return Date.parse(text)
  const whole = Date.parse(`${m[1]}${m[3]}`)
  const frac = m[2] ? Number(`0.${m[2]}`) * 1000 : 0
  return whole + frac
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `check` until it yields a value, or throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 20,
): Promise<T> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined && v !== false) return v
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i] as T, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}
