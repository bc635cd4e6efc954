import { describe, expect, it } from 'vitest'
import { FlowCounter, PauseGate } from './flow-control.ts'

describe('FlowCounter', () => {
  it('reports crossing the high mark once and resumes only under the low mark', () => {
    const f = new FlowCounter({ high: 100, low: 20 })
    expect(f.add(60)).toBe(false)
    expect(f.add(60)).toBe(true)
    expect(f.over).toBe(true)
    expect(f.add(10)).toBe(false) // already over: no second report
    expect(f.release(100)).toBe(false) // 30 left: still above low
    expect(f.over).toBe(true)
    expect(f.release(11)).toBe(true) // 19 < 20
    expect(f.over).toBe(false)
    expect(f.release(5)).toBe(false)
  })

  it('clamps acks for more than was sent, so a client cannot bank credit', () => {
    const f = new FlowCounter({ high: 100, low: 20 })
    f.add(10)
    f.release(1_000_000)
    expect(f.pending).toBe(0)
    expect(f.add(101)).toBe(true)
    f.release(-50)
    expect(f.pending).toBe(101)
  })

  it('rejects marks that would never resume', () => {
    expect(() => new FlowCounter({ high: 10, low: 10 })).toThrow(RangeError)
  })
})

describe('PauseGate', () => {
  it('pauses while any reason holds and resumes when none does', () => {
    const calls: string[] = []
    const g = new PauseGate(
      () => calls.push('pause'),
      () => calls.push('resume'),
    )
    g.set('socket', true)
    g.set('ack', true)
    g.set('socket', false)
    expect(g.paused).toBe(true)
    g.set('ack', false)
    g.set('ack', false)
    expect(calls).toEqual(['pause', 'resume'])
  })
})
