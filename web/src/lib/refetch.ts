/**
 * One fetch at a time: a `run()` while a fetch is in flight shares its promise and makes it run
 * once more when it ends (so the newest data wins); `stale()` does the same without waiting.
 * `wanted` (default: always) can stop the re-run, e.g. after the owner was disposed.
 */
export class Refetch {
  readonly #task: () => Promise<void>
  readonly #wanted: () => boolean
  #inFlight: Promise<void> | null = null
  #again = false

  constructor(task: () => Promise<void>, wanted: () => boolean = () => true) {
    this.#task = task
    this.#wanted = wanted
  }

  run(): Promise<void> {
    if (this.#inFlight) {
      this.#again = true
      return this.#inFlight
    }
    this.#inFlight = this.#task().finally(() => {
      this.#inFlight = null
      if (this.#again && this.#wanted()) {
        this.#again = false
        void this.run()
      }
    })
    return this.#inFlight
  }

  /** A fetch in flight was answered before a change the caller just applied: run it again. */
  stale(): void {
    if (this.#inFlight) this.#again = true
  }
}
