// A session's network policy from its inputs: the global config and its profile, narrowed by the
// workspace's `[network]` table as recorded at creation (it can only narrow: config/load.ts
// applies that rule), plus the tool's built-in domains (builtins.ts) and the host's registries.
// Pure but for reading the loaded config; an unreadable recorded table means mode none (logged),
// never an error. Invalid allow entries are returned for the caller to log (once each).
import { join } from 'node:path'
import type { Logger } from 'pino'
import { Value } from 'typebox/value'
import { NetworkSchema, type Config } from '../../shared/schemas/config.ts'
import type { ToolName } from '../../shared/tools.ts'
import { configForWorkspace, readWorkspaceLayer } from '../config/load.ts'
import { isPlainObject, own } from '../config/merge.ts'
import type { ConfigStore } from '../config/store.ts'
import { TOOL_DOMAINS } from './builtins.ts'
import { parseEntries, type NetworkMode, type Policy, type PolicyEntryError } from './policy.ts'

/** What a session's policy is computed from. */
export interface SessionNetworkInput {
  tool: ToolName
  /** The profile recorded at creation; an unknown one falls back to none. */
  profile: string | undefined
  /** The workspace's `[network]` table as recorded (JSON-parsed), or null. */
  wsNetwork: unknown
}

export interface SessionPolicy {
  mode: NetworkMode
  /** The allow entries in effect, canonical text (tool, registries, then config). */
  allow: string[]
  policy: Policy
  /** The upstream proxy URL, or null to connect directly. */
  upstream: string | null
  invalid: PolicyEntryError[]
}

/** The effective `[network]` config of session `id` now. */
function effectiveNetwork(
  store: ConfigStore,
  log: Logger,
  id: string,
  s: SessionNetworkInput,
): Config['network'] {
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
    log.warn({ err, session: id }, 'network config of a session unreadable; mode none')
    return { ...Value.Create(NetworkSchema), mode: 'none' }
  }
}

/**
 * The policy of session `id`. `host`: the host's registries (allow entries and the names
 * trusted on private addresses), its own HTTPS_PROXY (the upstream when `[network] upstream` is
 * empty) and clincus's own listeners (always refused).
 */
export function sessionPolicy(
  store: ConfigStore,
  log: Logger,
  id: string,
  s: SessionNetworkInput,
  host: {
    registries: readonly string[]
    hostTrusted: readonly string[]
    hostUpstream: string | undefined
    ownListeners: Policy['ownListeners']
  },
): SessionPolicy {
  const net = effectiveNetwork(store, log, id, s)
  const texts = [...TOOL_DOMAINS[s.tool], ...host.registries, ...net.allow]
  const { entries, invalid } = parseEntries(texts)
  const upstream = net.upstream || host.hostUpstream || ''
  return {
    mode: net.mode,
    allow: entries.map((e) => e.text),
    policy: {
      mode: net.mode,
      entries,
      ownListeners: host.ownListeners,
      hostTrusted: host.hostTrusted,
    },
    upstream: upstream === '' ? null : upstream,
    invalid,
  }
}

/**
 * The workspace's `[network]` table as recorded at creation (NETWORK_LABEL, JSON), or null when
 * there is none. A label that does not parse (hand-edited) is read as `{mode: "none"}`.
 */
export function recordedNetwork(label: string | undefined): unknown {
  if (!label) return null
  try {
    return JSON.parse(label) as unknown
  } catch {
    return { mode: 'none' }
  }
}

/**
 * The workspace's `[network]` table as its `.clincus.toml` says now (what a session created now
 * records), or null when it has none or the file cannot be read.
 */
export async function readWorkspaceNetwork(workspace: string): Promise<unknown> {
  const layer = await readWorkspaceLayer(join(workspace, '.clincus.toml')).catch(() => null)
  return isPlainObject(layer) ? (own(layer, 'network') ?? null) : null
}
