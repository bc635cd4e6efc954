import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import {
  ackFrame,
  CloseCode,
  inputFrame,
  Op,
  parseFrame,
  resizeFrame,
  type ParsedFrame,
} from '../../shared/ws/terminal.ts'
import type { RealtimeOptions } from '../app.ts'
import { FakeSpawner } from '../test/fake-pty.ts'
import { buildTestApp } from '../test/helpers.ts'
import { TerminalClient, waitUntil } from '../test/ws-client.ts'

const ID = 'clincus-0123abcd-1'

async function setup(opts: { status?: string; realtime?: RealtimeOptions } = {}) {
  const spawner = new FakeSpawner()
  const t = await buildTestApp({
    deps: {
      pty: spawner,
      realtime: {
        ...opts.realtime,
        terminal: { coalesce: { windowMs: 1, maxBytes: 64 * 1024 }, ...opts.realtime?.terminal },
      },
    },
  })
  t.driver.addInstance(ID, {
    status: opts.status ?? 'Running',
    config: { 'user.clincus.managed': 'true', 'user.clincus.workspace': t.project },
  })
  return { ...t, spawner }
}

type T = Awaited<ReturnType<typeof setup>>

interface Client {
  ws: Awaited<ReturnType<T['app']['injectWS']>>
  frames: Array<{ data: Buffer; binary: boolean }>
  closed: Promise<{ code: number; reason: string }>
}

async function connect(t: T, path: string, protocol?: string): Promise<Client> {
  const frames: Client['frames'] = []
  let onClose: (c: { code: number; reason: string }) => void = () => undefined
  const closed = new Promise<{ code: number; reason: string }>((r) => (onClose = r))
  const ws = await t.app.injectWS(
    path,
    protocol ? { headers: { 'sec-websocket-protocol': protocol } } : {},
    {
      onInit: (w) => {
        w.on('message', (data: Buffer, binary: boolean) => frames.push({ data, binary }))
        w.on('close', (code: number, reason: Buffer) => {
          onClose({ code, reason: reason.toString() })
        })
      },
    },
  )
  return { ws, frames, closed }
}

const text = (c: Client): string => Buffer.concat(c.frames.map((f) => f.data)).toString()
const parsed = (c: Client): ParsedFrame[] =>
  c.frames.map((f) => parseFrame(f.data)).filter((f): f is ParsedFrame => f !== null)

