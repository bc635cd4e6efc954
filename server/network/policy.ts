// The egress policy of one session, as pure functions: parse allow entries, decide on a name
// before anything is resolved, check every resolved address after. The proxy (proxy.ts) calls
// these; nothing here does I/O. Rules (issue 12): names are lower-cased, IDNA-encoded and lose
// one trailing dot; `*.x` matches sub-domains of x, not x; a bare entry allows CONNECT to 443
// and plain HTTP to 80, `host:port` that port for both; IP literals only by exact `ip:port`;
// special addresses (address.ts) only by exact `ip:port`, except for what the host's own package
// registries resolve to; clincus's own listener never.
import { isIP } from 'node:net'
import { domainToASCII } from 'node:url'
import { canonicalIp, embeddedIpv4, isLocalHostAddress, isSpecialAddress } from './address.ts'

export type NetworkMode = 'allowlist' | 'open' | 'none'

/** One parsed `[network] allow` entry. `port: null` is a bare entry (443 CONNECT, 80 HTTP). */
export type AllowEntry =
  | { kind: 'name'; name: string; port: number | null; text: string }
  | { kind: 'wildcard'; suffix: string; port: number | null; text: string }
  | { kind: 'ip'; address: string; port: number; text: string }

export class PolicyEntryError extends Error {
  readonly entry: string
  constructor(entry: string, reason: string) {
    super(`invalid network entry ${JSON.stringify(entry.slice(0, 300))}: ${reason}`)
    this.name = 'PolicyEntryError'
    this.entry = entry
  }
}

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/
const MAX_ENTRY = 300

/**
 * A host name as the policy compares it: lower case, IDNA (punycode), one trailing dot dropped;
 * null when it is not a usable DNS name (empty labels, bad characters, too long, an IP).
 */
export function normalizeName(raw: string): string | null {
  if (raw.length === 0 || raw.length > 260) return null
  let name = raw.endsWith('.') ? raw.slice(0, -1) : raw
  if (name.length === 0 || name.endsWith('.')) return null
  if (isIP(name) !== 0) return null
  name = domainToASCII(name.toLowerCase())
  if (name === '' || name.length > 253) return null
  const labels = name.split('.')
  if (!labels.every((l) => LABEL.test(l))) return null
  // All-numeric last label: an IPv4 in a form isIP does not know (0x7f.1, 2130706433).
  if (/^[0-9]+$/.test(labels.at(-1) ?? '') || /^0x[0-9a-f]*$/.test(labels.at(-1) ?? '')) return null
  return name
}

function parsePort(text: string, entry: string): number {
  if (!/^[0-9]{1,5}$/.test(text)) throw new PolicyEntryError(entry, 'the port must be 1-65535')
  const port = Number(text)
  if (port < 1 || port > 65535) throw new PolicyEntryError(entry, 'the port must be 1-65535')
  return port
}

/**
 * Parses one allow entry: `example.com`, `*.example.com`, `host:port`, `ip:port`,
 * `[v6]:port`. Throws PolicyEntryError (the API answers 400 `invalid_network_entry`).
 */
