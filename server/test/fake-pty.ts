// A PTY that lives in memory: tests drive its output and exit and read what it was asked to do.
import { PendingInput } from '../pty/pending-input.ts'
import {
  WRITE_CHARGE,
  type PtyExit,
  type PtyProcess,
  type PtySpawner,
  type PtySpawnOptions,
} from '../pty/spawner.ts'

let nextPid = 900_000

export class FakePty implements PtyProcess {
  readonly pid = nextPid++
  readonly file: string
  readonly args: readonly string[]
  readonly opts: PtySpawnOptions
  readonly written: Buffer[] = []
  readonly resizes: Array<[number, number]> = []
  readonly signals: string[] = []
  paused = false
  exited = false
  /** Whether SIGHUP ends the process (false: only SIGKILL does, like a hung `incus exec`). */
  exitOnHup = true
  /** false: the process takes no input, and what is written stays pending until `drain()`. */
  reading = true
  /**
   * true: like node-pty, output emitted while paused waits (as in the kernel's buffer) until
   * `resume()`, or until the exit, which delivers it first (the PtyProcess contract). false:
   * output is delivered even while paused (a read that was already in flight).
   */
  holdWhilePaused = false
  #held: Buffer[] = []
  readonly #pending = new PendingInput()
  #data: Array<(d: Buffer) => void> = []
  #exit: Array<(e: PtyExit) => void> = []

  constructor(file: string, args: readonly string[], opts: PtySpawnOptions) {
    this.file = file
    this.args = args
    this.opts = opts
  }

  get input(): string {
    return Buffer.concat(this.written).toString()
  }

  onData(listener: (data: Buffer) => void): void {
    this.#data.push(listener)
  }

  onExit(listener: (exit: PtyExit) => void): void {
    this.#exit.push(listener)
  }

  write(data: Buffer | string): void {
    const buf = Buffer.from(data)
    this.written.push(buf)
    if (!this.reading && buf.length > 0) this.#pending.add(buf.length + WRITE_CHARGE)
  }

  get pendingInput(): number {
    return this.#pending.bytes
  }

  onInputBelow(bytes: number, listener: () => void): () => void {
    return this.#pending.onBelow(bytes, listener)
  }

  /** The process reads everything written so far (it keeps `reading` as it was). */
  drain(): void {
    this.#pending.clear()
  }

  /** Bytes written so far. */
  get writtenBytes(): number {
    return this.written.reduce((n, b) => n + b.length, 0)
  }

  resize(cols: number, rows: number): void {
    this.resizes.push([cols, rows])
  }

  pause(): void {
    this.paused = true
  }

  resume(): void {
    this.paused = false
    this.#release()
  }

  #release(): void {
    const held = this.#held
    this.#held = []
    for (const d of held) for (const l of this.#data) l(d)
  }

  /** Output bytes emitted while paused and not delivered yet. */
  get heldBytes(): number {
    return this.#held.reduce((n, b) => n + b.length, 0)
  }

  kill(signal: NodeJS.Signals = 'SIGHUP'): void {
    this.signals.push(signal)
    if (signal === 'SIGKILL' || this.exitOnHup) this.exit(0, signal === 'SIGKILL' ? 9 : 1)
  }

  /** Output from the process (delivered even while paused: the bridge must cope with in-flight reads). */
  emit(data: Buffer | string): void {
    if (this.paused && this.holdWhilePaused) {
      this.#held.push(Buffer.from(data))
      return
    }
    for (const l of this.#data) l(Buffer.from(data))
  }

  exit(exitCode: number, signal?: number): void {
    if (this.exited) return
    this.exited = true
    setImmediate(() => {
      this.#release()
      for (const l of this.#exit) l({ exitCode, signal })
    })
  }
}

export class FakeSpawner implements PtySpawner {
  readonly spawned: FakePty[] = []

  spawn(file: string, args: readonly string[], opts: PtySpawnOptions): FakePty {
    const p = new FakePty(file, args, opts)
    this.spawned.push(p)
    return p
  }

  get last(): FakePty {
    const p = this.spawned.at(-1)
    if (!p) throw new Error('no PTY spawned yet')
    return p
  }
}