describe('/ws/terminal/{id}', () => {
  it('attaches to the tmux session as the code user and speaks the raw protocol', async () => {
    const t = await setup()
    const c = await connect(t, `/ws/terminal/${ID}?cols=120&rows=40`)
    await waitUntil('the PTY', () => t.spawner.spawned.length === 1)
    const pty = t.spawner.last
    expect(pty.file).toBe('incus')
    expect(pty.args).toEqual(
      expect.arrayContaining(['exec', ID, '--user', '1000', '--env', 'LANG=C.UTF-8']),
    )
    expect(pty.args.slice(pty.args.indexOf('--') + 1)).toEqual([
      'tmux',
      '-u',
      'attach-session',
      '-t',
      `=clincus-${ID}`,
    ])
    expect(pty.opts).toMatchObject({ cols: 120, rows: 40, name: 'xterm-256color' })

    c.ws.send('hello\r')
    c.ws.send(Buffer.from([0x1b, 0x5b, 0x41]), { binary: true })
    await waitUntil('the input', () => pty.input === 'hello\r\x1b[A')

    // A character split across two PTY reads still arrives whole, in a text frame.
    const emoji = Buffer.from('🎉')
    pty.emit(Buffer.concat([Buffer.from('ok '), emoji.subarray(0, 1)]))
    pty.emit(emoji.subarray(1))
    await waitUntil('the output', () => text(c) === 'ok 🎉')
    expect(c.frames.every((f) => !f.binary)).toBe(true)
    for (const f of c.frames) expect(Buffer.from(f.data.toString()).equals(f.data)).toBe(true)

    pty.exit(3)
    expect(await c.closed).toEqual({ code: CloseCode.EXITED, reason: 'exited with code 3' })
  })

  it('speaks clincus.v1: output frames, resize, exit code, and acks drive flow control', async () => {
    const t = await setup({ realtime: { terminal: { flow: { high: 1000, low: 100 } } } })
    const c = await connect(t, `/ws/terminal/${ID}`, 'clincus.v1')
    await waitUntil('the PTY', () => t.spawner.spawned.length === 1)
    const pty = t.spawner.last
    c.ws.send(resizeFrame(132, 43))
    c.ws.send(inputFrame('ls\r'))
    await waitUntil('the input', () => pty.input === 'ls\r')
    expect(pty.resizes).toEqual([[132, 43]])

    pty.emit(Buffer.alloc(600, 0x61))
    pty.emit(Buffer.alloc(600, 0x62))
    await waitUntil('the output', () =>
      parsed(c).some((f) => f.op === Op.OUTPUT && f.data.includes(0x62)),
    )
    expect(pty.paused).toBe(true) // 1200 unacknowledged > 1000
    c.ws.send(ackFrame(600))
    await new Promise((r) => setImmediate(r))
    expect(pty.paused).toBe(true) // 600 left: above the low mark
    c.ws.send(ackFrame(600))
    await waitUntil('the resume', () => !pty.paused)

    pty.exit(0, 2)
    const closed = await c.closed
    expect(closed.code).toBe(CloseCode.EXITED)
    expect(parsed(c).at(-1)).toEqual({ op: Op.EXIT, code: 130 })
  })

  it('clincus.v1: refuses text frames and malformed frames with an error and 4400', async () => {
    const t = await setup()
    const c = await connect(t, `/ws/terminal/${ID}`, 'clincus.v1')
    await waitUntil('the PTY', () => t.spawner.spawned.length === 1)
    c.ws.send('not binary')
    expect((await c.closed).code).toBe(CloseCode.BAD_REQUEST)
    expect(parsed(c)).toEqual([{ op: Op.ERROR, message: 'clincus.v1 takes binary frames only' }])
    await waitUntil('the PTY to be killed', () => t.spawner.last.exited)

    const d = await connect(t, `/ws/terminal/${ID}`, 'clincus.v1')
    d.ws.send(resizeFrame(0, 10))
    expect((await d.closed).code).toBe(CloseCode.BAD_REQUEST)
  })

  it('queues input that arrives while the session is being looked up', async () => {
    const t = await setup()
    let release: () => void = () => undefined
    const held = new Promise<void>((r) => (release = r))
    t.driver.gate = async (method) => {
      if (method === 'getInstance') await held
    }
    const c = await connect(t, `/ws/terminal/${ID}`, 'clincus.v1')
    c.ws.send(inputFrame('early'))
    c.ws.send(resizeFrame(100, 30))
    await waitUntil('the lookup to start', () => t.driver.callsOf('getInstance').length === 1)
    expect(t.spawner.spawned).toHaveLength(0)
    release()
    await waitUntil('the PTY', () => t.spawner.spawned.length === 1)
    await waitUntil('the queued input', () => t.spawner.last.input === 'early')
    expect(t.spawner.last.resizes).toEqual([[100, 30]])
    c.ws.close()
  })

  it.each([
    [
      'not one of our names',
      '/ws/terminal/other-container',
      CloseCode.NOT_FOUND,
      'session not found',
    ],
    [
      'unknown session',
      '/ws/terminal/clincus-ffffffff-1',
      CloseCode.NOT_FOUND,
      'session not found',
    ],
    [
      'a bad size',
      `/ws/terminal/${ID}?cols=abc`,
      CloseCode.BAD_REQUEST,
      'cols and rows must be integers from 1 to 1000',
    ],
    [
      'a size too large',
      `/ws/shell/${ID}?rows=5000`,
      CloseCode.BAD_REQUEST,
      'cols and rows must be integers from 1 to 1000',
    ],
  ])('refuses %s with a close code and reason', async (_name, path, code, reason) => {
    const t = await setup()
    const c = await connect(t, path)
    expect(await c.closed).toEqual({ code, reason })
    expect(t.spawner.spawned).toHaveLength(0)
  })

  it('never asks incus about a name that is not ours', async () => {
    const t = await setup()
    const c = await connect(t, '/ws/terminal/not-ours')
    await c.closed
    expect(t.driver.callsOf('getInstance')).toHaveLength(0)
  })

  it('refuses a stopped session (4409) and reports it in an ERROR frame on v1', async () => {
    const t = await setup({ status: 'Stopped' })
    const c = await connect(t, `/ws/terminal/${ID}`, 'clincus.v1')
    expect(await c.closed).toEqual({
      code: CloseCode.NOT_RUNNING,
      reason: 'session is stopped, not running',
    })
    expect(parsed(c)).toEqual([{ op: Op.ERROR, message: 'session is stopped, not running' }])
  })

  it('answers 1011 when incus cannot be asked', async () => {
    const t = await setup()
    t.driver.failOn('getInstance', 'Error: connection refused')
    const c = await connect(t, `/ws/terminal/${ID}`)
    expect(await c.closed).toEqual({
      code: CloseCode.INTERNAL,
      reason: 'incus is unavailable; try again',
    })
  })

  it('caps the terminals per session', async () => {
    const t = await setup({ realtime: { maxTerminalsPerSession: 2 } })
    await connect(t, `/ws/terminal/${ID}`)
    await connect(t, `/ws/shell/${ID}`)
    await waitUntil('two PTYs', () => t.terminals.count(ID) === 2)
    const third = await connect(t, `/ws/terminal/${ID}`)
    expect((await third.closed).code).toBe(CloseCode.TOO_MANY)
  })

  it('kills the PTY when the viewer leaves (SIGHUP, then SIGKILL if it hangs)', async () => {
    const t = await setup({ realtime: { terminal: { killGraceMs: 20 } } })
    // A real socket: injectWS's in-memory stream never reports the client's close to the server.
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = t.app.server.address() as AddressInfo
    const c = new TerminalClient(`ws://127.0.0.1:${port}/ws/terminal/${ID}`)
    await c.opened
    await waitUntil('the PTY', () => t.spawner.spawned.length === 1)
    const pty = t.spawner.last
    pty.exitOnHup = false
    await c.close()
    await waitUntil('the SIGKILL', () => pty.signals.includes('SIGKILL'))
    expect(pty.signals).toEqual(['SIGHUP', 'SIGKILL'])
    await waitUntil('the terminal to be released', () => t.terminals.count() === 0)
  })
})

