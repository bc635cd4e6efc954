import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Backoff } from './backoff.ts'
import { EventsSocket, parseEvent } from './events-socket.svelte.ts'
import type { ClientEvent } from './schemas.ts'
import { FakeWebSocket, FakeWebSocketCtor } from './testing/fake-websocket.ts'

beforeEach(() => {
  FakeWebSocket.reset()
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

function setup(): { socket: EventsSocket; events: ClientEvent[]; opens: number[] } {
  const events: ClientEvent[] = []
  const opens: number[] = []
  const socket = new EventsSocket({
    url: () => 'ws://h/ws/events',
    onEvent: (e) => events.push(e),
    onOpen: () => opens.push(Date.now()),
    WebSocket: FakeWebSocketCtor,
    backoff: new Backoff(500, 4000, 0),
  })
  return { socket, events, opens }
}

describe('parseEvent', () => {
  it('accepts the contract events and ours', () => {
    expect(parseEvent('{"type":"session.started","id":"c1"}')).toEqual({
      type: 'session.started',
      id: 'c1',
    })
    expect(
      parseEvent('{"type":"session.launching","id":"c1","step":"start","progress":0.5}'),
    ).toMatchObject({ step: 'start' })
    expect(parseEvent('{"type":"config.invalid","file":"/f","error":"bad"}')).toMatchObject({
      file: '/f',
    })
  })

  it('accepts the network and image events of issues 12 and 13, and refuses malformed ones', () => {
    expect(
      parseEvent(
        '{"type":"session.network","id":"c1","host":"evil.example","port":443,"allowed":false}',
      ),
    ).toEqual({
      type: 'session.network',
      id: 'c1',
      host: 'evil.example',
      port: 443,
      allowed: false,
    })
    expect(
      parseEvent('{"type":"image.building","alias":"clincus","step":"apt","progress":0.25}'),
    ).toMatchObject({ progress: 0.25 })
    expect(parseEvent('{"type":"image.built","alias":"clincus"}')).toMatchObject({
      alias: 'clincus',
    })
    expect(
      parseEvent('{"type":"image.failed","alias":"clincus","error":"E: Unable to locate"}'),
    ).toMatchObject({ error: 'E: Unable to locate' })
    expect(parseEvent('{"type":"session.network","id":"c1","host":"x","allowed":false}')).toBeNull()
    expect(parseEvent('{"type":"image.building","alias":"a","step":"s","progress":2}')).toBeNull()
  })

  it('ignores unknown types, malformed JSON, bad shapes and binary data', () => {
    expect(parseEvent('{"type":"image.progress","x":1}')).toBeNull()
    expect(parseEvent('{nope')).toBeNull()
    expect(parseEvent('{"type":"session.started"}')).toBeNull()
    expect(parseEvent(new ArrayBuffer(2))).toBeNull()
  })
})

describe('EventsSocket', () => {
  it('calls onOpen on every (re)connect so the page refetches what it missed', () => {
    const { socket, events, opens } = setup()
    socket.start()
    expect(socket.state).toBe('connecting')
    FakeWebSocket.last().open()
    expect(socket.state).toBe('open')
    expect(opens).toHaveLength(1)
    FakeWebSocket.last().receive('{"type":"session.stopped","id":"c1"}')
    expect(events).toEqual([{ type: 'session.stopped', id: 'c1' }])

    FakeWebSocket.last().serverClose(1006)
    expect(socket.state).toBe('reconnecting')
    expect(socket.retryAt).toBe(Date.now() + 500)
    vi.advanceTimersByTime(500)
    FakeWebSocket.last().open()
    expect(opens).toHaveLength(2)
  })

  it('backs off exponentially up to the cap and resets after a success', () => {
    const { socket } = setup()
    socket.start()
    const delays: number[] = []
    for (let i = 0; i < 5; i++) {
      const before = FakeWebSocket.instances.length
      FakeWebSocket.last().serverClose(1006)
      const start = Date.now()
      while (FakeWebSocket.instances.length === before) vi.advanceTimersByTime(100)
      delays.push(Date.now() - start)
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 4000])
    FakeWebSocket.last().open()
    FakeWebSocket.last().serverClose(1006)
    expect(socket.retryAt).toBe(Date.now() + 500)
  })

  it('retryNow skips the wait; close stops for good', () => {
    const { socket } = setup()
    socket.start()
    FakeWebSocket.last().serverClose(1006)
    socket.retryNow()
    expect(FakeWebSocket.instances).toHaveLength(2)
    socket.close()
    expect(FakeWebSocket.last().closedWith?.code).toBe(1000)
    expect(socket.state).toBe('closed')
    vi.advanceTimersByTime(60_000)
    expect(FakeWebSocket.instances).toHaveLength(2)
  })

  it('asks for a fresh URL (a ticket) on every attempt and retries when that fails', async () => {
    const urls = ['ws://h/ws/events?ticket=a', 'ws://h/ws/events?ticket=b']
    let calls = 0
    const socket = new EventsSocket({
      url: () => {
        calls++
        if (calls === 1) return Promise.reject(new Error('signed out'))
        return Promise.resolve(urls[calls - 2] ?? 'ws://h/ws/events?ticket=z')
      },
      onEvent: () => undefined,
      onOpen: () => undefined,
      WebSocket: FakeWebSocketCtor,
      backoff: new Backoff(500, 4000, 0),
    })
    socket.start()
    await vi.advanceTimersByTimeAsync(0)
    expect(FakeWebSocket.instances).toHaveLength(0)
    expect(socket.state).toBe('reconnecting')
    await vi.advanceTimersByTimeAsync(500)
    expect(FakeWebSocket.last().url).toBe('ws://h/ws/events?ticket=a')
    FakeWebSocket.last().serverClose(1006)
    await vi.advanceTimersByTimeAsync(1000)
    expect(FakeWebSocket.last().url).toBe('ws://h/ws/events?ticket=b')
    socket.close()
  })

  it('does not open a socket whose URL arrives after close()', async () => {
    let resolve: (u: string) => void = () => undefined
    const socket = new EventsSocket({
      url: () => new Promise<string>((r) => (resolve = r)),
      onEvent: () => undefined,
      onOpen: () => undefined,
      WebSocket: FakeWebSocketCtor,
    })
    socket.start()
    socket.close()
    resolve('ws://h/ws/events?ticket=late')
    await vi.advanceTimersByTimeAsync(0)
    expect(FakeWebSocket.instances).toHaveLength(0)
  })
})
