// One socket per session carries both the egress proxy and the agent hook channel (issue 16),
// told apart by the first byte: `{` is the hook channel, anything else the HTTP proxy. These
// tests attack the routing as a container would: first bytes one at a time, garbage, nothing at
// all, both channels at once on one socket, and a flood of each against the other's cap. (A
// plain-HTTP client here keeps its side open until the answer: the proxy, like before, aborts a
// request whose client half-closes.)
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { HookChannel, type ChannelLimits } from '../sessions/agent/channel.ts'
import { waitUntil } from '../test/ws-client.ts'
import { parseEntries, type Policy } from './policy.ts'
import { channelOf } from './proxy-connections.ts'
import { EgressProxy, type ProxyLimits } from './proxy.ts'
import { testSessionSockets } from './session-sockets.test-support.ts'

const log = pino({ level: 'silent' })
const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

async function upstreamServer(): Promise<number> {
  const server = http.createServer((req, res) => {
    res.end(`upstream saw ${req.method} ${req.url}`)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanup.push(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })
  return (server.address() as net.AddressInfo).port
}

async function setup(
  opts: {
    mode?: Policy['mode']
    allow?: string[]
    limits?: Partial<ProxyLimits>
    channel?: Partial<ChannelLimits>
  } = {},
) {
  const lines: Array<[string, string]> = []
  const channel = new HookChannel({
    log,
    limits: opts.channel ?? {},
    onLine: (s, l) => lines.push([s, l]),
  })
  const policy: Policy = {
    mode: opts.mode ?? 'allowlist',
    entries: parseEntries(opts.allow ?? []).entries,
    ownListeners: [],
  }
  const sockets = await testSessionSockets({
    log,
    policy,
    ...(opts.limits ? { limits: opts.limits } : {}),
    hooks: (s, socket, head) => {
      channel.accept(s, socket, head)
    },
  })
  cleanup.push(async () => {
    await sockets.dispose()
    await channel.dispose()
  })
  await sockets.open('a')
  await sockets.open('b')
  return { channel, lines, proxy: sockets.proxy, path: sockets.path }
}

interface Client {
  socket: net.Socket
  /** Everything received so far. */
  text: () => string
  closed: Promise<void>
}

function client(path: string): Client {
  const socket = net.connect(path)
  let out = ''
  socket.on('data', (d) => (out += d.toString('latin1')))
  socket.on('error', () => undefined)
  const closed = new Promise<void>((resolve) => {
    socket.once('close', () => {
      resolve()
    })
  })
  return { socket, text: () => out, closed }
}

/** Writes `parts` one by one, each after the previous reached the server (no sleeps). */
async function trickle(c: Client, parts: Array<string | Buffer>): Promise<void> {
  for (const part of parts)
    await new Promise<void>((resolve, reject) => {
      c.socket.write(part, (err) => {
        if (err) reject(err)
        else resolve()
      })
    })
}

const hookLine = (event: string): string => `{"hook_event_name":"${event}"}\n`

describe('one socket, two channels', () => {
  it('routes by the first byte only: `{` is the hook channel, anything else HTTP', () => {
    expect(channelOf(0x7b)).toBe('hook')
    for (const b of [0x43, 0x47, 0x00, 0x20, 0x0d, 0x0a, 0x5b, 0xff])
      expect(channelOf(b)).toBe('http')
  })

  it('first bytes one at a time: a hook line and a CONNECT each reach their own channel', async () => {
    const up = await upstreamServer()
    const t = await setup({ allow: [`127.0.0.1:${up}`] })
    const hook = client(t.path('a'))
    await trickle(hook, ['{', '"hook_event_name"', ':"Stop"}', '\n'])
    const req = `CONNECT 127.0.0.1:${up} HTTP/1.1\r\nHost: x\r\n\r\n`
    const tunnel = client(t.path('a'))
    await trickle(
      tunnel,
      [...Buffer.from(req)].map((b) => Buffer.from([b])),
    )
    await waitUntil('the tunnel', () => tunnel.text().includes('\r\n\r\n'))
    expect(tunnel.text()).toMatch(/^HTTP\/1\.1 200/)
    tunnel.socket.write('GET /t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    await tunnel.closed
    expect(tunnel.text()).toContain('upstream saw GET /t')
    await waitUntil('the hook line', () => t.lines.length === 1)
    expect(t.lines).toEqual([['a', '{"hook_event_name":"Stop"}']])
    hook.socket.destroy()
  })

  it('garbage goes to the HTTP proxy (400, closed) and never reaches the hook channel', async () => {
    const t = await setup()
    for (const bytes of [
      Buffer.from([0, 0xff, 0x7b, 0x0a]),
      Buffer.from(' {"hook_event_name":"Stop"}\n'),
      Buffer.from('\r\n\r\n'),
    ]) {
      const c = client(t.path('a'))
      c.socket.end(bytes)
      await c.closed
      expect(c.text() === '' || /^HTTP\/1\.1 400/.test(c.text()), c.text()).toBe(true)
    }
    expect(t.lines).toEqual([])
    expect(t.channel.counters('a')).toBeUndefined()
  })

  it('an empty connection closes and costs nothing; a silent one is closed at the first-byte deadline', async () => {
    const t = await setup({ limits: { firstByteTimeoutMs: 200 } })
    const empty = client(t.path('a'))
    empty.socket.end()
    await empty.closed
    expect(empty.text()).toBe('')
    const silent = client(t.path('a'))
    await waitUntil('pending', () => t.proxy.connections('a').pending === 1)
    await silent.closed
    await waitUntil('released', () => t.proxy.connections('a').pending === 0)
    expect(t.proxy.connections('a')).toEqual({ pending: 0, open: 0 })
    expect(t.lines).toEqual([])
  })

  it('silent connections past the cap close the oldest silent one; senders still get through', async () => {
    const up = await upstreamServer()
    const t = await setup({ allow: [`127.0.0.1:${up}`], limits: { maxConnectionsPerSession: 4 } })
    const silent = Array.from({ length: 4 }, () => client(t.path('a')))
    await waitUntil('pending', () => t.proxy.connections('a').pending === 4)
    const fifth = client(t.path('a'))
    await silent[0]?.closed
    fifth.socket.end(hookLine('Stop'))
    await waitUntil('the hook line', () => t.lines.length === 1)
    expect(t.proxy.connections('a').pending).toBeLessThanOrEqual(4)
    for (const s of silent) s.socket.destroy()
  })

  it('HTTP and hook lines on one socket at once: each is served, tagged with its session', async () => {
    const up = await upstreamServer()
    const t = await setup({ allow: [`127.0.0.1:${up}`] })
    const n = 20
    const requests = Array.from({ length: n }, async (_, i) => {
      const c = client(t.path('a'))
      c.socket.write(
        `GET http://127.0.0.1:${up}/r${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      )
      await c.closed
      return c.text()
    })
    const hooks = Array.from({ length: n }, async (_, i) => {
      const c = client(t.path(i % 2 ? 'a' : 'b'))
      c.socket.end(hookLine(`E${i}`))
      await c.closed
    })
    const answers = await Promise.all(requests)
    await Promise.all(hooks)
    answers.forEach((a, i) => {
      expect(a).toContain(`upstream saw GET /r${i}`)
    })
    await waitUntil('hook lines', () => t.lines.length === n)
    expect(t.lines.filter(([s]) => s === 'a')).toHaveLength(n / 2)
    expect(t.lines.filter(([s]) => s === 'b')).toHaveLength(n / 2)
  })

  it('a flood of tunnels up to the proxy cap leaves the hook channel served', async () => {
    const up = await upstreamServer()
    const t = await setup({ allow: [`127.0.0.1:${up}`], limits: { maxConnectionsPerSession: 5 } })
    const tunnels = Array.from({ length: 8 }, () => client(t.path('a')))
    for (const c of tunnels) c.socket.write(`CONNECT 127.0.0.1:${up} HTTP/1.1\r\nHost: x\r\n\r\n`)
    // Five are up; the rest are closed at once (the proxy's own cap).
    await waitUntil('the cap', () => t.proxy.connections('a').open === 5)
    await Promise.all(tunnels.slice(5).map((c) => c.closed))
    const hook = client(t.path('a'))
    hook.socket.end(hookLine('Stop'))
    await waitUntil('the hook line', () => t.lines.length === 1)
    for (const c of tunnels) c.socket.destroy()
  })

  it('a flood of hook connections up to the channel cap leaves the proxy served', async () => {
    const up = await upstreamServer()
    const t = await setup({ allow: [`127.0.0.1:${up}`], channel: { maxConnections: 3 } })
    const held = Array.from({ length: 6 }, () => client(t.path('a')))
    for (const c of held) c.socket.write('{')
    await waitUntil('the cap', () => t.channel.counters('a')?.refused === 3)
    expect(t.channel.counters('a')?.open).toBe(3)
    const req = client(t.path('a'))
    req.socket.write(
      `GET http://127.0.0.1:${up}/ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    )
    await req.closed
    expect(req.text()).toContain('upstream saw GET /ok')
    for (const c of held) c.socket.destroy()
  })

  it('mode none: an HTTP request is refused with 403 and a reason, never forwarded; hooks get through', async () => {
    const up = await upstreamServer()
    const t = await setup({ mode: 'none', allow: [`127.0.0.1:${up}`] })
    for (const req of [
      `CONNECT 127.0.0.1:${up} HTTP/1.1\r\nHost: x\r\n\r\n`,
      `GET http://127.0.0.1:${up}/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    ]) {
      const c = client(t.path('a'))
      c.socket.end(req)
      await c.closed
      expect(c.text()).toMatch(/^HTTP\/1\.1 403/)
      expect(c.text()).toContain('mode = "none"')
      expect(c.text()).not.toContain('upstream saw')
    }
    const hook = client(t.path('a'))
    hook.socket.end(hookLine('Stop'))
    await waitUntil('the hook line', () => t.lines.length === 1)
  })

  it('without a hook route, a `{` connection is closed at once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clincus-demux-'))
    const bare = new EgressProxy({
      log,
      hooks: { policy: () => null, upstream: () => null, record: () => undefined },
      relay: null,
    })
    cleanup.push(async () => {
      await bare.dispose()
      await rm(dir, { recursive: true, force: true })
    })
    await bare.open('a', join(dir, 'a.sock'))
    const c = client(join(dir, 'a.sock'))
    c.socket.write('{')
    await c.closed
    expect(c.text()).toBe('')
    expect(bare.connections('a')).toEqual({ pending: 0, open: 0 })
  })
})
