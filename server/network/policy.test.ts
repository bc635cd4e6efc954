// The egress policy as pure functions (issue 12 "Unit tests of the policy"): entry parsing,
// wildcards, IDN and case, trailing dots, ports, IPv6 literals, special address ranges incl.
// IPv4-mapped IPv6, CONNECT to a non-443 port, and hostile input that must never throw.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalIp, embeddedIpv4, isSpecialAddress } from './address.ts'
import {
  checkAddresses,
  decide,
  normalizeName,
  parseEntries,
  parseEntry,
  PolicyEntryError,
  type Policy,
  type Target,
} from './policy.ts'

function policy(allow: string[], mode: Policy['mode'] = 'allowlist'): Policy {
  const { entries, invalid } = parseEntries(allow)
  expect(invalid).toEqual([])
  return { mode, entries, ownListeners: [{ address: '127.0.0.1', port: 3000 }] }
}

const connect = (host: string, port = 443): Target => ({ host, port, method: 'connect' })
const get = (host: string, port = 80): Target => ({ host, port, method: 'http' })

describe('parseEntry', () => {
  it.each([
    ['example.com', 'example.com'],
    ['Example.COM.', 'example.com'],
    ['*.Example.com', '*.example.com'],
    ['example.com:8443', 'example.com:8443'],
    ['bücher.de', 'xn--bcher-kva.de'],
    ['10.0.0.5:8080', '10.0.0.5:8080'],
    ['[2001:DB8::0:1]:443', '[2001:db8::1]:443'],
    ['[::ffff:127.0.0.1]:80', '[::ffff:7f00:1]:80'],
    ['  spaced.example  ', 'spaced.example'],
  ])('%s → %s', (input, text) => {
    expect(parseEntry(input).text).toBe(text)
  })

  it.each([
    '',
    'http://example.com',
    'example.com/path',
    'user@example.com',
    '10.0.0.5',
    '::1',
    '[::1]',
    '[::1]:0',
    'example.com:0',
    'example.com:65536',
    'example.com:http',
    '*.com',
    'a.*.example.com',
    '*example.com',
    'ex ample.com',
    'a..b',
    '-bad.example',
    'x'.repeat(301),
    `${'a'.repeat(64)}.example`,
    '0x7f.1',
    '2130706433',
    '[fe80::1%eth0]:80',
  ])('refuses %j', (input) => {
    expect(() => parseEntry(input)).toThrow(PolicyEntryError)
  })
})

