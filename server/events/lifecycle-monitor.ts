import type { Logger } from 'pino'
import type { IncusDriver, LifecycleEvent } from '../incus/driver.ts'

export interface LifecycleMonitorOptions {
  driver: IncusDriver
  log: Logger
  /** Called for every event, in order. */
  onEvent: (e: LifecycleEvent) => Promise<void> | void
  /** Called whenever the monitor (re)connects, before events flow: resynchronise caches here. */
  onConnect: () => Promise<void>
  onDisconnect: () => void
  minBackoffMs?: number
  maxBackoffMs?: number
}

/**
 * Runs `incus monitor --type=lifecycle` for as long as the app lives, restarting it with
 * exponential backoff when it dies (daemon restart, incus missing), and resynchronising on each
 * connect so no transition is missed while it was down.
 */
export class LifecycleMonitor {
  readonly #o: LifecycleMonitorOptions
  readonly #abort = new AbortController()
  #loop: Promise<void> | null = null
  #connected = false
  #lastError: unknown = undefined
  #wake: (() => void) | null = null

  constructor(opts: LifecycleMonitorOptions) {
    this.#o = opts
  }

  #stopped(): boolean {
    return this.#abort.signal.aborted
  }

  get connected(): boolean {
    return this.#connected
  }

  /**
   * Why the last connection attempt or stream failed (undefined while connected, before the
   * first attempt, or after a clean end): with `connected`, the app's view of Incus
   * reachability, kept without asking Incus (/api/health reads it on every request).
   */
  get lastError(): unknown {
    return this.#lastError
  }

  get started(): boolean {
    return this.#loop !== null
  }

  start(): void {
    this.#loop ??= this.#run()
  }

  async #sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms)
      this.#wake = () => {
        clearTimeout(t)
        resolve()
      }
    })
    this.#wake = null
  }

  async #run(): Promise<void> {
    const { log } = this.#o
    const min = this.#o.minBackoffMs ?? 250
    const max = this.#o.maxBackoffMs ?? 10_000
    let backoff = min
    const signal = this.#abort.signal
    while (!signal.aborted) {
      const child = new AbortController()
      const onAbort = (): void => {
        child.abort()
      }
      signal.addEventListener('abort', onAbort, { once: true })
      const started = Date.now()
      try {
        const iter = this.#o.driver.monitor(child.signal)[Symbol.asyncIterator]()
        // Resync after the monitor process is started, so events during the resync are queued.
        const first = iter.next()
        await this.#o.onConnect()
        this.#connected = true
        this.#lastError = undefined
        log.info('incus lifecycle monitor connected')
        for (let r = await first; !r.done; r = await iter.next()) {
          try {
            await this.#o.onEvent(r.value)
          } catch (err) {
            log.warn({ err }, 'lifecycle event handler failed')
          }
        }
      } catch (err) {
        this.#lastError = err
        if (!this.#stopped()) log.warn({ err }, 'incus lifecycle monitor failed')
      } finally {
        signal.removeEventListener('abort', onAbort)
        child.abort()
        if (this.#connected) this.#o.onDisconnect()
        this.#connected = false
      }
      if (this.#stopped()) break
      if (Date.now() - started > 30_000) backoff = min
      log.info({ retryInMs: backoff }, 'incus lifecycle monitor stopped; restarting')
      await this.#sleep(backoff)
      backoff = Math.min(backoff * 2, max)
    }
  }

  async stop(): Promise<void> {
    this.#abort.abort()
    this.#wake?.()
    await this.#loop
  }
}
