// Network egress of sessions (issue 12): a session has no network interface; its one way out is
// the clincus proxy (proxy.ts), reached through an Incus `proxy` device that listens on
// 127.0.0.1:3128 inside the container and connects to the session's own unix socket on the host.
// That socket and device are the session's only ones (issue 16): the agent hook channel's
// connections arrive there too and are routed to it by their first byte (routeHooks), in every
// mode, `none` included. This module owns the per-session state (its policy, computed in
// session-policy.ts from the global config + profile, narrowed by the workspace's `[network]` as
// recorded at creation), the device and environment on the instance (built in container.ts), the
// hot reload, the audit and the `session.network` events. The session service calls it with a
// line per step.
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { SessionNetwork, SessionNetworkSummary } from '../../shared/schemas/network.ts'
import { isToolName, type ToolName } from '../../shared/tools.ts'
import type { ConfigStore } from '../config/store.ts'
import { BadRequestError } from '../errors.ts'
import type { EventHub } from '../events/hub.ts'
import type { IncusDriver } from '../incus/driver.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import { NetworkAudit } from './audit.ts'
import {
  afterStartArgv,
  devicePlan,
  proxyEnvironment,
  SESSION_DEVICE,
  sessionDevice,
} from './container.ts'
import { HostAddresses, listenerAddresses } from './host-addresses.ts'
import {
  parseEntries,
  parseEntry,
  PolicyEntryError,
  type NetworkMode,
  type Policy,
} from './policy.ts'
import type { OtherConnection } from './proxy-connections.ts'
import { EgressProxy, type ProxyLimits } from './proxy.ts'
import type { Resolver } from './proxy-lookup.ts'
import { prepareRuntimeDir } from './runtime-dir.ts'
import { readWorkspaceNetwork, recordedNetwork, sessionPolicy } from './session-policy.ts'

export {
  APT_PROXY_FILE,
  LEGACY_DEVICES,
  LO_UP_PERL,
  PROFILE_FILE,
  PROXY_LISTEN,
  PROXY_URL,
  SESSION_DEVICE,
} from './container.ts'
/** The workspace's `[network]` table as read at creation (JSON): it can only narrow. */
export const NETWORK_LABEL = 'user.clincus.network'
const TOOL_LABEL = 'user.clincus.tool'
const PROFILE_LABEL = 'user.clincus.profile'
/** `session.network` events per session and second at most (issue 12: one per refusal). */
const EVENTS_PER_SECOND = 20

export interface EgressOptions {
  /** Directory of the per-session sockets (main.ts: /run/clincus/egress or $XDG_RUNTIME_DIR). */
  runtimeDir: string
  /** Directory of the audit files (`<paths.sessions_dir>/network`, default ~/.clincus/sessions/network). */
  auditDir: string
  /** Name resolution (tests map names to 127.0.0.1). */
  resolver?: Resolver
  /** The host's HTTPS_PROXY: the upstream when `[network] upstream` is empty. */
  hostUpstream?: string
  /** Allow entries of the host's package registries (apt sources, npm registry). */
  registries?: readonly string[]
  /** The host's npm registry URL, given to the session's npm. */
  npmRegistry?: string
  limits?: Partial<ProxyLimits>
}

interface SessionState {
  id: string
  tool: ToolName
  profile: string | undefined
  wsNetwork: unknown
  mode: NetworkMode
  policy: Policy
  upstream: string | null
  allow: string[]
  lastRefusedAt: string | null
  seen: Set<string>
  /** Events published in the current one-second window. */
  events: { since: number; count: number }
  /** Serialises background device changes of this session. */
  chain: Promise<void>
}

export interface EgressDeps {
  driver: IncusDriver
  config: ConfigStore
  hub: EventHub
  log: Logger
  options: EgressOptions
}

