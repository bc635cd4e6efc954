// The splice relay (issue 12, the throughput goal): a CONNECT tunnel that moved enough bytes is
// handed from Node to native/splice-relay.c. What must hold whichever carries it: every byte
// arrives exactly once and in order both ways, a half-close lets the other direction finish, the
// audit gets the bytes, and everything that closes a tunnel (policy recheck, idle timeout, the
// per-session cap, dispose, a crashed server) also closes a relayed one. The relay is one process
// the proxy starts once; it receives each tunnel's sockets over Node's IPC channel and forks a
// child per tunnel.
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { buildSpliceRelay } from '../../native/build.mjs'
import type { NetworkConnection } from '../../shared/schemas/network.ts'
import { waitUntil } from '../test/ws-client.ts'
import { parseEntries, type Policy } from './policy.ts'
import { EgressProxy, type ProxyLimits } from './proxy.ts'
import { RELAY_BINARY, RelayHost } from './relay.ts'

const MiB = 1024 * 1024
/**
 * Every test here starts processes: the first handoff starts the relay program and each relayed
 * tunnel forks a child of it; some also move 5-11 MiB. At load 12 on two cores a
 * Node start alone takes seconds, so vitest's default 5 s is a race with the scheduler, not a
 * limit on the product (speed is measured in `npm run bench`, not here).
 */
const PROCESS_TEST_TIMEOUT = 60_000
const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n'
let binDir: string
let relayBin: string

beforeAll(async () => {
  binDir = await mkdtemp(join(tmpdir(), 'clincus-relay-bin-'))
  const res = buildSpliceRelay(join(binDir, 'clincus-splice-relay'), { force: true })
  if (res.path === null) throw new Error(`the relay did not build: ${res.error}`)
  relayBin = res.path
}, PROCESS_TEST_TIMEOUT) // an optimising C compile, on a loaded machine

afterAll(async () => {
  await rm(binDir, { recursive: true, force: true })
})

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Every byte until end of stream. */
async function readAll(s: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = []
  s.on('data', (d: Buffer) => parts.push(d))
  s.resume()
  await once(s, 'end')
  return Buffer.concat(parts)
}

interface Rig {
  dir: string
  proxy: EgressProxy
  records: NetworkConnection[]
  origin: net.Server
  port: number
  /** What the origin received on each connection, once that connection's client ended. */
  received: Buffer[]
  setAllow(allow: string[]): void
}

const rigs: Rig[] = []

/**
 * A proxy with one session `s` and an origin on loopback; `serve` is the origin's behaviour per
 * connection (it gets the socket, half-open capable).
 */
async function rig(
  serve: (s: net.Socket, rig: Rig) => void,
  opts: { relay?: string | null; limits?: Partial<ProxyLimits>; logLines?: string[] } = {},
): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'clincus-relay-'))
  const origin = net.createServer({ allowHalfOpen: true })
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  const port = (origin.address() as net.AddressInfo).port
  let policy: Policy = {
    mode: 'allowlist',
    entries: parseEntries([`127.0.0.1:${port}`]).entries,
    ownListeners: [],
  }
  const records: NetworkConnection[] = []
  const proxy = new EgressProxy({
    log: opts.logLines
      ? pino({ level: 'warn' }, { write: (l: string) => void opts.logLines?.push(l) })
      : pino({ level: 'silent' }),
    hooks: {
      policy: () => policy,
      upstream: () => null,
      record: (_s, r) => records.push(r),
    },
    relay: opts.relay === undefined ? relayBin : opts.relay,
    limits: opts.limits,
  })
  await proxy.open('s', join(dir, 's.sock'))
  const r: Rig = {
    dir,
    proxy,
    records,
    origin,
    port,
    received: [],
    setAllow: (allow) => {
      policy = { mode: 'allowlist', entries: parseEntries(allow).entries, ownListeners: [] }
    },
  }
  origin.on('connection', (s) => {
    s.on('error', () => undefined)
    serve(s, r)
  })
  rigs.push(r)
  return r
}

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.proxy.dispose()
    await new Promise<void>((res) => {
      r.origin.close(() => {
        res()
      })
    })
    await rm(r.dir, { recursive: true, force: true })
  }
})

