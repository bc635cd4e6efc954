// Network egress of sessions (issue 12): a session has no network interface; its one way out is
// the clincus proxy (proxy.ts), reached through an Incus `proxy` device that listens on
// 127.0.0.1:3128 inside the container and connects to the session's own unix socket on the host.
// This module owns the per-session policy (global config + profile, narrowed by the workspace's
// `[network]` as recorded at creation), the device and environment, the hot reload, the audit
// and the `session.network` events. The session service calls it with a line per step.
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { Value } from 'typebox/value'
import { NetworkSchema, type Config } from '../../shared/schemas/config.ts'
import type { SessionNetwork, SessionNetworkSummary } from '../../shared/schemas/network.ts'
import { isToolName, type ToolName } from '../../shared/tools.ts'
import { configForWorkspace, readWorkspaceLayer } from '../config/load.ts'
import { isPlainObject, own } from '../config/merge.ts'
import type { ConfigStore } from '../config/store.ts'
import { BadRequestError } from '../errors.ts'
import type { EventHub } from '../events/hub.ts'
import type { IncusDriver } from '../incus/driver.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import { NetworkAudit } from './audit.ts'
import { TOOL_DOMAINS } from './builtins.ts'
import { canonicalIp } from './address.ts'
import {
  parseEntries,
  parseEntry,
  PolicyEntryError,
  type NetworkMode,
  type Policy,
} from './policy.ts'
import { EgressProxy, type ProxyLimits } from './proxy.ts'
import type { Resolver } from './proxy-lookup.ts'
import { prepareRuntimeDir } from './runtime-dir.ts'

/** The proxy device's name and where it listens inside the container. */
export const EGRESS_DEVICE = 'clincus-egress'
export const PROXY_LISTEN = '127.0.0.1:3128'
export const PROXY_URL = `http://${PROXY_LISTEN}`
/** The workspace's `[network]` table as read at creation (JSON): it can only narrow. */
export const NETWORK_LABEL = 'user.clincus.network'
const TOOL_LABEL = 'user.clincus.tool'
const PROFILE_LABEL = 'user.clincus.profile'
export const APT_PROXY_FILE = '/etc/apt/apt.conf.d/90clincus-proxy'
export const PROFILE_FILE = '/etc/profile.d/clincus-proxy.sh'
/** `session.network` events per session and second at most (issue 12: one per refusal). */
const EVENTS_PER_SECOND = 20

/**
 * Brings `lo` up as container root with SIOCGIFFLAGS/SIOCSIFFLAGS. perl-base is Essential in
 * Debian, so this works in images made before `iproute2` was added (sessions created before
 * issue 12 get `lo` on their next start); the new images' init does the same with `ip`.
 */
export const LO_UP_PERL =
  'socket(my $s, 2, 2, 0) or die "socket: $!\\n"; my $r = pack("a16 s x22", "lo", 0);' +
  ' ioctl($s, 0x8913, $r) or die "SIOCGIFFLAGS: $!\\n"; my (undef, $f) = unpack("a16 s", $r);' +
  ' ioctl($s, 0x8914, pack("a16 s x22", "lo", $f | 1)) or die "SIOCSIFFLAGS: $!\\n"'

/** How long a read of the host's interface addresses is reused (they change with DHCP, VPNs). */
const HOST_ADDRESSES_TTL_MS = 5000

/** Canonical addresses of every interface (zone ids dropped): where the host's services answer. */
export function interfaceAddresses(
  ifaces: Readonly<Record<string, ReadonlyArray<{ address: string }> | undefined>>,
): string[] {
  const out = new Set<string>()
  for (const list of Object.values(ifaces))
    for (const a of list ?? []) {
      const c = canonicalIp(a.address.split('%')[0] ?? '')
      if (c !== null) out.add(c)
    }
  return [...out]
}

export interface EgressOptions {
  /** Directory of the per-session sockets (main.ts: /run/clincus/egress or $XDG_RUNTIME_DIR). */
  runtimeDir: string
  /** Directory of the audit files (~/.clincus/network). */
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
  /** Serialises device changes of this session. */
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
  #hostAddrs: { at: number; list: string[] } = { at: -Infinity, list: [] }
  #unsubscribe: (() => void) | null = null
  #warned = new Set<string>()
  /** Names of the host's own registries (Policy.hostTrusted): fixed at startup. */
  readonly #hostTrusted: readonly string[]

