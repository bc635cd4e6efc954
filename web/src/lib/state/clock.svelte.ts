// One shared ticking "now" for uptimes, instead of a timer per card.
export class Clock {
  now = $state(Date.now())
  #timer: ReturnType<typeof setInterval> | null = null

  start(intervalMs = 1000): void {
    this.stop()
    this.#timer = setInterval(() => {
      this.now = Date.now()
    }, intervalMs)
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
  }
}

/** "42s", "5m", "3h 07m", "2d 4h": compact, for cards. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m`
  const h = Math.floor(m / 60)
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`
  return `${Math.floor(h / 24)}d ${h % 24}h`
}
