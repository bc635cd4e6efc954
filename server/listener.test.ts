import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { describe, expect, it, onTestFinished } from 'vitest'
import Fastify from 'fastify'
import { WebSocket } from 'ws'
import {
  ConnectionTable,
  DEFAULT_LIMITS,
  Listener,
  type ConnectionLimits,
  type RequestProgress,
  type TrackedSocket,
} from './listener.ts'
import { parseArgs, UsageError } from './cli-args.ts'
import { FakeSpawner } from './test/fake-pty.ts'
import { buildTestApp } from './test/helpers.ts'
import { waitUntil } from './test/ws-client.ts'

const SESSION = 'clincus-0123abcd-1'

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => {
        resolve(body)
      })
    })
    req.on('error', reject)
    req.end()
  })
}

describe('Listener', () => {
  it('moves to a new port and releases the old one', async () => {
    const app = Fastify()
    app.get('/', async () => 'hi')
    await app.ready()
    const listener = new Listener(app.server)
    onTestFinished(async () => {
      await listener.close()
      await app.close()
      listener.destroySockets()
    })
    const first = await listener.listen(0, '127.0.0.1')
    expect(await get(first)).toBe('hi')
    const probe = new Listener(app.server)
    const free = await probe.listen(0, '127.0.0.1')
    await probe.close()
    const second = await listener.move(free)
    expect(second).toBe(free)
    expect(await get(second)).toBe('hi')
    await expect(get(first)).rejects.toThrow(/ECONNREFUSED/)
  })
})

class FakeSocket implements TrackedSocket {
  static #port = 40_000
  readonly remoteAddress = '127.0.0.1'
  readonly remotePort = FakeSocket.#port++
  destroyed = false
  readonly uid: number
  constructor(uid: number) {
    this.uid = uid
  }
  destroy(): void {
    this.destroyed = true
  }
}

const OWNER = 1000
const ATTACKER = 1001

function table(limits: Partial<ConnectionLimits>): {
  t: ConnectionTable<FakeSocket>
  identified: () => number
} {
  let identified = 0
  const t = new ConnectionTable<FakeSocket>({ ...DEFAULT_LIMITS, ...limits }, (sockets) => {
    identified++
    return new Map(sockets.map((s) => [s, `uid:${s.uid}`]))
  })
  return { t, identified: () => identified }
}

const request_ = (complete: boolean): RequestProgress => ({ complete })

describe('ConnectionTable (issue 10 row 5)', () => {
  it('leaves connections alone under the caps, without asking who holds them', () => {
    const { t, identified } = table({ maxWaiting: 16 })
    const all = Array.from({ length: 16 }, (_, i) => new FakeSocket(i % 2 ? OWNER : ATTACKER))
    for (const s of all) t.add(s, 0)
    expect(all.some((s) => s.destroyed)).toBe(false)
    expect(identified()).toBe(0)
  })

  it("closes the attacker's oldest waiting connections, never the owner's", () => {
    const { t, identified } = table({ maxWaiting: 16 })
    const owner = [new FakeSocket(OWNER), new FakeSocket(OWNER)]
    for (const s of owner) t.add(s, 0)
    const flood = Array.from({ length: 1000 }, () => new FakeSocket(ATTACKER))
    for (const [i, s] of flood.entries()) {
      t.add(s, i)
      // The owner connects in the middle of the flood, like a real page load would.
      if (i === 500) {
        owner.push(new FakeSocket(OWNER))
        t.add(owner[2] as FakeSocket, i)
      }
    }
    expect(owner.map((s) => s.destroyed)).toEqual([false, false, false])
    expect(t.waiting).toBe(16)
    const alive = flood.filter((s) => !s.destroyed)
    expect(alive).toEqual(flood.slice(-13))
    // Peers are named in batches, not per connection.
    expect(identified()).toBeGreaterThan(0)
    expect(identified()).toBeLessThan(150)
  })

  it('names a peer it cannot identify by its address', () => {
    const t = new ConnectionTable<FakeSocket>({ ...DEFAULT_LIMITS, maxWaiting: 2 }, () => new Map())
    const all = [new FakeSocket(OWNER), new FakeSocket(OWNER), new FakeSocket(OWNER)]
    for (const s of all) t.add(s, 0)
    expect(all.map((s) => s.destroyed)).toEqual([true, false, false])
    expect(t.clients().get('addr:127.0.0.1')).toEqual({ total: 2, waiting: 2 })
  })

  it('closes a connection without a complete header in time, keep-alive idle time included', () => {
    const { t } = table({ headersTimeoutMs: 10_000 })
    const silent = new FakeSocket(ATTACKER)
    const served = new FakeSocket(OWNER)
    t.add(silent, 0)
    t.add(served, 0)
    t.requestStarted(served, request_(true), 100)
    t.sweep(9_999)
    expect(silent.destroyed).toBe(false)
    t.sweep(10_000)
    expect(silent.destroyed).toBe(true)
    // A request in progress is not waiting for a header, however long it takes.
    t.sweep(60_000)
    expect(served.destroyed).toBe(false)
    t.requestDone(served, 60_000)
    t.sweep(69_999)
    expect(served.destroyed).toBe(false)
    t.sweep(70_000)
    expect(served.destroyed).toBe(true)
    expect(t.size).toBe(0)
  })

  it('closes a request whose body has not arrived in time', () => {
    const { t } = table({ requestTimeoutMs: 30_000 })
    const trickle = new FakeSocket(ATTACKER)
    const whole = new FakeSocket(OWNER)
    t.add(trickle, 0)
    t.add(whole, 0)
    t.requestStarted(trickle, request_(false), 0)
    t.requestStarted(whole, request_(true), 0)
    t.sweep(29_999)
    expect(trickle.destroyed).toBe(false)
    t.sweep(30_000)
    expect(trickle.destroyed).toBe(true)
    expect(whole.destroyed).toBe(false)
  })

  it('caps all connections: the largest holder loses its connections, the owner none', () => {
    const { t } = table({ maxConnections: 10 })
    const owner = [new FakeSocket(OWNER), new FakeSocket(OWNER)]
    for (const s of owner) {
      t.add(s, 0)
      t.upgraded(s)
    }
    const busy = Array.from({ length: 20 }, () => new FakeSocket(ATTACKER))
    for (const s of busy) {
      t.add(s, 0)
      t.requestStarted(s, request_(true), 0)
    }
    expect(t.size).toBe(10)
    expect(owner.some((s) => s.destroyed)).toBe(false)
    expect(busy.filter((s) => !s.destroyed)).toHaveLength(8)
  })
})

