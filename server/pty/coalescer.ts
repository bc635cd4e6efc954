export interface CoalesceOptions {
  /** After a flush, further output waits up to this long to be sent together. */
  windowMs: number
  /** A batch this large is sent at once. */
  maxBytes: number
}

export const DEFAULT_COALESCE: CoalesceOptions = { windowMs: 4, maxBytes: 64 * 1024 }

/**
 * Batches PTY output into fewer, larger frames without delaying keystroke echoes: output that
 * follows a quiet period goes out on the next turn of the event loop (merging whatever else the
 * same poll read), while output that keeps coming within `windowMs` of the last send is held
 * until the window closes or `maxBytes` have gathered. A flood thus becomes ~64 KiB frames
 * instead of thousands of 4 KiB ones, and a lone echo pays no timer.
 */
export class OutputCoalescer {
  readonly #o: CoalesceOptions
  readonly #onFlush: (data: Buffer) => void
  #chunks: Buffer[] = []
  #size = 0
  #timer: NodeJS.Timeout | null = null
  #immediate: NodeJS.Immediate | null = null
  #lastFlush = Number.NEGATIVE_INFINITY
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
    if (quietFor >= this.#o.windowMs) {
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
