import { readFileSync, readSync, write as writeFd, writeSync } from 'node:fs'
import { Readable } from 'node:stream'
import * as nodePty from 'node-pty'

export interface PtyExit {
  exitCode: number
  /** The signal that ended the process, when one did. */
  signal: number | undefined
}

/** The PTY operations the terminal bridge needs; node-pty in production, a fake in tests. */
export interface PtyProcess {
  /** The host process behind the PTY; undefined when none is (a PTY the Incus daemon owns). */
  readonly pid: number | undefined
  /** Output as bytes, never decoded (decoding is the transport's business). */
  onData(listener: (data: Buffer) => void): void
  /**
   * Called once the process has exited and every byte of its output has gone to the `onData`
   * listeners, also when the PTY is paused then (issue 14 row 9).
   */
  onExit(listener: (exit: PtyExit) => void): void
  write(data: Buffer | string): void
  /**
   * Input handed to `write` that the PTY has not taken yet, in bytes plus a fixed charge per
   * write (so a flood of tiny writes counts too). It only grows while the process behind the
   * PTY does not read: the kernel buffer is full and the rest waits in memory.
   */
  readonly pendingInput: number
  /** Calls `listener` once `pendingInput` is at or under `bytes`; returns a cancel function. */
  onInputBelow(bytes: number, listener: () => void): () => void
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

/** What one queued write costs besides its bytes (node-pty's task object, our bookkeeping). */
export const WRITE_CHARGE = 64
/** How often a waiter looks at node-pty's write queue while the PTY is not taking input. */
const DRAIN_POLL_MS = 10

/**
 * node-pty 1.1 writes through a queue of its own (lib/unixTerminal.js, CustomWriteStream:
 * `_writeStream._writeQueue` of `{ buffer, offset }`, retried on EAGAIN) that grows without bound
 * while the process does not read, and it tells nobody when it drains. Its shape is checked once
 * per PTY, so a node-pty upgrade that changes it fails loudly (spawner.test.ts) instead of
 * silently losing input backpressure.
 */
interface WriteStream {
  readonly stream: object
  readonly queue: unknown[]
  readonly fd: number
  /** Whether the descriptor is non-blocking (a synchronous write can never stall the loop). */
  readonly nonBlocking: boolean
  /** Whether node-pty's read side of the PTY is destroyed: its descriptor is closed then. */
  readonly closed: () => boolean
}

function writeStreamOf(pty: nodePty.IPty): WriteStream {
  const stream: unknown = Reflect.get(pty, '_writeStream')
  const socket: unknown = Reflect.get(pty, '_socket')
  if (typeof stream !== 'object' || stream === null || typeof socket !== 'object' || !socket)
    throw new Error('node-pty has no _writeStream/_socket: input backpressure needs updating')
  const queue: unknown = Reflect.get(stream, '_writeQueue')
  const fd: unknown = Reflect.get(stream, '_fd')
  const destroyed: unknown = Reflect.get(socket, 'destroyed')
  if (!Array.isArray(queue) || typeof fd !== 'number' || typeof destroyed !== 'boolean')
    throw new Error('node-pty changed its write stream: input backpressure needs updating')
  return {
    stream,
    queue,
    fd,
    nonBlocking: isNonBlocking(fd),
    closed: () => Reflect.get(socket, 'destroyed') === true,
  }
}

/** Refused writes retried at once (a reader that is draining frees room within microseconds). */
const QUICK_RETRIES = 32
const RETRY_MIN_MS = 1
const RETRY_MAX_MS = 20

/**
 * Whether `fd` is in non-blocking mode (Linux: the `flags` line of /proc/self/fdinfo, octal;
 * O_NONBLOCK is 04000). node-pty's PTY descriptor is; a synchronous write to a blocking one could
 * stop the event loop, so it is checked rather than assumed.
 */
function isNonBlocking(fd: number): boolean {
  try {
    const m = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))
    return m !== null && (parseInt(m[1] ?? '0', 8) & 0o4000) !== 0
  } catch {
    return false
  }
}

