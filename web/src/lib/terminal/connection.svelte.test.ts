import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  CloseCode,
  FLOW,
  Op,
  TERMINAL_SUBPROTOCOL,
  exitFrame,
  frame,
  parseFrame,
  type ParsedFrame,
} from '../../../../shared/ws/terminal.ts'
import { Backoff } from '../backoff.ts'
import { FakeWebSocket, FakeWebSocketCtor } from '../testing/fake-websocket.ts'
import { TerminalConnection, type TerminalSink } from './connection.svelte.ts'
import { INPUT_CHUNK } from './protocol.ts'

interface Written {
  data: Uint8Array
  done: () => void
}

function setup(
  opts: {
    size?: { cols: number; rows: number } | null
    autoRender?: boolean
    earlyExitMs?: number
  } = {},
): {
  conn: TerminalConnection
  written: Written[]
  notices: string[]
  sink: { size: { cols: number; rows: number } | null }
} {
  const written: Written[] = []
  const notices: string[] = []
  const state = { size: opts.size === undefined ? { cols: 120, rows: 40 } : opts.size }
  const sink: TerminalSink = {
    write: (data, done) => {
      written.push({ data, done })
      if (opts.autoRender) done()
    },
    notice: (text) => notices.push(text),
    size: () => state.size,
  }
  const conn = new TerminalConnection({
    url: () => 'ws://host/ws/terminal/c1',
    sink,
    WebSocket: FakeWebSocketCtor,
    backoff: new Backoff(100, 1000, 0),
    earlyExitMs: opts.earlyExitMs ?? 0,
  })
  return { conn, written, notices, sink: state }
}

function parsed(ws: FakeWebSocket): ParsedFrame[] {
  return ws.frames().flatMap((f) => {
    const p = parseFrame(f)
    return p ? [p] : []
  })
}

function output(text: string | Uint8Array): Uint8Array {
  return frame(Op.OUTPUT, typeof text === 'string' ? new TextEncoder().encode(text) : text)
}

