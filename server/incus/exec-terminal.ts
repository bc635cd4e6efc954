// An interactive `incus exec` spoken straight to the daemon: the REST call, then its two
// WebSockets on the daemon's unix socket (issue 14). The `incus` client in a host PTY, which the
// terminals used before, costs a process per viewer and one more copy of every byte: the client
// reads Incus' WebSocket and writes a host PTY, whose reader gets it 4 KiB at a time. Here the
// server reads the daemon's WebSocket itself (64 MiB moved 1.5-1.8x as fast, with less CPU, in the
// measurement that decided it; docs/performance.md, issue 14).
//
// The protocol (lxc/incus cmd/incusd/instance_exec.go and shared/ws/rwc.go, 6.0):
// - POST /1.0/instances/{name}/exec with `interactive` and `wait-for-websocket` answers with an
//   operation whose metadata holds two secrets, fd "0" (the terminal, both ways) and "control".
//   The command starts once both WebSockets are connected (the daemon waits 5 s for them).
// - Output arrives as binary messages; an empty text message (the "barrier") says there is no
//   more. Input goes as binary messages: a text message would end the command's input.
// - Control takes JSON: {"command":"window-resize","args":{"width":"80","height":"24"}} and
//   {"command":"signal","signal":1}. A close of the control socket makes the daemon SIGKILL the
//   command.
// - After the barrier the daemon waits for the terminal socket to close, then ends the operation;
//   its metadata's `return` is the exit code.
import { once } from 'node:events'
import { constants } from 'node:os'
import Type from 'typebox'
import { Value } from 'typebox/value'
import { WebSocket, type RawData } from 'ws'
import { projectPath, type IncusRest } from '../../incus/rest.ts'
import { PendingInput } from '../pty/pending-input.ts'
import { WRITE_CHARGE, type PtyExit, type PtyProcess } from '../pty/spawner.ts'
import type { TerminalExecOptions } from './driver.ts'

/** The operation an interactive exec answers with (its two WebSocket secrets). */
const ExecStartedSchema = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9-]+$' }),
  metadata: Type.Object({
    fds: Type.Object({
      '0': Type.String({ minLength: 1, maxLength: 256 }),
      control: Type.String({ minLength: 1, maxLength: 256 }),
    }),
  }),
})

/** A finished exec operation: `return` is the command's exit code when it ran. */
const ExecFinishedSchema = Type.Object({
  status_code: Type.Number(),
  err: Type.Optional(Type.String()),
  metadata: Type.Optional(
    Type.Union([Type.Object({ return: Type.Optional(Type.Number()) }), Type.Null()]),
  ),
})

/** Operation status codes from 400 on are failures (shared/api/status_code.go). */
const OP_FAILED = 400
/** The exit code reported when the daemon cannot say (it went away, or the exec failed). */
export const EXEC_LOST_EXIT_CODE = 255
/** How long connecting both WebSockets may take (ms); the daemon itself gives up after 5 s. */
const CONNECT_TIMEOUT_MS = 10_000
/** How long the daemon gets to do its part (ms): tests shorten them. */
export interface ExecTimings {
  /** After SIGKILL, to end the command before the sockets are dropped. */
  killWaitMs: number
  /** To give the exit code once the output has ended. */
  resultTimeoutMs: number
}

const TIMINGS: ExecTimings = { killWaitMs: 3_000, resultTimeoutMs: 5_000 }
/** The daemon sends output in reads of its PTY (4 KiB on Linux); anything far larger is refused. */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024
/**
 * Output read while paused once the command has ended (bytes): the daemon mirrors a dead command's
 * PTY for only 1 s after its first read past the exit (internal/linux/poll.go). A program's own
 * tail is what the PTY and the sockets hold (~200 KiB); past this, background processes' output
 * stays in the socket and the daemon drops it.
 */
const MAX_HELD_BYTES = 1024 * 1024

