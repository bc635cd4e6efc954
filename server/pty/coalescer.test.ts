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
    const c = new OutputCoalescer({ windowMs: 4, maxBytes: 16, streamBytes: 4 }, (d) =>
      out.push(d.toString()),
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