beforeEach(() => {
  FakeWebSocket.reset()
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

describe('TerminalConnection', () => {
  it('opens with the clincus.v1 subprotocol, binary frames and the initial size in the URL', () => {
    const { conn } = setup()
    conn.connect()
    const ws = FakeWebSocket.last()
    expect(ws.protocols).toBe(TERMINAL_SUBPROTOCOL)
    expect(ws.url).toBe('ws://host/ws/terminal/c1?cols=120&rows=40')
    expect(conn.state.kind).toBe('connecting')
    ws.open()
    expect(ws.binaryType).toBe('arraybuffer')
    expect(conn.state.kind).toBe('open')
    // The size went on the URL: no RESIZE for the same size.
    expect(parsed(ws)).toEqual([])
  })

  it('sends a RESIZE only when the size changes', () => {
    const { conn, sink } = setup()
    conn.connect()
    const ws = FakeWebSocket.last()
    sink.size = { cols: 100, rows: 30 } // resized while connecting
    ws.open()
    conn.resize(100, 30)
    conn.resize(100, 30)
    conn.resize(101, 30)
    conn.resize(0, 30) // a hidden pane's zero size is never sent
    conn.resize(5000, 30) // beyond what the server accepts
    expect(parsed(ws)).toEqual([
      { op: Op.RESIZE, cols: 100, rows: 30 },
      { op: Op.RESIZE, cols: 101, rows: 30 },
    ])
  })

  it('writes OUTPUT to the sink and ACKs as rendering completes', () => {
    const { conn, written } = setup()
    conn.connect()
    const ws = FakeWebSocket.last()
    ws.open()
    const chunk = new Uint8Array(FLOW.ACK_EVERY / 2).fill(0x61)
    ws.receive(output(chunk))
    ws.receive(output(chunk))
    ws.receive(output('tail'))
    expect(written.map((w) => w.data.length)).toEqual([chunk.length, chunk.length, 4])
    // Nothing is acknowledged before xterm says it rendered it.
    expect(parsed(ws)).toEqual([])
    written[0]?.done()
    expect(parsed(ws)).toEqual([])
    written[1]?.done()
    expect(parsed(ws)).toEqual([{ op: Op.ACK, bytes: FLOW.ACK_EVERY }])
    written[2]?.done()
    expect(parsed(ws)).toHaveLength(1)
    // The remainder is acknowledged once output goes quiet.
    vi.advanceTimersByTime(300)
    expect(parsed(ws)).toEqual([
      { op: Op.ACK, bytes: FLOW.ACK_EVERY },
      { op: Op.ACK, bytes: 4 },
    ])
    expect(conn.received).toBe(FLOW.ACK_EVERY + 4)
  })

  it('does not ACK on a new connection for output of the old one', () => {
    const { conn, written } = setup()
    conn.connect()
    const first = FakeWebSocket.last()
    first.open()
    first.receive(output(new Uint8Array(FLOW.ACK_EVERY)))
    first.serverClose(1006)
    vi.advanceTimersByTime(100)
    const second = FakeWebSocket.last()
    expect(second).not.toBe(first)
    second.open()
    written[0]?.done()
    vi.advanceTimersByTime(300)
    expect(parsed(second)).toEqual([])
  })

  it('sends input as INPUT frames, a big paste in paced chunks, in order', () => {
    const { conn } = setup()
    conn.connect()
    const ws = FakeWebSocket.last()
    ws.open()
    conn.input('x')
    expect(parsed(ws)).toEqual([{ op: Op.INPUT, data: new TextEncoder().encode('x') }])
    const big = 'y'.repeat(INPUT_CHUNK * 3 + 1)
    conn.input(big)
    // One chunk per task: the rest follows on later turns of the event loop.
    expect(ws.frames()).toHaveLength(2)
    vi.runAllTimers()
    const inputs = parsed(ws).filter((f) => f.op === Op.INPUT)
    expect(inputs).toHaveLength(5)
    const text = inputs
      .slice(1)
      .map((f) => (f.op === Op.INPUT ? new TextDecoder().decode(f.data) : ''))
      .join('')
    expect(text).toBe(big)
  })

  it('waits while the socket send buffer is full', () => {
    const { conn } = setup()
    conn.connect()
    const ws = FakeWebSocket.last()
    ws.open()
    ws.bufferedAmount = 10 * 1024 * 1024
    conn.input('z'.repeat(INPUT_CHUNK * 2))
    vi.advanceTimersByTime(50)
    expect(ws.frames()).toHaveLength(0)
    ws.bufferedAmount = 0
    vi.advanceTimersByTime(50)
    expect(ws.frames()).toHaveLength(2)
  })

  it('drops input while not connected instead of replaying it later', () => {
    const { conn } = setup()
    conn.connect()
    conn.input('typed too early')
    const ws = FakeWebSocket.last()
    ws.open()
    expect(ws.frames()).toHaveLength(0)
  })

  it('reports EXIT and does not reconnect after it', () => {
    const { conn, notices } = setup()
    conn.connect()
    const ws = FakeWebSocket.last()
    ws.open()
    ws.receive(exitFrame(3))
    ws.serverClose(CloseCode.EXITED)
    expect(conn.state).toEqual({ kind: 'exited', code: 3 })
    expect(notices).toEqual(['[process exited with code 3]'])
    vi.advanceTimersByTime(60_000)
    expect(FakeWebSocket.instances).toHaveLength(1)
  })

  it('retries an exit right after attaching (the agent is not up yet), but not for ever', () => {
    const { conn, notices } = setup({ earlyExitMs: 3000 })
    conn.connect()
    for (let i = 0; i < 5; i++) {
      const ws = FakeWebSocket.last()
      ws.open()
      ws.receive(exitFrame(1))
      ws.serverClose(CloseCode.EXITED)
      expect(conn.state.kind).toBe('reconnecting')
      if (conn.state.kind === 'reconnecting')
        expect(conn.state.reason).toBe('Waiting for the agent to start')
      vi.advanceTimersByTime(1000)
    }
    const last = FakeWebSocket.last()
    last.open()
    last.receive(exitFrame(1))
    last.serverClose(CloseCode.EXITED)
    expect(conn.state).toEqual({ kind: 'exited', code: 1 })
    expect(notices).toEqual(['[process exited with code 1]'])
  })

  it('treats an exit after the early window as the end', () => {
    const { conn } = setup({ earlyExitMs: 3000 })
    conn.connect()
    const ws = FakeWebSocket.last()
    ws.open()
    vi.advanceTimersByTime(3001)
    ws.receive(exitFrame(0))
    ws.serverClose(CloseCode.EXITED)
    expect(conn.state).toEqual({ kind: 'exited', code: 0 })
  })

  it('shows ERROR frames as notices', () => {
    const { conn, notices } = setup()
    conn.connect()
    const ws = FakeWebSocket.last()
    ws.open()
    ws.receive(frame(Op.ERROR, new TextEncoder().encode('tmux session gone')))
    expect(notices).toEqual(['[error: tmux session gone]'])
  })

  it('reconnects with backoff after a lost connection and says when', () => {
    const { conn } = setup()
    conn.connect()
    FakeWebSocket.last().serverClose(1006)
    expect(conn.state.kind).toBe('reconnecting')
    if (conn.state.kind === 'reconnecting')
      expect(conn.state.reason).toBe('The connection was lost')
    vi.advanceTimersByTime(99)
    expect(FakeWebSocket.instances).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(FakeWebSocket.instances).toHaveLength(2)
    FakeWebSocket.last().serverClose(1006)
    vi.advanceTimersByTime(199)
    expect(FakeWebSocket.instances).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(FakeWebSocket.instances).toHaveLength(3)
    FakeWebSocket.last().open()
    expect(conn.state.kind).toBe('open')
  })

  it('stops for a session that is not running or does not exist, with the server reason', () => {
    const { conn } = setup()
    conn.connect()
    FakeWebSocket.last().serverClose(CloseCode.NOT_RUNNING, 'session is stopped, not running')
    expect(conn.state).toEqual({ kind: 'unavailable', reason: 'Session is stopped, not running' })
    conn.connect()
    FakeWebSocket.last().serverClose(CloseCode.NOT_FOUND)
    expect(conn.state).toEqual({ kind: 'unavailable', reason: 'The session does not exist' })
    vi.advanceTimersByTime(60_000)
    expect(FakeWebSocket.instances).toHaveLength(2)
  })

  it('gives up on a refused request', () => {
    const { conn } = setup()
    conn.connect()
    FakeWebSocket.last().serverClose(CloseCode.BAD_REQUEST, 'bad size')
    expect(conn.state).toEqual({ kind: 'failed', reason: 'Bad size' })
  })

  it('suspend and dispose close the socket and cancel retries', () => {
    const { conn } = setup()
    conn.connect()
    const ws = FakeWebSocket.last()
    ws.open()
    conn.suspend('The session is not running')
    expect(ws.closedWith?.code).toBe(1000)
    expect(conn.state.kind).toBe('unavailable')
    conn.connect()
    FakeWebSocket.last().serverClose(1006)
    conn.dispose()
    vi.advanceTimersByTime(60_000)
    expect(FakeWebSocket.instances).toHaveLength(2)
    expect(conn.state.kind).toBe('idle')
  })

  it('omits the size from the URL while it is unknown', () => {
    const { conn } = setup({ size: null })
    conn.connect()
    expect(FakeWebSocket.last().url).toBe('ws://host/ws/terminal/c1')
  })

  it('fetches a ticketed URL per attempt, and drops one that arrives after dispose', async () => {
    let n = 0
    const pending: ((u: string) => void)[] = []
    const conn = new TerminalConnection({
      url: () =>
        new Promise<string>((r) => {
          n++
          pending.push(r)
        }),
      sink: {
        write: (_d, done) => {
          done()
        },
        notice: () => undefined,
        size: () => null,
      },
      WebSocket: FakeWebSocketCtor,
      backoff: new Backoff(100, 1000, 0),
    })
    conn.connect()
    expect(conn.state.kind).toBe('connecting')
    pending[0]?.('ws://host/ws/shell/c1?ticket=one')
    await vi.advanceTimersByTimeAsync(0)
    expect(FakeWebSocket.last().url).toBe('ws://host/ws/shell/c1?ticket=one')
    FakeWebSocket.last().open()
    FakeWebSocket.last().serverClose(1006)
    await vi.advanceTimersByTimeAsync(100)
    expect(n).toBe(2)
    conn.dispose()
    pending[1]?.('ws://host/ws/shell/c1?ticket=two')
    await vi.advanceTimersByTimeAsync(0)
    expect(FakeWebSocket.instances).toHaveLength(1)
  })
})