/** A CONNECT through the session socket; resolves once the tunnel is up. */
async function connect(r: Rig, allowHalfOpen = false): Promise<net.Socket> {
  const port = r.port
  const c = net.connect({ path: join(r.dir, 's.sock'), allowHalfOpen })
  c.on('error', () => undefined)
  c.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
  let head = Buffer.alloc(0)
  // A connection the proxy closes (the per-session cap) ends without an error: fail on that at
  // once, instead of waiting on a 'data' that never comes until the test times out.
  const closed = once(c, 'close').then(() => {
    throw new Error(`the proxy closed the connection before its answer (${String(head)})`)
  })
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = (await Promise.race([once(c, 'data'), closed])) as [Buffer]
    head = Buffer.concat([head, chunk])
  }
  closed.catch(() => undefined)
  c.pause()
  const end = head.indexOf('\r\n\r\n') + 4
  expect(head.subarray(0, end).toString('latin1')).toBe(ESTABLISHED)
  if (end < head.length) c.unshift(head.subarray(end))
  return c
}

/** Origin: reads the whole upload, then answers its sha256 (64 bytes) and `size` random bytes. */
function digestThenSend(size: number, sent: Buffer[]): (s: net.Socket, r: Rig) => void {
  return (s, r) => {
    void readAll(s).then((got) => {
      r.received.push(got)
      const body = randomBytes(size)
      sent.push(body)
      s.end(Buffer.concat([Buffer.from(sha(got)), body]))
    })
  }
}

/** Uploads `up`, half-closes, and reads the answer; checks both directions byte for byte. */
async function roundTrip(r: Rig, up: Buffer, sent: Buffer[]): Promise<void> {
  const c = await connect(r)
  const answer = readAll(c)
  c.end(up)
  const got = await answer
  expect(got.subarray(0, 64).toString()).toBe(sha(up))
  expect(sha(got.subarray(64))).toBe(sha(sent[0] ?? Buffer.alloc(0)))
  expect(got.length).toBe(64 + (sent[0]?.length ?? -1))
  if (!c.destroyed) c.destroy()
}

