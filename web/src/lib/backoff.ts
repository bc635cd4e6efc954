/** Exponential reconnect delays with jitter: initial, ×2 each failure, capped; reset on success. */
export class Backoff {
  readonly #initial: number
  readonly #max: number
  readonly #jitter: number
  #attempt = 0

  constructor(initialMs = 500, maxMs = 15_000, jitter = 0.2) {
    this.#initial = initialMs
    this.#max = maxMs
    this.#jitter = jitter
  }

  get attempt(): number {
    return this.#attempt
  }

  /** The delay before the next attempt; each call counts one failure. */
  next(random: () => number = Math.random): number {
    const base = Math.min(this.#max, this.#initial * 2 ** this.#attempt)
    this.#attempt++
    const spread = base * this.#jitter
    return Math.round(base - spread + random() * 2 * spread)
  }

  reset(): void {
    this.#attempt = 0
  }
}

/** ws:// or wss:// URL for a path on the page's own host (the dev server proxies /ws). */
export function wsUrl(path: string, loc: Pick<Location, 'protocol' | 'host'> = location): string {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}${path}`
}
