// The hook channel under attack from a container: garbage, a 1 MiB line, a flood, too many
// connections. Each hits only the session whose socket it came through; the other session's
// lines still arrive, and the channel keeps serving.
import { mkdtemp, rm, stat } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { waitUntil } from '../../test/ws-client.ts'
import { HookChannel } from './channel.ts'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

async function setup(limits = {}) {
  const base = await mkdtemp(join(tmpdir(), 'clincus-agent-'))
  const lines: Array<[string, string]> = []
  const channel = new HookChannel({
    dir: join(base, 'agent'),
    log: pino({ level: 'silent' }),
    limits,
    onLine: (s, l) => lines.push([s, l]),
  })
  cleanup.push(async () => {
    await channel.dispose()
    await rm(base, { recursive: true, force: true })
  })
  await channel.open('a')
  await channel.open('b')
  return { channel, lines }
}

/** Connects to a session's socket; resolves when it closes (by either side). */
function connect(path: string): { socket: net.Socket; closed: Promise<void> } {
  const socket = net.connect(path)
  socket.on('error', () => undefined)
  const closed = new Promise<void>((resolve) => {
    socket.once('close', () => {
      resolve()
    })
  })
  return { socket, closed }
}

async function send(path: string, text: string | Buffer): Promise<void> {
  const { socket, closed } = connect(path)
  socket.end(text)
  await closed
}

describe('HookChannel', () => {
  it('one socket per session, mode 0600; lines are tagged by the socket they came through', async () => {
    const { channel, lines } = await setup()
    expect((await stat(channel.path('a'))).mode & 0o777).toBe(0o600)
    expect((await stat(join(channel.path('a'), '..'))).mode & 0o777).toBe(0o700)
    await send(channel.path('a'), '{"hook_event_name":"Stop","session":"b"}\npartial')
    await send(channel.path('b'), 'one\ntwo\n')
    await waitUntil('channel', () => lines.length === 3)
    expect(lines).toEqual([
      ['a', '{"hook_event_name":"Stop","session":"b"}'],
      ['b', 'one'],
      ['b', 'two'],
    ])
  })

  it('a 1 MiB line closes its connection without being buffered; the other session is served', async () => {
    const { channel, lines } = await setup()
    const { socket, closed } = connect(channel.path('a'))
    socket.write(Buffer.alloc(1024 * 1024, 0x41))
    await closed
    expect(channel.counters('a')?.tooLong).toBe(1)
    await send(channel.path('b'), 'fine\n')
    await send(channel.path('a'), 'after\n')
    await waitUntil('channel', () => lines.length === 2)
    expect(lines).toEqual([
      ['b', 'fine'],
      ['a', 'after'],
    ])
  })

  it('a flood is cut at the rate (the connection closed); the other session is not limited', async () => {
    const { channel, lines } = await setup({ burst: 10, linesPerSecond: 1 })
    await send(channel.path('a'), 'x\n'.repeat(10_000))
    expect(channel.counters('a')).toMatchObject({ lines: 10, dropped: 1 })
    await send(channel.path('b'), 'y\n'.repeat(5))
    await waitUntil('channel', () => lines.filter(([s]) => s === 'b').length === 5)
    expect(lines.filter(([s]) => s === 'a').length).toBe(10)
  })

  it('caps open connections per session; another session still connects', async () => {
    const { channel, lines } = await setup({ maxConnections: 2 })
    const held = [connect(channel.path('a')), connect(channel.path('a'))]
    for (const h of held) await new Promise((r) => h.socket.once('connect', r))
    await waitUntil('channel', () => channel.counters('a') !== undefined)
    const third = connect(channel.path('a'))
    await third.closed
    await waitUntil('channel', () => channel.counters('a')?.refused === 1)
    await send(channel.path('b'), 'ok\n')
    await waitUntil('channel', () => lines.length === 1)
    for (const h of held) {
      h.socket.destroy()
      await h.closed
    }
  })

  it('garbage bytes (NULs, invalid UTF-8) are just lines; a handler that throws does not stop it', async () => {
    const base = await mkdtemp(join(tmpdir(), 'clincus-agent-'))
    let n = 0
    const channel = new HookChannel({
      dir: join(base, 'agent'),
      log: pino({ level: 'silent' }),
      onLine: () => {
        n++
        throw new Error('boom')
      },
    })
    cleanup.push(async () => {
      await channel.dispose()
      await rm(base, { recursive: true, force: true })
    })
    await channel.open('a')
    await send(channel.path('a'), Buffer.from([0, 0xff, 0xfe, 0x0a, 0xc3, 0x28, 0x0a]))
    await waitUntil('channel', () => n === 2)
  })

  it('close removes the socket file; a stale file from a crash is replaced on open', async () => {
    const { channel } = await setup()
    const path = channel.path('a')
    await channel.close('a')
    await expect(stat(path)).rejects.toThrow()
    await channel.open('a')
    expect((await stat(path)).isSocket()).toBe(true)
  })

  it('a line sent one byte at a time holds its bytes, not a buffer object per byte', async () => {
    // A container can pace its writes so each byte arrives as its own chunk (1-byte buffers of
    // ~900 bytes each in the process): kept one per chunk, a line under the 64 KiB cap held
    // ~60 MB per connection, ~470 MB per session with its 8 connections.
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const { channel, lines } = await setup()
    const chunks = 40_000
    const writers = Array.from({ length: 4 }, async () => {
      const { socket } = connect(channel.path('a'))
      await new Promise<void>((resolve) =>
        socket.once('connect', () => {
          resolve()
        }),
      )
      for (let i = 0; i < chunks; i++) {
        socket.write('x')
        await new Promise((resolve) => setImmediate(resolve))
      }
      return socket
    })
    gc()
    const before = process.memoryUsage().heapUsed
    const sockets = await Promise.all(writers)
    await new Promise((resolve) => setTimeout(resolve, 200))
    gc()
    const grown = process.memoryUsage().heapUsed - before
    expect(grown, `${(grown / 1e6).toFixed(1)} MB`).toBeLessThan(8e6)
    // The line still arrives whole.
    sockets[0]?.end('\n')
    await waitUntil('the line', () => lines.length === 1)
    expect(lines[0]).toEqual(['a', 'x'.repeat(chunks)])
    for (const s of sockets) s.destroy()
  }, 30_000)
})