describe('decide: names', () => {
  const p = policy(['example.com', '*.wild.example', 'port.example:8443', 'bücher.de'])

  it('a bare entry allows CONNECT to 443 and plain HTTP to 80, nothing else', () => {
    expect(decide(p, connect('example.com')).kind).toBe('resolve')
    expect(decide(p, get('example.com')).kind).toBe('resolve')
    expect(decide(p, connect('example.com', 80)).kind).toBe('refuse')
    expect(decide(p, connect('example.com', 22)).kind).toBe('refuse')
    expect(decide(p, get('example.com', 443)).kind).toBe('refuse')
    expect(decide(p, get('example.com', 8080)).kind).toBe('refuse')
  })

  it('host:port allows that port for CONNECT and HTTP alike, and only it', () => {
    expect(decide(p, connect('port.example', 8443)).kind).toBe('resolve')
    expect(decide(p, get('port.example', 8443)).kind).toBe('resolve')
    expect(decide(p, connect('port.example', 443)).kind).toBe('refuse')
  })

  it('*.x matches sub-domains at any depth, not x itself nor look-alikes', () => {
    expect(decide(p, connect('a.wild.example')).kind).toBe('resolve')
    expect(decide(p, connect('a.b.wild.example')).kind).toBe('resolve')
    expect(decide(p, connect('wild.example')).kind).toBe('refuse')
    expect(decide(p, connect('evilwild.example')).kind).toBe('refuse')
    expect(decide(p, connect('wild.example.evil.com')).kind).toBe('refuse')
  })

  it('case, one trailing dot and IDN are normalized; two dots are not a name', () => {
    expect(decide(p, connect('EXAMPLE.com.'))).toMatchObject({
      kind: 'resolve',
      name: 'example.com',
    })
    expect(decide(p, connect('BÜCHER.de'))).toMatchObject({
      kind: 'resolve',
      name: 'xn--bcher-kva.de',
    })
    expect(decide(p, connect('xn--bcher-kva.de')).kind).toBe('resolve')
    expect(decide(p, connect('example.com..'))).toMatchObject({ kind: 'refuse', status: 400 })
  })

  it('a name matching nothing is refused with a reason that says how to allow it', () => {
    const d = decide(p, connect('other.example'))
    expect(d).toMatchObject({ kind: 'refuse', status: 403, host: 'other.example' })
    expect(d.kind === 'refuse' && d.reason).toContain('[network] allow')
  })

  it('localhost is never a name to resolve, in any mode', () => {
    expect(decide(policy(['localhost:8080']), get('localhost', 8080)).kind).toBe('refuse')
    expect(decide(policy([], 'open'), get('db.localhost')).kind).toBe('refuse')
  })

  it('mode none refuses everything; open allows any name (its addresses are checked after)', () => {
    expect(decide(policy(['example.com'], 'none'), connect('example.com')).kind).toBe('refuse')
    expect(decide(policy([], 'open'), connect('anything.example', 22)).kind).toBe('resolve')
  })

  it('numeric host forms that are IPs in disguise are not names', () => {
    for (const h of ['0x7f.1', '2130706433', '127.1', '0177.0.0.1'])
      expect(decide(policy([], 'open'), connect(h))).toMatchObject({ kind: 'refuse', status: 400 })
  })

  it('bad ports are 400', () => {
    for (const port of [0, -1, 65536, 1.5, Number.NaN])
      expect(decide(p, { host: 'example.com', port, method: 'connect' })).toMatchObject({
        kind: 'refuse',
        status: 400,
      })
  })
})

describe('decide: IP literals', () => {
  it('are allowed only by their exact ip:port in allowlist mode', () => {
    const p = policy(['203.0.113.10:443', '[2001:db8::5]:8443'])
    expect(decide(p, connect('203.0.113.10'))).toMatchObject({ kind: 'connect' })
    expect(decide(p, connect('203.0.113.10', 444)).kind).toBe('refuse')
    expect(decide(p, connect('[2001:db8:0::5]', 8443))).toMatchObject({
      kind: 'connect',
      address: '2001:db8::5',
    })
    expect(decide(p, connect('93.184.216.34')).kind).toBe('refuse')
  })

  it('open mode allows public addresses, never special ones unless listed exactly', () => {
    const open = policy(['10.0.0.5:8080'], 'open')
    expect(decide(open, connect('93.184.216.34')).kind).toBe('connect')
    expect(decide(open, connect('10.0.0.5', 8080)).kind).toBe('connect')
    for (const [h, port] of [
      ['10.0.0.5', 8081],
      ['127.0.0.1', 80],
      ['169.254.169.254', 80],
      ['[::1]', 22],
      ['[::ffff:127.0.0.1]', 80],
      ['[::ffff:10.0.0.5]', 8081],
      ['[64:ff9b::a9fe:a9fe]', 80],
      ['[fd00::1]', 443],
      ['[fe80::1]', 443],
      ['0.0.0.0', 80],
      ['255.255.255.255', 80],
      ['100.64.1.1', 443],
      ['224.0.0.1', 443],
    ] as const)
      expect(decide(open, connect(h, port)), `${h}:${port}`).toMatchObject({
        kind: 'refuse',
        status: 403,
      })
  })

  it('the dashboard is refused even when listed, under any loopback spelling', () => {
    const p = policy(['127.0.0.1:3000', '[::1]:3000', '127.0.0.2:3000'], 'open')
    for (const h of ['127.0.0.1', '[::1]', '127.0.0.2', '[::ffff:127.0.0.1]', '0.0.0.0'])
      expect(decide(p, connect(h, 3000)), h).toMatchObject({ kind: 'refuse' })
    expect(checkAddresses(p, ['127.0.0.1'], 3000)).toContain('dashboard')
  })
})

