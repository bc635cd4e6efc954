// Pure helpers of the session Network panel (issue 12): which allow entry a refused connection
// needs, and the connection log grouped into destinations (refused first, newest first).
import type { NetworkConnection, NetworkMode } from './schemas.ts'

/** Ports a bare name entry allows (CONNECT to 443, plain HTTP to 80): the policy's rule. */
const DEFAULT_PORTS: ReadonlySet<number> = new Set([80, 443])

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/
/** An IPv6 literal's characters (the server parsed it; this only keeps anything else out). */
const IPV6 = /^[0-9a-f:.]+$/
/** A plain DNS name in ASCII (IDNs arrive as xn-- labels): labels of letters, digits, - and _. */
const DNS_NAME =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/

/** The host without IPv6 brackets, lower-cased, with one trailing dot dropped. */
function bareHost(host: string): string {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  return (h.endsWith('.') ? h.slice(0, -1) : h).toLowerCase()
}

function isIpLiteral(host: string): boolean {
  return IPV4.test(host) || (host.includes(':') && IPV6.test(host))
}

/** `host:port` for display, IPv6 in brackets. */
export function formatTarget(host: string, port: number): string {
  const h = bareHost(host)
  return `${h.includes(':') ? `[${h}]` : h}:${String(port)}`
}

/**
 * The `[network] allow` entry that lets this destination through: the bare name for the default
 * ports (443/80), `host:port` for any other port, and always `ip:port` for an IP literal (the
 * policy allows addresses only by exact `ip:port`, IPv6 as `[v6]:port`).
 *
 * null when the host is not a plain DNS name or IP literal: the host comes from the agent, and a
 * crafted one (`*.com`, `a.com, b.com`, a quote) must never become a wider entry through a click.
 */
export function allowEntryFor(host: string, port: number): string | null {
  const h = bareHost(host)
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null
  if (isIpLiteral(h)) return formatTarget(h, port)
  if (!DNS_NAME.test(h) || /^[\d.]+$/.test(h)) return null
  return DEFAULT_PORTS.has(port) ? h : formatTarget(h, port)
}

/**
 * Where a destination stands:
 * - `allowed`: connections went through;
 * - `refused`: refused, and its entry is not allowed yet (the Allow button);
 * - `pending`: refused, its entry is now allowed (from here or in the config), no retry seen yet;
 * - `retried`: refused, and an allowed connection to it came later.
 */
export type DestinationStatus = 'allowed' | 'refused' | 'pending' | 'retried'

export interface Destination {
  /** Stable key: `allowed:<host>` or `refused:<entry>`. */
  key: string
  host: string
  /** The ports seen, ascending. */
  ports: number[]
  status: DestinationStatus
  count: number
  bytesUp: number
  bytesDown: number
  /** Newest connection's ISO time, and its epoch ms. */
  lastTime: string
  last: number
  /** Refused ones: the newest refusal's reason. */
  reason: string
  /** Refused ones: the allow entry that lets them through; null when none can (a crafted host). */
  entry: string | null
}

function time(iso: string): number {
  const t = Date.parse(iso)
  return Number.isNaN(t) ? 0 : t
}

/**
 * Groups connections into destinations: allowed ones by host, refused ones by the allow entry they
 * need (so one Allow button adds exactly one entry). Open refusals come first, then the others
 * (a retried refusal among them), each newest first. `allow` is the effective list, `pending` the entries this page has
 * just allowed; a refused destination whose entry is in either shows as pending, not refused.
 */
export function groupDestinations(
  connections: readonly NetworkConnection[],
  allow: readonly string[] = [],
  pending: readonly string[] = [],
): Destination[] {
  const groups = new Map<string, Destination>()
  // Newest allowed connection per host and per host:port, to tell a retried refusal.
  const allowedAt = new Map<string, number>()
  for (const c of connections) {
    const host = bareHost(c.host)
    const t = time(c.time)
    const entry = c.allowed ? null : allowEntryFor(host, c.port)
    if (c.allowed) {
      for (const k of [host, formatTarget(host, c.port)])
        allowedAt.set(k, Math.max(allowedAt.get(k) ?? 0, t))
    }
    const key = c.allowed
      ? `allowed:${host}`
      : `refused:${entry ?? `unallowable:${formatTarget(host, c.port)}`}`
    let g = groups.get(key)
    if (!g) {
      g = {
        key,
        host,
        ports: [],
        status: c.allowed ? 'allowed' : 'refused',
        count: 0,
        bytesUp: 0,
        bytesDown: 0,
        lastTime: c.time,
        last: t,
        reason: c.allowed ? '' : c.reason,
        entry,
      }
      groups.set(key, g)
    }
    g.count++
    g.bytesUp += c.bytes_up
    g.bytesDown += c.bytes_down
    if (!g.ports.includes(c.port)) g.ports.push(c.port)
    if (t > g.last) {
      g.last = t
      g.lastTime = c.time
      if (!c.allowed) g.reason = c.reason
    }
  }
  const allowed = new Set([...allow.map((e) => e.toLowerCase()), ...pending])
  const list = [...groups.values()]
  for (const g of list) {
    g.ports.sort((a, b) => a - b)
    if (g.status !== 'refused' || g.entry === null) continue
    const retriedKey = g.entry.includes(':') ? g.entry : g.host
    if ((allowedAt.get(retriedKey) ?? -1) > g.last) g.status = 'retried'
    else if (allowed.has(g.entry)) g.status = 'pending'
  }
  // Open refusals (refused, or allowed but not retried yet) first; a refusal that a later
  // connection got past ranks with the allowed ones.
  const rank = (g: Destination): number =>
    g.status === 'refused' || g.status === 'pending' ? 0 : 1
  return list.sort((a, b) => rank(a) - rank(b) || b.last - a.last)
}

/** "1.5 MiB": binary units, one decimal above 1 KiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 1024) return `${String(Math.max(0, Math.round(n || 0)))} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(1)} ${units[i] ?? 'TiB'}`
}

/** What a mode means, in one sentence for the panel. */
export const MODE_TEXT: Record<NetworkMode, string> = {
  allowlist:
    'Only the tool’s own domains, the host’s package registries and your allow entries are reachable.',
  open: 'Any public destination is reachable (private and loopback addresses stay refused); every connection is logged.',
  none: 'This session has no network: nothing inside it can connect out.',
}
