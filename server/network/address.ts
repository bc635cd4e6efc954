// Which IP addresses a session may never reach unless the user lists that exact `ip:port`:
// loopback, private, shared (CGNAT), link-local, multicast, unspecified, broadcast, reserved and
// documentation ranges, in IPv4 and IPv6, including IPv6 forms that carry an IPv4 address
// (IPv4-mapped, IPv4-compatible, NAT64, 6to4). Pure; unit-tested in policy.test.ts.
import { BlockList, isIP } from 'node:net'

/** Ranges from the IANA special-purpose registries (RFC 6890 and its updates). */
const V4_SPECIAL: ReadonlyArray<[string, number]> = [
  ['0.0.0.0', 8], // "this network", includes the unspecified address
  ['10.0.0.0', 8], // RFC 1918
  ['100.64.0.0', 10], // shared address space (CGNAT), RFC 6598
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, incl. cloud metadata 169.254.169.254
  ['172.16.0.0', 12], // RFC 1918
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // TEST-NET-1
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16], // RFC 1918
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // TEST-NET-2
  ['203.0.113.0', 24], // TEST-NET-3
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, incl. broadcast 255.255.255.255
]

const V6_SPECIAL: ReadonlyArray<[string, number]> = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['100::', 64], // discard-only
  ['64:ff9b:1::', 48], // local-use NAT64 (RFC 8215)
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
]

const v4List = new BlockList()
for (const [net, prefix] of V4_SPECIAL) v4List.addSubnet(net, prefix, 'ipv4')
const v6List = new BlockList()
for (const [net, prefix] of V6_SPECIAL) v6List.addSubnet(net, prefix, 'ipv6')

/** The 8 groups of an IPv6 address (any valid textual form); null when it is not one. */
export function ipv6Groups(text: string): number[] | null {
  if (isIP(text) !== 6 || text.includes('%')) return null
  let s = text.toLowerCase()
  // A trailing dotted IPv4 part becomes two groups.
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s)
  if (dotted) {
    const parts = (dotted[2] ?? '').split('.').map(Number)
    const [a = 0, b = 0, c = 0, d = 0] = parts
    s = `${dotted[1] ?? ''}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const halves = s.split('::')
  const head = halves[0] ? halves[0].split(':') : []
  const tail = halves.length > 1 && halves[1] ? halves[1].split(':') : []
  const missing = 8 - head.length - tail.length
  const groups = [...head, ...Array<string>(halves.length > 1 ? missing : 0).fill('0'), ...tail]
  if (groups.length !== 8) return null
  return groups.map((g) => Number.parseInt(g, 16))
}

/** Canonical text of an address (IPv6 compressed, lower case); null when `text` is no IP. */
export function canonicalIp(text: string): string | null {
  // A zone id (fe80::1%eth0) names an interface of the host: never a destination of ours.
  if (text.includes('%')) return null
  const family = isIP(text)
  if (family === 4) return text.split('.').map(Number).join('.')
  if (family !== 6) return null
  const groups = ipv6Groups(text)
  if (!groups) return null
  // RFC 5952: the longest run (>= 2) of zero groups becomes "::", the first one on a tie.
  let best = -1
  let bestLen = 0
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen && j - i >= 2) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (best < 0) return hex.join(':')
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`
}

function v4FromGroups(hi: number, lo: number): string {
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`
}

/**
 * The IPv4 address an IPv6 address stands for, when it is one of the forms that reach an IPv4
 * host: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and
 * 6to4 (2002:AABB:CCDD::).
 */
export function embeddedIpv4(v6: string): string | null {
  const g = ipv6Groups(v6)
  if (!g) return null
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0, g6 = 0, g7 = 0] = g
  const zeroTo = (n: number): boolean => g.slice(0, n).every((x) => x === 0)
  if (zeroTo(5) && g5 === 0xffff) return v4FromGroups(g6, g7)
  // ::a.b.c.d, but not :: and ::1 (checked as IPv6 themselves).
  if (zeroTo(6) && (g6 !== 0 || g7 > 1)) return v4FromGroups(g6, g7)
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0)
    return v4FromGroups(g6, g7)
  if (g0 === 0x2002) return v4FromGroups(g1, g2)
  return null
}

/**
 * Whether an address is one a session must not reach by default: anything but a public unicast
 * address. Not an IP at all counts as special (refused).
 */
export function isSpecialAddress(address: string): boolean {
  const family = isIP(address)
  if (family === 4) return v4List.check(address, 'ipv4')
  if (family !== 6) return true
  const v4 = embeddedIpv4(address)
  if (v4 !== null) return v4List.check(v4, 'ipv4')
  return v6List.check(address, 'ipv6')
}

/** Loopback or unspecified (in any IPv6 spelling): where the host's own listeners answer. */
export function isLocalHostAddress(address: string): boolean {
  const family = isIP(address)
  const v4 = family === 4 ? address : family === 6 ? embeddedIpv4(address) : null
  if (v4 !== null) return v4.startsWith('127.') || v4.startsWith('0.')
  const c = canonicalIp(address)
  return c === '::1' || c === '::'
}