describe('checkAddresses (after the one lookup)', () => {
  const p = policy(['name.example:8080', '127.0.0.1:8080'])
  it('refuses when any address is special and not listed exactly', () => {
    expect(checkAddresses(p, ['93.184.216.34'], 443)).toBeNull()
    expect(checkAddresses(p, ['93.184.216.34', '10.1.1.1'], 443)).toContain('10.1.1.1')
    expect(checkAddresses(p, ['::ffff:192.168.1.1'], 443)).not.toBeNull()
    expect(checkAddresses(p, ['127.0.0.1'], 8080)).toBeNull()
    expect(checkAddresses(p, ['127.0.0.1'], 8081)).not.toBeNull()
    expect(checkAddresses(p, [], 443)).toContain('did not resolve')
    expect(checkAddresses(p, ['not-an-ip'], 443)).not.toBeNull()
  })

  it("the host's own registries may resolve to private or loopback addresses (a mirror), never to the dashboard", () => {
    const mirror: Policy = {
      ...policy(['registry.corp.example', 'other.example']),
      hostTrusted: ['registry.corp.example'],
    }
    expect(checkAddresses(mirror, ['10.1.2.3'], 443, 'registry.corp.example')).toBeNull()
    expect(checkAddresses(mirror, ['203.0.113.80'], 443, 'registry.corp.example')).toBeNull()
    expect(checkAddresses(mirror, ['127.0.0.1'], 4873, 'registry.corp.example')).toBeNull()
    expect(checkAddresses(mirror, ['127.0.0.1'], 3000, 'registry.corp.example')).toContain(
      'dashboard',
    )
    // only that exact name: a user entry, a sub-domain or no name keep the rule
    expect(checkAddresses(mirror, ['10.1.2.3'], 443, 'other.example')).not.toBeNull()
    expect(checkAddresses(mirror, ['10.1.2.3'], 443, 'x.registry.corp.example')).not.toBeNull()
    expect(checkAddresses(mirror, ['10.1.2.3'], 443)).not.toBeNull()
  })
})

describe('address ranges', () => {
  it.each([
    '0.0.0.0',
    '10.255.0.1',
    '100.127.255.255',
    '127.8.8.8',
    '169.254.169.254',
    '172.31.0.1',
    '192.168.0.1',
    '198.18.0.1',
    '224.0.0.251',
    '255.255.255.255',
    '::',
    '::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::127.0.0.1',
    '64:ff9b::10.0.0.1',
    '2002:a00:1::',
    'fc00::1',
    'fdff::1',
    'fe80::1',
    'ff02::1',
    '2001:db8::1',
  ])('%s is special', (a) => {
    expect(isSpecialAddress(a)).toBe(true)
  })

  it.each([
    '93.184.216.34',
    '1.1.1.1',
    '2606:4700::1111',
    '::ffff:93.184.216.34',
    '64:ff9b::808:808',
  ])('%s is public', (a) => {
    expect(isSpecialAddress(a)).toBe(false)
  })

  it('canonicalizes and extracts embedded IPv4', () => {
    expect(canonicalIp('2001:0db8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1')
    expect(canonicalIp('::ffff:127.0.0.1')).toBe('::ffff:7f00:1')
    expect(canonicalIp('1:0:0:1:0:0:0:1')).toBe('1:0:0:1::1')
    expect(embeddedIpv4('::ffff:7f00:1')).toBe('127.0.0.1')
    expect(embeddedIpv4('2002:c0a8:101::1')).toBe('192.168.1.1')
    expect(embeddedIpv4('2001:db8::1')).toBeNull()
  })
})

describe('hostile input', () => {
  it('never throws, whatever the host, port and entries', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 300 }),
        fc.integer({ min: -10, max: 70_000 }),
        fc.array(fc.string({ maxLength: 80 }), { maxLength: 5 }),
        fc.constantFrom('connect', 'http'),
        (host, port, allow, method) => {
          const { entries } = parseEntries(allow)
          for (const mode of ['allowlist', 'open', 'none'] as const) {
            const d = decide({ mode, entries, ownListeners: [] }, { host, port, method })
            expect(['resolve', 'connect', 'refuse']).toContain(d.kind)
          }
          normalizeName(host)
        },
      ),
      { numRuns: 500 },
    )
  })
})