describe('the splice relay carries a CONNECT tunnel', { timeout: PROCESS_TEST_TIMEOUT }, () => {
  for (const [name, after] of [
    ['from the start', 0],
    ['after 256 KiB in Node', 256 * 1024],
  ] as const) {
    it(`moves 5 MiB up and 6 MiB down exactly, after the client half-closed (${name})`, async () => {
      const sent: Buffer[] = []
      const r = await rig(digestThenSend(6 * MiB, sent), { limits: { relayAfterBytes: after } })
      expect(await r.proxy.relayProgram()).toBe(relayBin)
      const up = randomBytes(5 * MiB)
      await roundTrip(r, up, sent)
      expect(r.received[0]?.equals(up)).toBe(true)
      expect(r.proxy.relayedTunnels).toBe(1)
      // The audit has every byte: the upload (after the CONNECT header) and the 200 + answer.
      const rec = await waitUntil('the tunnel recorded', () => r.records[0])
      expect(rec).toMatchObject({
        allowed: true,
        bytes_up: up.length,
        bytes_down: ESTABLISHED.length + 64 + 6 * MiB,
      })
    })
  }

  it('lets the origin finish first and still delivers what the client sends after (half-close)', async () => {
    const early = randomBytes(3 * MiB)
    let originGot: Promise<Buffer> | undefined
    const r = await rig(
      (s) => {
        originGot = readAll(s)
        // The origin says everything at once and shuts down its sending side; it keeps reading.
        s.end(early)
      },
      { limits: { relayAfterBytes: 0 } },
    )
    const c = await connect(r, true)
    const closed = once(c, 'close')
    const got = await readAll(c)
    expect(sha(got)).toBe(sha(early))
    // The tunnel is half-closed now; the client's upload still reaches the origin.
    const late = randomBytes(2 * MiB)
    c.end(late)
    const atOrigin = await waitUntil('the origin read the upload', () => originGot)
    expect(sha(atOrigin)).toBe(sha(late))
    await closed
    expect(r.proxy.relayedTunnels).toBe(1)
    const rec = await waitUntil('the tunnel recorded', () => r.records[0])
    expect(rec.bytes_up).toBe(late.length)
    expect(rec.bytes_down).toBe(ESTABLISHED.length + early.length)
  })

  it('keeps the bytes in Node, exactly, when the relay program is absent', async () => {
    const sent: Buffer[] = []
    const r = await rig(digestThenSend(3 * MiB, sent), {
      relay: join(binDir, 'no-such-relay'),
      limits: { relayAfterBytes: 0 },
    })
    expect(await r.proxy.relayProgram()).toBeNull()
    const up = randomBytes(3 * MiB)
    await roundTrip(r, up, sent)
    expect(r.proxy.relayedTunnels).toBe(0)
    const rec = await waitUntil('the tunnel recorded', () => r.records[0])
    expect(rec.bytes_up).toBe(up.length)
  })

  it('keeps the bytes exact when the relay fails to start, and stops handing over', async () => {
    const sent: Buffer[] = []
    // Executable, but its interpreter does not exist: the start fails with ENOENT.
    const { writeFile } = await import('node:fs/promises')
    const broken = join(binDir, 'broken-relay')
    await writeFile(broken, '#!/nonexistent/interpreter\n', { mode: 0o755 })
    const lines: string[] = []
    const r = await rig(digestThenSend(2 * MiB, sent), {
      relay: broken,
      limits: { relayAfterBytes: 0 },
      logLines: lines,
    })
    expect(await r.proxy.relayProgram()).toBe(broken)
    const up = randomBytes(2 * MiB)
    await roundTrip(r, up, sent)
    expect(r.received[0]?.equals(up)).toBe(true)
    // The tunnel stayed in Node, and so does every later one.
    expect(r.proxy.relayedTunnels).toBe(0)
    expect(await r.proxy.relayProgram()).toBeNull()
    const rec = await waitUntil('the tunnel recorded', () => r.records[0])
    expect(rec.bytes_up).toBe(up.length)
    expect(rec.bytes_down).toBe(ESTABLISHED.length + 64 + 2 * MiB)
    sent.length = 0
    await roundTrip(r, randomBytes(1 * MiB), sent)
    expect(r.proxy.relayedTunnels).toBe(0)
    expect(lines.filter((l) => l.includes('splice relay failed'))).toHaveLength(1)
  })

  it('leaves a tunnel that stays below the threshold in Node', async () => {
    const sent: Buffer[] = []
    const r = await rig(digestThenSend(1000, sent), { limits: { relayAfterBytes: 256 * 1024 } })
    await roundTrip(r, randomBytes(1000), sent)
    expect(r.proxy.relayedTunnels).toBe(0)
  })
})

/** Origin that echoes; a relayed tunnel stays open for as long as the client wants. */
const echo = (s: net.Socket): void => {
  s.pipe(s)
}

/** A tunnel the relay carries: one echo round trip after the handoff proves it runs. */
async function relayedTunnel(r: Rig): Promise<{ c: net.Socket; pid: number }> {
  const before = new Set(r.proxy.relayPids())
  const c = await connect(r)
  const pid = await waitUntil('a relay took the tunnel', () =>
    r.proxy.relayPids().find((p) => !before.has(p)),
  )
  c.resume()
  const back = once(c, 'data')
  // A tunnel that closes first (an idle timeout shorter than this round trip on a starved
  // machine) fails here as itself, not as a test timeout.
  const closed = once(c, 'close').then(() => {
    throw new Error('the relayed tunnel closed before the ping came back')
  })
  c.write('ping')
  expect(String(((await Promise.race([back, closed])) as [Buffer])[0])).toBe('ping')
  closed.catch(() => undefined)
  c.pause()
  return { c, pid }
}

