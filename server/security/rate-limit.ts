/**
 * A token bucket per key (the credential, or the client address without one): `perMinute`
 * requests, refilled continuously. Returns the seconds to wait when a request is refused.
 */
export class RateLimiter {
  readonly #perMinute: number
  readonly #buckets = new Map<string, { tokens: number; at: number }>()
  readonly #now: () => number

  constructor(perMinute: number, now: () => number = Date.now) {
    this.#perMinute = perMinute
    this.#now = now
  }

  take(key: string): { ok: true } | { ok: false; retryAfterS: number } {
    const now = this.#now()
    const rate = this.#perMinute / 60_000
    const b = this.#buckets.get(key) ?? { tokens: this.#perMinute, at: now }
    b.tokens = Math.min(this.#perMinute, b.tokens + (now - b.at) * rate)
    b.at = now
    if (this.#buckets.size > 10_000) this.#buckets.clear() // bounded memory under a key flood
    this.#buckets.set(key, b)
    if (b.tokens >= 1) {
      b.tokens -= 1
      return { ok: true }
    }
    return { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - b.tokens) / rate / 1000)) }
  }
}
