// The egress proxy on loopback: a unix socket per session, the policy applied before anything is
// resolved, the injected resolver's answer is where the connection goes, malformed input → 400.
import { mkdtemp, rm, stat } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { NetworkConnection } from '../../shared/schemas/network.ts'
import { waitUntil } from '../test/ws-client.ts'
import { parseEntries, type Policy } from './policy.ts'
import { EgressProxy } from './proxy.ts'

let dir: string
let upstream: http.Server
let upstreamPort: number
let proxy: EgressProxy
let records: Array<{ session: string; r: NetworkConnection }>
let policy: Policy
let resolved: string[]
const log = pino({ level: 'silent' })

function setPolicy(mode: Policy['mode'], allow: string[]): void {
  policy = {
    mode,
    entries: parseEntries(allow).entries,
    ownListeners: [{ address: '127.0.0.1', port: 1 }],
  }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clincus-egress-'))
  upstream = http.createServer((req, res) => {
    res.end(`upstream saw ${req.method} ${req.url}`)
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  upstreamPort = (upstream.address() as net.AddressInfo).port
  records = []
  resolved = []
  setPolicy('allowlist', [`127.0.0.1:${upstreamPort}`])
  proxy = new EgressProxy({
    log,
    hooks: {
      policy: (s) => (s === 's1' ? policy : null),
      upstream: () => null,
      record: (session, r) => records.push({ session, r }),
    },
    resolver: async (name) => {
      resolved.push(name)
      if (name === 'rebind.test' || name === 'mirror.test') return ['127.0.0.1']
      if (name === 'mixed.test') return ['93.184.216.34', '10.0.0.1']
      throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' })
    },
  })
  await proxy.open('s1', join(dir, 's1.sock'))
})

afterEach(async () => {
  await proxy.dispose()
  await new Promise<void>((r) =>
    upstream.close(() => {
      r()
    }),
  )
  await rm(dir, { recursive: true, force: true })
})

/** Sends raw bytes on the session socket; resolves with everything received until close. */
function raw(text: string | Buffer, session = 's1', halfClose = true): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(join(dir, `${session}.sock`))
    let out = ''
    c.on('data', (d) => (out += d.toString('latin1')))
    c.on('error', reject)
    c.on('close', () => {
      resolve(out)
    })
    c.write(text)
    if (halfClose) c.end()
  })
}

/** The response head only (a tunnel stays open): resolves at the blank line, or at close. */
function head(text: string, session: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(join(dir, `${session}.sock`))
    let out = ''
    c.on('data', (d) => {
      out += d.toString('latin1')
      if (out.includes('\r\n\r\n')) {
        c.destroy()
        resolve(out)
      }
    })
    c.on('error', reject)
    c.on('close', () => {
      resolve(out)
    })
    c.write(text)
  })
}

