// 2. Keystroke echo latency: one character into the session's tmux (the tool's pane, whose tty
// echoes it) until its echo comes back, through the WebSocket in both protocols, against a direct
// PTY attached to the same tmux session with the server's own argv. One client at a time, in
// blocks that alternate between the paths so load elsewhere on the machine hits all of them.
import { tmuxSessionName } from '../../server/sessions/naming.ts'
import { SECTIONS, type BenchContext } from './context.ts'
import {
  BIG,
  COLS,
  directPty,
  opened,
  ROWS,
  selectWindow,
  terminalCommand,
  waitDetached,
  wsTerminal,
} from './fixtures.ts'
import { execAsCode } from './incus.ts'
import { TTYD_NOTE, WettyEndpoint, WettyServer } from './peers.ts'
import { percentile, round, sleep } from './stats.ts'
import { echoBeside, timeToMarker, WsEndpoint, type Endpoint } from './terminal-clients.ts'

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
  const paths = ['direct', 'raw', 'v1', 'wetty'] as const
  const samples: Record<(typeof paths)[number], number[]> = {
    direct: [],
    raw: [],
    v1: [],
    wetty: [],
  }
  const wetty = await WettyServer.start(ctx.repoRoot, terminalCommand(id, 'attach'))
  // The server's scheduler accounting over the WebSocket blocks: CPU it used and time it spent
  // runnable but waiting for a CPU (the machine's other load), per keystroke.
  const server = { runMs: 0, waitMs: 0, keys: 0 }
  try {
    for (let b = 0; b < blocks; b++) {
      const order = [...paths.slice(b % paths.length), ...paths.slice(0, b % paths.length)]
      for (const p of b % 2 === 0 ? order : order.reverse()) {
        const ep =
          p === 'direct'
            ? directPty(id, 'attach')
            : p === 'wetty'
              ? new WettyEndpoint(wetty, COLS, ROWS)
              : wsTerminal(ctx, id, 'attach', p)
        let before = { runMs: 0, waitMs: 0, slices: 0 }
        const hooks: Hooks = {
          start: async () => {
            before = await ctx.server.sched()
          },
          end: async () => {
            if (p === 'direct' || p === 'wetty') return
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
  } finally {
    await wetty.stop()
  }
  const floor = samples.direct
  const perKey = (ms: number): number => round((ms / Math.max(1, server.keys)) * 1000, 0)
  /** One percentile of `s` against the same percentile of the floor (the difference, in ms). */
  const row = (who: string, s: number[], q: number, label: string) =>
    ({
      section: SECTIONS.latency,
      name: `${who}: ${label}`,
      value: round(percentile(s, q), 2),
      unit: 'ms',
      baseline: {
        name: `direct PTY tmux attach ${label}`,
        value: round(percentile(floor, q), 2),
        unit: 'ms',
      },
      ratio: round(percentile(s, q) - percentile(floor, q), 2),
      ratioKind: 'delta',
    }) as const
  for (const p of ['raw', 'v1'] as const) {
    const s = samples[p]
    const who = `/ws/terminal ${p === 'v1' ? 'clincus.v1' : 'raw'}`
    const over99 = percentile(s, 0.99) - percentile(floor, 0.99)
    ctx.record({ ...row(who, s, 0.5, 'p50'), detail: { n: s.length, floorN: floor.length } })
    ctx.record(row(who, s, 0.95, 'p95'))
    ctx.record({
      ...row(who, s, 0.99, 'p99'),
      goal: 'p99 overhead < 1 ms',
      met: over99 < 1,
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

  const w = samples.wetty
  for (const [q, label] of [
    [0.5, 'p50'],
    [0.95, 'p95'],
    [0.99, 'p99'],
  ] as const) {
    ctx.record({
      ...row('peer: wetty 3.2.0, tmux attach', w, q, label),
      detail: { n: w.length, samples: w.map((v) => round(v, 2)) },
    })
  }
  for (const p of ['raw', 'v1'] as const) await pairedLatency(ctx, id, p)
  const ours = Math.max(percentile(samples.raw, 0.99), percentile(samples.v1, 0.99))
  ctx.record({
    section: SECTIONS.latency,
    name: 'clincus p50 and p99 (raw and v1) below every peer',
    value: Number.NaN,
    unit: '',
    goal: 'ahead in every row',
    met:
      ours < percentile(w, 0.99) &&
      Math.max(percentile(samples.raw, 0.5), percentile(samples.v1, 0.5)) < percentile(w, 0.5),
    note: TTYD_NOTE,
  })
}

const PAIRED_KEYSTROKES = 256

/**
 * 2c. Where the overhead goes, paired: a direct PTY and a WebSocket client attached to the same
 * tmux session at once, the keystrokes typed alternately through each. Every echo reaches both
 * clients from one tmux redraw, so "seen through clincus − seen direct" for the same keystroke is
 * the output direction's cost with the machine's load on both sides of one subtraction; "typed
 * through clincus, seen direct" against "typed direct, seen direct", key by key alternating, is
 * the input direction's.
 */
async function pairedLatency(ctx: BenchContext, id: string, protocol: 'raw' | 'v1'): Promise<void> {
  const direct = directPty(id, 'attach')
  const ws = wsTerminal(ctx, id, 'attach', protocol)
  const out: number[] = []
  const typedWs: number[] = []
  const typedDirect: number[] = []
  try {
    await opened(ws)
    await Promise.all([direct.settle(300), ws.settle(300)])
    for (let i = 0; i < PAIRED_KEYSTROKES; i++) {
      const key = FLOOD_KEYS[i % FLOOD_KEYS.length] ?? 'Ж'
      const seenDirect = echoBeside(direct, key, 10_000)
      const seenWs = echoBeside(ws, key, 10_000)
      const viaWs = i % 2 === 1
      const t0 = performance.now()
      ;(viaWs ? ws : direct).write(key)
      const [d, w] = await Promise.all([seenDirect, seenWs])
      out.push(w - d)
      ;(viaWs ? typedWs : typedDirect).push(d - t0)
      ws.flushAck()
      if ((i + 1) % FLOOD_KEYS.length === 0) {
        // Ctrl+U: the tty erases the line, so every key of the next round is new on it.
        direct.write('\x15')
        await Promise.all([direct.settle(50), ws.settle(50)])
      } else await sleep(PACE_MS)
    }
    direct.write('\x15')
  } finally {
    await Promise.all([ws.close(), direct.close()])
  }
  await waitDetached(id)
  const who = `/ws/terminal ${protocol === 'v1' ? 'clincus.v1' : 'raw'}`
  const q = (a: number[], x: number): number => round(percentile(a, x), 2)
  ctx.record({
    section: SECTIONS.latency,
    name: `${who}, paired: output direction (same echo, seen through clincus − seen direct) p50 / p99`,
    value: q(out, 0.5),
    unit: 'ms',
    note: `p99 ${q(out, 0.99)} ms; ${out.length} echoes seen by both clients at once`,
    detail: { p95: q(out, 0.95), p99: q(out, 0.99), samples: out.map((v) => round(v, 2)) },
  })
  ctx.record({
    section: SECTIONS.latency,
    name: `${who}, paired: input direction (typed through clincus − typed direct, echo seen direct) p50`,
    value: round(percentile(typedWs, 0.5) - percentile(typedDirect, 0.5), 2),
    unit: 'ms',
    note: `p99 ${round(percentile(typedWs, 0.99) - percentile(typedDirect, 0.99), 2)} ms; typed through clincus p50/p99 ${q(typedWs, 0.5)}/${q(typedWs, 0.99)}, typed direct ${q(typedDirect, 0.5)}/${q(typedDirect, 0.99)} ms`,
    detail: {
      typedWs: typedWs.map((v) => round(v, 2)),
      typedDirect: typedDirect.map((v) => round(v, 2)),
    },
  })
}

/** Keys whose echo cannot be mistaken for the flood (ASCII box lines) or an escape sequence. */
const FLOOD_KEYS = 'АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ'
const FLOOD_KEYSTROKES = 32

/**
 * 2b. Keystroke echo while `cat` of the 64 MiB file streams in another pane of the same tmux
 * window (the tool pane split in two), on each path in turn: the client reads the flood's
 * rendering and the echo from one stream, so this is the latency a user feels while an agent
 * floods its output. The file is sent again and again until the last keystroke's echo is back:
 * every sample is taken during the flood (a path that drains 64 MiB sooner than 32 keystrokes take
 * would otherwise measure some of them on a quiet pane).
 */
export async function benchFloodLatency(ctx: BenchContext): Promise<void> {
  const id = ctx.sessions[0]
  if (!id) throw new Error('flood latency needs a session')
  await selectWindow(id, 0)
  const target = `=${tmuxSessionName(id)}:0`
  const flood = (
    await execAsCode(id, [
      'tmux',
      'split-window',
      '-d',
      '-v',
      '-P',
      '-F',
      '#{pane_id}',
      '-t',
      target,
      'sleep 1000000',
    ])
  ).trim()
  const tool = (await execAsCode(id, ['tmux', 'display', '-p', '-t', target, '#{pane_id}'])).trim()
  await execAsCode(id, ['tmux', 'select-pane', '-t', tool])
  const wetty = await WettyServer.start(ctx.repoRoot, terminalCommand(id, 'attach'))
  const paths = ['direct', 'raw', 'v1', 'wetty'] as const
  const samples: Record<(typeof paths)[number], number[]> = {
    direct: [],
    raw: [],
    v1: [],
    wetty: [],
  }
  let run = 0
  try {
    for (let rep = 0; rep < ctx.reps; rep++) {
      const order = [...paths.slice(rep % paths.length), ...paths.slice(0, rep % paths.length)]
      for (const p of order) {
        const ep =
          p === 'direct'
            ? directPty(id, 'attach')
            : p === 'wetty'
              ? new WettyEndpoint(wetty, COLS, ROWS)
              : wsTerminal(ctx, id, 'attach', p)
        try {
          await opened(ep)
          await ep.settle(300)
          run++
          const base = ep.bytes
          // The flood goes on until the last keystroke's echo is back (the 64 MiB file, again
          // and again), so every sample is taken while it streams, however fast the path is.
          await execAsCode(id, [
            'tmux',
            'respawn-pane',
            '-k',
            '-t',
            flood,
            `clear; while :; do cat ${BIG.path}; done`,
          ])
          while (ep.bytes - base < 256 * 1024 && !ep.isEnded) await sleep(5)
          for (let i = 0; i < FLOOD_KEYSTROKES; i++) {
            const key = FLOOD_KEYS[i % FLOOD_KEYS.length] ?? 'Ж'
            const echo = echoBeside(ep, key, 10_000)
            const t0 = performance.now()
            ep.write(key)
            samples[p].push((await echo) - t0)
            if (ep instanceof WsEndpoint) ep.flushAck()
            await sleep(PACE_MS)
          }
          // Stop the flood; its end marker comes once the path has drained what it held.
          const marker = `FLOOD${run}END`
          const cut = Math.floor(marker.length / 2)
          const ended = timeToMarker(ep, marker, 180_000)
          await execAsCode(id, [
            'tmux',
            'respawn-pane',
            '-k',
            '-t',
            flood,
            `clear; echo '${marker.slice(0, cut)}''${marker.slice(cut)}'; exec sleep 1000000`,
          ])
          // Ctrl+U: the tty erases the typed line, so no key of this run stays on the screen.
          ep.write('\x15')
          await ended
          await ep.settle(100)
        } finally {
          await ep.close()
        }
        await waitDetached(id)
      }
      ctx.progress(`flood latency: repetition ${rep + 1} of ${ctx.reps} done`)
    }
  } finally {
    await wetty.stop()
    await execAsCode(id, ['tmux', 'kill-pane', '-t', flood]).catch(() => '')
  }
  const floor = samples.direct
  for (const p of ['raw', 'v1', 'wetty'] as const) {
    const s = samples[p]
    const name =
      p === 'wetty' ? 'peer: wetty 3.2.0' : `/ws/terminal ${p === 'v1' ? 'clincus.v1' : 'raw'}`
    ctx.record({
      section: SECTIONS.latency,
      name: `${name}: p95 while 64 MiB flood another pane`,
      value: round(percentile(s, 0.95), 2),
      unit: 'ms',
      baseline: {
        name: 'direct PTY tmux attach, same flood',
        value: round(percentile(floor, 0.95), 2),
        unit: 'ms',
      },
      ratio: round(percentile(s, 0.95) - percentile(floor, 0.95), 2),
      ratioKind: 'delta',
      detail: {
        n: s.length,
        p50: round(percentile(s, 0.5), 2),
        floorP50: round(percentile(floor, 0.5), 2),
        samples: s.map((v) => round(v, 2)),
        floorSamples: floor.map((v) => round(v, 2)),
      },
    })
  }
}
