// Issue 14 at the bridge, over a real loopback WebSocket. Row 9: a PTY paused for flow control
// when its process exits is drained before the exit is reported, in every protocol. And the
// JSON framing's flow control: it has no acks, so the socket's own buffer is the bound. The PTY's side of the contract (the exit comes
// after the last byte, paused or not) is node-pty's, checked in spawner.test.ts; here the fake
// PTY keeps to it and the bridge must pass every byte on, then the exit, however slowly the
// client reads or acknowledges.
import type { AddressInfo } from 'node:net'
import { pino } from 'pino'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { WebSocket as RouteSocket } from '@fastify/websocket'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import {
  ackFrame,
  jsonMessage,
  Op,
  parseFrame,
  TERMINAL_SUBPROTOCOL,
} from '../../shared/ws/terminal.ts'
import { FakePty } from '../test/fake-pty.ts'
import { waitUntil } from '../test/ws-client.ts'
import { TerminalBridge } from './bridge.ts'

const FLOW = { high: 64 * 1024, low: 16 * 1024 }
// The reproduction: `head -c 1070000 /dev/zero | tr '\0' a; printf '\nTAIL\n'; exit`.
const BODY = Buffer.concat([Buffer.alloc(1_070_000, 0x61), Buffer.from('\nTAIL\n')])
const CHUNK = 4096

type Mode = 'raw' | 'v1' | 'json'

interface Received {
  output: Buffer[]
  exit: number | undefined
  afterExit: number
  close: Promise<number>
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

async function pair(mode: Mode, ack: 'never' | 'every-frame', opts: { attach?: boolean } = {}) {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    handleProtocols: (offered) =>
      offered.has(TERMINAL_SUBPROTOCOL) ? TERMINAL_SUBPROTOCOL : false,
  })
  await new Promise<void>((resolve) => wss.once('listening', resolve))
  const accepted = new Promise<TerminalBridge>((resolve) => {
    wss.once('connection', (server: RouteSocket) => {
      resolve(
        new TerminalBridge(server, {
          protocol: mode === 'v1' ? 'v1' : 'raw',
          log: pino({ level: 'silent' }),
          flow: FLOW,
          coalesce: { windowMs: 1, maxBytes: 16 * 1024 },
        }),
      )
    })
  })
  const { port } = wss.address() as AddressInfo
  const client = new WebSocket(
    `ws://127.0.0.1:${port}/`,
    mode === 'v1' ? [TERMINAL_SUBPROTOCOL] : [],
  )
  const got: Received = {
    output: [],
    exit: undefined,
    afterExit: 0,
    close: new Promise((resolve) =>
      client.once('close', (code) => {
        resolve(code)
      }),
    ),
  }
  client.on('message', (raw, isBinary) => {
    const data = toBuffer(raw)
    if (got.exit !== undefined) got.afterExit++
    if (mode === 'v1') {
      const f = parseFrame(data)
      if (f?.op === Op.EXIT) got.exit = f.code
      if (f?.op !== Op.OUTPUT) return
      got.output.push(Buffer.from(f.data))
      // Acks every frame, one event-loop turn late.
      if (ack === 'every-frame')
        setImmediate(() => {
          if (client.readyState === client.OPEN) client.send(ackFrame(f.data.length))
        })
      return
    }
    if (mode === 'json') {
      expect(isBinary).toBe(false)
      const m = JSON.parse(data.toString('utf8')) as { type: string; data?: string; code?: number }
      if (m.type === 'exit') got.exit = m.code
      if (m.type === 'output') got.output.push(Buffer.from(m.data ?? '', 'utf8'))
      return
    }
    got.output.push(data)
  })
  await new Promise<void>((resolve) =>
    client.once('open', () => {
      resolve()
    }),
  )
  const bridge = await accepted
  const pty = new FakePty('incus', [], { cols: 80, rows: 24, name: 'xterm-256color' })
  pty.holdWhilePaused = true
  if (opts.attach ?? true) bridge.attach(pty)
  if (mode === 'json') {
    client.send(jsonMessage({ type: 'resize', cols: 80, rows: 24 }))
    await waitUntil('the json framing', () => bridge.protocol === 'json')
  }
  onTestFinished(async () => {
    client.terminate()
    await bridge.done
    await new Promise<void>((resolve) => {
      wss.close(() => {
        resolve()
      })
    })
  })
  return { client, bridge, pty, got }
}

