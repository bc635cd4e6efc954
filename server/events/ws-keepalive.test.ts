import { EventEmitter } from 'node:events'
import type { WebSocket } from '@fastify/websocket'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { closeReason, keepAlive } from './ws-keepalive.ts'

class FakeSocket extends EventEmitter {
  isPaused = false
  pings = 0
  terminated = false
  ping(): void {
    this.pings++
  }
  terminate(): void {
    this.terminated = true
  }
}

const asWs = (s: FakeSocket): WebSocket => s as unknown as WebSocket

describe('keepAlive', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('terminates a peer that answered no ping for a whole interval', () => {
    const s = new FakeSocket()
    keepAlive(asWs(s), 1000)
    vi.advanceTimersByTime(1000)
    expect(s.pings).toBe(1)
    s.emit('pong')
    vi.advanceTimersByTime(1000)
    expect(s.terminated).toBe(false)
    vi.advanceTimersByTime(1000)
    expect(s.terminated).toBe(true)
  })

  it('counts frames and delivered output as signs of life (pongs queue behind output)', () => {
    const s = new FakeSocket()
    const ka = keepAlive(asWs(s), 1000)
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(1000)
      if (i % 2 === 0) ka.touch()
      else s.emit('message', Buffer.from('x'))
    }
    expect(s.terminated).toBe(false)
  })

  it('never terminates a socket the server stopped reading (its pongs cannot be seen)', () => {
    const s = new FakeSocket()
    keepAlive(asWs(s), 1000)
    vi.advanceTimersByTime(1000)
    s.isPaused = true // terminal input backpressure
    vi.advanceTimersByTime(10_000)
    expect(s.terminated).toBe(false)
    s.isPaused = false
    vi.advanceTimersByTime(1000)
    expect(s.terminated).toBe(false)
    expect(s.pings).toBe(2)
    vi.advanceTimersByTime(1000)
    expect(s.terminated).toBe(true)
  })

  it('stops with the socket', () => {
    const s = new FakeSocket()
    keepAlive(asWs(s), 1000)
    s.emit('close')
    vi.advanceTimersByTime(5000)
    expect(s.pings).toBe(0)
    expect(vi.getTimerCount()).toBe(0)
  })
})

describe('closeReason', () => {
  it('keeps short reasons and cuts long ones on a character boundary within 123 bytes', () => {
    expect(closeReason('session not found')).toBe('session not found')
    const long = closeReason('é'.repeat(100))
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(123)
    expect(long.endsWith('...')).toBe(true)
    expect(long).not.toContain('\uFFFD')
  })
})
