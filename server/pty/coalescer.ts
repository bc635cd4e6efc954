export interface CoalesceOptions {
  /** While output streams, it waits up to this long after the last send to go out together. */
  windowMs: number
  /** A batch this large is sent at once. */
  maxBytes: number
  /**
   * A send at least this large means output is streaming (a PTY read is at most ~4 KiB; an echo
   * or a small redraw is far less). Smaller ones never delay what follows.
   */
  streamBytes?: number
}

export const DEFAULT_COALESCE: CoalesceOptions = {
  windowMs: 4,
  maxBytes: 64 * 1024,
  streamBytes: 2048,
}

/**
 * Batches PTY output into fewer, larger frames without delaying keystroke echoes. Output goes
 * out on the next turn of the event loop (merging whatever else the same poll read), unless the
 * terminal is streaming — the last send was large and less than `windowMs` ago — in which case
 * it is held until the window closes or `maxBytes` have gathered. A flood thus becomes ~64 KiB
 * frames instead of thousands of 4 KiB ones, while echoes, even typed back to back, pay no timer.
 */
export class OutputCoalescer {
  readonly #o: CoalesceOptions
  readonly #onFlush: (data: Buffer) => void
  #chunks: Buffer[] = []
  #size = 0
  #timer: NodeJS.Timeout | null = null
  #immediate: NodeJS.Immediate | null = null
  #lastFlush = Number.NEGATIVE_INFINITY
  #lastFlushBytes = 0
  #disposed = false

  constructor(opts: CoalesceOptions, onFlush: (data: Buffer) => void) {
    this.#o = opts
    this.#onFlush = onFlush
  }

  get buffered(): number {
    return this.#size
  }

  push(chunk: Buffer): void {
    if (this.#disposed || chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#size += chunk.length
    if (this.#size >= this.#o.maxBytes) {
      this.flush()
      return
    }
    if (this.#timer || this.#immediate) return
    const quietFor = performance.now() - this.#lastFlush
    const streaming = this.#lastFlushBytes >= (this.#o.streamBytes ?? 0)
    if (!streaming || quietFor >= this.#o.windowMs) {
      this.#immediate = setImmediate(() => {
        this.#immediate = null
        this.flush()
      })
    } else {
      this.#timer = setTimeout(() => {
        this.#timer = null
        this.flush()
      }, this.#o.windowMs - quietFor)
    }
  }

  /** Sends what is pending now. */
  flush(): void {
    this.#cancel()
    if (this.#size === 0) return
    const data =
      this.#chunks.length === 1 ? (this.#chunks[0] ?? Buffer.alloc(0)) : Buffer.concat(this.#chunks)
    this.#chunks = []
    this.#size = 0
    this.#lastFlush = performance.now()
    this.#lastFlushBytes = data.length
    this.#onFlush(data)
  }

  /** Drops pending output and timers. */
  dispose(): void {
    this.#disposed = true
    this.#cancel()
    this.#chunks = []
    this.#size = 0
  }

  #cancel(): void {
    if (this.#timer) clearTimeout(this.#timer)
    if (this.#immediate) clearImmediate(this.#immediate)
    this.#timer = null
    this.#immediate = null
  }
}
