// Plain HTTP through one keep-alive client connection: each exchange is its own record, written
// when its response ends (not when the connection closes), and it leaves no listener behind on
// the client socket. Before the fix, a target the policy decided without a lookup (an IP
// literal) was tracked before the proxy had seen the response, so its accounting waited on the
// socket's 'close': one listener per request (MaxListenersExceededWarning at the 11th), records
// held until the client hung up, and each counting every byte after its own start.
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { NetworkConnection } from '../../shared/schemas/network.ts'
import { parseEntries } from './policy.ts'
import { EgressProxy } from './proxy.ts'

const BODY = 'x'.repeat(1000)
const REQUESTS = 15

let dir: string
let upstream: http.Server
let port: number
let proxy: EgressProxy
let records: NetworkConnection[]
let warnings: Error[]
const onWarning = (w: Error): void => {
  if (w.name === 'MaxListenersExceededWarning') warnings.push(w)
}

beforeEach(async () => {
  warnings = []
  process.on('warning', onWarning)
  dir = await mkdtemp(join(tmpdir(), 'clincus-egress-keepalive-'))
  upstream = http.createServer((_req, res) => {
    res.end(BODY)
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  port = (upstream.address() as net.AddressInfo).port
  records = []
  const policy = {
    mode: 'allowlist' as const,
    entries: parseEntries([`127.0.0.1:${port}`, `origin.test:${port}`]).entries,
    ownListeners: [],
  }
  proxy = new EgressProxy({
    log: pino({ level: 'silent' }),
    hooks: { policy: () => policy, upstream: () => null, record: (_s, r) => records.push(r) },
    resolver: async () => ['127.0.0.1'],
    relay: null,
  })
  await proxy.open('s', join(dir, 's.sock'))
})

afterEach(async () => {
  await proxy.dispose()
  upstream.closeAllConnections()
  await new Promise<void>((r) =>
    upstream.close(() => {
      r()
    }),
  )
  await rm(dir, { recursive: true, force: true })
  process.off('warning', onWarning)
})

/** One GET through the proxy on the agent's (single, kept-alive) connection. */
function get(agent: http.Agent, url: string): Promise<{ body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: join(dir, 's.sock'), path: url, agent }, (res) => {
      let body = ''
      res.setEncoding('latin1')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => {
        resolve({ body, reused: req.reusedSocket })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

describe('egress proxy: plain HTTP on a keep-alive connection', () => {
  it.each([
    ['an IP literal (decided without a lookup)', '127.0.0.1'],
    ['a name (resolved)', 'origin.test'],
  ])('records each exchange of %s when it ends, with no listener leak', async (_what, host) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      for (let i = 0; i < REQUESTS; i++) {
        const { body, reused } = await get(agent, `http://${host}:${port}/${i}`)
        expect(body).toBe(BODY)
        expect(reused).toBe(i > 0)
        // The connection is still open: the record comes from the response's end.
        await expect.poll(() => records.length).toBe(i + 1)
      }
      for (const r of records) {
        expect(r).toMatchObject({ host, port, allowed: true })
        // One response each, not every byte since the exchange started.
        expect(r.bytes_down).toBeGreaterThanOrEqual(BODY.length)
        expect(r.bytes_down).toBeLessThan(2 * BODY.length)
      }
      expect(warnings.map((w) => w.message)).toEqual([])
    } finally {
      agent.destroy()
    }
  })
})
