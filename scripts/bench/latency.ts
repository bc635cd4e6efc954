// 2. Keystroke echo latency: one character into the session's tmux (the tool's pane, whose tty
// echoes it) until its echo comes back, through the WebSocket in both protocols, against a direct
// PTY attached to the same tmux session with the server's own argv. One client at a time, in
// blocks that alternate between the paths so load elsewhere on the machine hits all of them.
import { SECTIONS, type BenchContext } from './context.ts'
import { directPty, opened, selectWindow, waitDetached, wsTerminal } from './fixtures.ts'
import { percentile, round, sleep } from './stats.ts'
import { WsEndpoint, type Endpoint } from './terminal-clients.ts'

/** Letters that no escape sequence tmux writes ends with, so a cursor move is never an echo. */
const KEYS = 'bcefgijknopsuvwxyz'
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[@-_])/g
/** Between keystrokes: a fast typist's pace; the echo of the previous key is long back by then. */
const PACE_MS = 15
const LINE = 50

function echoOf(ep: Endpoint, key: string, timeoutMs = 5000): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ep.sink = null
      reject(new Error(`${ep.label}: no echo of ${key} within ${timeoutMs} ms`))
    }, timeoutMs)
    ep.sink = (chunk) => {
      if (!chunk.toString('latin1').replace(ESCAPES, '').includes(key)) return
      const at = performance.now()
      clearTimeout(timer)
      ep.sink = null
      resolve(at)
    }
  })
}

function textOf(ep: Endpoint, text: string, timeoutMs = 5000): Promise<void> {
  let seen = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ep.sink = null
      reject(new Error(`${ep.label}: no ${text} within ${timeoutMs} ms`))
    }, timeoutMs)
    ep.sink = (chunk) => {
      seen = (seen + chunk.toString('latin1').replace(ESCAPES, '')).slice(-4096)
      if (!seen.includes(text)) return
      clearTimeout(timer)
      ep.sink = null
      resolve()
    }
  })
}

interface Hooks {
  /** After the terminal settled, before the first keystroke. */
  start(): Promise<void>
  /** After the last keystroke's echo, before the line is ended. */
  end(): Promise<void>
}

async function block(ep: Endpoint, count: number, hooks: Hooks): Promise<number[]> {
  const samples: number[] = []
  try {
    await opened(ep)
    await ep.settle(300)
    await hooks.start()
    for (let i = 0; i < count; i++) {
      const key = KEYS[i % KEYS.length] ?? 'x'
      const echo = echoOf(ep, key)
      const t0 = performance.now()
      ep.write(key)
      samples.push((await echo) - t0)
      if (ep instanceof WsEndpoint) ep.flushAck()
      if (i + 1 === count) await hooks.end()
      if ((i + 1) % LINE === 0 || i + 1 === count) {
        // End the line: the tool answers `<line>-BACK`; keeps the line short and the pane calm.
        const back = textOf(ep, '-BACK')
        ep.write('\r')
        await back
        await ep.settle(50)
      } else {
        await sleep(PACE_MS)
      }
    }
    return samples
  } finally {
    await ep.close()
  }
}

export async function benchLatency(ctx: BenchContext, keystrokes = 500): Promise<void> {
  const id = ctx.sessions[0]
  if (!id) throw new Error('latency needs a session')
  await selectWindow(id, 0)
  // Short blocks, alternating between the paths: a burst of load elsewhere on the machine lasts
  // seconds, so it lands on all three paths rather than on one path's whole sample.
  const per = 25
  const blocks = Math.ceil(keystrokes / per)
  const paths = ['direct', 'raw', 'v1'] as const
  const samples: Record<(typeof paths)[number], number[]> = { direct: [], raw: [], v1: [] }
  // The server's scheduler accounting over the WebSocket blocks: CPU it used and time it spent
  // runnable but waiting for a CPU (the machine's other load), per keystroke.
  const server = { runMs: 0, waitMs: 0, keys: 0 }
  for (let b = 0; b < blocks; b++) {
    const order = [...paths.slice(b % 3), ...paths.slice(0, b % 3)]
    for (const p of b % 2 === 0 ? order : order.reverse()) {
      const ep = p === 'direct' ? directPty(id, 'attach') : wsTerminal(ctx, id, 'attach', p)
      let before = { runMs: 0, waitMs: 0, slices: 0 }
      const hooks: Hooks = {
        start: async () => {
          before = await ctx.server.sched()
        },
        end: async () => {
          if (p === 'direct') return
          const after = await ctx.server.sched()
          server.runMs += after.runMs - before.runMs
          server.waitMs += after.waitMs - before.waitMs
          server.keys += per
        },
      }
      samples[p].push(...(await block(ep, per, hooks)))
      await waitDetached(id)
    }
    if ((b + 1) % 5 === 0)
      ctx.progress(`latency: ${(b + 1) * per} of ${blocks * per} keystrokes on each path`)
  }
  const floor = samples.direct
  const perKey = (ms: number): number => round((ms / Math.max(1, server.keys)) * 1000, 0)
  for (const p of ['raw', 'v1'] as const) {
    const s = samples[p]
    const over99 = percentile(s, 0.99) - percentile(floor, 0.99)
    const over50 = percentile(s, 0.5) - percentile(floor, 0.5)
    ctx.record({
      section: SECTIONS.latency,
      name: `/ws/terminal ${p === 'v1' ? 'clincus.v1' : 'raw'}: p50`,
      value: round(percentile(s, 0.5), 2),
      unit: 'ms',
      baseline: {
        name: 'direct PTY tmux attach p50',
        value: round(percentile(floor, 0.5), 2),
        unit: 'ms',
      },
      ratio: round(over50, 2),
      ratioKind: 'delta',
      detail: { n: s.length, floorN: floor.length },
    })
    ctx.record({
      section: SECTIONS.latency,
      name: `/ws/terminal ${p === 'v1' ? 'clincus.v1' : 'raw'}: p99`,
      value: round(percentile(s, 0.99), 2),
      unit: 'ms',
      baseline: {
        name: 'direct PTY tmux attach p99',
        value: round(percentile(floor, 0.99), 2),
        unit: 'ms',
      },
      ratio: round(over99, 2),
      ratioKind: 'delta',
      goal: 'p99 overhead < 2 ms',
      met: over99 < 2,
      note:
        p === 'v1'
          ? `the server per keystroke (mean over both protocols): ${perKey(server.runMs)} µs on a CPU, ${perKey(server.waitMs)} µs runnable but waiting for one`
          : undefined,
      detail: {
        serverRunUsPerKey: perKey(server.runMs),
        serverWaitUsPerKey: perKey(server.waitMs),
        n: s.length,
        max: round(Math.max(...s), 2),
        floorMax: round(Math.max(...floor), 2),
        p90: round(percentile(s, 0.9), 2),
        floorP90: round(percentile(floor, 0.9), 2),
        samples: s.map((v) => round(v, 2)),
        floorSamples: floor.map((v) => round(v, 2)),
      },
    })
  }
}