/**
 * node-pty retries a write the kernel refused (EAGAIN: the process does not read) with
 * `setImmediate`: a busy loop of fs.write calls for as long as the process does not read (a core
 * at ~85 % here; microsoft/node-pty#956, not released). This replaces the stream's queue runner
 * with the same loop, except that after 32 refusals in a row (the reader is not draining) the
 * retries are paced, 1 ms backing off to 20 ms, and that nothing is written once node-pty has
 * closed the PTY's descriptor (its number could belong to another file by then).
 *
 * And input never waits for a thread: node-pty writes with the async `fs.write`, a round trip
 * through libuv's thread pool (4 threads, shared with every file operation of the server) for
 * each keystroke, which on a loaded 2-core machine added 0.05 ms at the median and 1-4 ms at the
 * 99th percentile of a PTY round trip (docs/performance.md, issue 14). A write that starts on an
 * idle queue is offered to the (non-blocking) descriptor synchronously first; what the kernel
 * does not take goes on through the queue as before.
 */
function paceWriteRetries(w: WriteStream): void {
  let timer: NodeJS.Timeout | undefined
  let immediate: NodeJS.Immediate | undefined
  let refused = 0
  let delay = RETRY_MIN_MS
  let disposed = false
  const run = (): void => {
    timer = undefined
    immediate = undefined
    if (disposed || w.closed()) return
    const task: unknown = w.queue[0]
    if (typeof task !== 'object' || task === null) return
    const buffer: unknown = Reflect.get(task, 'buffer')
    const offset = offsetOf(task)
    if (!(buffer instanceof Uint8Array)) {
      w.queue.shift()
      run()
      return
    }
    writeFd(w.fd, buffer, offset, (err, written) => {
      if (disposed || w.closed()) return
      if (err) {
        if (err.code === 'EAGAIN') {
          refused++
          if (refused <= QUICK_RETRIES) {
            immediate = setImmediate(run)
            return
          }
          timer = setTimeout(run, delay)
          delay = Math.min(delay * 2, RETRY_MAX_MS)
          return
        }
        // As node-pty does: the PTY is gone (EIO, EBADF), and so is what was queued for it.
        w.queue.length = 0
        return
      }
      refused = 0
      delay = RETRY_MIN_MS
      const next = offset + written
      if (next >= buffer.byteLength) w.queue.shift()
      else Reflect.set(task, 'offset', next)
      run()
    })
  }
  // node-pty calls this when its queue goes from empty to one task (nothing in flight, no retry
  // pending): a keystroke, or the start of a paste. It is offered to the kernel at once.
  const start = (): void => {
    if (!disposed && !w.closed() && w.nonBlocking) writeNow()
    run()
  }
  const writeNow = (): void => {
    const task: unknown = w.queue[0]
    if (typeof task !== 'object' || task === null) return
    const buffer: unknown = Reflect.get(task, 'buffer')
    if (!(buffer instanceof Uint8Array)) return
    const offset = offsetOf(task)
    let written: number
    try {
      written = writeSync(w.fd, buffer, offset)
    } catch {
      return // EAGAIN (the kernel's buffer is full) or an error: run() sees it again, async
    }
    if (offset + written >= buffer.byteLength) w.queue.shift()
    else Reflect.set(task, 'offset', offset + written)
  }
  Reflect.set(w.stream, '_processWriteQueue', start)
  Reflect.set(w.stream, 'dispose', () => {
    disposed = true
    clearTimeout(timer)
    clearImmediate(immediate)
  })
}

function offsetOf(task: unknown): number {
  const offset: unknown =
    typeof task === 'object' && task !== null ? Reflect.get(task, 'offset') : undefined
  return typeof offset === 'number' ? offset : 0
}

/** More than any kernel keeps for a PTY (64 KiB on Linux): the drain ends even if a process
 * that inherited the terminal keeps writing to it. */
const EXIT_DRAIN_LIMIT = 1024 * 1024
const DRAIN_CHUNK = 64 * 1024

/**
 * node-pty 1.1, when the process has exited, waits 200 ms for the PTY's read stream to reach
 * its end and then destroys the stream (lib/unixTerminal.js, DESTROY_SOCKET_TIMEOUT_MS), losing
 * whatever is still unread: all of the process's last output when we had paused the PTY for flow
 * control, and some of it when a busy event loop did not get to read in time (issue 14 row 9).
 * This wraps the stream's `destroy`: it first hands every byte still in the stream's buffer and
 * in the kernel's to `deliver` (reading the non-blocking descriptor until it is empty or the
 * terminal is gone), so the exit node-pty then reports comes after all of them.
 */
