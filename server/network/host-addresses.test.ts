// Red-team pass (issue 12): the host's own addresses are where its services listen. On a machine
// with a public address (a VPS, a workstation on a public LAN), `mode = "open"` or a listed name
// that resolves to the host would let the agent reach every service bound to 0.0.0.0 — services a
// firewall keeps from the internet but not from the host itself (a Docker API on 2375, a database
// without a password). They are refused like loopback: only an exact `ip:port` entry opens one.
import { describe, expect, it } from 'vitest'
import { interfaceAddresses } from './host-addresses.ts'
import { checkAddresses, decide, parseEntries, type Policy } from './policy.ts'

const HOST_V4 = '93.184.216.34'
const HOST_V6 = '2a00:1450:4001:82b::200e'

function policy(mode: Policy['mode'], allow: string[] = []): Policy {
  return {
    mode,
    entries: parseEntries(allow).entries,
    ownListeners: [{ address: '127.0.0.1', port: 3000 }],
    hostAddresses: [HOST_V4, HOST_V6],
  }
}

describe("the host's own addresses", () => {
  it('are refused in open mode, in every spelling, unless that exact ip:port is listed', () => {
    const open = policy('open')
    for (const host of [
      HOST_V4,
      `[${HOST_V6}]`,
      `[::ffff:${HOST_V4}]`,
      '[2a00:1450:4001:82b:0:0:0:200e]',
    ])
      expect(decide(open, { host, port: 2375, method: 'connect' }), host).toMatchObject({
        kind: 'refuse',
        status: 403,
      })
    expect(decide(open, { host: HOST_V4, port: 80, method: 'http' }).kind).toBe('refuse')
    // another public address is fine in open mode
    expect(decide(open, { host: '93.184.216.35', port: 443, method: 'connect' }).kind).toBe(
      'connect',
    )
    const listed = policy('open', [`${HOST_V4}:8080`])
    expect(decide(listed, { host: HOST_V4, port: 8080, method: 'connect' }).kind).toBe('connect')
    expect(decide(listed, { host: HOST_V4, port: 2375, method: 'connect' }).kind).toBe('refuse')
  })

  it('are refused when an allowed name resolves to them', () => {
    const p = policy('allowlist', ['api.example'])
    expect(decide(p, { host: 'api.example', port: 443, method: 'connect' }).kind).toBe('resolve')
    expect(checkAddresses(p, ['93.184.216.35', HOST_V4], 443)).toMatch(/this host/)
    expect(checkAddresses(p, [`::ffff:${HOST_V4}`], 443)).toMatch(/this host/)
    expect(checkAddresses(p, ['93.184.216.35'], 443)).toBeNull()
  })

  it('are read from every interface, without zone ids, canonical', () => {
    const found = interfaceAddresses({
      lo: [{ address: '127.0.0.1' }, { address: '::1' }],
      eth0: [
        { address: HOST_V4 },
        { address: '2A00:1450:4001:082b::200E' },
        { address: 'fe80::1%eth0' },
      ],
    })
    expect(found).toEqual(expect.arrayContaining([HOST_V4, HOST_V6, 'fe80::1', '127.0.0.1', '::1']))
  })
})