describe('what closes a tunnel closes a relayed one', { timeout: PROCESS_TEST_TIMEOUT }, () => {
  it('a policy change that refuses the host ends the relay and records the tunnel', async () => {
    const r = await rig(echo, { limits: { relayAfterBytes: 0 } })
    const { c, pid } = await relayedTunnel(r)
    r.setAllow([])
    r.proxy.recheck('s')
    c.resume()
    await once(c, 'close')
    await waitUntil('the relay exited', () => !existsSync(`/proc/${pid}`))
    const rec = await waitUntil('the tunnel recorded', () => r.records[0])
    expect(rec.bytes_up).toBe(4)
    expect(rec.bytes_down).toBe(ESTABLISHED.length + 4)
  })

  it('a policy change that still allows the host leaves the relay running', async () => {
    const r = await rig(echo, { limits: { relayAfterBytes: 0 } })
    const { c, pid } = await relayedTunnel(r)
    r.proxy.recheck('s')
    c.resume()
    const back = once(c, 'data')
    c.write('again')
    expect(String(((await back) as [Buffer])[0])).toBe('again')
    expect(r.proxy.relayPids()).toContain(pid)
    c.destroy()
  })

  it('dispose stops every relay before it resolves', async () => {
    const r = await rig(echo, { limits: { relayAfterBytes: 0 } })
    const a = await relayedTunnel(r)
    const b = await relayedTunnel(r)
    await r.proxy.dispose()
    expect(existsSync(`/proc/${a.pid}`)).toBe(false)
    expect(existsSync(`/proc/${b.pid}`)).toBe(false)
    expect(r.proxy.relayPids()).toEqual([])
    expect(r.records).toHaveLength(2)
  })

  it('closing the session (mode none) ends its relayed tunnels', async () => {
    const r = await rig(echo, { limits: { relayAfterBytes: 0 } })
    const { c, pid } = await relayedTunnel(r)
    r.proxy.closeConnections('s')
    c.resume()
    await once(c, 'close')
    await waitUntil('the relay exited', () => !existsSync(`/proc/${pid}`))
  })

  it('the relay applies the idle timeout', async () => {
    const r = await rig(echo, { limits: { relayAfterBytes: 0, idleTimeoutMs: 300 } })
    const { c } = await relayedTunnel(r)
    c.resume()
    await once(c, 'close')
    const rec = await waitUntil('the tunnel recorded', () => r.records[0])
    expect(rec.bytes_up).toBe(4)
  })

  it('relayed tunnels count against the per-session cap', async () => {
    const r = await rig(echo, { limits: { relayAfterBytes: 0, maxConnectionsPerSession: 2 } })
    await relayedTunnel(r)
    await relayedTunnel(r)
    const third = net.connect(join(r.dir, 's.sock'))
    third.on('error', () => undefined)
    third.resume()
    await once(third, 'close')
    expect(r.proxy.relayPids()).toHaveLength(2)
  })
})

describe('the relay program', () => {
  it('is built under the name the server starts (the protocol version is in it)', async () => {
    // A program built from an older source keeps its older name, so a server speaking a newer
    // protocol never starts it (it would not answer, and tunnels would wait for it).
    const deps = await readFile(join(import.meta.dirname, '../../scripts/ensure-deps.mjs'), 'utf8')
    expect(deps).toContain(`'dist', 'native', '${RELAY_BINARY}'`)
    expect(RELAY_BINARY).toMatch(/^clincus-splice-relay-\d+$/)
  })
})

describe('the relay host', { timeout: PROCESS_TEST_TIMEOUT }, () => {
  it('does not cut the answer to a client whose end of stream was pending at the handoff', async () => {
    // The host's copy of a socket reads before its message arrives; an end of stream read then
    // must not make it shut down the sending side the relay still needs.
    const host = new RelayHost({
      binary: relayBin,
      onDeath: () => undefined,
      onFailed: () => undefined,
    })
    const front = net.createServer({ pauseOnConnect: true, allowHalfOpen: true })
    const back = net.createServer({ allowHalfOpen: true })
    await Promise.all([
      new Promise<void>((r) => front.listen(0, '127.0.0.1', r)),
      new Promise<void>((r) => back.listen(0, '127.0.0.1', r)),
    ])
    try {
      const a = net.connect({
        port: (front.address() as net.AddressInfo).port,
        allowHalfOpen: true,
      })
      const [b] = (await once(front, 'connection')) as [net.Socket]
      const t = net.connect({ port: (back.address() as net.AddressInfo).port, allowHalfOpen: true })
      const [o] = (await once(back, 'connection')) as [net.Socket]
      await once(t, 'connect')
      a.end('request')
      await once(a, 'finish')
      const answer = randomBytes(2 * MiB)
      const atOrigin = readAll(o).then((got) => {
        o.end(answer)
        return got
      })
      const relay = host.handOff({
        client: b,
        target: t,
        preUp: Buffer.alloc(0),
        preDown: Buffer.alloc(0),
        idleMs: 0,
      })
      expect(relay).not.toBeNull()
      const got = await readAll(a)
      expect(String(await atOrigin)).toBe('request')
      expect(sha(got)).toBe(sha(answer))
      expect((await relay?.done)?.end).toBe('eof')
    } finally {
      await host.dispose()
      front.close()
      back.close()
    }
  })
})

