import type { Logger } from 'pino'

export type DeadlineAction = 'graceful' | 'force' | 'none'

const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Runtime limits (limits.runtime.max_duration). The deadline itself lives on the instance
 * (user.clincus.deadline), so a restarted server re-arms it; here we only own the timers.
 */
export class DeadlineScheduler {
  readonly #timers = new Map<string, NodeJS.Timeout>()
  readonly #onExpire: (id: string, action: DeadlineAction) => Promise<void>
  readonly #log: Logger

  constructor(onExpire: (id: string, action: DeadlineAction) => Promise<void>, log: Logger) {
    this.#onExpire = onExpire
    this.#log = log
  }

  schedule(id: string, deadline: Date, action: DeadlineAction): void {
    this.cancel(id)
    if (action === 'none') return
    const arm = (): void => {
      const remaining = deadline.getTime() - Date.now()
      const timer = setTimeout(
        () => {
          if (remaining > MAX_TIMER_MS) {
            arm()
            return
          }
          this.#timers.delete(id)
          this.#log.info({ id, action }, 'session reached its max_duration')
          this.#onExpire(id, action).catch((err: unknown) => {
            this.#log.error({ err, id }, 'stopping an expired session failed')
          })
        },
        Math.max(0, Math.min(remaining, MAX_TIMER_MS)),
      )
      timer.unref()
      this.#timers.set(id, timer)
    }
    arm()
  }

  cancel(id: string): void {
    const t = this.#timers.get(id)
    if (t) clearTimeout(t)
    this.#timers.delete(id)
  }

  has(id: string): boolean {
    return this.#timers.has(id)
  }

  dispose(): void {
    for (const t of this.#timers.values()) clearTimeout(t)
    this.#timers.clear()
  }
}

/** What `[limits.runtime]` does when max_duration passes. */
export function deadlineAction(runtime: {
  auto_stop: boolean
  stop_graceful: boolean
}): DeadlineAction {
  if (!runtime.auto_stop) return 'none'
  // stop_graceful=true means a graceful stop: the original had these inverted.
  return runtime.stop_graceful ? 'graceful' : 'force'
}