describe('TerminalBridge exit drain (issue 14 row 9)', () => {
  it.each([
    ['raw', 'never'],
    ['json', 'never'],
    ['v1', 'never'],
    ['v1', 'every-frame'],
  ] as const)(
    '%s, client acking %s: every byte of a paused PTY, then the exit code',
    { timeout: 30_000 },
    async (mode, ack) => {
      const { client, bridge, pty, got } = await pair(mode, ack)
      // The client reads nothing until the process has exited: the socket's buffer (raw, json)
      // or the missing acks (v1) pause the PTY, which holds the rest.
      if (mode !== 'v1') client.pause()
      // Output until the bridge pauses the PTY (on loopback the kernel's socket buffers take
      // some MiB first), then the 1,070,000 bytes and the tail, all held by the PTY.
      const a = Buffer.alloc(CHUNK, 0x61)
      let before = 0
      while (!pty.paused) {
        pty.emit(a)
        before += CHUNK
        if (before > 256 * 1024 * 1024) throw new Error('the PTY was never paused')
        // The bridge's coalescer and socket run as they would between PTY reads.
        if (before % (16 * CHUNK) === 0) await new Promise((r) => setImmediate(r))
      }
      for (let i = 0; i < BODY.length; i += CHUNK) pty.emit(BODY.subarray(i, i + CHUNK))
      expect(pty.heldBytes).toBe(BODY.length)
      pty.exit(0)
      if (mode !== 'v1') {
        await waitUntil('the exit to be handled', () => bridge.closed)
        client.resume()
      }
      expect(await got.close).toBe(4000)
      expect(got.afterExit).toBe(0)
      if (mode !== 'raw') expect(got.exit).toBe(0)
      const out = Buffer.concat(got.output)
      expect(out.length).toBe(before + BODY.length)
      expect(out.subarray(0, before).every((b) => b === 0x61)).toBe(true)
      expect(out.subarray(before).equals(BODY)).toBe(true)
    },
  )
})

describe('TerminalBridge json framing', () => {
  it('bounds what it buffers for a client that does not read: the PTY pauses, then resumes', async () => {
    const { client, bridge, pty, got } = await pair('json', 'never')
    client.pause()
    const a = Buffer.alloc(CHUNK, 0x61)
    let sent = 0
    while (!pty.paused) {
      pty.emit(a)
      sent += CHUNK
      if (sent > 256 * 1024 * 1024) throw new Error('the PTY was never paused')
      if (sent % (16 * CHUNK) === 0) await new Promise((r) => setImmediate(r))
    }
    // Held by the PTY (the kernel, for real), not by the server.
    for (let i = 0; i < 64; i++) pty.emit(a)
    expect(pty.heldBytes).toBe(64 * CHUNK)
    client.resume()
    await waitUntil('the PTY to resume', () => !pty.paused)
    await waitUntil('everything', () => Buffer.concat(got.output).length === sent + 64 * CHUNK)
    expect(bridge.protocol).toBe('json')
  })

  it('drops its answers to bad messages while the client does not read them', async () => {
    const { client, pty, got } = await pair('json', 'never')
    let errors = 0
    client.on('message', (d) => {
      if ((JSON.parse(toBuffer(d).toString('utf8')) as { type: string }).type === 'error') errors++
    })
    client.pause()
    // Unbounded, the answers would be some 200,000 × 120 bytes (24 MB) queued in the server.
    const frames = 200_000
    for (let i = 0; i < frames; i++) client.send('{"type":"x"}')
    client.send(jsonMessage({ type: 'input', data: 'after' }))
    await waitUntil('the frames to be read', () => pty.input === 'after', { timeoutMs: 60_000 })
    // Output after every answer: once it arrives, every answer that was sent has arrived.
    pty.emit('END')
    client.resume()
    await waitUntil('the output after the answers', () =>
      Buffer.concat(got.output).toString().endsWith('END'),
    )
    // What the kernel's socket buffers took before the bound applied, and nothing more.
    expect(errors).toBeLessThan(frames / 2)
  }, 90_000)

  it('refuses a terminal with an error message once the client spoke json', async () => {
    const { client, bridge } = await pair('json', 'never', { attach: false })
    const messages: unknown[] = []
    client.on('message', (d) => messages.push(JSON.parse(toBuffer(d).toString('utf8'))))
    const closed = new Promise<number>((resolve) =>
      client.once('close', (code) => {
        resolve(code)
      }),
    )
    bridge.reject(4409, 'session is stopped, not running')
    expect(await closed).toBe(4409)
    expect(messages).toEqual([{ type: 'error', message: 'session is stopped, not running' }])
  })
})