describe(
  'the relay speaks what Node asks on the channel',
  { timeout: PROCESS_TEST_TIMEOUT },
  () => {
    it('a listener whose accepted socket went to the relay closes while the relay runs', async () => {
      // Node's net.Server asks the process it sent a socket to whether its connections closed
      // (NODE_SOCKET_NOTIFY_CLOSE) and waits for the answer before 'close'; unanswered, closing a
      // session's listener would hang until the relay process ended.
      const host = new RelayHost({
        binary: relayBin,
        onDeath: () => undefined,
        onFailed: () => undefined,
      })
      const dir = await mkdtemp(join(tmpdir(), 'clincus-relay-close-'))
      const front = net.createServer({ pauseOnConnect: true, allowHalfOpen: true })
      const back = net.createServer({ allowHalfOpen: true }, echo)
      await Promise.all([
        new Promise<void>((r) => front.listen(join(dir, 'f.sock'), r)),
        new Promise<void>((r) => back.listen(0, '127.0.0.1', r)),
      ])
      try {
        const a = net.connect({ path: join(dir, 'f.sock'), allowHalfOpen: true })
        const [b] = (await once(front, 'connection')) as [net.Socket]
        const t = net.connect({
          port: (back.address() as net.AddressInfo).port,
          allowHalfOpen: true,
        })
        await once(t, 'connect')
        const relay = host.handOff({
          client: b,
          target: t,
          preUp: Buffer.alloc(0),
          preDown: Buffer.alloc(0),
          idleMs: 0,
        })
        expect(relay).not.toBeNull()
        const back1 = once(a, 'data')
        a.write('ping')
        expect(String(((await back1) as [Buffer])[0])).toBe('ping')
        await new Promise<void>((r) =>
          front.close(() => {
            r()
          }),
        )
        expect(host.pid).toBeDefined()
        expect(host.size).toBe(1)
        a.destroy()
        expect((await relay?.done)?.end).not.toBe('crash')
      } finally {
        await host.dispose()
        back.close()
        await rm(dir, { recursive: true, force: true })
      }
    })
  },
)

describe('no relay outlives a crashed server', { timeout: PROCESS_TEST_TIMEOUT }, () => {
  it('the relay process and its tunnels end when the server is killed with SIGKILL', async () => {
    // A stand-in server: a node process that starts the relay with an IPC channel, hands it a
    // tunnel (two loopback sockets) the way relay.ts does, reports the pids, and is then killed.
    const code = `
      const net = require('node:net'); const { spawn } = require('node:child_process');
      const host = spawn(${JSON.stringify(relayBin)}, [],
        { env: {}, stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json' });
      host.on('message', (m) => {
        if (m.type === 'started') process.stdout.write(host.pid + ' ' + m.pid + '\\n');
      });
      const srv = net.createServer(() => {}).listen(0, '127.0.0.1', () => {
        const a = net.connect(srv.address().port, '127.0.0.1');
        const b = net.connect(srv.address().port, '127.0.0.1');
        let n = 0; const go = () => { if (++n < 2) return;
          host.send({ type: 'start', id: 1, preUp: '', preDown: '', idleMs: 0 });
          host.send({ type: 'client', id: 1 }, a);
          host.send({ type: 'target', id: 1 }, b); };
        a.on('connect', go); b.on('connect', go);
      });`
    const parent = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
    onTestFinished(() => {
      if (parent.exitCode === null && parent.signalCode === null) parent.kill('SIGKILL')
    })
    const [line] = (await once(parent.stdout, 'data')) as [Buffer]
    const [hostPid, relayPid] = String(line).trim().split(' ').map(Number)
    expect(existsSync(`/proc/${String(hostPid)}`)).toBe(true)
    expect(existsSync(`/proc/${String(relayPid)}`)).toBe(true)
    parent.kill('SIGKILL')
    await once(parent, 'exit')
    await waitUntil('the relay process and its tunnel exited', () =>
      [hostPid, relayPid].every((pid) => !existsSync(`/proc/${String(pid)}`)),
    )
  })

  it('a killed relay process ends its tunnels; later ones stay in Node, logged once', async () => {
    const lines: string[] = []
    const r = await rig(echo, { limits: { relayAfterBytes: 0 }, logLines: lines })
    const { c, pid } = await relayedTunnel(r)
    const host = r.proxy.relayHostPid()
    expect(host).toBeDefined()
    process.kill(host ?? 0, 'SIGKILL')
    c.resume()
    await once(c, 'close')
    await waitUntil('the tunnel child exited', () => !existsSync(`/proc/${String(pid)}`))
    await waitUntil(
      'the proxy fell back to Node',
      async () => (await r.proxy.relayProgram()) === null,
    )
    // The next tunnels are carried by the server, byte for byte.
    for (let i = 0; i < 2; i++) {
      const t = await connect(r)
      t.resume()
      const data = randomBytes(1 * MiB)
      const got: Buffer[] = []
      t.on('data', (d: Buffer) => got.push(d))
      t.write(data)
      await waitUntil('the echo came back', () => Buffer.concat(got).length >= data.length)
      expect(sha(Buffer.concat(got))).toBe(sha(data))
      t.destroy()
    }
    expect(r.proxy.relayedTunnels).toBe(1)
    expect(lines.filter((l) => l.includes('splice relay failed'))).toHaveLength(1)
  })
})

