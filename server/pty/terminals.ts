import type { Logger } from 'pino'
import { Value } from 'typebox/value'
import type { WebSocket } from '@fastify/websocket'
import {
  CloseCode,
  TERMINAL_SIZE,
  TERMINAL_SUBPROTOCOL,
  TerminalQuerySchema,
} from '../../shared/ws/terminal.ts'
import type { ConfigStore } from '../config/store.ts'
import { keepAlive } from '../events/ws-keepalive.ts'
import type { IncusDriver } from '../incus/driver.ts'
import { terminalCommand, type TerminalKind } from '../sessions/commands.ts'
import { isSessionName } from '../sessions/naming.ts'
import type { SessionReconciler } from '../sessions/reconciler.ts'
import { TerminalBridge, type BridgeOptions } from './bridge.ts'
import type { PtyProcess, PtySpawner } from './spawner.ts'

export type { TerminalKind }

/** How long opening a terminal's exec may take (ms). */
const OPEN_TIMEOUT_MS = 10_000

/** Terminals one session may have open at once when the config does not say. */
export const MAX_TERMINALS_PER_SESSION = 16

export interface TerminalManagerDeps {
  spawner: PtySpawner
  driver: IncusDriver
  /** Sessions are looked up through it: a fresh read, applied by the reconciler. */
  registry: Pick<SessionReconciler, 'prefix' | 'fetch'>
  config: ConfigStore
  log: Logger
  /** The cap, or how to read it (from the config, at each connection). */
  maxPerSession?: number | (() => number)
  pingIntervalMs?: number
  bridge?: Omit<BridgeOptions, 'protocol' | 'log' | 'onDelivered'>
}

export interface OpenRequest {
  id: string
  kind: TerminalKind
  /** The parsed query string, still unchecked. */
  query: unknown
}

/** The argv (after the incus binary) of a terminal's process inside the container. */
export function terminalArgv(
  driver: IncusDriver,
  id: string,
  kind: TerminalKind,
  user: { uid: number; name: string },
): string[] {
  const cmd = terminalCommand(id, kind, user)
  return driver.execArgv(id, cmd.argv, { ...cmd.opts, tty: true })
}

/**
 * Owns every terminal: one PTY (an exec of `tmux attach` or a shell in the container) per
 * WebSocket.
 *
 * Why a PTY per viewer rather than one PTY fanned out to many sockets: tmux already is the
 * multiplexer. Each attach is its own tmux client, so a late or reconnecting viewer gets the
 * current screen from tmux's redraw (a fan-out would need a server-side terminal emulator to
 * replay the screen), and each client has its own flow control: a stalled viewer pauses only its
 * own PTY while tmux keeps serving the others, where a shared PTY would either stall everyone or
 * buffer without bound for the slowest. The cost is one exec (a tmux client or a shell in the
 * container, and two connections to the Incus daemon) per viewer, capped per session.
 */
export class TerminalManager {
  readonly #d: TerminalManagerDeps
  readonly #max: () => number
  /** Every bridge until it is done; the session id once it passed the checks (for the cap). */
  readonly #bridges = new Map<TerminalBridge, string | null>()
  /** Opens under way (an exec being started), which closeAll waits for. */
  readonly #opening = new Set<Promise<void>>()
  #closing = false

  constructor(deps: TerminalManagerDeps) {
    this.#d = deps
    const max = deps.maxPerSession ?? MAX_TERMINALS_PER_SESSION
    this.#max = typeof max === 'number' ? () => max : max
  }

