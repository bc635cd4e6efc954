// The splice relay (native/splice-relay.c): a small program that moves the bytes of one approved
// CONNECT tunnel between the two sockets the egress proxy opened, with splice(2), so a bulk
// transfer does not cross Node's user space (where a 64 MiB download ran at 0.3-0.44× of Incus's
// own forkproxy, which splices). This module starts it, hands it the sockets and collects the byte
// counts it reports; relay-tunnel.ts decides when a tunnel is handed over.
import { spawn, type ChildProcess } from 'node:child_process'
import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import type net from 'node:net'
import { Type, type Static } from 'typebox'
import { Value } from 'typebox/value'

/** The file name `scripts/ensure-deps.mjs` builds into `dist/native/`. */
export const RELAY_BINARY = 'clincus-splice-relay'

/** How long a relay asked to stop (SIGTERM) gets before it is killed (SIGKILL). */
const STOP_GRACE_MS = 2000

const RelayStatusSchema = Type.Object({
  up: Type.Integer({ minimum: 0 }),
  down: Type.Integer({ minimum: 0 }),
  end: Type.Union([
    Type.Literal('eof'),
    Type.Literal('idle'),
    Type.Literal('stop'),
    Type.Literal('signal'),
    Type.Literal('error'),
  ]),
  errno: Type.Integer(),
})

/**
 * How a relay ended. `up`: bytes it read from the client socket; `down`: bytes it wrote to the
 * client socket (both exclude what the server moved itself before the handoff). `end` is `crash`
 * when the program reported nothing (killed, or not the program we built): the counts are 0 then.
 */
export type RelayEnd =
  | Static<typeof RelayStatusSchema>
  | { up: 0; down: 0; end: 'crash'; errno: 0; signal: string | null }

/**
 * The relay binary at `path` if it is a regular executable file, else null (the proxy then
 * keeps moving the bytes itself).
 */
export async function findRelay(path: string): Promise<string | null> {
  try {
    const s = await stat(path)
    if (!s.isFile()) return null
    await access(path, constants.X_OK)
    return path
  } catch {
    return null
  }
}

export interface RelayStart {
  binary: string
  /** The session's side of the tunnel. */
  client: net.Socket
  /** The socket connected to the checked address. */
  target: net.Socket
  /** Bytes already read from the client and not yet written to the target, in order. */
  preUp: Buffer
  /** Bytes already read from the target and not yet written to the client, in order. */
  preDown: Buffer
  /** No byte either way for this long ends the relay (the proxy's idle timeout); 0: never. */
  idleMs: number
}

/** One running relay process: owns it until `done` settles. */
export class SpliceRelay {
  readonly #child: ChildProcess
  readonly done: Promise<RelayEnd>
  #killTimer: NodeJS.Timeout | undefined

  private constructor(child: ChildProcess) {
    this.#child = child
    let out = ''
    child.stdout?.setEncoding('utf8')
    child.stdout?.on('data', (d: string) => {
      if (out.length < 4096) out += d
    })
    // The relay exits when it is done; its stdin only ever ends or fails after that.
    child.stdin?.on('error', () => undefined)
    this.done = new Promise<RelayEnd>((resolve) => {
      child.once('close', (_code, signal) => {
        clearTimeout(this.#killTimer)
        resolve(parseStatus(out, signal))
      })
    })
  }

  /**
   * Starts a relay over the two sockets. The caller must have stopped moving bytes on them and
   * flushed its writes (`writableLength` 0 on both); the relay sends `preUp`/`preDown` first. On
   * success the sockets belong to the relay: the caller destroys its own handles at once (that
   * closes only the server's copies of the descriptors). Returns null when the program could not
   * be started (the sockets are then still the caller's, paused).
   */
  static start(opts: RelayStart): SpliceRelay | null {
    const args = opts.idleMs > 0 ? ['--idle-ms', String(Math.round(opts.idleMs))] : []
    let child: ChildProcess
    try {
      child = spawn(opts.binary, args, {
        // fd 0 control, fd 1 status, fd 2 discarded, fd 3 client, fd 4 target (splice-relay.c)
        stdio: ['pipe', 'pipe', 'ignore', opts.client, opts.target],
        cwd: '/',
        env: {},
      })
    } catch {
      return null
    }
    // A failed start (ENOENT, EACCES, EAGAIN) is reported on the next tick, with no pid.
    child.on('error', () => undefined)
    if (child.pid === undefined) return null
    const relay = new SpliceRelay(child)
    child.stdin?.write(`${opts.preUp.length} ${opts.preDown.length}\n`)
    if (opts.preUp.length > 0) child.stdin?.write(opts.preUp)
    if (opts.preDown.length > 0) child.stdin?.write(opts.preDown)
    return relay
  }

  /** Asks the relay to end now (it reports its counts), and kills it if it does not within 2 s. */
  stop(): void {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    this.#child.kill('SIGTERM')
    if (this.#killTimer === undefined) {
      this.#killTimer = setTimeout(() => {
        this.#child.kill('SIGKILL')
      }, STOP_GRACE_MS)
      this.#killTimer.unref()
    }
  }

  /** The process id, for tests and logs. */
  get pid(): number | undefined {
    return this.#child.pid
  }
}

function parseStatus(out: string, signal: NodeJS.Signals | null): RelayEnd {
  const line = out.split('\n')[0] ?? ''
  try {
    const v: unknown = JSON.parse(line)
    if (Value.Check(RelayStatusSchema, v)) return v
  } catch {
    // not a status line: reported as a crash below
  }
  return { up: 0, down: 0, end: 'crash', errno: 0, signal }
}