describe('/ws/shell/{id}', () => {
  it('runs a login shell as the code user in the workspace', async () => {
    const t = await setup()
    await connect(t, `/ws/shell/${ID}`)
    await waitUntil('the PTY', () => t.spawner.spawned.length === 1)
    const args = t.spawner.last.args
    expect(args).toEqual(expect.arrayContaining(['--cwd', '/workspace', '--env', 'USER=code']))
    expect(args.slice(args.indexOf('--') + 1)).toEqual(['bash', '--login'])
  })
})

describe('terminal input backpressure (issue 10 row 7)', () => {
  const FRAME = 16 * 1024
  const FRAMES = 64
  const chunk = (i: number): Buffer => Buffer.alloc(FRAME, 0x61 + (i % 26))

  it.each([
    ['/ws/terminal', 'raw'],
    ['/ws/terminal', 'clincus.v1'],
    ['/ws/shell', 'raw'],
    ['/ws/shell', 'clincus.v1'],
  ] as const)(
    '%s (%s): stops taking input while the PTY does not read, and delivers all of it after',
    async (route, protocol) => {
      const t = await setup({
        realtime: { terminal: { inputFlow: { high: 64 * 1024, low: 16 * 1024 } } },
      })
      const c = await connect(t, `${route}/${ID}`, protocol === 'raw' ? undefined : protocol)
      await waitUntil('the PTY', () => t.spawner.spawned.length === 1)
      const pty = t.spawner.last
      pty.reading = false
      for (let i = 0; i < FRAMES; i++)
        c.ws.send(protocol === 'raw' ? chunk(i) : inputFrame(chunk(i)), { binary: true })
      await waitUntil('input to be paused', () => t.terminals.inputPaused() === 1)
      expect(pty.writtenBytes).toBeLessThan(FRAME * FRAMES)
      while (pty.writtenBytes < FRAME * FRAMES) {
        await waitUntil(
          'input to pause again or complete',
          () => t.terminals.inputPaused() === 1 || pty.writtenBytes === FRAME * FRAMES,
        )
        expect(pty.pendingInput).toBeLessThanOrEqual(64 * 1024 + 2 * FRAME)
        pty.drain()
      }
      const sent = Buffer.concat(Array.from({ length: FRAMES }, (_, i) => chunk(i)))
      expect(Buffer.concat(pty.written).equals(sent)).toBe(true)
      await waitUntil('input to flow again', () => t.terminals.inputPaused() === 0)
    },
  )
})

/** The JSON messages a client of the original dashboard's framing received, in order. */
const messages = (c: Client): Array<Record<string, unknown>> =>
  c.frames.map((f) => {
    expect(f.binary).toBe(false)
    return JSON.parse(f.data.toString('utf8')) as Record<string, unknown>
  })
const jsonOutput = (c: Client): string =>
  messages(c)
    .filter((m) => m.type === 'output')
    .map((m) => String(m.data))
    .join('')