  /** Open terminals (of one session, or all). */
  count(id?: string): number {
    let n = 0
    for (const owner of this.#bridges.values()) if (owner !== null && (!id || owner === id)) n++
    return n
  }

  /** Terminals whose socket is not read because their PTY is not taking input. */
  inputPaused(): number {
    let n = 0
    for (const b of this.#bridges.keys()) if (b.inputPaused) n++
    return n
  }

  /** Terminals whose PTY is paused for flow control (the client is behind on output). */
  outputPaused(): number {
    let n = 0
    for (const b of this.#bridges.keys()) if (b.paused) n++
    return n
  }

  /** PIDs of the live PTY processes (tests check none survives close). */
  pids(): number[] {
    const out: number[] = []
    for (const b of this.#bridges.keys()) if (b.pid !== undefined) out.push(b.pid)
    return out
  }

  /** Takes a new socket. Synchronous up to the point where the bridge listens for frames. */
  open(ws: WebSocket, req: OpenRequest): void {
    const protocol = ws.protocol === TERMINAL_SUBPROTOCOL ? 'v1' : 'raw'
    const log = this.#d.log.child({ session: req.id, kind: req.kind, protocol })
    const alive = keepAlive(ws, this.#d.pingIntervalMs)
    const bridge = new TerminalBridge(ws, {
      ...this.#d.bridge,
      protocol,
      log,
      onDelivered: alive.touch,
    })
    this.#bridges.set(bridge, null)
    void bridge.done.then(() => this.#bridges.delete(bridge))
    if (this.#closing) {
      bridge.reject(CloseCode.GOING_AWAY, 'server shutting down')
      return
    }
    const opening = this.#start(bridge, req, log).catch((err: unknown) => {
      log.error({ err }, 'terminal failed to start')
      bridge.reject(CloseCode.INTERNAL, 'terminal failed to start')
    })
    this.#opening.add(opening)
    void opening.finally(() => this.#opening.delete(opening))
  }

  async #start(bridge: TerminalBridge, req: OpenRequest, log: Logger): Promise<void> {
    const d = this.#d
    const query = Value.Convert(TerminalQuerySchema, req.query)
    if (!Value.Check(TerminalQuerySchema, query)) {
      bridge.reject(
        CloseCode.BAD_REQUEST,
        `cols and rows must be integers from ${TERMINAL_SIZE.MIN} to ${TERMINAL_SIZE.MAX}`,
      )
      return
    }
    // Anything that is not one of our names never reaches incus.
    if (!isSessionName(d.registry.prefix, req.id)) {
      bridge.reject(CloseCode.NOT_FOUND, 'session not found')
      return
    }
    let found
    try {
      found = await d.registry.fetch(req.id)
    } catch (err) {
      log.warn({ err }, 'session lookup failed')
      bridge.reject(CloseCode.INTERNAL, 'incus is unavailable; try again')
      return
    }
    if (bridge.closed) {
      bridge.reject(CloseCode.NORMAL, 'client left')
      return
    }
    if (!found) {
      bridge.reject(CloseCode.NOT_FOUND, 'session not found')
      return
    }
    if (found.session.status !== 'running') {
      bridge.reject(CloseCode.NOT_RUNNING, `session is ${found.session.status}, not running`)
      return
    }
    if (this.#closing) {
      bridge.reject(CloseCode.GOING_AWAY, 'server shutting down')
      return
    }
    const max = this.#max()
    if (this.count(req.id) >= max) {
      bridge.reject(
        CloseCode.TOO_MANY,
        `this session already has ${max} terminals open; close one first`,
      )
      return
    }
    const incus = d.config.current.incus
    const user = { uid: incus.code_uid, name: incus.code_user }
    const size = {
      cols: query.cols ?? TERMINAL_SIZE.DEFAULT_COLS,
      rows: query.rows ?? TERMINAL_SIZE.DEFAULT_ROWS,
    }
    // Counted from here, so terminals opening at once cannot pass the cap together.
    this.#bridges.set(bridge, req.id)
    const pty = await this.#open(req.id, req.kind, user, size)
    log.info(
      { pid: pty.pid, via: pty.pid === undefined ? 'incus-websocket' : 'pty' },
      'terminal opened',
    )
    // A client that left meanwhile (or closeAll) closed the socket: attach then ends the PTY.
    bridge.attach(pty)
  }

  /**
   * The terminal's process: an exec the Incus daemon runs in a PTY of its own, streamed over its
   * WebSockets (no host process, issue 14), or where the driver cannot, `incus exec` in a host PTY.
   */
  async #open(
    id: string,
    kind: TerminalKind,
    user: { uid: number; name: string },
    size: { cols: number; rows: number },
  ): Promise<PtyProcess> {
    const d = this.#d
    const cmd = terminalCommand(id, kind, user)
    const direct = await d.driver.openTerminal?.(id, cmd.argv, {
      ...cmd.opts,
      ...size,
      timeoutMs: OPEN_TIMEOUT_MS,
    })
    if (direct) return direct
    return d.spawner.spawn(d.driver.binary, terminalArgv(d.driver, id, kind, user), {
      ...size,
      name: 'xterm-256color',
    })
  }

  /** Closes every terminal (1001 to the client) and waits until no PTY process is left. */
  async closeAll(): Promise<void> {
    this.#closing = true
    await Promise.all(
      [...this.#bridges.keys()].map((b) => b.close(CloseCode.GOING_AWAY, 'server shutting down')),
    )
    // An open still under way attaches its PTY to a closed socket, which ends it: wait for that.
    await Promise.all(this.#opening)
    await Promise.all([...this.#bridges.keys()].map((b) => b.done))
  }
}