  constructor(deps: EgressDeps) {
    this.#d = deps
    this.#hostTrusted = parseEntries(deps.options.registries ?? []).entries.flatMap((e) =>
      e.kind === 'name' ? [e.name] : [],
    )
    this.#audit = new NetworkAudit({ dir: deps.options.auditDir, log: deps.log })
    this.#proxy = new EgressProxy({
      log: deps.log,
      resolver: deps.options.resolver,
      limits: deps.options.limits,
      hooks: {
        policy: (id) => {
          const s = this.#sessions.get(id)
          return s ? { ...s.policy, hostAddresses: this.#hostAddresses() } : null
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
    const addresses = new Set<string>()
    const bind = canonicalIp(host.replace(/^\[|\]$/g, '')) ?? '127.0.0.1'
    addresses.add(bind)
    if (bind === '0.0.0.0' || bind === '::')
      for (const a of interfaceAddresses(networkInterfaces())) addresses.add(a)
    this.#own = [...addresses].map((address) => ({ address, port }))
    for (const s of this.#sessions.values()) s.policy = { ...s.policy, ownListeners: this.#own }
  }

  /** The host's own addresses, read at most every HOST_ADDRESSES_TTL_MS (refused by the policy). */
  #hostAddresses(): string[] {
    const now = Date.now()
    if (now - this.#hostAddrs.at < HOST_ADDRESSES_TTL_MS) return this.#hostAddrs.list
    let list = this.#hostAddrs.list
    try {
      list = interfaceAddresses(networkInterfaces())
    } catch (err) {
      this.#d.log.warn({ err }, 'could not read the host interface addresses')
    }
    this.#hostAddrs = { at: now, list }
    return list
  }

  #socketPath(id: string): string {
    return join(this.#d.options.runtimeDir, `${id}.sock`)
  }

  /** Instance config for every session: the proxy environment (also in mode none: it fails fast). */
  environment(): Record<string, string> {
    const env: Record<string, string> = {
      HTTPS_PROXY: PROXY_URL,
      HTTP_PROXY: PROXY_URL,
      https_proxy: PROXY_URL,
      http_proxy: PROXY_URL,
      NO_PROXY: 'localhost,127.0.0.1,::1',
      no_proxy: 'localhost,127.0.0.1,::1',
      // Node >= 22.21 / 24: built-in fetch and http honour the variables only with this.
      NODE_USE_ENV_PROXY: '1',
      // Node carries its own CA list; with this it also trusts the system bundle, into which
      // the image build puts the host's extra CAs (a TLS-inspecting corporate proxy, a mirror).
      NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt',
    }
    if (this.#d.options.npmRegistry) env.npm_config_registry = this.#d.options.npmRegistry
    return Object.fromEntries(Object.entries(env).map(([k, v]) => [`environment.${k}`, v]))
  }

  /** The proxy device for a session. */
  device(id: string): Record<string, string> {
    return {
      type: 'proxy',
      listen: `tcp:${PROXY_LISTEN}`,
      connect: `unix:${this.#socketPath(id)}`,
      bind: 'instance',
    }
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
    const layer = await readWorkspaceLayer(join(workspace, '.clincus.toml')).catch(() => null)
    const wsNetwork = isPlainObject(layer) ? (own(layer, 'network') ?? null) : null
    this.#install(id, { tool, profile, wsNetwork })
    await this.#open(id)
    return {
      ...this.environment(),
      ...(wsNetwork !== null ? { [NETWORK_LABEL]: JSON.stringify(wsNetwork) } : {}),
    }
  }

  /** Adds the proxy device unless the session's mode is none. */
  async addDevice(id: string, signal?: AbortSignal): Promise<void> {
    const s = this.#sessions.get(id)
    if (!s || s.mode === 'none') return
    await this.#d.driver.deviceAdd(id, EGRESS_DEVICE, this.device(id), signal ? { signal } : {})
  }

  /**
   * An existing session (startup, resume): its state from the instance's labels, its socket, and
   * for sessions made before issue 12 the environment and device they lack.
   */
  async attach(
    inst: IncusInstance,
    opts: { fix?: boolean; signal?: AbortSignal } = {},
  ): Promise<void> {
    const id = inst.name
    const toolLabel = inst.config[TOOL_LABEL] ?? 'claude'
    const tool: ToolName = isToolName(toolLabel) ? toolLabel : 'claude'
    let wsNetwork: unknown = null
    const label = inst.config[NETWORK_LABEL]
    if (label) {
      try {
        wsNetwork = JSON.parse(label) as unknown
      } catch {
        wsNetwork = { mode: 'none' }
      }
    }
    const state = this.#install(id, { tool, profile: inst.config[PROFILE_LABEL], wsNetwork })
    await this.#open(id)
    if (!opts.fix) {
      if (this.#deviceWrong(state, inst.devices?.[EGRESS_DEVICE])) this.#syncDevice(id)
      return
    }
    const signal = opts.signal ? { signal: opts.signal } : {}
    const env = this.environment()
    if (Object.entries(env).some(([k, v]) => inst.config[k] !== v))
      await this.#d.driver.configSet(id, env, signal)
    const dev = inst.devices?.[EGRESS_DEVICE]
    if (dev !== undefined && this.#deviceWrong(state, dev))
      await this.#d.driver.deviceRemove(id, EGRESS_DEVICE, signal)
    if (state.mode !== 'none' && (dev === undefined || this.#deviceWrong(state, dev)))
      await this.addDevice(id, opts.signal)
  }

  /**
   * Whether the instance's device disagrees with the session: present in mode none, missing
   * otherwise, or connecting to another socket (the runtime directory moved, e.g. clincus ran
   * as root before and as a user now).
   */
  #deviceWrong(state: SessionState, dev: Record<string, string> | undefined): boolean {
    if (state.mode === 'none') return dev !== undefined
    return dev?.connect !== `unix:${this.#socketPath(state.id)}`
  }

  /**
   * After every start, as container root, in one exec: `lo` up (old images have no `ip`, see
   * LO_UP_PERL), apt's proxy setting, and the variables for login shells that reset the
   * environment (`su -l` sources /etc/profile, and so /etc/profile.d). A failure is logged: a
   * non-Debian image still runs, without them.
   */
  async afterStart(id: string, signal?: AbortSignal): Promise<void> {
    const apt = `Acquire::http::Proxy "${PROXY_URL}/";\nAcquire::https::Proxy "${PROXY_URL}/";\n`
    const profile = Object.entries(this.environment())
      .map(([k, v]) => `export ${k.slice('environment.'.length)}='${v}'\n`)
      .join('')
    const script =
      `${LO_UP_PERL}; for my $i (0, 2) { my ($path, $text) = @ARGV[$i, $i + 1];` +
      ` my ($dir) = $path =~ m{^(.*)/}; next unless -d $dir;` +
      ` open(my $f, ">", $path) or die "$path: $!\\n"; print $f $text; close($f) or die "$path: $!\\n" }`
    const res = await this.#d.driver.exec(
      id,
      ['perl', '-e', script, APT_PROXY_FILE, apt, PROFILE_FILE, profile],
      { timeoutMs: 10_000, ...(signal ? { signal } : {}) },
    )
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

  /** The effective network config of a session now. */
  #effective(id: string, s: SessionState): Config['network'] {
    const store = this.#d.config
    const layer = s.wsNetwork !== null ? { network: s.wsNetwork } : null
    try {
      const withProfile = (profile: string | undefined): Config | null =>
        configForWorkspace(store.loaded, `(session ${id})`, layer, store.home, store.locations, {
          profile,
        })
      return (
        (withProfile(s.profile) ?? withProfile(undefined))?.network ?? Value.Create(NetworkSchema)
      )
    } catch (err) {
      // The recorded table is ours (validated at creation); if it cannot be read, no network.
      this.#d.log.warn({ err, session: id }, 'network config of a session unreadable; mode none')
      return { ...Value.Create(NetworkSchema), mode: 'none' }
    }
  }

  #compute(id: string, s: SessionState): void {
    const net = this.#effective(id, s)
    const texts = [...TOOL_DOMAINS[s.tool], ...(this.#d.options.registries ?? []), ...net.allow]
    const { entries, invalid } = parseEntries(texts)
    for (const e of invalid) {
      if (this.#warned.has(e.message)) continue
      this.#warned.add(e.message)
      this.#d.log.warn({ entry: e.entry }, `ignored: ${e.message}`)
    }
    s.mode = net.mode
    s.allow = entries.map((e) => e.text)
    s.policy = {
      mode: net.mode,
      entries,
      ownListeners: this.#own,
      hostTrusted: this.#hostTrusted,
    }
    const upstream = net.upstream || this.#d.options.hostUpstream || ''
    s.upstream = upstream === '' ? null : upstream
  }

  /** Hot reload: every session's policy recomputed; the device follows a change to/from none. */
  #reapply(): void {
    for (const [id, s] of this.#sessions) {
      const before = s.mode
      this.#compute(id, s)
      // Open tunnels to what the new policy refuses are closed, not only new connections.
      this.#proxy.recheck(id)
      if (before === s.mode) continue
      this.#d.log.info({ session: id, from: before, to: s.mode }, 'network mode changed')
      if (s.mode === 'none') this.#proxy.closeConnections(id)
      if (before === 'none' || s.mode === 'none') this.#syncDevice(id)
    }
  }

  /** Adds or removes the device so that it matches the mode (serialised per session). */
  #syncDevice(id: string): void {
    const s = this.#sessions.get(id)
    if (!s) return
    s.chain = s.chain
      .then(async () => {
        const now = this.#sessions.get(id)
        if (!now) return
        const want = now.mode !== 'none'
        const inst = await this.#d.driver.getInstance(id, { timeoutMs: 10_000 })
        if (!inst) return
        const dev = inst.devices?.[EGRESS_DEVICE]
        if (dev !== undefined && this.#deviceWrong(now, dev))
          await this.#d.driver.deviceRemove(id, EGRESS_DEVICE, { timeoutMs: 30_000 })
        if (want && (dev === undefined || this.#deviceWrong(now, dev)))
          await this.#d.driver.deviceAdd(id, EGRESS_DEVICE, this.device(id), { timeoutMs: 30_000 })
      })
      .catch((err: unknown) => {
        this.#d.log.warn({ err, session: id }, 'could not update the egress device')
      })
  }

  /** Waits for pending device changes (tests, shutdown). */
  async settled(id: string): Promise<void> {
    await this.#sessions.get(id)?.chain
  }
}