describe('the original dashboard JSON framing (third protocol)', () => {
  it('is recognised from the first frame and drives a session: input, resize, output, exit', async () => {
    const t = await setup()
    const c = await connect(t, `/ws/terminal/${ID}`)
    await waitUntil('the PTY', () => t.spawner.spawned.length === 1)
    const pty = t.spawner.last
    // The original client's first message: its size.
    c.ws.send(JSON.stringify({ type: 'resize', cols: 132, rows: 43 }))
    c.ws.send(JSON.stringify({ type: 'input', data: 'ls -l é\r' }))
    await waitUntil('the input', () => pty.input === 'ls -l é\r')
    expect(pty.resizes).toEqual([[132, 43]])
    // Never typed into the pane as text.
    expect(pty.input).not.toContain('resize')

    // A character split across two PTY reads arrives whole, as a valid string.
    const emoji = Buffer.from('🎉')
    pty.emit(Buffer.concat([Buffer.from('\x1b[1mok '), emoji.subarray(0, 2)]))
    pty.emit(emoji.subarray(2))
    await waitUntil('the output', () => jsonOutput(c) === '\x1b[1mok 🎉')
    pty.exit(3)
    expect(await c.closed).toEqual({ code: CloseCode.EXITED, reason: 'exited with code 3' })
    expect(messages(c).at(-1)).toEqual({ type: 'exit', code: 3 })
    expect(messages(c).every((m) => ['output', 'exit'].includes(String(m.type)))).toBe(true)
  })

  it('repeats, as its first output message, what was sent raw before the first frame', async () => {
    const t = await setup()
    const c = await connect(t, `/ws/shell/${ID}`)
    await waitUntil('the PTY', () => t.spawner.spawned.length === 1)
    const pty = t.spawner.last
    pty.emit('code@box:/workspace$ ')
    await waitUntil('the raw prompt', () => text(c) === 'code@box:/workspace$ ')
    const rawFrames = c.frames.length
    c.ws.send(JSON.stringify({ type: 'input', data: 'x' }))
    await waitUntil('the input', () => pty.input === 'x')
    await waitUntil('the replay', () => c.frames.length > rawFrames)
    pty.exit(0)
    await c.closed
    const after = messages({ ...c, frames: c.frames.slice(rawFrames) })
    expect(after).toEqual([
      { type: 'output', data: 'code@box:/workspace$ ' },
      { type: 'exit', code: 0 },
    ])
  })

  it('answers a malformed or unknown message with an error message and keeps going', async () => {
    const t = await setup()
    const c = await connect(t, `/ws/terminal/${ID}`)
    await waitUntil('the PTY', () => t.spawner.spawned.length === 1)
    const pty = t.spawner.last
    c.ws.send(JSON.stringify({ type: 'resize', cols: 80, rows: 24 }))
    c.ws.send('{"type":"input","data":') // cut short
    c.ws.send('plain text')
    c.ws.send(JSON.stringify({ type: 'ping' }))
    c.ws.send(JSON.stringify({ type: 'input', data: 7 }))
    c.ws.send(Buffer.from([0xff, 0xfe, 0x7b]), { binary: true })
    c.ws.send(JSON.stringify({ type: 'resize', cols: 0, rows: 24 }))
    c.ws.send(JSON.stringify({ type: 'resize', cols: 100, rows: 5000 }))
    // The original server read binary frames too.
    c.ws.send(Buffer.from(JSON.stringify({ type: 'input', data: 'still here\r' })), {
      binary: true,
    })
    await waitUntil('the input after the errors', () => pty.input === 'still here\r')
    const errors = messages(c).filter((m) => m.type === 'error')
    expect(errors).toHaveLength(7)
    expect(errors.slice(0, 5).every((e) => String(e.message).startsWith('malformed message'))).toBe(
      true,
    )
    expect(errors.slice(5).map((e) => e.message)).toEqual([
      'size 0x24 is outside 1-1000',
      'size 100x5000 is outside 1-1000',
    ])
    expect(pty.resizes).toEqual([[80, 24]])
    expect(pty.exited).toBe(false)
    c.ws.close()
    await c.closed
  })

  it('leaves a raw client raw: a first frame that is not a JSON message is input', async () => {
    const t = await setup()
    const c = await connect(t, `/ws/terminal/${ID}`)
    await waitUntil('the PTY', () => t.spawner.spawned.length === 1)
    const pty = t.spawner.last
    c.ws.send('{"type":"note"}')
    // Decided: from here on even a JSON message is typed, as the raw protocol always did.
    c.ws.send(JSON.stringify({ type: 'input', data: 'x' }))
    await waitUntil('the input', () => pty.input === '{"type":"note"}{"type":"input","data":"x"}')
    pty.emit('out')
    await waitUntil('raw output', () => text(c) === 'out')
    pty.exit(0)
    await c.closed
  })
})

describe('app close', () => {
  it('sends 1001 to every terminal and waits until every PTY has exited', async () => {
    const t = await setup()
    const a = await connect(t, `/ws/terminal/${ID}`)
    const b = await connect(t, `/ws/shell/${ID}`, 'clincus.v1')
    await waitUntil('two PTYs', () => t.spawner.spawned.length === 2)
    await t.app.close()
    expect((await a.closed).code).toBe(CloseCode.GOING_AWAY)
    expect((await b.closed).code).toBe(CloseCode.GOING_AWAY)
    expect(t.spawner.spawned.every((p) => p.exited)).toBe(true)
    expect(t.terminals.pids()).toEqual([])
  })
})