/**
 * Starts `argv` in a PTY of the container, owned by the Incus daemon, and returns it as a
 * PtyProcess once its WebSockets are connected (so the command is starting). `pid` is undefined:
 * no host process stands for it.
 *
 * Throws IncusUnreachableError when the socket cannot be reached (nothing was sent: the caller may
 * use the CLI instead), IncusCommandError with Incus' message when the daemon refuses, and an
 * Error when the WebSockets cannot be connected within 10 s (the daemon then drops the exec
 * without starting it).
 */
export async function openExecTerminal(
  rest: IncusRest,
  project: string,
  name: string,
  argv: readonly string[],
  opts: TerminalExecOptions,
  timings: ExecTimings = TIMINGS,
): Promise<PtyProcess> {
  const started = await rest.begin(
    projectPath(`/1.0/instances/${encodeURIComponent(name)}/exec`, project),
    {
      method: 'POST',
      verb: 'exec',
      body: {
        command: argv,
        'wait-for-websocket': true,
        interactive: true,
        'record-output': false,
        environment: opts.env ?? {},
        width: opts.cols,
        height: opts.rows,
        user: opts.user ?? 0,
        group: opts.group ?? 0,
        cwd: opts.cwd ?? '',
      },
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.signal ? { signal: opts.signal } : {}),
    },
  )
  if (!Value.Check(ExecStartedSchema, started))
    throw new Error('unexpected exec operation shape from incus')
  const op = started.id
  const socket = (secret: string): WebSocket => {
    const ws = new WebSocket(
      rest.websocketUrl(
        projectPath(
          `/1.0/operations/${op}/websocket?secret=${encodeURIComponent(secret)}`,
          project,
        ),
      ),
      {
        perMessageDeflate: false,
        maxPayload: MAX_MESSAGE_BYTES,
        handshakeTimeout: CONNECT_TIMEOUT_MS,
      },
    )
    // An error always comes with a close, which is what ends a terminal; an 'error' without a
    // listener (one a terminate() during the handshake emits) would end the server.
    ws.on('error', () => undefined)
    return ws
  }
  const control = socket(started.metadata.fds.control)
  const data = socket(started.metadata.fds['0'])
  // The daemon starts the command once it has both sockets, maybe before we see both open: what
  // comes meanwhile (tmux's first screen; a short command's output and barrier) is kept.
  const early: Array<[RawData, boolean]> = []
  const keep = (m: RawData, isBinary: boolean): void => {
    early.push([m, isBinary])
  }
  data.on('message', keep)
  try {
    // `ws` emits 'error' for every handshake that does not complete (refused, timed out, cut),
    // which `once` rejects with.
    const signal = opts.signal
    await Promise.all([once(control, 'open', { signal }), once(data, 'open', { signal })])
  } catch (err) {
    // Closing the control socket makes the daemon kill a command that did start.
    control.terminate()
    data.terminate()
    // No `cause`: only the message of `ws`' error is kept, never the error itself, whose request
    // could carry the address (its query holds the operation's secret) into a log.
    // eslint-disable-next-line preserve-caught-error -- see above
    if (opts.signal?.aborted) throw new Error('incus exec was cancelled')
    const why = err instanceof Error ? err.message : String(err)
    // eslint-disable-next-line preserve-caught-error -- see above
    throw new Error(`incus exec: the terminal's WebSocket failed: ${why}`)
  }
  data.off('message', keep)
  return new ExecTerminal(rest, project, op, control, data, timings, early)
}

function bytesOf(m: RawData): Buffer {
  if (Buffer.isBuffer(m)) return m
  if (Array.isArray(m)) return Buffer.concat(m)
  return Buffer.from(m)
}

/**
 * One interactive exec. Output is every binary message until the barrier (or the socket's end);
 * the exit is reported after the last of it and the exit code from the finished operation, also
 * when output was paused for flow control at the time (its messages wait in the socket).
 */
