// Watermark flow control (wetty's flowcontrol.ts, VS Code's terminal numbers): the PTY is paused
// while too many output bytes are in flight towards a client and resumed once the client has
// caught up. The gap between the marks keeps it from toggling on every frame.

export interface Watermarks {
  high: number
  low: number
}

/** Bytes in flight on one channel, with hysteresis between the high and the low mark. */
export class FlowCounter {
  readonly #marks: Watermarks
  #pending = 0
  #over = false

  constructor(marks: Watermarks) {
    if (!(marks.low >= 0 && marks.low < marks.high))
      throw new RangeError(`flow control needs 0 <= low < high (got ${marks.low}/${marks.high})`)
    this.#marks = marks
  }

  get pending(): number {
    return this.#pending
  }

  /** Whether the channel is over its high mark and has not yet drained below the low one. */
  get over(): boolean {
    return this.#over
  }

  /** Counts bytes sent; true exactly when this send crossed the high mark. */
  add(bytes: number): boolean {
    this.#pending += bytes
    if (!this.#over && this.#pending > this.#marks.high) {
      this.#over = true
      return true
    }
    return false
  }

  /**
   * Counts bytes the other side has taken (clamped, so an ack for more than was sent cannot bank
   * credit); true exactly when this brought the channel back under the low mark.
   */
  release(bytes: number): boolean {
    this.#pending = Math.max(0, this.#pending - Math.max(0, bytes))
    if (this.#over && this.#pending < this.#marks.low) {
      this.#over = false
      return true
    }
    return false
  }
}

/**
 * Pauses a source while any reason holds (for example "the client has not acked" and "the
 * socket buffer is full") and resumes it when none does; each transition is reported once.
 */
export class PauseGate {
  readonly #reasons = new Set<string>()
  readonly #pause: () => void
  readonly #resume: () => void

  constructor(pause: () => void, resume: () => void) {
    this.#pause = pause
    this.#resume = resume
  }

  get paused(): boolean {
    return this.#reasons.size > 0
  }

  /** Whether `reason` is one of those that hold now. */
  has(reason: string): boolean {
    return this.#reasons.has(reason)
  }

  set(reason: string, on: boolean): void {
    const before = this.#reasons.size > 0
    if (on) this.#reasons.add(reason)
    else this.#reasons.delete(reason)
    const after = this.#reasons.size > 0
    if (!before && after) this.#pause()
    else if (before && !after) this.#resume()
  }
}
