// Red-team pass (issue 12): a prompt-injected agent holding the proxy's connections open by
// sending its request header one byte at a time (slowloris). Node enforces `headersTimeout` only
// for servers that listen themselves; the egress proxy's HTTP server never listens (each session's
// unix socket hands connections over), so the deadline must be the proxy's own.
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseEntries, type Policy } from './policy.ts'
import { EgressProxy } from './proxy.ts'

let dir: string
let proxy: EgressProxy
let policy: Policy = {
  mode: 'allowlist',
  entries: parseEntries(['api.example']).entries,
  ownListeners: [],
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clincus-egress-slow-'))
  proxy = new EgressProxy({
    log: pino({ level: 'silent' }),
    hooks: { policy: () => policy, upstream: () => null, record: () => undefined },
    limits: { headersTimeoutMs: 300, idleTimeoutMs: 60_000 },
  })
  await proxy.open('s', join(dir, 's.sock'))
})

afterEach(async () => {
  await proxy.dispose()
  await rm(dir, { recursive: true, force: true })
})

/** Opens a connection, writes `first`, then one more byte every 20 ms until the proxy closes it. */
function trickle(first: string): Promise<{ ms: number; got: string }> {
  return new Promise((resolve) => {
    const started = Date.now()
    const c = net.connect(join(dir, 's.sock'), () => c.write(first))
    let got = ''
    const timer = setInterval(() => {
      if (c.writable) c.write('a')
    }, 20)
    c.on('data', (d) => (got += d.toString('latin1')))
    c.on('error', () => undefined)
    c.on('close', () => {
      clearInterval(timer)
      resolve({ ms: Date.now() - started, got })
    })
  })
}

describe('egress proxy: slow request headers', () => {
  it('closes a connection whose request header never completes, however it trickles', async () => {
    const r = await trickle('GET http://api.example/ HTTP/1.1\r\nX-Slow: ')
    // closed by the header deadline (300 ms), not by the idle timeout (60 s)
    expect(r.ms).toBeLessThan(30_000)
  })

  it('also for the second request of a keep-alive connection, after an answered first', async () => {
    const origin = http.createServer((_req, res) => res.end('first answered'))
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
    const port = (origin.address() as net.AddressInfo).port
    policy = { ...policy, entries: parseEntries([`127.0.0.1:${port}`]).entries }
    try {
      const r = await trickle(
        `GET http://127.0.0.1:${port}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n` +
          `GET http://127.0.0.1:${port}/ HTTP/1.1\r\nX-Slow: `,
      )
      expect(r.got).toContain('first answered')
      expect(r.ms).toBeLessThan(30_000)
    } finally {
      origin.closeAllConnections()
      await new Promise<void>((r) =>
        origin.close(() => {
          r()
        }),
      )
    }
  })

  it('keeps a slow answer open past the header deadline', async () => {
    const origin = http.createServer((_req, res) => {
      res.write('part one;')
      setTimeout(() => res.end('part two'), 600)
    })
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
    const port = (origin.address() as net.AddressInfo).port
    policy = { ...policy, entries: parseEntries([`127.0.0.1:${port}`]).entries }
    try {
      const got = await new Promise<string>((resolve, reject) => {
        const c = net.connect(join(dir, 's.sock'))
        let out = ''
        c.on('data', (d) => (out += d.toString('latin1')))
        c.on('error', reject)
        c.on('close', () => {
          resolve(out)
        })
        c.write(`GET http://127.0.0.1:${port}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
      })
      expect(got).toContain('part one;')
      expect(got).toContain('part two')
    } finally {
      origin.closeAllConnections()
      await new Promise<void>((r) =>
        origin.close(() => {
          r()
        }),
      )
    }
  })
})
