// Red-team pass (issue 12): removing an entry from `[network] allow` must also end the tunnels it
// allowed. A prompt-injected agent opens a CONNECT tunnel while a host is allowed and keeps using
// it (HTTP keep-alive, a WebSocket, HTTP/2) after the user took the host out again.
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
let policy: Policy
const origins: http.Server[] = []
const ports: number[] = []

function setPolicy(allow: string[]): void {
  policy = { mode: 'allowlist', entries: parseEntries(allow).entries, ownListeners: [] }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clincus-egress-recheck-'))
  for (let i = 0; i < 2; i++) {
    const o = http.createServer((req, res) => res.end(`origin ${i} ${req.url ?? ''}`))
    await new Promise<void>((r) => o.listen(0, '127.0.0.1', r))
    origins.push(o)
    ports.push((o.address() as net.AddressInfo).port)
  }
  setPolicy(ports.map((p) => `127.0.0.1:${p}`))
  proxy = new EgressProxy({
    log: pino({ level: 'silent' }),
    hooks: { policy: () => policy, upstream: () => null, record: () => undefined },
  })
  await proxy.open('s', join(dir, 's.sock'))
})

afterEach(async () => {
  await proxy.dispose()
  for (const o of origins.splice(0)) {
    o.closeAllConnections()
    await new Promise<void>((r) =>
      o.close(() => {
        r()
      }),
    )
  }
  ports.length = 0
  await rm(dir, { recursive: true, force: true })
})

/** A CONNECT tunnel kept open, with a way to send one keep-alive request through it. */
async function openTunnel(port: number): Promise<{
  socket: net.Socket
  get(path: string): Promise<string>
  closed: Promise<void>
}> {
  const socket = net.connect(join(dir, 's.sock'))
  const closed = new Promise<void>((r) =>
    socket.once('close', () => {
      r()
    }),
  )
  socket.on('error', () => undefined)
  let buf = ''
  let waiter: ((s: string) => void) | null = null
  socket.on('data', (d) => {
    buf += d.toString('latin1')
    if (waiter && /\r\n\r\n[^]*origin/.test(buf)) {
      const w = waiter
      waiter = null
      const out = buf
      buf = ''
      w(out)
    }
  })
  await new Promise<void>((resolve) => {
    socket.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`)
    const check = (): void => {
      if (buf.includes('\r\n\r\n')) {
        expect(buf).toMatch(/^HTTP\/1.1 200/)
        buf = ''
        socket.off('data', check)
        resolve()
      }
    }
    socket.on('data', check)
  })
  return {
    socket,
    closed,
    get: (path) =>
      new Promise((resolve) => {
        waiter = resolve
        socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
      }),
  }
}

describe('egress proxy: a policy change re-checks open connections', () => {
  it('closes an open tunnel whose entry was removed, and keeps the others', async () => {
    const keep = await openTunnel(ports[0] ?? 0)
    const drop = await openTunnel(ports[1] ?? 0)
    expect(await keep.get('/a')).toContain('origin 0 /a')
    expect(await drop.get('/b')).toContain('origin 1 /b')
    setPolicy([`127.0.0.1:${ports[0] ?? 0}`])
    proxy.recheck('s')
    await drop.closed
    expect(await keep.get('/c')).toContain('origin 0 /c')
    keep.socket.destroy()
  })
})