function halfRequest(
  port: number,
  path = '/',
): Promise<{ socket: Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `)
      const t0 = Date.now()
      resolve({
        socket,
        closed: new Promise((r) =>
          socket.once('close', () => {
            r(Date.now() - t0)
          }),
        ),
      })
    })
    socket.on('error', () => undefined)
    socket.once('error', reject)
  })
}

describe('Listener timeouts', () => {
  it('closes connections that never finish their request header, and serves others', async () => {
    const app = Fastify()
    app.get('/', async () => 'hi')
    await app.ready()
    const listener = new Listener(app.server, {
      limits: { headersTimeoutMs: 300, sweepIntervalMs: 50 },
    })
    onTestFinished(async () => {
      await listener.close()
      await app.close()
      listener.destroySockets()
    })
    const port = await listener.listen(0, '127.0.0.1')
    const slow = await Promise.all(Array.from({ length: 20 }, () => halfRequest(port)))
    onTestFinished(() => {
      for (const s of slow) s.socket.destroy()
    })
    expect(await get(port)).toBe('hi')
    const after = await Promise.all(slow.map((s) => s.closed))
    for (const ms of after) {
      expect(ms).toBeGreaterThanOrEqual(250)
      expect(ms).toBeLessThan(2000)
    }
    await waitUntil('the table to be empty', () => listener.connections.total === 0)
  })
})

describe('Listener and WebSocket upgrades', () => {
  it('closes a refused upgrade, never an accepted WebSocket', async () => {
    // Node leaves an upgrade's socket to whoever handles it: the security layer ends a refused
    // one after its 401, and the listener counts a connection as upgraded only once the
    // WebSocket server has it, so its header timeout would close a refused one too.
    const TOKEN = 'x'.repeat(32)
    const t = await buildTestApp({
      deps: { auth: { mode: 'token', token: TOKEN }, pty: new FakeSpawner() },
    })
    t.driver.addInstance(SESSION, {
      config: { 'user.clincus.managed': 'true', 'user.clincus.workspace': t.project },
    })
    const listener = new Listener(t.app.server, {
      limits: { headersTimeoutMs: 300, sweepIntervalMs: 50 },
      websockets: t.app.websocketServer,
    })
    onTestFinished(async () => {
      await listener.close()
      listener.destroySockets()
    })
    const port = await listener.listen(0, '127.0.0.1')
    const good = new WebSocket(`ws://127.0.0.1:${port}/ws/shell/${SESSION}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    })
    onTestFinished(() => {
      good.terminate()
    })
    await new Promise((resolve) => good.once('open', resolve))

    const refused = await halfRequest(port, `/ws/shell/${SESSION}`)
    let answer = ''
    refused.socket.on('data', (d: Buffer) => (answer += d.toString()))
    refused.socket.write(
      `x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    )
    const lived = await refused.closed
    expect(answer).toMatch(/^HTTP\/1\.1 401 /)
    expect(lived).toBeLessThan(2000)
    // A request that stalls is closed by the header timeout: the WebSocket outlived it.
    const stalled = await halfRequest(port, '/api/health')
    expect(await stalled.closed).toBeGreaterThanOrEqual(250)
    expect(good.readyState).toBe(WebSocket.OPEN)
    await waitUntil(
      'only the WebSocket to be left',
      () => listener.connections.total === 1 && listener.connections.waiting === 0,
    )
  })
})

describe('parseArgs', () => {
  it('parses serve options', () => {
    expect(parseArgs([])).toEqual({ kind: 'serve', host: '127.0.0.1', open: false, build: true })
    expect(parseArgs(['serve', '--port', '4000', '--host=::1', '--open', '--no-build'])).toEqual({
      kind: 'serve',
      port: 4000,
      host: '::1',
      open: true,
      build: false,
    })
    expect(parseArgs(['build', '--test'])).toEqual({
      kind: 'build',
      image: 'clincus-test',
      update: false,
    })
    expect(parseArgs(['build', '--update'])).toEqual({
      kind: 'build',
      image: 'clincus',
      update: true,
    })
  })

  it.each([['serve', '--port', 'x'], ['serve', '--port', '70000'], ['serve', '--bogus'], ['nope']])(
    'rejects %j',
    (...args) => {
      expect(() => parseArgs(args)).toThrow(UsageError)
    },
  )
})
