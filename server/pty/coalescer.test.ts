import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { OutputCoalescer } from './coalescer.ts'

describe('OutputCoalescer', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  const make = (): { c: OutputCoalescer; out: string[] } => {
    const out: string[] = []
    const c = new OutputCoalescer(
      { windowMs: 4, maxBytes: 16, streamBytes: 4, streamChunks: 4 },
      (d) => out.push(d.toString()),
    )
    return { c, out }
  }

  it('sends output after a quiet period on the next tick, without a timer delay', () => {
    const { c, out } = make()
    const t0 = Date.now()
    c.push(Buffer.from('a'))
    c.push(Buffer.from('b'))
    expect(out).toEqual([])
    vi.advanceTimersToNextTimer() // the setImmediate
    expect(out).toEqual(['ab'])
    expect(Date.now()).toBe(t0)
  })

  it('batches output that keeps streaming within the window', () => {
    const { c, out } = make()
    c.push(Buffer.from('1111'))
    vi.advanceTimersToNextTimer()
    c.push(Buffer.from('2'))
    c.push(Buffer.from('3'))
    vi.advanceTimersByTime(3)
    expect(out).toEqual(['1111'])
    vi.advanceTimersByTime(1)
    expect(out).toEqual(['1111', '23'])
  })

  it('never delays small output that follows small output (echoes typed back to back)', () => {
    const { c, out } = make()
    const t0 = Date.now()
    for (const ch of ['a', 'b', 'c']) {
      c.push(Buffer.from(ch))
      vi.advanceTimersToNextTimer() // the setImmediate, no timer window
    }
    expect(out).toEqual(['a', 'b', 'c'])
    expect(Date.now()).toBe(t0)
  })

  it('batches a stream of small writes once streamBytes went out within the window (tmux redrawing a scrolling pane)', () => {
    const { c, out } = make()
    // Two small writes, each alone on a quiet terminal: out on the next turn, no timer.
    for (const ch of ['a', 'b']) {
      c.push(Buffer.from(ch))
      vi.advanceTimersToNextTimer()
    }
    c.push(Buffer.from('cd'))
    vi.advanceTimersToNextTimer()
    expect(out).toEqual(['a', 'b', 'cd'])
    // 4 bytes (streamBytes) went out within 4 ms: what follows waits for the window to close.
    vi.advanceTimersByTime(1)
    c.push(Buffer.from('e'))
    c.push(Buffer.from('f'))
    vi.advanceTimersByTime(2)
    expect(out).toEqual(['a', 'b', 'cd'])
    vi.advanceTimersByTime(1)
    expect(out).toEqual(['a', 'b', 'cd', 'ef'])
  })

  it('batches many tiny writes in a row once streamChunks went out within the window', () => {
    const { c, out } = make()
    for (let i = 0; i < 3; i++) {
      c.push(Buffer.from('x'))
      vi.advanceTimersToNextTimer()
    }
    vi.advanceTimersByTime(1)
    c.push(Buffer.from('y'))
    vi.advanceTimersToNextTimer()
    // Four chunks (streamChunks) of 1 byte each within 4 ms: the next ones are held together.
    expect(out).toEqual(['x', 'x', 'x', 'y'])
    c.push(Buffer.from('1'))
    c.push(Buffer.from('2'))
    vi.advanceTimersByTime(2)
    expect(out).toEqual(['x', 'x', 'x', 'y'])
    vi.advanceTimersByTime(2)
    expect(out).toEqual(['x', 'x', 'x', 'y', '12'])
  })

  it('counts the chunks a send merged: one send of streamChunks tiny reads makes the next output wait', () => {
    const out: string[] = []
    const c = new OutputCoalescer(
      { windowMs: 4, maxBytes: 64, streamBytes: 100, streamChunks: 4 },
      (d) => out.push(d.toString()),
    )
    for (const ch of ['a', 'b', 'c', 'd']) c.push(Buffer.from(ch))
    vi.advanceTimersToNextTimer()
    expect(out).toEqual(['abcd'])
    // One send of 4 bytes (far under streamBytes), but 4 chunks: held until the window closes.
    c.push(Buffer.from('e'))
    vi.advanceTimersByTime(3)
    expect(out).toEqual(['abcd'])
    vi.advanceTimersByTime(1)
    expect(out).toEqual(['abcd', 'e'])
  })

  it('treats a write after a quiet window as an echo again, however much streamed before', () => {
    const { c, out } = make()
    c.push(Buffer.from('1111'))
    vi.advanceTimersToNextTimer()
    vi.advanceTimersByTime(4)
    const t0 = Date.now()
    c.push(Buffer.from('k'))
    vi.advanceTimersToNextTimer() // the setImmediate
    expect(out).toEqual(['1111', 'k'])
    expect(Date.now()).toBe(t0)
  })

  it('holds the source while a window holds a stream of tiny writes, and lets go before the send and on dispose', () => {
    const events: string[] = []
    const c = new OutputCoalescer(
      { windowMs: 4, maxBytes: 64, streamBytes: 100, streamChunks: 4 },
      (d) => events.push(`send ${d.toString()}`),
      (held) => events.push(held ? 'hold' : 'release'),
    )
    for (const ch of ['a', 'b', 'c', 'd']) c.push(Buffer.from(ch))
    vi.advanceTimersToNextTimer()
    // Output on a quiet terminal never holds the source.
    expect(events).toEqual(['send abcd'])
    c.push(Buffer.from('e'))
    expect(events).toEqual(['send abcd', 'hold'])
    c.push(Buffer.from('f'))
    vi.advanceTimersByTime(4)
    expect(events).toEqual(['send abcd', 'hold', 'release', 'send ef'])
    for (const ch of ['g', 'h']) {
      c.push(Buffer.from(ch))
      vi.advanceTimersToNextTimer()
    }
    // ef, g and h: four chunks within the window again.
    c.push(Buffer.from('i'))
    expect(events.slice(4)).toEqual(['send g', 'send h', 'hold'])
    c.dispose()
    expect(events.slice(4)).toEqual(['send g', 'send h', 'hold', 'release'])
  })

  it('never holds the source for bulk output (it would cap the rate at a socket buffer per window)', () => {
    const events: string[] = []
    const c = new OutputCoalescer(
      { windowMs: 4, maxBytes: 64, streamBytes: 4, streamChunks: 4 },
      (d) => events.push(`send ${d.toString()}`),
      (held) => events.push(held ? 'hold' : 'release'),
    )
    c.push(Buffer.from('1111'))
    vi.advanceTimersToNextTimer()
    c.push(Buffer.from('2222'))
    vi.advanceTimersByTime(4)
    expect(events).toEqual(['send 1111', 'send 2222'])
  })

  it('flushes at once when maxBytes have gathered', () => {
    const { c, out } = make()
    c.push(Buffer.from('x'.repeat(10)))
    c.push(Buffer.from('y'.repeat(10)))
    expect(out).toEqual(['x'.repeat(10) + 'y'.repeat(10)])
  })

  it('drops pending output and timers on dispose', () => {
    const { c, out } = make()
    c.push(Buffer.from('z'))
    c.dispose()
    vi.runAllTimers()
    c.push(Buffer.from('w'))
    c.flush()
    expect(out).toEqual([])
    expect(vi.getTimerCount()).toBe(0)
  })
})