class ExecTerminal implements PtyProcess {
  readonly pid = undefined
  readonly #rest: IncusRest
  readonly #waitPath: string
  readonly #control: WebSocket
  readonly #data: WebSocket
  readonly #dataListeners: Array<(data: Buffer) => void> = []
  readonly #exitListeners: Array<(exit: PtyExit) => void> = []
  readonly #pending = new PendingInput()
  #outputEnded = false
  /** The command has ended (the daemon closed control): its tail is read even while paused. */
  #commandEnded = false
  #paused = false
  #killed = false
  /** Output read while paused after the command ended, delivered on resume. */
  readonly #held: Buffer[] = []
  #heldBytes = 0
  /** The exit, waiting for the held output to be delivered. */
  #exitDue: PtyExit | null = null
  #exit: PtyExit | null = null
  #killTimer: NodeJS.Timeout | null = null
  readonly #timings: ExecTimings

  constructor(
    rest: IncusRest,
    project: string,
    op: string,
    control: WebSocket,
    data: WebSocket,
    timings: ExecTimings,
    early: ReadonlyArray<[RawData, boolean]>,
  ) {
    this.#rest = rest
    this.#timings = timings
    this.#waitPath = projectPath(
      `/1.0/operations/${op}/wait?timeout=${String(Math.ceil(timings.resultTimeoutMs / 1000))}`,
      project,
    )
    this.#control = control
    this.#data = data
    const onMessage = (m: RawData, isBinary: boolean): void => {
      if (this.#outputEnded) return
      if (!isBinary) {
        this.#endOutput()
        return
      }
      const bytes = bytesOf(m)
      if (this.#paused || this.#held.length > 0 || this.#dataListeners.length === 0)
        this.#hold(bytes)
      else this.#deliver(bytes)
    }
    for (const [m, isBinary] of early) onMessage(m, isBinary)
    data.on('message', onMessage)
    data.on('close', () => {
      this.#endOutput()
    })
    if (data.readyState === WebSocket.CLOSED) this.#endOutput()
    // The daemon closes control when the command ends. If the command never started (the exec
    // failed), no barrier will come: the operation says so.
    control.on('close', () => {
      this.#commandEnded = true
      if (this.#heldBytes < MAX_HELD_BYTES) data.resume()
      if (!this.#outputEnded) void this.#checkFailed()
    })
  }

  /** Output that came before any listener goes to the first one at once. */
  onData(listener: (data: Buffer) => void): void {
    this.#dataListeners.push(listener)
    if (!this.#paused && this.#flushHeld()) this.#data.resume()
  }

  onExit(listener: (exit: PtyExit) => void): void {
    if (this.#exit) listener(this.#exit)
    else this.#exitListeners.push(listener)
  }

  write(data: Buffer | string): void {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
    if (bytes.byteLength === 0 || this.#outputEnded || this.#data.readyState !== WebSocket.OPEN)
      return
    const cost = bytes.byteLength + WRITE_CHARGE
    this.#pending.add(cost)
    // Always binary: a text message would end the command's input (Incus' barrier).
    this.#data.send(bytes, { binary: true }, () => {
      this.#pending.release(cost)
    })
  }

  get pendingInput(): number {
    return this.#pending.bytes
  }

  onInputBelow(bytes: number, listener: () => void): () => void {
    return this.#pending.onBelow(bytes, listener)
  }

  resize(cols: number, rows: number): void {
    this.#sendControl({
      command: 'window-resize',
      args: { width: String(cols), height: String(rows) },
    })
  }

  pause(): void {
    if (this.#killed) return
    this.#paused = true
    if (!this.#commandEnded) this.#data.pause()
  }

  resume(): void {
    this.#paused = false
    if (this.#flushHeld()) this.#data.resume()
  }

  #deliver(bytes: Buffer): void {
    for (const l of this.#dataListeners) l(bytes)
  }

  #hold(bytes: Buffer): void {
    this.#held.push(bytes)
    this.#heldBytes += bytes.byteLength
    if (this.#heldBytes >= MAX_HELD_BYTES) this.#data.pause()
  }

  /** Delivers held output until a listener pauses, then a due exit; whether still unpaused. */
  #flushHeld(): boolean {
    while (!this.#paused) {
      const bytes = this.#held.shift()
      if (!bytes) break
      this.#heldBytes -= bytes.byteLength
      this.#deliver(bytes)
    }
    if (this.#held.length === 0 && this.#exitDue) this.#finish(this.#exitDue)
    return !this.#paused
  }

  /**
   * Sends `signal` (default SIGHUP) to the command through the control socket. SIGKILL also
   * closes the control socket, on which the daemon kills the command itself, and drops both
   * sockets if the daemon has not ended it within `killWaitMs` (3 s; the exit is then 255).
   */
  kill(signal: NodeJS.Signals = 'SIGHUP'): void {
    if (this.#exit) return
    // Nobody reads the output of a terminal being ended: what is left is read and dropped by the
    // caller, so the daemon can write its end (a paused socket would hold the exit back forever).
    this.#killed = true
    this.resume()
    this.#sendControl({ command: 'signal', signal: constants.signals[signal] })
    if (signal !== 'SIGKILL' || this.#killTimer) return
    if (this.#control.readyState === WebSocket.OPEN) this.#control.close(1000)
    this.#killTimer = setTimeout(() => {
      this.#control.terminate()
      this.#data.terminate()
    }, this.#timings.killWaitMs)
  }

  #sendControl(message: object): void {
    if (this.#control.readyState !== WebSocket.OPEN) return
    this.#control.send(JSON.stringify(message))
  }

  #endOutput(): void {
    if (this.#outputEnded) return
    this.#outputEnded = true
    // The daemon ends the operation once our side of the terminal socket is closed too.
    if (this.#data.readyState === WebSocket.OPEN) this.#data.close(1000)
    void this.#result().then((exit) => {
      this.#finish(exit)
    })
  }

  /** The control socket closed before the output ended: did the exec fail to start? */
  async #checkFailed(): Promise<void> {
    const op = await this.#operation(1_000)
    if (!op || this.#outputEnded) return
    if (op.status_code >= OP_FAILED) {
      // A failed exec never mirrors its PTY, so nothing more comes on the terminal socket.
      this.#outputEnded = true
      this.#data.terminate()
      this.#finish({ exitCode: EXEC_LOST_EXIT_CODE, signal: undefined })
    }
  }

  async #result(): Promise<PtyExit> {
    const op = await this.#operation(this.#timings.resultTimeoutMs + 1_000)
    const code = op?.status_code === 200 ? op.metadata?.return : undefined
    // An exit status is 0-255 (128 + n for a signal); anything else is not one.
    const valid = code !== undefined && Number.isInteger(code) && code >= 0 && code <= 255
    return { exitCode: valid ? code : EXEC_LOST_EXIT_CODE, signal: undefined }
  }

  async #operation(timeoutMs: number) {
    try {
      const answer = await this.#rest.call(this.#waitPath, { verb: 'exec', timeoutMs })
      return Value.Check(ExecFinishedSchema, answer.metadata) ? answer.metadata : null
    } catch {
      return null // the daemon is gone or says nothing of it: the exit code is unknown
    }
  }

  #finish(exit: PtyExit): void {
    if (this.#exit) return
    if (this.#held.length > 0) {
      this.#exitDue = exit // reported once resume delivered the rest (issue 14 row 9)
      return
    }
    this.#exit = exit
    if (this.#killTimer) clearTimeout(this.#killTimer)
    this.#killTimer = null
    this.#control.terminate()
    this.#data.terminate()
    this.#pending.clear()
    for (const l of this.#exitListeners.splice(0)) l(exit)
  }
}