export class EgressService {
  readonly #d: EgressDeps
  readonly #proxy: EgressProxy
  readonly #audit: NetworkAudit
  readonly #sessions = new Map<string, SessionState>()
  #own: Array<{ address: string; port: number }> = []
  readonly #hostAddrs: HostAddresses
  #unsubscribe: (() => void) | null = null
  #warned = new Set<string>()
  /** Names of the host's own registries (Policy.hostTrusted): fixed at startup. */
  readonly #hostTrusted: readonly string[]

  constructor(deps: EgressDeps) {
    this.#d = deps
    this.#hostTrusted = parseEntries(deps.options.registries ?? []).entries.flatMap((e) =>
      e.kind === 'name' ? [e.name] : [],
    )
    this.#hostAddrs = new HostAddresses(deps.log)
    this.#audit = new NetworkAudit({ dir: deps.options.auditDir, log: deps.log })
    this.#proxy = new EgressProxy({
      log: deps.log,
      resolver: deps.options.resolver,
      limits: deps.options.limits,
      hooks: {
        policy: (id) => {
          const s = this.#sessions.get(id)
          return s ? { ...s.policy, hostAddresses: this.#hostAddrs.get() } : null
        },
        upstream: (id) => this.#sessions.get(id)?.upstream ?? null,
        record: (id, r) => {
          const s = this.#sessions.get(id)
          // A deleted session's last connections closing: nothing to keep.
          if (!s) return
          this.#audit.record(id, r)
          if (!r.allowed) s.lastRefusedAt = r.time
          else if (s.seen.has(r.host)) return
          else if (s.seen.size < 10_000) s.seen.add(r.host)
          // A flood of refusals must not flood every dashboard: at most EVENTS_PER_SECOND per
          // session reach the event stream (the audit keeps them all).
          const now = Date.now()
          if (now - s.events.since >= 1000) s.events = { since: now, count: 0 }
          if (++s.events.count > EVENTS_PER_SECOND) return
          this.#d.hub.publish({
            type: 'session.network',
            id,
            host: r.host,
            port: r.port,
            allowed: r.allowed,
          })
        },
      },
    })
    this.#unsubscribe = deps.config.subscribe((change) => {
      if (change.type === 'reloaded') this.#reapply()
    })
  }

  /**
   * clincus's own listener: refused from every session, whatever `allow` says. A wildcard bind
   * adds every address of the host's interfaces.
   */
  setOwnListener(host: string, port: number): void {
    this.#own = listenerAddresses(host).map((address) => ({ address, port }))
    for (const s of this.#sessions.values()) s.policy = { ...s.policy, ownListeners: this.#own }
  }

  #socketPath(id: string): string {
    return join(this.#d.options.runtimeDir, `${id}.sock`)
  }

  /** Instance config for every session: the proxy environment (also in mode none: it fails fast). */
  environment(): Record<string, string> {
    return proxyEnvironment(this.#d.options.npmRegistry)
  }

  /** The session's one proxy device (for a new session: no listener on the old hook port). */
  device(id: string): Record<string, string> {
    return sessionDevice(this.#socketPath(id), false)
  }

  /**
   * Where the session's connections that start with `{` go (the agent hook channel): called
   * with the session, the socket (paused) and its first chunk. Without it they are closed.
   */
  routeHooks(route: OtherConnection): void {
    this.#proxy.routeHooks(route)
  }

  /**
   * Before a session's container is made: reads the workspace's `[network]` (it may only
   * narrow), computes the session's policy and opens its socket. Returns the instance config to
   * set at creation (environment, the recorded workspace table).
   */
  async prepareCreate(
    id: string,
    workspace: string,
    profile: string | undefined,
    tool: ToolName,
  ): Promise<Record<string, string>> {
    const wsNetwork = await readWorkspaceNetwork(workspace)
    this.#install(id, { tool, profile, wsNetwork })
    await this.#open(id)
    return this.networkConfig(wsNetwork)
  }

  /** The instance config of a session whose workspace's `[network]` table is `wsNetwork`. */
  networkConfig(wsNetwork: unknown): Record<string, string> {
    return {
      ...this.environment(),
      ...(wsNetwork !== null ? { [NETWORK_LABEL]: JSON.stringify(wsNetwork) } : {}),
    }
  }

  /**
   * Adds the session's one proxy device, in every mode: in `none` it carries the hook channel
   * only, and the proxy refuses every request (403).
   */
  async addDevice(id: string, signal?: AbortSignal): Promise<void> {
    await this.#d.driver.deviceAdd(id, SESSION_DEVICE, this.device(id), signal ? { signal } : {})
  }

  /**
   * An existing session (startup, resume): its state from the instance's labels, its socket, and
   * for sessions made before issues 12 and 16 the environment they lack and the one device in
   * place of their old ones (container.ts devicePlan). With `fix` (resume) the changes are made
   * before it returns; without (startup) in the background.
   */
  async attach(
    inst: IncusInstance,
    opts: { fix?: boolean; signal?: AbortSignal } = {},
  ): Promise<void> {
    const id = inst.name
    const toolLabel = inst.config[TOOL_LABEL] ?? 'claude'
    const tool: ToolName = isToolName(toolLabel) ? toolLabel : 'claude'
    const wsNetwork = recordedNetwork(inst.config[NETWORK_LABEL])
    this.#install(id, { tool, profile: inst.config[PROFILE_LABEL], wsNetwork })
    await this.#open(id)
    if (!opts.fix) {
      const plan = devicePlan(this.#socketPath(id), inst.devices)
      if (plan.add !== null || plan.remove.length > 0) this.#syncDevice(id)
      return
    }
    const signal = opts.signal ? { signal: opts.signal } : {}
    const env = this.environment()
    if (Object.entries(env).some(([k, v]) => inst.config[k] !== v))
      await this.#d.driver.configSet(id, env, signal)
    await this.#fixDevices(id, inst.devices, signal)
  }

  /** Makes the instance's devices what devicePlan says (removals first: they free the ports). */
  async #fixDevices(
    id: string,
    devices: IncusInstance['devices'],
    opts: { signal?: AbortSignal; timeoutMs?: number },
  ): Promise<void> {
    const plan = devicePlan(this.#socketPath(id), devices)
    for (const name of plan.remove) await this.#d.driver.deviceRemove(id, name, opts)
    if (plan.add) await this.#d.driver.deviceAdd(id, SESSION_DEVICE, plan.add, opts)
  }

  /**
   * After every start, as container root, in one exec: `lo` up (old images have no `ip`, see
   * LO_UP_PERL), apt's proxy setting, and the variables for login shells that reset the
   * environment (`su -l` sources /etc/profile, and so /etc/profile.d). A failure is logged: a
   * non-Debian image still runs, without them.
   */
  async afterStart(id: string, signal?: AbortSignal): Promise<void> {
    const res = await this.#d.driver.exec(id, afterStartArgv(this.environment()), {
      timeoutMs: 10_000,
      ...(signal ? { signal } : {}),
    })
    if (res.exitCode !== 0)
      this.#d.log.warn(
        { session: id, stderr: res.stderr.trim() },
        'could not bring lo up or set the proxy files',
      )
  }

  /** A deleted session: socket closed, state and audit removed. */
  async forget(id: string): Promise<void> {
    this.#sessions.delete(id)
    await this.#proxy.close(id)
    await this.#audit.forget(id)
  }

  /** Loads the audit of the sessions that exist (and drops files of ones that do not). */
  async loadAudit(ids: readonly string[]): Promise<void> {
    await this.#audit.load(ids)
  }

  summary(id: string): SessionNetworkSummary | undefined {
    const s = this.#sessions.get(id)
    return s ? { mode: s.mode, last_refused_at: s.lastRefusedAt } : undefined
  }

  /** GET /api/sessions/{id}/network (the caller checked that the session exists). */
  network(id: string, offset: number, limit: number): SessionNetwork {
    const s = this.#sessions.get(id)
    const { total, items } = this.#audit.page(id, offset, limit)
    return { mode: s?.mode ?? 'none', allow: s?.allow ?? [], total, connections: items }
  }

  /** POST /api/network/allow: adds an entry to the user's file (the reload applies it). */
  async allow(entry: string): Promise<string[]> {
    let text: string
    try {
      text = parseEntry(entry).text
    } catch (err) {
      if (err instanceof PolicyEntryError)
        throw new BadRequestError(err.message, 'invalid_network_entry')
      throw err
    }
    return this.#d.config.addNetworkAllow(text, (e) => parseEntry(e).text)
  }

  /** Closes every socket; the audit is flushed. */
  async dispose(): Promise<void> {
    this.#unsubscribe?.()
    this.#unsubscribe = null
    await this.#proxy.dispose()
    await this.#audit.flush()
  }

  async #open(id: string): Promise<void> {
    await prepareRuntimeDir(this.#d.options.runtimeDir)
    await this.#proxy.open(id, this.#socketPath(id))
  }

  #install(
    id: string,
    base: { tool: ToolName; profile: string | undefined; wsNetwork: unknown },
  ): SessionState {
    const prev = this.#sessions.get(id)
    const state: SessionState = {
      id,
      ...base,
      mode: 'none',
      policy: { mode: 'none', entries: [], ownListeners: this.#own },
      upstream: null,
      allow: [],
      lastRefusedAt: prev?.lastRefusedAt ?? null,
      seen: prev?.seen ?? new Set(),
      events: prev?.events ?? { since: 0, count: 0 },
      chain: prev?.chain ?? Promise.resolve(),
    }
    this.#compute(id, state)
    this.#sessions.set(id, state)
    return state
  }

  #compute(id: string, s: SessionState): void {
    const computed = sessionPolicy(this.#d.config, this.#d.log, id, s, {
      registries: this.#d.options.registries ?? [],
      hostTrusted: this.#hostTrusted,
      hostUpstream: this.#d.options.hostUpstream,
      ownListeners: this.#own,
    })
    for (const e of computed.invalid) {
      if (this.#warned.has(e.message)) continue
      this.#warned.add(e.message)
      this.#d.log.warn({ entry: e.entry }, `ignored: ${e.message}`)
    }
    s.mode = computed.mode
    s.allow = computed.allow
    s.policy = computed.policy
    s.upstream = computed.upstream
  }

  /** Hot reload: every session's policy recomputed; a change to none closes its connections. */
  #reapply(): void {
    for (const [id, s] of this.#sessions) {
      const before = s.mode
      this.#compute(id, s)
      // Open tunnels to what the new policy refuses are closed, not only new connections.
      this.#proxy.recheck(id)
      if (before === s.mode) continue
      this.#d.log.info({ session: id, from: before, to: s.mode }, 'network mode changed')
      // The device stays: it carries the hook channel too, and the policy now refuses.
      if (s.mode === 'none') this.#proxy.closeConnections(id)
    }
  }

  /** Startup: the instance's devices made right in the background (serialised per session). */
  #syncDevice(id: string): void {
    const s = this.#sessions.get(id)
    if (!s) return
    s.chain = s.chain
      .then(async () => {
        if (!this.#sessions.has(id)) return
        const inst = await this.#d.driver.getInstance(id, { timeoutMs: 10_000 })
        if (inst) await this.#fixDevices(id, inst.devices, { timeoutMs: 30_000 })
      })
      .catch((err: unknown) => {
        this.#d.log.warn({ err, session: id }, 'could not update the session device')
      })
  }

  /** Waits for pending device changes (tests, shutdown). */
  async settled(id: string): Promise<void> {
    await this.#sessions.get(id)?.chain
  }
}
