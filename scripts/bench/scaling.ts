// 7. Scaling: 20 terminals streaming at once, each its own `cat` of 8 MiB through /ws/shell
// (independent PTYs, so per-client figures mean something), against 20 direct PTYs doing the
// same. Aggregate throughput, and the slowest and fastest client (fairness).
import { SECTIONS, type BenchContext } from './context.ts'
import { directPty, opened, ptyBytes, SMALL, wsTerminal } from './fixtures.ts'
import { mbPerS, round } from './stats.ts'
import { commandWithMarker, timeToMarker, type Endpoint } from './terminal-clients.ts'

const MARKER = '__BENCH_SCALE__'

interface ScaleResult {
  aggregate: number
  min: number
  max: number
  perClient: number[]
}

async function streamAll(endpoints: Endpoint[]): Promise<ScaleResult> {
  try {
    await Promise.all(endpoints.map((e) => opened(e)))
    await Promise.all(endpoints.map((e) => e.settle(500)))
    const before = endpoints.map((e) => e.bytes)
    const done = endpoints.map((e) => timeToMarker(e, MARKER, 120_000))
    const t0 = performance.now()
    for (const e of endpoints) e.write(commandWithMarker(`cat ${SMALL.path}`, MARKER))
    const ends = await Promise.all(done)
    endpoints.forEach((e, i) => {
      const got = e.bytes - (before[i] ?? 0)
      if (got < ptyBytes(SMALL.bytes))
        throw new Error(`${e.label} #${i}: only ${got} of ${ptyBytes(SMALL.bytes)} bytes arrived`)
    })
    const perClient = ends.map((t) => mbPerS(SMALL.bytes, t - t0))
    const last = Math.max(...ends)
    return {
      aggregate: mbPerS(SMALL.bytes * endpoints.length, last - t0),
      min: Math.min(...perClient),
      max: Math.max(...perClient),
      perClient,
    }
  } finally {
    await Promise.all(endpoints.map((e) => e.close()))
  }
}

export async function benchScaling(ctx: BenchContext, count = 20): Promise<void> {
  if (ctx.sessions.length < 2) throw new Error('scaling needs two sessions')
  const idOf = (i: number): string => ctx.sessions[i % ctx.sessions.length] ?? ''
  const n = Array.from({ length: count }, (_, i) => i)
  const floor = await streamAll(n.map((i) => directPty(idOf(i), 'shell')))
  ctx.progress(`scaling: ${count} direct PTYs, ${floor.aggregate.toFixed(1)} MB/s aggregate`)
  for (const protocol of ['v1', 'raw'] as const) {
    const r = await streamAll(n.map((i) => wsTerminal(ctx, idOf(i), 'shell', protocol)))
    ctx.progress(
      `scaling: ${count} /ws/shell ${protocol}, ${r.aggregate.toFixed(1)} MB/s aggregate`,
    )
    const label = protocol === 'v1' ? 'clincus.v1' : 'raw'
    ctx.record({
      section: SECTIONS.scaling,
      name: `${count} × 8 MiB at once via /ws/shell (${label}): aggregate`,
      value: round(r.aggregate, 1),
      unit: 'MB/s',
      baseline: {
        name: `${count} direct PTYs: aggregate`,
        value: round(floor.aggregate, 1),
        unit: 'MB/s',
      },
      ratio: round(r.aggregate / floor.aggregate, 3),
      ratioKind: 'times',
      detail: { perClient: r.perClient.map((v) => round(v, 2)) },
    })
    ctx.record({
      section: SECTIONS.scaling,
      name: `${count} × 8 MiB at once via /ws/shell (${label}): slowest / fastest client`,
      value: round(r.min / r.max, 3),
      unit: 'min/max',
      baseline: {
        name: 'direct PTYs: slowest / fastest',
        value: round(floor.min / floor.max, 3),
        unit: 'min/max',
      },
      note: `clients ${r.min.toFixed(2)}–${r.max.toFixed(2)} MB/s; direct ${floor.min.toFixed(2)}–${floor.max.toFixed(2)} MB/s`,
      detail: { floorPerClient: floor.perClient.map((v) => round(v, 2)) },
    })
  }
}