/** CONNECT, then one HTTP request through the tunnel. */
function tunnel(target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(join(dir, 's1.sock'))
    let out = ''
    let sent = false
    c.on('data', (d) => {
      out += d.toString('latin1')
      if (!sent && out.includes('\r\n\r\n')) {
        sent = true
        if (!out.startsWith('HTTP/1.1 200')) return void c.end()
        out = ''
        c.write(`GET /t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
      }
    })
    c.on('error', reject)
    c.on('close', () => {
      resolve(out)
    })
    c.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`)
  })
}

describe('egress proxy', () => {
  it('makes the socket 0600 and tunnels CONNECT to an allowed ip:port', async () => {
    expect((await stat(join(dir, 's1.sock'))).mode & 0o777).toBe(0o600)
    const body = await tunnel(`127.0.0.1:${upstreamPort}`)
    expect(body).toContain('upstream saw GET /t')
    await expect.poll(() => records.length).toBe(1)
    expect(records[0]?.r).toMatchObject({ host: '127.0.0.1', port: upstreamPort, allowed: true })
    expect(records[0]?.r.bytes_down).toBeGreaterThan(0)
  })

  it('forwards plain HTTP absolute-URI requests and logs host and port only', async () => {
    const out = await raw(
      `GET http://127.0.0.1:${upstreamPort}/p?token=secret HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
      's1',
      false,
    )
    expect(out).toContain('upstream saw GET /p?token=secret')
    await expect.poll(() => records.length).toBe(1)
    expect(JSON.stringify(records)).not.toContain('secret')
  })

  it('refuses a name that matches nothing with 403 and a reason, before any lookup', async () => {
    const out = await raw('CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n')
    expect(out).toMatch(/^HTTP\/1.1 403/)
    expect(out).toContain('evil.example:443 is not in this session')
    expect(resolved).toEqual([])
    expect(records[0]?.r).toMatchObject({ host: 'evil.example', port: 443, allowed: false })
  })

  it('refuses a listed name that resolves to loopback, or to one private address among public ones', async () => {
    setPolicy('allowlist', ['rebind.test:8080', 'mixed.test'])
    expect(await raw('CONNECT rebind.test:8080 HTTP/1.1\r\n\r\n')).toMatch(
      /^HTTP\/1.1 403[^]*resolves to a refused address/,
    )
    expect(await raw('CONNECT mixed.test:443 HTTP/1.1\r\n\r\n')).toMatch(
      /^HTTP\/1.1 403[^]*10\.0\.0\.1/,
    )
  })

  it("reaches the host's own registry mirror on a loopback or private address, and only that name", async () => {
    setPolicy('allowlist', [`mirror.test:${upstreamPort}`, `rebind.test:${upstreamPort}`])
    policy = { ...policy, hostTrusted: ['mirror.test'] }
    expect(await tunnel(`mirror.test:${upstreamPort}`)).toContain('upstream saw GET /t')
    expect(await raw(`CONNECT rebind.test:${upstreamPort} HTTP/1.1\r\n\r\n`)).toMatch(
      /^HTTP\/1.1 403[^]*resolves to a refused address/,
    )
  })

  it('refuses special addresses and the dashboard even in open mode', async () => {
    setPolicy('open', [])
    for (const target of [
      '127.0.0.1:1',
      '169.254.169.254:80',
      '[::1]:22',
      '[::ffff:127.0.0.1]:80',
      '10.1.2.3:443',
    ])
      expect(await raw(`CONNECT ${target} HTTP/1.1\r\n\r\n`)).toMatch(/^HTTP\/1.1 403/)
    expect(
      await raw('GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\nHost: x\r\n\r\n'),
    ).toMatch(/^HTTP\/1.1 403/)
    // an allowed ip:port that is the dashboard stays refused
    setPolicy('allowlist', ['127.0.0.1:1'])
    expect(await raw('CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n')).toMatch(/^HTTP\/1.1 403[^]*dashboard/)
  })

  it('refuses CONNECT to a non-443 port of a bare entry', async () => {
    setPolicy('allowlist', ['example.com'])
    expect(await raw('CONNECT example.com:22 HTTP/1.1\r\n\r\n')).toMatch(/^HTTP\/1.1 403/)
    expect(resolved).toEqual([])
  })

  it('answers malformed requests with 400 and keeps serving', async () => {
    const bad = [
      'GARBAGE\r\n\r\n',
      'CONNECT  HTTP/1.1\r\n\r\n',
      'CONNECT :443 HTTP/1.1\r\n\r\n',
      'CONNECT [::1 HTTP/1.1\r\n\r\n',
      'CONNECT a..b:443 HTTP/1.1\r\n\r\n',
      'CONNECT 0x7f.1:443 HTTP/1.1\r\n\r\n',
      'GET /relative HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n',
      `GET http://x/ HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(70_000)}\r\n\r\n`,
      Buffer.from([0, 1, 2, 255, 13, 10, 13, 10]),
    ]
    for (const b of bad) {
      const out = await raw(b)
      expect(
        out === '' || /^HTTP\/1.1 (400|403|431)/.test(out),
        JSON.stringify(out.slice(0, 80)),
      ).toBe(true)
    }
    for (let i = 0; i < 200; i++) {
      const len = 1 + Math.floor(Math.random() * 64)
      const junk = Buffer.from(Array.from({ length: len }, () => Math.floor(Math.random() * 256)))
      await raw(
        Buffer.concat([
          Buffer.from(i % 2 ? 'CONNECT ' : 'GET '),
          junk,
          Buffer.from(' HTTP/1.1\r\n\r\n'),
        ]),
      )
    }
    expect(await tunnel(`127.0.0.1:${upstreamPort}`)).toContain('upstream saw GET /t')
  })

  it('knows the session only from its socket', async () => {
    await proxy.open('stranger', join(dir, 'stranger.sock'))
    const out = await raw(
      `CONNECT 127.0.0.1:${upstreamPort} HTTP/1.1\r\nX-Clincus-Session: s1\r\n\r\n`,
      'stranger',
    )
    expect(out).toMatch(/^HTTP\/1.1 403/)
  })

  it('chains allowed connections through an upstream proxy, which resolves; refusals never reach it', async () => {
    const seen: string[] = []
    const corp = http.createServer()
    corp.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
      seen.push(req.url ?? '')
      const t = net.connect(upstreamPort, '127.0.0.1', () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
        t.pipe(socket)
        socket.pipe(t)
      })
      t.on('error', () => socket.destroy())
    })
    await new Promise<void>((r) => corp.listen(0, '127.0.0.1', r))
    const corpPort = (corp.address() as net.AddressInfo).port
    const chained = new EgressProxy({
      log,
      hooks: {
        policy: () => policy,
        upstream: () => `http://127.0.0.1:${corpPort}`,
        record: (session, r) => records.push({ session, r }),
      },
      resolver: async (name) => {
        resolved.push(name)
        return ['10.9.9.9']
      },
    })
    await chained.open('s2', join(dir, 's2.sock'))
    try {
      setPolicy('allowlist', ['api.example'])
      const ok = await head('CONNECT api.example:443 HTTP/1.1\r\n\r\n', 's2')
      expect(ok).toMatch(/^HTTP\/1.1 200/)
      expect(seen).toEqual(['api.example:443'])
      expect(resolved).toEqual([])
      expect(await raw('CONNECT other.example:443 HTTP/1.1\r\n\r\n', 's2')).toMatch(
        /^HTTP\/1.1 403/,
      )
      expect(seen).toEqual(['api.example:443'])
    } finally {
      await chained.dispose()
      await new Promise<void>((r) =>
        corp.close(() => {
          r()
        }),
      )
    }
  })

  it('closes connections beyond the per-session cap and idle ones', async () => {
    const capped = new EgressProxy({
      log,
      hooks: { policy: () => policy, upstream: () => null, record: () => undefined },
      limits: { maxConnectionsPerSession: 2, idleTimeoutMs: 300 },
    })
    await capped.open('s3', join(dir, 's3.sock'))
    try {
      // Each sends the first byte of a request header: it is then the proxy's (not pending).
      const open = async (): Promise<net.Socket> => {
        const before = capped.connections('s3').open
        const c = net.connect(join(dir, 's3.sock'))
        c.on('error', () => undefined)
        c.write('C')
        await waitUntil('routed', () => capped.connections('s3').open > before || c.destroyed)
        return c
      }
      const a = await open()
      const b = await open()
      const c = net.connect(join(dir, 's3.sock'))
      c.on('error', () => undefined)
      c.write('C')
      const closed = (s: net.Socket): Promise<void> =>
        new Promise((r) =>
          s.once('close', () => {
            r()
          }),
        )
      // the third is closed at once; the first two once idle
      await closed(c)
      await Promise.all([closed(a), closed(b)])
    } finally {
      await capped.dispose()
    }
  })

  it('closes a session: listener gone, socket file removed', async () => {
    await proxy.close('s1')
    await expect(stat(join(dir, 's1.sock'))).rejects.toThrow()
    await expect(raw('x')).rejects.toThrow()
  })
})
