/**
 * Input handed to a PTY that it has not taken yet, in bytes (PtyProcess `pendingInput`), and the
 * waiters of `onInputBelow`: each is called once, when the count is at or under its mark.
 */
export class PendingInput {
  #bytes = 0
  readonly #waiters = new Map<() => void, number>()

  get bytes(): number {
    return this.#bytes
  }

  add(bytes: number): void {
    this.#bytes += bytes
  }

  /** Takes `bytes` off (never below 0) and calls the waiters whose mark is reached. */
  release(bytes: number): void {
    this.#bytes = Math.max(0, this.#bytes - bytes)
    for (const [listener, below] of this.#waiters) {
      if (this.#bytes > below) continue
      this.#waiters.delete(listener)
      listener()
    }
  }

  /** Calls `listener` once the count is at or under `bytes` (at once if it is); returns a cancel. */
  onBelow(bytes: number, listener: () => void): () => void {
    if (this.#bytes <= bytes) {
      listener()
      return () => undefined
    }
    this.#waiters.set(listener, bytes)
    return () => {
      this.#waiters.delete(listener)
    }
  }

  /** Nothing is pending any more (the input was taken, or the PTY is gone): every waiter runs. */
  clear(): void {
    this.release(this.#bytes)
  }
}
