import { describe, expect, it } from 'vitest'
import {
  poolReady,
  onSeriesPath,
  primedReady,
  seriesFigures,
  type LaunchSample,
  type LaunchSeries,
} from './launch.ts'

function sample(path: 'warm' | 'cold', totalMs: number, coldReason?: string): LaunchSample {
  return {
    id: `c-${totalMs}`,
    totalMs,
    responseMs: totalMs - 50,
    path,
    ...(coldReason ? { coldReason } : {}),
    timings: { claim: 100, tool: totalMs - 200 },
  }
}

function series(path: 'warm' | 'cold', samples: LaunchSample[], floorMs: number[]): LaunchSeries {
  return {
    path,
    samples,
    floorMs,
    floorName: 'floor',
    offPath: samples.filter((s) => s.path !== path),
    failed: [],
  }
}

describe('poolReady', () => {
  it('is null when the health has no pool (a build without the warm pool)', () => {
    expect(poolReady({ status: 'ok', incus: { reachable: true } })).toBeNull()
    expect(poolReady(null)).toBeNull()
  })

  it('reads a count, a flag, or per-image entries', () => {
    expect(poolReady({ pool: { size: 1, ready: 0 } })).toBe(0)
    expect(poolReady({ pool: { size: 1, ready: 1 } })).toBe(1)
    expect(poolReady({ pool: { ready: true } })).toBe(1)
    expect(
      poolReady({
        pool: {
          images: [
            { image: 'a', ready: 1 },
            { image: 'b', ready: 2 },
          ],
        },
      }),
    ).toBe(3)
  })
})

describe('seriesFigures', () => {
  it('says n/a with the reason when every warm launch came back cold, never a figure', () => {
    const s = series('warm', [sample('cold', 3000), sample('cold', 3100, 'pool empty')], [80, 90])
    const [only, ...rest] = seriesFigures(s, 'clincus-test', 'ctx')
    expect(rest).toEqual([])
    expect(only?.value).toBeNaN()
    expect(only?.note).toContain('n/a — every launch came back cold (pool not ready)')
    expect(only?.note).toContain('2 of 2 came back cold (no reason given; pool empty)')
    expect(only?.met).toBeUndefined()
  })

  it('gives p50 and p95 of the launches on the path, beside the floor, and counts the others', () => {
    const warm = Array.from({ length: 19 }, (_, i) => sample('warm', 500 + i * 10))
    const s = series('warm', [...warm, sample('cold', 9000, 'idmap differs')], [80, 90, 100])
    const [p50, p95] = seriesFigures(s, 'clincus-test', 'ctx')
    expect(p50?.name).toContain('p50 (clincus-test, 19 launches)')
    expect(p50?.value).toBe(590)
    expect(p50?.baseline?.value).toBe(90)
    expect(p50?.ratio).toBe(500)
    expect(p50?.met).toBe(true)
    expect(p50?.note).toContain('1 of 20 came back cold (idmap differs) and are left out')
    expect(p50?.note).toContain('server steps (median ms): claim 100, tool 390')
    expect(p95?.value).toBe(680)
    expect(p95?.baseline?.value).toBe(100)
  })

  it('names failed launches beside the figures', () => {
    const s = { ...series('warm', [sample('warm', 700)], [80]), failed: ['502 protect', 'x'] }
    expect(seriesFigures(s, 'clincus-test', 'ctx')[0]?.note).toContain(
      '2 launches failed (first: 502 protect)',
    )
  })

  it('misses the warm goal at a p50 of 1 s or more; cold rows have no goal', () => {
    const slow = series('warm', [sample('warm', 1000), sample('warm', 1200)], [80])
    expect(seriesFigures(slow, 'clincus', 'ctx')[0]?.met).toBe(false)
    const cold = series('cold', [sample('cold', 3000)], [900])
    expect(seriesFigures(cold, 'clincus', 'ctx')[0]?.goal).toBeUndefined()
  })
})

describe('the primed series', () => {
  it('counts only primed warm launches; a warm launch from a stopped container is off its path', () => {
    const primedOne = { ...sample('warm', 600), warm: 'primed' }
    const stopped = { ...sample('warm', 2600), warm: 'stopped' }
    const s: LaunchSeries = {
      ...series('warm', [primedOne, stopped, { ...primedOne, totalMs: 700 }], [20, 30]),
      warmKind: 'primed',
      offPath: [stopped],
    }
    const [p50] = seriesFigures(s, 'clincus-test', 'ctx')
    expect(p50?.name).toBe(
      'warm (primed): click → agent accepts keys, p50 (clincus-test, 2 launches)',
    )
    expect(p50?.value).toBe(600)
    expect(p50?.note).toContain('1 of 3 came back not primed')
    expect(p50?.met).toBe(true)
  })

  it('with an agent start: counts only launches whose agent was handed over so, saying why the others were not', () => {
    const handed = { ...sample('warm', 400), warm: 'primed', agentStart: 'prestarted' }
    const restarted = {
      ...sample('warm', 3000),
      warm: 'primed',
      agentStart: 'restarted',
      agentStartReason: 'CLAUDE.md changed',
    }
    const s: LaunchSeries = {
      ...series('warm', [handed, restarted], [20, 30]),
      warmKind: 'primed',
      agentStart: 'prestarted',
    }
    s.offPath = [restarted]
    expect(onSeriesPath(s, handed)).toBe(true)
    expect(onSeriesPath(s, restarted)).toBe(false)
    const [p50] = seriesFigures(s, 'clincus-test', 'ctx')
    expect(p50?.name).toBe(
      'warm (primed, agent prestarted): click → agent accepts keys, p50 (clincus-test, 1 launches)',
    )
    expect(p50?.value).toBe(400)
    expect(p50?.note).toContain(
      '1 of 2 came back not primed with the agent prestarted (CLAUDE.md changed)',
    )
  })

  it('reads the ready primed members from the health', () => {
    expect(primedReady({ pool: { size: 0, ready: 0, primed: { size: 1, ready: 1 } } })).toBe(1)
    expect(primedReady({ pool: { size: 1, ready: 1 } })).toBeNull()
    expect(poolReady({ pool: { size: 0, ready: 0, primed: { size: 1, ready: 1 } } })).toBe(0)
  })
})