describe(
  'what the container does cannot upset the relay',
  { timeout: PROCESS_TEST_TIMEOUT },
  () => {
    it('a client that closes at once after the CONNECT ends its relay, recorded', async () => {
      const r = await rig(echo, { limits: { relayAfterBytes: 0 } })
      const c = await connect(r)
      c.destroy()
      const rec = await waitUntil('the tunnel recorded', () => r.records[0])
      expect(rec.allowed).toBe(true)
      await waitUntil('no relay left', () => r.proxy.relayPids().length === 0)
      // The relay still serves the next tunnel.
      await relayedTunnel(r)
    })

    it('a stop reaches a relay in the middle of a transfer, and one whose client never reads', async () => {
      // The origin sends without end: one client reads it all, the other never reads.
      const chunk = randomBytes(MiB)
      const r = await rig(
        (s) => {
          const pump = (): void => {
            while (!s.destroyed && s.write(chunk));
            if (!s.destroyed) s.once('drain', pump)
          }
          pump()
        },
        { limits: { relayAfterBytes: 0 } },
      )
      const reader = await connect(r)
      const idle = await connect(r)
      let got = 0
      reader.on('data', (d: Buffer) => {
        got += d.length
      })
      reader.resume()
      await waitUntil('both tunnels relayed', () => r.proxy.relayPids().length === 2)
      await waitUntil('bytes are flowing', () => got > 8 * MiB)
      const pids = r.proxy.relayPids()
      r.setAllow([])
      r.proxy.recheck('s')
      idle.resume()
      await Promise.all([once(reader, 'close'), once(idle, 'close')])
      await waitUntil('both relays exited', () =>
        pids.every((pid) => !existsSync(`/proc/${String(pid)}`)),
      )
      await waitUntil('both tunnels recorded', () => r.records.length === 2 || undefined)
    })

    it('carries many tunnels at once, each byte for byte', async () => {
      const r = await rig(echo, { limits: { relayAfterBytes: 0 } })
      const n = 16
      await Promise.all(
        Array.from({ length: n }, async () => {
          const c = await connect(r)
          const data = randomBytes(512 * 1024)
          const got: Buffer[] = []
          c.on('data', (d: Buffer) => got.push(d))
          c.resume()
          c.write(data)
          await waitUntil('the echo came back', () => Buffer.concat(got).length >= data.length)
          expect(sha(Buffer.concat(got))).toBe(sha(data))
          c.destroy()
        }),
      )
      expect(r.proxy.relayedTunnels).toBe(n)
      await waitUntil('every tunnel recorded', () => r.records.length === n || undefined)
      await waitUntil('no relay left', () => r.proxy.relayPids().length === 0)
    })
  },
)
