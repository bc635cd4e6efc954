// The splice relay (native/splice-relay.c): a small program that moves the bytes of approved
// CONNECT tunnels between the two sockets the egress proxy opened, with splice(2), so a bulk
// transfer does not cross Node's user space (where a 64 MiB download ran at 0.3-0.44× of Incus's
// own forkproxy, which splices). This module starts it once, hands it each tunnel's sockets over
// Node's IPC channel and collects the byte counts it reports; relay-tunnel.ts decides when a
// tunnel is handed over.
import { spawn, type ChildProcess } from 'node:child_process'
import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import type net from 'node:net'
import { Type, type Static } from 'typebox'
import { Value } from 'typebox/value'

/**
 * The file name `scripts/ensure-deps.mjs` builds into `dist/native/`. It carries the version of
 * the protocol between the server and the relay (2: one relay process, sockets over Node's IPC
 * channel), so a program built from an older source (a checkout whose build is older) is never
 * started by a server that speaks another protocol: it would not answer, and tunnels would hang.
 */
export const RELAY_BINARY = 'clincus-splice-relay-2'

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

const HostMessageSchema = Type.Union([
  Type.Object({ type: Type.Literal('started'), id: Type.Integer(), pid: Type.Integer() }),
  Type.Object({ type: Type.Literal('failed'), id: Type.Integer() }),
  Type.Object({
    type: Type.Literal('done'),
    id: Type.Integer(),
    status: Type.Union([Type.Null(), Type.Unknown()]),
    signal: Type.Optional(Type.Union([Type.Null(), Type.String()])),
  }),
])

/** One relayed tunnel: settles when its relay ended. */
export class SpliceRelay {
  readonly done: Promise<RelayEnd>
  #pid: number | undefined
  readonly #stop: () => void
  #settle: (end: RelayEnd) => void = () => undefined

  constructor(stop: () => void) {
    this.#stop = stop
    this.done = new Promise((resolve) => {
      this.#settle = resolve
    })
  }

  /** Asks the relay to end now; it reports its counts (the host kills it after 2 s otherwise). */
  stop(): void {
    this.#stop()
  }

  /** The relay's process id once it runs, for tests and logs. */
  get pid(): number | undefined {
    return this.#pid
  }

  /** @internal */ started(pid: number): void {
    this.#pid = pid
  }

  /** @internal */ ended(end: RelayEnd): void {
    this.#pid = undefined
    this.#settle(end)
  }
}

/**
 * The relay process (native/splice-relay.c, started once, at the first handoff) and the tunnels
 * it runs. A tunnel's sockets are sent to it as handles over Node's IPC channel (a documented
 * mechanism; the program speaks the channel's JSON-lines protocol itself), and it forks a small
 * child per tunnel, so neither the server nor the relay starts a program per tunnel.
 */
export class RelayHost {
  readonly #binary: string
  readonly #onDeath: () => void
  readonly #onFailed: () => void
  #child: ChildProcess | null = null
  #dead = false
  #disposing = false
  #nextId = 1
  readonly #relays = new Map<number, SpliceRelay>()

  /**
   * onDeath: the relay process exited, or could not start (its tunnels end with it); onFailed:
   * it could not make a child for a tunnel (that tunnel was closed).
   */
  constructor(opts: { binary: string; onDeath: () => void; onFailed: () => void }) {
    this.#binary = opts.binary
    this.#onDeath = opts.onDeath
    this.#onFailed = opts.onFailed
  }

  #host(): ChildProcess | null {
    if (this.#dead) return null
    if (this.#child) return this.#child
    let child: ChildProcess
    try {
      child = spawn(this.#binary, [], {
        cwd: '/',
        env: {},
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        serialization: 'json',
      })
    } catch {
      this.#die()
      return null
    }
    child.on('error', () => {
      this.#die()
    })
    // A program that could not be started has no pid (the error event follows).
    if (child.pid === undefined) {
      if (child.connected) child.disconnect()
      this.#die()
      return null
    }
    child.on('message', (raw: unknown) => {
      if (!Value.Check(HostMessageSchema, raw)) return
      const relay = this.#relays.get(raw.id)
      if (!relay) return
      if (raw.type === 'started') {
        relay.started(raw.pid)
        return
      }
      if (raw.type === 'failed') {
        this.#onFailed()
        return
      }
      this.#relays.delete(raw.id)
      relay.ended(parseStatus(raw.status, raw.signal ?? null))
    })
    child.once('exit', () => {
      this.#child = null
      this.#die()
    })
    this.#child = child
    return child
  }

  #die(): void {
    if (this.#dead) return
    this.#dead = true
    for (const [id, relay] of this.#relays) {
      this.#relays.delete(id)
      relay.ended({ up: 0, down: 0, end: 'crash', errno: 0, signal: null })
    }
    if (!this.#disposing) this.#onDeath()
  }

  /** The relay process's id while it runs, for tests. */
  get pid(): number | undefined {
    return this.#child?.pid
  }

  /**
   * Gives a tunnel to a relay. The caller has stopped reading both sockets (no byte may be read
   * by the server after `preUp`/`preDown` were taken) and flushed its writes. Returns null when
   * the relay process is gone (the sockets are then still the caller's). Otherwise the caller
   * must not use the sockets again: they are destroyed here once sent.
   */
  handOff(start: RelayStart): SpliceRelay | null {
    const child = this.#host()
    if (!child?.connected) return null
    const id = this.#nextId++
    const relay = new SpliceRelay(() => {
      if (this.#relays.has(id) && child.connected) child.send({ type: 'stop', id })
    })
    this.#relays.set(id, relay)
    child.send({
      type: 'start',
      id,
      preUp: start.preUp.toString('base64'),
      preDown: start.preDown.toString('base64'),
      idleMs: start.idleMs,
    })
    // A handle goes out when the relay acknowledged the one before; the socket objects here are
    // destroyed only then (destroying one earlier would close the descriptor being sent). A
    // handle that could not be sent ends the tunnel (the relay never gets both sockets).
    let left = 2
    const handed = (err: Error | null): void => {
      if (err) {
        start.client.destroy()
        start.target.destroy()
        if (this.#relays.delete(id))
          relay.ended({ up: 0, down: 0, end: 'crash', errno: 0, signal: null })
      }
      if (--left === 0) {
        start.client.destroy()
        start.target.destroy()
      }
    }
    child.send({ type: 'client', id }, start.client, { keepOpen: false }, handed)
    child.send({ type: 'target', id }, start.target, { keepOpen: false }, handed)
    return relay
  }

  /** Relays running now. */
  get size(): number {
    return this.#relays.size
  }

  /** Stops every relay, waits for their ends, then ends the relay process. */
  async dispose(): Promise<void> {
    this.#disposing = true
    const relays = [...this.#relays.values()]
    for (const r of relays) r.stop()
    await Promise.all(relays.map((r) => r.done))
    const child = this.#child
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => {
        child.once('exit', () => {
          resolve()
        })
      })
      child.disconnect()
      await exited
    }
  }
}

export interface RelayStart {
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

function parseStatus(v: unknown, signal: string | null): RelayEnd {
  if (Value.Check(RelayStatusSchema, v)) return v
  return { up: 0, down: 0, end: 'crash', errno: 0, signal }
}
