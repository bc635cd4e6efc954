import { describe, expect, it } from 'vitest'
import type { NetworkConnection } from './schemas.ts'
import { allowEntryFor, formatBytes, formatTarget, groupDestinations } from './network.ts'

function conn(over: Partial<NetworkConnection> & { host: string }): NetworkConnection {
  return {
    time: '2026-11-29T20:00:00.000Z',
    port: 443,
    allowed: true,
    reason: 'allowed by api.anthropic.com',
    bytes_up: 100,
    bytes_down: 1000,
    duration_ms: 20,
    ...over,
  }
}

describe('allowEntryFor', () => {
  it.each([
    ['example.com', 443, 'example.com'],
    ['example.com', 80, 'example.com'],
    ['Example.COM.', 443, 'example.com'],
    ['example.com', 8443, 'example.com:8443'],
    ['example.com', 22, 'example.com:22'],
    ['203.0.113.7', 443, '203.0.113.7:443'],
    ['2001:db8::1', 443, '[2001:db8::1]:443'],
    ['[2001:db8::1]', 8080, '[2001:db8::1]:8080'],
  ])('%s port %d → %s', (host, port, entry) => {
    expect(allowEntryFor(host, port)).toBe(entry)
  })

  it.each([
    ['*.com', 443],
    ['*', 443],
    ['a.com, b.com', 443],
    ['evil.com"', 443],
    ['a..com', 443],
    ['-x.com', 443],
    ['exa mple.com', 443],
    ['999.1.1.1', 443],
    ['1.2.3', 443],
    ['', 443],
    ['example.com', 0],
    ['example.com', 70000],
    ['<img src=x onerror=alert(1)>', 443],
  ])('a crafted host %j (port %d) gets no entry', (host, port) => {
    expect(allowEntryFor(host, port)).toBeNull()
  })

  it('formats targets with IPv6 in brackets', () => {
    expect(formatTarget('::1', 3000)).toBe('[::1]:3000')
    expect(formatTarget('a.example', 443)).toBe('a.example:443')
  })
})

describe('groupDestinations', () => {
  it('puts refused destinations first, each part newest first, with counts, bytes and reason', () => {
    const list = groupDestinations([
      conn({ host: 'api.anthropic.com', time: '2026-11-29T20:05:00Z', bytes_up: 5, bytes_down: 7 }),
      conn({
        host: 'evil.example',
        time: '2026-11-29T20:04:00Z',
        allowed: false,
        reason: 'evil.example is not in the allow list',
        bytes_up: 0,
        bytes_down: 0,
      }),
      conn({ host: 'registry.npmjs.org', time: '2026-11-29T20:03:00Z' }),
      conn({ host: 'api.anthropic.com', time: '2026-11-29T20:02:00Z', bytes_up: 10 }),
      conn({
        host: 'paste.example',
        time: '2026-11-29T20:06:00Z',
        allowed: false,
        reason: 'paste.example is not in the allow list',
      }),
      conn({
        host: 'evil.example',
        time: '2026-11-29T20:01:00Z',
        allowed: false,
        reason: 'older reason',
      }),
    ])
    expect(list.map((d) => [d.host, d.status])).toEqual([
      ['paste.example', 'refused'],
      ['evil.example', 'refused'],
      ['api.anthropic.com', 'allowed'],
      ['registry.npmjs.org', 'allowed'],
    ])
    const evil = list[1]
    expect(evil).toMatchObject({
      count: 2,
      reason: 'evil.example is not in the allow list',
      entry: 'evil.example',
      lastTime: '2026-11-29T20:04:00Z',
    })
    expect(list[2]).toMatchObject({ count: 2, bytesUp: 15, bytesDown: 1007, entry: null })
  })

  it('groups refusals by the entry they need: a non-default port is its own host:port', () => {
    const list = groupDestinations([
      conn({ host: 'db.example', port: 5432, allowed: false, reason: 'port not allowed' }),
      conn({ host: 'db.example', port: 443, allowed: false, reason: 'not listed' }),
    ])
    expect(list.map((d) => d.entry).sort()).toEqual(['db.example', 'db.example:5432'])
  })

  it('marks a refusal whose entry is now allowed as pending, and one allowed later as retried', () => {
    const refused = conn({
      host: 'evil.example',
      time: '2026-11-29T20:00:00Z',
      allowed: false,
      reason: 'x',
    })
    expect(groupDestinations([refused])[0]?.status).toBe('refused')
    expect(groupDestinations([refused], ['Evil.example'])[0]?.status).toBe('pending')
    expect(groupDestinations([refused], [], ['evil.example'])[0]?.status).toBe('pending')
    const retried = groupDestinations(
      [conn({ host: 'evil.example', time: '2026-11-29T20:01:00Z' }), refused],
      ['evil.example'],
    )
    expect(retried.map((d) => [d.key, d.status])).toEqual([
      // Got past now: the newer allowed destination leads, the old refusal follows.
      ['allowed:evil.example', 'allowed'],
      ['refused:evil.example', 'retried'],
    ])
  })
})

describe('groupDestinations and crafted hosts', () => {
  it('keeps a refusal without a possible entry refused, with no entry to allow', () => {
    const [d] = groupDestinations(
      [conn({ host: '*.com', allowed: false, reason: 'not a host name' })],
      ['*.com'],
    )
    expect(d).toMatchObject({
      status: 'refused',
      entry: null,
      key: 'refused:unallowable:*.com:443',
    })
  })
})

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [64 * 1024 * 1024, '64.0 MiB'],
    [1.5 * 1024 ** 3, '1.5 GiB'],
  ])('%d → %s', (n, text) => {
    expect(formatBytes(n)).toBe(text)
  })
})