export function parseEntry(entry: string): AllowEntry {
  const text = entry.trim()
  if (text.length === 0 || text.length > MAX_ENTRY)
    throw new PolicyEntryError(entry, `expected 1-${MAX_ENTRY} characters`)
  if (/[\s/@?#\\]/.test(text))
    throw new PolicyEntryError(entry, 'expected a host name, not a URL (no scheme, path or user)')
  if (text.startsWith('[')) {
    const m = /^\[([^\]]+)\]:(.+)$/.exec(text)
    const address = m ? canonicalIp(m[1] ?? '') : null
    if (!m || address === null || isIP(address) !== 6)
      throw new PolicyEntryError(
        entry,
        'expected an IPv6 address with a port, like "[2001:db8::1]:443"',
      )
    const port = parsePort(m[2] ?? '', entry)
    return { kind: 'ip', address, port, text: `[${address}]:${port}` }
  }
  if (isIP(text) === 6)
    throw new PolicyEntryError(
      entry,
      'IPv6 addresses are written with brackets and a port: "[::1]:8080"',
    )
  const colon = text.lastIndexOf(':')
  const host = colon >= 0 ? text.slice(0, colon) : text
  const port = colon >= 0 ? parsePort(text.slice(colon + 1), entry) : null
  if (isIP(host) === 4) {
    if (port === null)
      throw new PolicyEntryError(
        entry,
        'an IP address is allowed only with its port: "10.0.0.5:8080"',
      )
    const address = canonicalIp(host) ?? host
    return { kind: 'ip', address, port, text: `${address}:${port}` }
  }
  const suffix = port === null ? '' : `:${port}`
  if (host.startsWith('*.')) {
    const name = normalizeName(host.slice(2))
    if (name === null || !name.includes('.'))
      throw new PolicyEntryError(
        entry,
        'a wildcard needs a domain with a dot after "*.", like "*.example.com"',
      )
    return { kind: 'wildcard', suffix: name, port, text: `*.${name}${suffix}` }
  }
  if (host.includes('*'))
    throw new PolicyEntryError(entry, 'a "*" is allowed only as the first label: "*.example.com"')
  const name = normalizeName(host)
  if (name === null) throw new PolicyEntryError(entry, 'not a valid host name')
  return { kind: 'name', name, port, text: `${name}${suffix}` }
}

/** Parses a list, dropping duplicates (by their normalized text); bad entries are returned apart. */
export function parseEntries(entries: readonly string[]): {
  entries: AllowEntry[]
  invalid: PolicyEntryError[]
} {
  const out: AllowEntry[] = []
  const invalid: PolicyEntryError[] = []
  const seen = new Set<string>()
  for (const raw of entries) {
    try {
      const e = parseEntry(raw)
      if (seen.has(e.text)) continue
      seen.add(e.text)
      out.push(e)
    } catch (err) {
      if (err instanceof PolicyEntryError) invalid.push(err)
      else throw err
    }
  }
  return { entries: out, invalid }
}

/** What a request asks for, as the proxy saw it. */
export interface Target {
  /** The host of the CONNECT authority or of the absolute URI, brackets removed. */
  host: string
  port: number
  /** CONNECT (a tunnel) or a plain-HTTP absolute-URI request. */
  method: 'connect' | 'http'
}

export interface Policy {
  mode: NetworkMode
  entries: readonly AllowEntry[]
  /** Addresses (canonical) and ports of clincus's own listeners: refused always. */
  ownListeners: readonly { address: string; port: number }[]
  /**
   * Normalized names of the package registries the host itself uses (its apt sources and npm
   * registry). Their addresses are the host's own business: a corporate or local mirror on a
   * private, loopback or host address is reached like a public one (never the dashboard). Neither
   * the agent nor a workspace can add to this list.
   */
  hostTrusted?: readonly string[]
  /**
   * Every address of the host's own interfaces (canonical): refused like loopback unless the
   * exact `ip:port` is listed, since the host's services answer on them (a firewall that keeps
   * the internet out does not keep the host itself out). Empty or absent when unknown.
   */
  hostAddresses?: readonly string[]
}

export type Decision =
  /** A name to resolve; the addresses then go through checkAddresses. */
  | { kind: 'resolve'; name: string; port: number }
  /** An IP literal already checked: connect to it. */
  | { kind: 'connect'; address: string; port: number }
  | { kind: 'refuse'; status: 400 | 403; reason: string; host: string }

function portMatches(entryPort: number | null, target: Target): boolean {
  if (entryPort !== null) return entryPort === target.port
  return target.method === 'connect' ? target.port === 443 : target.port === 80
}

function nameMatches(entry: AllowEntry, name: string, target: Target): boolean {
  if (!portMatches(entry.kind === 'ip' ? entry.port : entry.port, target)) return false
  if (entry.kind === 'name') return entry.name === name
  if (entry.kind === 'wildcard') return name.endsWith(`.${entry.suffix}`)
  return false
}

function ipListed(policy: Policy, address: string, port: number): boolean {
  return policy.entries.some((e) => e.kind === 'ip' && e.address === address && e.port === port)
}

/** Whether `address:port` is clincus's own listener (its bind address, or any local one). */
export function isOwnListener(policy: Policy, address: string, port: number): boolean {
  return policy.ownListeners.some(
    (l) => l.port === port && (l.address === address || isLocalHostAddress(address)),
  )
}

/** Whether a canonical address (or the IPv4 address an IPv6 form carries) is one of the host's. */
function isHostAddress(policy: Policy, canonical: string): boolean {
  const list = policy.hostAddresses ?? []
  if (list.length === 0) return false
  const v4 = isIP(canonical) === 6 ? embeddedIpv4(canonical) : null
  return list.includes(canonical) || (v4 !== null && list.includes(v4))
}

/**
 * Checks one address to connect to; null when allowed, else the reason. `trusted`: the address
 * is what one of the host's own registries resolved to (see Policy.hostTrusted).
 */
export function checkAddress(
  policy: Policy,
  address: string,
  port: number,
  trusted = false,
): string | null {
  const canonical = canonicalIp(address)
  if (canonical === null) return `"${address}" is not an IP address`
  if (isOwnListener(policy, canonical, port))
    return `${fmt(canonical, port)} is the clincus dashboard itself, never reachable from a session`
  if (trusted) return null
  if (isHostAddress(policy, canonical) && !ipListed(policy, canonical, port))
    return `${fmt(canonical, port)} is an address of this host, where its own services answer; list exactly "${fmt(canonical, port)}" in [network] allow to reach it`
  if (isSpecialAddress(canonical) && !ipListed(policy, canonical, port))
    return `${fmt(canonical, port)} is a loopback, private, link-local or otherwise special address; list exactly "${fmt(canonical, port)}" in [network] allow to reach it`
  return null
}

export function fmt(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`
}

/**
 * The decision before any DNS lookup. A name no entry matches (mode allowlist) is refused here,
 * so the lookup never tells anyone what the agent asked for.
 */
export function decide(policy: Policy, target: Target): Decision {
  const { port } = target
  const rawHost =
    target.host.startsWith('[') && target.host.endsWith(']')
      ? target.host.slice(1, -1)
      : target.host
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    return { kind: 'refuse', status: 400, reason: 'the port must be 1-65535', host: rawHost }
  if (policy.mode === 'none')
    return {
      kind: 'refuse',
      status: 403,
      reason: 'this session has no network ([network] mode = "none")',
      host: rawHost,
    }
  const literal = canonicalIp(rawHost)
  if (literal !== null) {
    const bad = checkAddress(policy, literal, port)
    if (bad) return { kind: 'refuse', status: 403, reason: bad, host: literal }
    if (policy.mode === 'allowlist' && !ipListed(policy, literal, port))
      return {
        kind: 'refuse',
        status: 403,
        reason: `${fmt(literal, port)} is not in this session's allowlist; IP addresses are allowed only as an exact "ip:port" entry`,
        host: literal,
      }
    return { kind: 'connect', address: literal, port }
  }
  const name = normalizeName(rawHost)
  if (name === null)
    return {
      kind: 'refuse',
      status: 400,
      reason: 'the target is not a valid host name',
      host: rawHost.slice(0, 255),
    }
  if (name === 'localhost' || name.endsWith('.localhost'))
    return {
      kind: 'refuse',
      status: 403,
      reason: `${name} is this container itself; use 127.0.0.1 inside the session`,
      host: name,
    }
  if (policy.mode === 'allowlist' && !policy.entries.some((e) => nameMatches(e, name, target)))
    return {
      kind: 'refuse',
      status: 403,
      reason: `${fmt(name, port)} is not in this session's network allowlist; add "${port === 443 || port === 80 ? name : `${name}:${port}`}" to [network] allow in your clincus config (or use Allow in the dashboard)`,
      host: name,
    }
  return { kind: 'resolve', name, port }
}

/**
 * Every address a name resolved to must pass: one bad address refuses the whole connection
 * (a name that resolves to both a public and a private address is a rebinding attempt).
 */
export function checkAddresses(
  policy: Policy,
  addresses: readonly string[],
  port: number,
  /** The normalized name that was resolved, when it was a name. */
  name?: string,
): string | null {
  if (addresses.length === 0) return 'the name did not resolve to any address'
  const trusted = name !== undefined && (policy.hostTrusted ?? []).includes(name)
  for (const a of addresses) {
    const bad = checkAddress(policy, a, port, trusted)
    if (bad) return bad
  }
  return null
}
