// Issue 10 row 7: terminal input backpressure, at the bridge. A PTY whose process does not read
// keeps what it is given in memory (node-pty queues it); the bridge must stop reading the socket
// past a bound instead, and read again once the PTY has taken the input.
import type { AddressInfo } from 'node:net'
import { pino } from 'pino'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { WebSocket as RouteSocket } from '@fastify/websocket'
import { WebSocket, WebSocketServer } from 'ws'
import { inputFrame, TERMINAL_SUBPROTOCOL } from '../../shared/ws/terminal.ts'
import { FakePty } from '../test/fake-pty.ts'
import { waitUntil } from '../test/ws-client.ts'
import { TerminalBridge } from './bridge.ts'

const HIGH = 64 * 1024
const LOW = 16 * 1024
const FRAME = 16 * 1024
const FRAMES = 128 // 2 MiB in all, 32 times the bound

async function pair(protocol: 'raw' | 'v1'): Promise<{
  server: RouteSocket
  client: WebSocket
  bridge: TerminalBridge
  pty: FakePty
}> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    handleProtocols: (offered) =>
      offered.has(TERMINAL_SUBPROTOCOL) ? TERMINAL_SUBPROTOCOL : false,
  })
  await new Promise<void>((resolve) => wss.once('listening', resolve))
  const accepted = new Promise<{ server: RouteSocket; bridge: TerminalBridge }>((resolve) => {
    wss.once('connection', (server: RouteSocket) => {
      const bridge = new TerminalBridge(server, {
        protocol,
        log: pino({ level: 'silent' }),
        inputFlow: { high: HIGH, low: LOW },
      })
      resolve({ server, bridge })
    })
  })
  const { port } = wss.address() as AddressInfo
  const client = new WebSocket(
    `ws://127.0.0.1:${port}/`,
    protocol === 'v1' ? [TERMINAL_SUBPROTOCOL] : [],
  )
  const { server, bridge } = await accepted
  const pty = new FakePty('incus', [], { cols: 80, rows: 24, name: 'xterm-256color' })
  pty.reading = false
  bridge.attach(pty)
  await new Promise<void>((resolve) =>
    client.once('open', () => {
      resolve()
    }),
  )
  onTestFinished(async () => {
    client.terminate()
    await bridge.done
    await new Promise<void>((resolve) => {
      wss.close(() => {
        resolve()
      })
    })
  })
  return { server, client, bridge, pty }
}

function chunk(i: number): Buffer {
  return Buffer.alloc(FRAME, 0x41 + (i % 26))
}

describe('TerminalBridge input backpressure', () => {
  it.each(['raw', 'v1'] as const)(
    '%s: stops reading the socket past the bound and reads again once the PTY drains',
    async (protocol) => {
      const { server, client, bridge, pty } = await pair(protocol)
      for (let i = 0; i < FRAMES; i++)
        client.send(protocol === 'v1' ? inputFrame(chunk(i)) : chunk(i), { binary: true })

      await waitUntil('the socket to be paused', () => server.isPaused && bridge.inputPaused)
      // What the PTY was given stops near the bound: the bound, plus what one socket read
      // already held when the bridge paused.
      expect(pty.writtenBytes).toBeLessThan(HIGH + 256 * 1024)
      expect(pty.writtenBytes).toBeLessThan(FRAME * FRAMES)

      // The process reads a little at a time: every pause is lifted again, nothing is lost.
      let cycles = 0
      while (pty.writtenBytes < FRAME * FRAMES) {
        await waitUntil('the input to stop or complete', () => {
          return bridge.inputPaused || pty.writtenBytes === FRAME * FRAMES
        })
        expect(pty.pendingInput).toBeLessThan(HIGH + 256 * 1024)
        pty.drain()
        cycles++
      }
      expect(cycles).toBeGreaterThan(3)
      expect(
        Buffer.concat(pty.written).equals(
          Buffer.concat(Array.from({ length: FRAMES }, (_, i) => chunk(i))),
        ),
      ).toBe(true)
      pty.drain()
      await waitUntil('reading to resume', () => !server.isPaused && !bridge.inputPaused)

      // The connection still works both ways.
      pty.reading = true
      client.send(protocol === 'v1' ? inputFrame('ls\r') : 'ls\r')
      await waitUntil('the next input', () => pty.input.endsWith('ls\r'))
    },
  )

  it('resumes the socket when the PTY exits while input is paused, so the close completes', async () => {
    const { client, bridge, pty } = await pair('raw')
    for (let i = 0; i < FRAMES; i++) client.send(chunk(i), { binary: true })
    await waitUntil('the socket to be paused', () => bridge.inputPaused)
    const closed = new Promise<number>((resolve) =>
      client.once('close', (code) => {
        resolve(code)
      }),
    )
    pty.exit(0)
    expect(await closed).toBe(4000)
    await bridge.done
    expect(bridge.inputPaused).toBe(false)
  })
})
