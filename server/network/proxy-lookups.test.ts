// Red-team pass (issue 12): name lookups are getaddrinfo calls on libuv's thread pool (4 threads),
// which every file operation of the dashboard shares. In `open` mode (or under a wildcard entry) a
// prompt-injected agent names hosts whose DNS server never answers; each lookup then holds a pool
// thread for the resolver's full retry time (seconds), whatever our timeout says, and 256 CONNECTs
// would stall the whole server. Lookups are therefore bounded: few at once overall, one per
// session, and a lookup whose requester gave up while it waited is never started.
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Policy } from './policy.ts'
import { EgressProxy } from './proxy.ts'
import { MAX_LOOKUPS, MAX_LOOKUPS_PER_SESSION } from './proxy-lookup.ts'

let dir: string
let proxy: EgressProxy
let inFlight: Map<string, number>
let peak: { total: number; perName: Map<string, number> }
let started: string[]
const hung: Array<() => void> = []
const policy: Policy = { mode: 'open', entries: [], ownListeners: [] }

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clincus-egress-lookups-'))
  inFlight = new Map()
  started = []
  peak = { total: 0, perName: new Map() }
  proxy = new EgressProxy({
    log: pino({ level: 'silent' }),
    hooks: { policy: () => policy, upstream: () => null, record: () => undefined },
    limits: { resolveTimeoutMs: 200 },
    // A DNS server that never answers: the lookup settles only when the test lets it go.
    resolver: (name) =>
      new Promise<string[]>((_resolve, reject) => {
        const session = name.split('.')[1] ?? ''
        started.push(name)
        inFlight.set(session, (inFlight.get(session) ?? 0) + 1)
        const total = [...inFlight.values()].reduce((a, b) => a + b, 0)
        peak.total = Math.max(peak.total, total)
        peak.perName.set(
          session,
          Math.max(peak.perName.get(session) ?? 0, inFlight.get(session) ?? 0),
        )
        hung.push(() => {
          inFlight.set(session, (inFlight.get(session) ?? 1) - 1)
          reject(Object.assign(new Error('timed out'), { code: 'EAI_AGAIN' }))
        })
      }),
  })
  await proxy.open('a', join(dir, 'a.sock'))
  await proxy.open('b', join(dir, 'b.sock'))
})

afterEach(async () => {
  for (const release of hung.splice(0)) release()
  await proxy.dispose()
  await rm(dir, { recursive: true, force: true })
})

function connect(session: string, name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(join(dir, `${session}.sock`))
    let out = ''
    c.on('data', (d) => (out += d.toString('latin1')))
    c.on('error', reject)
    c.on('close', () => {
      resolve(out)
    })
    c.write(`CONNECT ${name}:443 HTTP/1.1\r\n\r\n`)
  })
}

describe('egress proxy: name lookups are bounded', () => {
  it('never runs more than a few lookups at once, one per session, and answers the rest 502', async () => {
    const answers = await Promise.all([
      ...Array.from({ length: 40 }, (_, i) => connect('a', `n${i}.a.test`)),
      ...Array.from({ length: 40 }, (_, i) => connect('b', `n${i}.b.test`)),
    ])
    // every request was answered (timed out in the queue or at the lookup), none hung
    for (const a of answers) expect(a).toMatch(/^HTTP\/1.1 502[^]*did not resolve/)
    expect(peak.total).toBeLessThanOrEqual(MAX_LOOKUPS)
    expect(MAX_LOOKUPS).toBeLessThan(4)
    for (const n of peak.perName.values()) expect(n).toBeLessThanOrEqual(MAX_LOOKUPS_PER_SESSION)
    // requests that gave up while waiting never started a lookup
    expect(started.length).toBeLessThanOrEqual(MAX_LOOKUPS)
  })

  it('lets parallel connections to one host share one lookup', async () => {
    const calls: string[] = []
    const shared = new EgressProxy({
      log: pino({ level: 'silent' }),
      hooks: { policy: () => policy, upstream: () => null, record: () => undefined },
      // a private answer: each connection is refused at the address check, after its lookup
      resolver: async (name) => {
        calls.push(name)
        return ['10.0.0.1']
      },
    })
    await shared.open('c', join(dir, 'c.sock'))
    try {
      const answers = await Promise.all(
        Array.from({ length: 10 }, () => connect('c', 'same.example')),
      )
      for (const a of answers) expect(a).toMatch(/^HTTP\/1.1 403[^]*10\.0\.0\.1/)
      expect(calls).toEqual(['same.example'])
    } finally {
      await shared.dispose()
    }
  })
})
