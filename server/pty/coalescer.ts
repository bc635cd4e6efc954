export interface CoalesceOptions {
  /** While output streams, it waits up to this long after the last send to go out together. */
  windowMs: number
  /** A batch this large is sent at once. */
  maxBytes: number
  /**
   * Output is streaming when at least this many bytes went out within the last `windowMs`: one
   * large PTY read (at most ~4 KiB), or many small ones in a row (tmux redrawing a scrolling pane
   * writes a few hundred bytes at a time, thousands of times a second). An echo or a small redraw
   * after a quiet window is far less, and never waits.
   */
  streamBytes?: number
  /**
   * Output is streaming, too, when this many chunks (PTY reads) went out within the last
   * `windowMs`, however small: tmux scrolling a pane writes ~15 bytes every ~0.1 ms (measured
   * with `cat` of a large file in the pane), which would otherwise be one frame each. Typing is
   * far slower.
   */
  streamChunks?: number
}

export const DEFAULT_COALESCE: CoalesceOptions = {
  windowMs: 4,
  maxBytes: 64 * 1024,
  streamBytes: 2048,
  streamChunks: 8,
}

/**
 * Batches PTY output into fewer, larger frames without delaying keystroke echoes. Output goes
 * out on the next turn of the event loop (merging whatever else the same poll read), unless the
 * terminal is streaming — `streamBytes`, or `streamChunks` chunks, went out within the last
 * `windowMs` — in which case it is held until `windowMs` after the last send, or until `maxBytes` have gathered. A flood thus
 * becomes ~64 KiB frames instead of thousands of 4 KiB ones, and tmux's stream of small writes
 * one frame per window instead of one per write (each frame is a send, a TCP segment and a read
 * in the browser), while echoes, even typed back to back, pay no timer.
 */
export class OutputCoalescer {
  readonly #o: CoalesceOptions
  readonly #onFlush: (data: Buffer) => void
  #chunks: Buffer[] = []
  #size = 0
  #timer: NodeJS.Timeout | null = null
  #immediate: NodeJS.Immediate | null = null
  /** The sends of the last `windowMs`, oldest first: when, and how many bytes and chunks. */
  readonly #recent: Array<{ at: number; bytes: number; chunks: number }> = []
  #disposed = false

  readonly #onHold: (held: boolean) => void
  #held = false

  /**
   * `onHold(true)` when a stream of tiny writes (`streamChunks` of them, under `streamBytes` in
   * all) starts being held for a window, `onHold(false)` when the window ends (before its send)
   * or the coalescer is disposed: the bridge stops reading the PTY meanwhile, so what the program
   * writes in the window waits in the kernel and comes in one read instead of one per write
   * (tmux's ~15-byte writes cost ~30 µs each to read). Bulk output is never held back this way:
   * it comes in large reads anyway, and not reading it cut /ws/shell's rate to a third.
   */
  constructor(
    opts: CoalesceOptions,
    onFlush: (data: Buffer) => void,
    onHold: (held: boolean) => void = () => undefined,
  ) {
    this.#o = opts
    this.#onFlush = onFlush
    this.#onHold = onHold
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
    const now = performance.now()
    const { streaming, small } = this.#streaming(now)
    // The last send of the window; none when the terminal has been quiet for a whole window.
    const last = this.#recent.at(-1)
    if (!streaming || !last) {
      this.#immediate = setImmediate(() => {
        this.#immediate = null
        this.flush()
      })
    } else {
      this.#timer = setTimeout(
        () => {
          this.#timer = null
          this.flush()
        },
        this.#o.windowMs - (now - last.at),
      )
      // Only a stream of tiny writes is worth not reading: bulk output comes in large reads
      // anyway, and not reading it would only cap its rate at a socket buffer per window.
      if (small) this.#hold(true)
    }
  }

  /** Sends what is pending now. */
  flush(): void {
    this.#cancel()
    if (this.#size === 0) return
    const chunks = this.#chunks.length
    const data = chunks === 1 ? (this.#chunks[0] ?? Buffer.alloc(0)) : Buffer.concat(this.#chunks)
    this.#chunks = []
    this.#size = 0
    this.#recent.push({ at: performance.now(), bytes: data.length, chunks })
    this.#onFlush(data)
  }

  /**
   * Whether the terminal streams: `streamBytes`, or `streamChunks` chunks, went out within the
   * last `windowMs` before `now`; `small` when it is only the chunks (tiny writes).
   */
  #streaming(now: number): { streaming: boolean; small: boolean } {
    const recent = this.#recent
    while (recent.length > 0 && now - (recent[0]?.at ?? now) >= this.#o.windowMs) recent.shift()
    let bytes = 0
    let chunks = 0
    for (const r of recent) {
      bytes += r.bytes
      chunks += r.chunks
    }
    const bulk = bytes >= (this.#o.streamBytes ?? 0)
    const small = !bulk && chunks >= (this.#o.streamChunks ?? Number.POSITIVE_INFINITY)
    return { streaming: bulk || small, small }
  }

  /** Drops pending output and timers. */
  dispose(): void {
    this.#disposed = true
    this.#cancel()
    this.#chunks = []
    this.#size = 0
    this.#recent.length = 0
  }

  #cancel(): void {
    if (this.#timer) clearTimeout(this.#timer)
    if (this.#immediate) clearImmediate(this.#immediate)
    this.#timer = null
    this.#immediate = null
    this.#hold(false)
  }

  #hold(held: boolean): void {
    if (this.#held === held) return
    this.#held = held
    this.#onHold(held)
  }
}