function drainBeforeDestroy(pty: nodePty.IPty, deliver: (data: Buffer) => void): void {
  const socket: unknown = Reflect.get(pty, '_socket')
  const fd: unknown = Reflect.get(pty, '_fd')
  const destroy: unknown =
    typeof socket === 'object' && socket ? Reflect.get(socket, 'destroy') : null
  if (!(socket instanceof Readable) || typeof fd !== 'number' || typeof destroy !== 'function')
    throw new Error('node-pty changed its read stream: the exit drain needs updating')
  const original = destroy as (this: Readable, ...args: unknown[]) => Readable
  Reflect.set(socket, 'destroy', function (this: Readable, ...args: unknown[]): Readable {
    if (!socket.destroyed) drainNow(socket, fd, deliver)
    return original.apply(this, args)
  })
}

function drainNow(socket: Readable, fd: number, deliver: (data: Buffer) => void): void {
  let taken = 0
  // What the stream read before it was paused and has not handed out yet.
  while (socket.readableLength > 0 && taken < EXIT_DRAIN_LIMIT) {
    const chunk: unknown = socket.read()
    if (chunk === null) break
    // read() emits 'data' to node-pty's own listener, which delivers it.
    if (Buffer.isBuffer(chunk)) taken += chunk.length
  }
  const buf = Buffer.alloc(DRAIN_CHUNK)
  while (taken < EXIT_DRAIN_LIMIT) {
    let n: number
    try {
      n = readSync(fd, buf, 0, buf.length, null)
    } catch {
      return // EAGAIN: empty; EIO: the terminal's last writer is gone and so is its output
    }
    if (n <= 0) return
    taken += n
    deliver(Buffer.from(buf.subarray(0, n)))
  }
}

class NodePty implements PtyProcess {
  readonly #pty: nodePty.IPty
  readonly #queue: unknown[]
  /**
   * The sizes of our writes still in node-pty's queue, oldest first. node-pty only ever takes
   * tasks off the front (or empties the queue on a write error), so the queue's length says how
   * many of ours are left: the sum stays exact in O(1) per write.
   */
  #sizes: number[] = []
  #head = 0
  #sum = 0
  readonly #waiters = new Map<() => void, number>()
  #poll: NodeJS.Timeout | null = null
  readonly #dataListeners: Array<(data: Buffer) => void> = []

  constructor(pty: nodePty.IPty) {
    this.#pty = pty
    const w = writeStreamOf(pty)
    paceWriteRetries(w)
    this.#queue = w.queue
    const onData = this.#pty.onData as unknown as ByteEvent
    onData((d) => {
      this.#deliver(typeof d === 'string' ? Buffer.from(d, 'utf8') : d)
    })
    drainBeforeDestroy(pty, (d) => {
      this.#deliver(d)
    })
  }

  #deliver(data: Buffer): void {
    for (const l of this.#dataListeners) l(data)
  }

  get pid(): number {
    return this.#pty.pid
  }

  onData(listener: (data: Buffer) => void): void {
    this.#dataListeners.push(listener)
  }

  onExit(listener: (exit: PtyExit) => void): void {
    this.#pty.onExit((e) => {
      this.#stopPolling()
      listener({ exitCode: e.exitCode, signal: e.signal === 0 ? undefined : e.signal })
    })
  }

  write(data: Buffer | string): void {
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
    this.#pty.write(data)
    // node-pty skips empty writes; everything else is one task at the end of its queue.
    if (size > 0) {
      this.#sizes.push(size)
      this.#sum += size
    }
  }

  get pendingInput(): number {
    const left = this.#queue.length
    while (this.#sizes.length - this.#head > left) {
      this.#sum -= this.#sizes[this.#head] ?? 0
      this.#head++
    }
    if (this.#head > 1024 && this.#head * 2 > this.#sizes.length) {
      this.#sizes = this.#sizes.slice(this.#head)
      this.#head = 0
    }
    if (left === 0) return 0
    return this.#sum - offsetOf(this.#queue[0]) + WRITE_CHARGE * left
  }

  onInputBelow(bytes: number, listener: () => void): () => void {
    const cancel = (): void => {
      this.#waiters.delete(listener)
      if (this.#waiters.size === 0) this.#stopPolling()
    }
    if (this.pendingInput <= bytes) {
      listener()
      return () => undefined
    }
    this.#waiters.set(listener, bytes)
    this.#poll ??= setInterval(() => {
      const pending = this.pendingInput
      for (const [l, below] of this.#waiters) {
        if (pending > below) continue
        this.#waiters.delete(l)
        l()
      }
      if (this.#waiters.size === 0) this.#stopPolling()
    }, DRAIN_POLL_MS)
    return cancel
  }

  #stopPolling(): void {
    if (this.#poll) clearInterval(this.#poll)
    this.#poll = null
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
