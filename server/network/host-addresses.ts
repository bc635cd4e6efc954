// The host's own addresses, which the egress policy refuses like loopback (services bound to
// 0.0.0.0 answer on them): every interface's address, canonical (policy's form, zone ids
// dropped), read from node:os and reused for a few seconds (they change with DHCP and VPNs).
// Also the addresses of clincus's own listener, refused from every session whatever `allow` says.
import { networkInterfaces } from 'node:os'
import type { Logger } from 'pino'
import { canonicalIp } from './address.ts'

/** How long a read of the host's interface addresses is reused (ms). */
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

/**
 * The addresses clincus's listener answers on, given its bind `host` (a name or an IP, IPv6 with
 * or without brackets; a name counts as 127.0.0.1): the bind itself, and for a wildcard bind
 * every address of the host's interfaces.
 */
export function listenerAddresses(host: string): string[] {
  const addresses = new Set<string>()
  const bind = canonicalIp(host.replace(/^\[|\]$/g, '')) ?? '127.0.0.1'
  addresses.add(bind)
  if (bind === '0.0.0.0' || bind === '::')
    for (const a of interfaceAddresses(networkInterfaces())) addresses.add(a)
  return [...addresses]
}

/** The host's addresses, read at most every HOST_ADDRESSES_TTL_MS; a failed read keeps the last. */
export class HostAddresses {
  readonly #log: Logger
  #cache: { at: number; list: string[] } = { at: -Infinity, list: [] }

  constructor(log: Logger) {
    this.#log = log
  }

  get(): string[] {
    const now = Date.now()
    if (now - this.#cache.at < HOST_ADDRESSES_TTL_MS) return this.#cache.list
    let list = this.#cache.list
    try {
      list = interfaceAddresses(networkInterfaces())
    } catch (err) {
      this.#log.warn({ err }, 'could not read the host interface addresses')
    }
    this.#cache = { at: now, list }
    return list
  }
}
