import * as nodePty from 'node-pty'

export interface PtyExit {
  exitCode: number
  /** The signal that ended the process, when one did. */
  signal: number | undefined
}

/** The PTY operations the terminal bridge needs; node-pty in production, a fake in tests. */
export interface PtyProcess {
  readonly pid: number
  /** Output as bytes, never decoded (decoding is the transport's business). */
  onData(listener: (data: Buffer) => void): void
  onExit(listener: (exit: PtyExit) => void): void
  write(data: Buffer | string): void
  resize(cols: number, rows: number): void
  /** Stops reading the PTY, so the writer blocks once the kernel buffer is full. */
  pause(): void
  resume(): void
  kill(signal?: NodeJS.Signals): void
}

export interface PtySpawnOptions {
  cols: number
  rows: number
  /** The host-side TERM of the PTY (the container side gets its own through `incus exec --env`). */
  name: string
}

export interface PtySpawner {
  spawn(file: string, args: readonly string[], opts: PtySpawnOptions): PtyProcess
}

// With `encoding: null` node-pty hands out Buffers, although its typings say string.
type ByteEvent = (listener: (data: Buffer | string) => void) => nodePty.IDisposable

class NodePty implements PtyProcess {
  readonly #pty: nodePty.IPty

  constructor(pty: nodePty.IPty) {
    this.#pty = pty
  }

  get pid(): number {
    return this.#pty.pid
  }

  onData(listener: (data: Buffer) => void): void {
    const onData = this.#pty.onData as unknown as ByteEvent
    onData((d) => {
      listener(typeof d === 'string' ? Buffer.from(d, 'utf8') : d)
    })
  }

  onExit(listener: (exit: PtyExit) => void): void {
    this.#pty.onExit((e) => {
      listener({ exitCode: e.exitCode, signal: e.signal === 0 ? undefined : e.signal })
    })
  }

  write(data: Buffer | string): void {
    this.#pty.write(data)
  }

  resize(cols: number, rows: number): void {
    this.#pty.resize(cols, rows)
  }

  pause(): void {
    this.#pty.pause()
  }

  resume(): void {
    this.#pty.resume()
  }

  kill(signal?: NodeJS.Signals): void {
    this.#pty.kill(signal)
  }
}

export const nodePtySpawner: PtySpawner = {
  spawn(file, args, opts) {
    return new NodePty(
      nodePty.spawn(file, [...args], {
        name: opts.name,
        cols: opts.cols,
        rows: opts.rows,
        encoding: null,
      }),
    )
  },
}
