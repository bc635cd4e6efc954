// CONNECT tunnels the egress proxy carries itself (those that need no upstream proxy; the rest
// stay with proxy-chain): connect to the address the policy checked, answer the client, and hand
// both sockets to a RelayTunnel (relay-tunnel.ts), which moves a bulk transfer's bytes with the
// splice relay (relay.ts). This module owns the relay side: finding the relay program, the relay
// process, the tunnels it runs now, and falling back to the Node pipe for good (logged once) when
// the relay fails (it could not start, or it died).
//
// Answers: `200 Connection Established` once the target accepted; `502` with a text/plain reason
// (the errno code) when the connect failed and the client is still there.
import type net from 'node:net'
import { createConnection, type LookupFunction } from 'node:net'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { repoRoot } from '../paths.ts'
import { fmt } from './policy.ts'
import type { Tracked } from './proxy-accounting.ts'
import type { Holder, SessionListener } from './proxy-connections.ts'
import { findRelay, RELAY_BINARY, RelayHost, type SpliceRelay } from './relay.ts'
import { RelayTunnel } from './relay-tunnel.ts'

/** Where `scripts/ensure-deps.mjs` builds the splice relay. */
export const DEFAULT_RELAY_PATH = join(repoRoot, 'dist', 'native', RELAY_BINARY)

/** What the decision approved for one CONNECT request, for the code that carries it out. */
export interface Approved {
  /** The host and port the request now names (after pinTarget). */
  host: string
  port: number
  /** A lookup answering the checked addresses; null when an upstream proxy resolves. */
  lookup: LookupFunction | null
  tracked: Tracked
}

export class DirectTunnels {
  readonly #log: Logger
  readonly #limits: { relayAfterBytes: number; idleTimeoutMs: number }
  readonly #refuse: (client: net.Socket, status: number, body: string) => void
  /** The splice relay program, once looked up; null: tunnels stay in Node. */
  #relay: string | null = null
  /** The relay process (started at the first handoff); kept for dispose after a failure. */
  #host: RelayHost | null = null
  readonly #relayReady: Promise<void>
  readonly #relays = new Set<SpliceRelay>()
  #relayed = 0

  /**
   * `relay`: the splice relay program (DEFAULT_RELAY_PATH when undefined); null, or a path that
   * is not an executable file, keeps every tunnel's bytes in Node. `refuse` answers a client
   * with a status and a text body, then closes it (proxy-chain's sendSocketResponse).
   */
  constructor(opts: {
    log: Logger
    relay: string | null | undefined
    limits: { relayAfterBytes: number; idleTimeoutMs: number }
    refuse: (client: net.Socket, status: number, body: string) => void
  }) {
    this.#log = opts.log
    this.#limits = opts.limits
    this.#refuse = opts.refuse
    const wanted = opts.relay === undefined ? DEFAULT_RELAY_PATH : opts.relay
    this.#relayReady = (wanted === null ? Promise.resolve(null) : findRelay(wanted)).then(
      (found) => {
        this.#relay = found
        if (found) {
          this.#host = new RelayHost({
            binary: found,
            onDeath: () => {
              this.#relayFailed('the relay process exited or did not start')
            },
            onFailed: () => {
              this.#relayFailed('the relay could not fork a tunnel')
            },
          })
          this.#log.info({ relay: found }, 'egress tunnels: splice relay')
        } else if (wanted !== null)
          this.#log.info(
            { relay: wanted },
            'egress tunnels: node pipe (no splice relay program; `npm start` builds it with a C compiler)',
          )
      },
    )
  }

  /** The splice relay program tunnels are handed to, or null when they stay in Node. */
  async relayProgram(): Promise<string | null> {
    await this.#relayReady
    return this.#relay
  }

  /** How many tunnels were handed to the splice relay so far. */
  get relayedTunnels(): number {
    return this.#relayed
  }

  /** Relay processes running now (their pids), for tests. */
  relayPids(): number[] {
    return [...this.#relays].flatMap((r) => (r.pid === undefined ? [] : [r.pid]))
  }

  /** The relay process's id while it runs (the tunnels' parent), for tests. */
  relayHostPid(): number | undefined {
    return this.#host?.pid
  }

  /**
   * Resolves once every relay process has exited (each is asked to stop, and killed if it does
   * not within 2 s), so none outlives the proxy.
   */
  async dispose(): Promise<void> {
    await this.#relayReady
    const relays = [...this.#relays]
    for (const r of relays) r.stop()
    await Promise.all(relays.map((r) => r.done))
    await this.#host?.dispose()
  }

  /**
   * Carries an approved tunnel of `session` (whose listener is `entry`): connects to the checked
   * address (`approved.lookup` must be set), answers 200 (or 502 when the connect fails) and
   * gives both sockets to a RelayTunnel. `head`: bytes the client sent after its request.
   */
  carry(
    session: string,
    entry: SessionListener,
    approved: Approved & { lookup: LookupFunction },
    client: net.Socket,
    head: Buffer,
  ): void {
    const { host, port, tracked } = approved
    if (head.length > 0) client.unshift(head)
    const target = createConnection({
      host,
      port,
      lookup: approved.lookup,
      allowHalfOpen: true,
    })
    const gaveUp = (): void => {
      target.destroy()
    }
    client.once('close', gaveUp)
    const failed = (err: NodeJS.ErrnoException): void => {
      client.off('close', gaveUp)
      const code = err.code ?? 'error'
      if (!client.destroyed && client.writable)
        this.#refuse(
          client,
          502,
          `clincus egress proxy: could not connect to ${fmt(host, port)} (${code})\n`,
        )
      else client.destroy()
    }
    target.once('error', failed)
    target.once('connect', () => {
      target.off('error', failed)
      client.off('close', gaveUp)
      if (client.destroyed) {
        target.destroy()
        return
      }
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      new RelayTunnel(client, target, {
        relay: this.#relay === null ? null : this.#host,
        handOffAfter: this.#limits.relayAfterBytes,
        idleMs: this.#limits.idleTimeoutMs,
        onRelay: (relay, counters) => {
          this.#relayed++
          this.#relays.add(relay)
          const holder: Holder = {
            destroy: () => {
              relay.stop()
            },
          }
          entry.sockets.add(holder)
          tracked.handOff(relay, counters)
          void relay.done.then((e) => {
            this.#relays.delete(relay)
            entry.sockets.delete(holder)
            if (e.end === 'crash')
              this.#log.warn({ session, signal: e.signal }, 'egress: a splice relay died')
          })
        },
        onRelayFailed: () => {
          this.#relayFailed('the handoff failed')
        },
      })
    })
  }

  /** Tunnels stay in Node from now on (logged once). */
  #relayFailed(why: string): void {
    if (this.#relay === null) return
    this.#log.warn(
      { relay: this.#relay, why },
      'egress tunnels: the splice relay failed; tunnels stay in the node pipe',
    )
    this.#relay = null
  }
}
