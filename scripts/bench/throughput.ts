// 1. Terminal throughput: 64 MiB of `cat` through the server to a client that reads as fast as it
// can, against the same command through a direct PTY around the very argv the server spawns.
//   /ws/shell    ↔ direct PTY `incus exec -t … bash --login`: byte-for-byte the same stream, so
//                  the ratio is the cost of the bridge alone.
//   /ws/terminal ↔ direct PTY `incus exec -t … tmux attach`: tmux re-renders the pane for each
//                  client, so both sides get tmux's rendering of the same 64 MiB.
// Plus the handbook's floor, `incus exec -t … cat <file>` alone, to show what tmux itself costs.
// Peers (issue 14): wetty runs the same command for each kind, in the same rotation, read by its
// own protocol's client in this process; its server process takes the "server" CPU column.
import type { TerminalKind } from '../../server/pty/terminals.ts'
import { SECTIONS, type BenchContext } from './context.ts'
import {
  BIG,
  COLS,
  directPty,
  ROWS,
  openBenchWindow,
  opened,
  ptyBytes,
  terminalCommand,
  waitDetached,
  wsTerminal,
} from './fixtures.ts'
import { TTYD_NOTE, WettyEndpoint, WettyServer } from './peers.ts'
import { cpuDelta, cpuSnapshot, type CpuPart, type CpuSnapshot } from './cpu.ts'
import { mbPerS, median, round } from './stats.ts'
import {
  commandWithMarker,
  PtyEndpoint,
  timeToMarker,
  type Endpoint,
  type Protocol,
} from './terminal-clients.ts'

const MARKER = '__BENCH_END__'
const TIMEOUT_MS = 90_000

interface Path {
  key: string
  kind: TerminalKind
  protocol: Protocol | 'direct' | 'wetty'
}

const PATHS: Path[] = [
  { key: 'shell-direct', kind: 'shell', protocol: 'direct' },
  { key: 'shell-raw', kind: 'shell', protocol: 'raw' },
  { key: 'shell-v1', kind: 'shell', protocol: 'v1' },
  { key: 'attach-direct', kind: 'attach', protocol: 'direct' },
  { key: 'attach-raw', kind: 'attach', protocol: 'raw' },
  { key: 'attach-v1', kind: 'attach', protocol: 'v1' },
  { key: 'shell-wetty', kind: 'shell', protocol: 'wetty' },
  { key: 'attach-wetty', kind: 'attach', protocol: 'wetty' },
]

export interface RunResult {
  ms: number
  wireBytes: number
  /** CPU time of each part of the pipeline during the run. */
  cpu?: Record<CpuPart, number>
}

/** Opens `ep`, lets its first screen settle, runs `cat` with an end marker, times it. */
export async function catThrough(
  ep: Endpoint,
  path: string,
  snapshot: () => Promise<CpuSnapshot>,
): Promise<RunResult> {
  try {
    await opened(ep)
    await ep.settle(300)
    const before = ep.bytes
    const done = timeToMarker(ep, MARKER, TIMEOUT_MS)
    const cpu0 = await snapshot()
    const t0 = performance.now()
    ep.write(commandWithMarker(`cat ${path}`, MARKER))
    const t1 = await done
    const cpu = cpuDelta(cpu0, await snapshot())
    return { ms: t1 - t0, wireBytes: ep.bytes - before, cpu }
  } finally {
    await ep.close()
  }
}

function cpuText(cpu: Record<CpuPart, number> | undefined): string {
  if (!cpu) return ''
  const total = Object.values(cpu).reduce((a, b) => a + b, 0)
  return `CPU ${total} ms: ${Object.entries(cpu)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}`
}

/** The handbook's floor: a PTY around `incus exec -t C -- sh -c 'cat F; echo MARK'`. */
async function plainCat(id: string): Promise<RunResult> {
  const cut = Math.floor(MARKER.length / 2)
  const ep = new PtyEndpoint('direct PTY cat', 'incus', [
    'exec',
    id,
    '-t',
    '--',
    'sh',
    '-c',
    `cat ${BIG.path}; echo '${MARKER.slice(0, cut)}''${MARKER.slice(cut)}'; sleep 2`,
  ])
  const done = timeToMarker(ep, MARKER, TIMEOUT_MS)
  const t0 = performance.now()
  try {
    return { ms: (await done) - t0, wireBytes: ep.bytes }
  } finally {
    await ep.close()
  }
}

/** Median CPU per part over the runs of one path, and their total. */
export function cpuMedians(list: readonly RunResult[]): Record<string, number> {
  const parts: CpuPart[] = ['server', 'client', 'incus', 'incusd', 'container']
  const out: Record<string, number> = {}
  for (const p of parts) out[p] = Math.round(median(list.map((r) => r.cpu?.[p] ?? 0)))
  out.total = Math.round(
    median(list.map((r) => Object.values(r.cpu ?? {}).reduce((a, b) => a + b, 0))),
  )
  return out
}

export async function benchThroughput(ctx: BenchContext): Promise<void> {
  const id = ctx.sessions[0]
  if (!id) throw new Error('throughput needs a session')
  await openBenchWindow(id)
  const runs = new Map<string, RunResult[]>()
  const push = (key: string, r: RunResult): void => {
    runs.set(key, [...(runs.get(key) ?? []), r])
  }
  const wetty = {
    shell: await WettyServer.start(ctx.repoRoot, terminalCommand(id, 'shell')),
    attach: await WettyServer.start(ctx.repoRoot, terminalCommand(id, 'attach')),
  }
  try {
    await rotations(ctx, id, wetty, push)
  } finally {
    await wetty.shell.stop()
    await wetty.attach.stop()
  }
  recordThroughput(ctx, runs)
}

async function rotations(
  ctx: BenchContext,
  id: string,
  wetty: Record<TerminalKind, WettyServer>,
  push: (key: string, r: RunResult) => void,
): Promise<void> {
  for (let rep = 0; rep < ctx.reps; rep++) {
    // Rotate the order each repetition so a burst of load elsewhere does not land on one path.
    const order = [...PATHS.slice(rep % PATHS.length), ...PATHS.slice(0, rep % PATHS.length)]
    for (const p of order) {
      const ep =
        p.protocol === 'direct'
          ? directPty(id, p.kind)
          : p.protocol === 'wetty'
            ? new WettyEndpoint(wetty[p.kind], COLS, ROWS)
            : wsTerminal(ctx, id, p.kind, p.protocol)
      const serverPid = p.protocol === 'wetty' ? wetty[p.kind].pid : ctx.server.pid
      const r = await catThrough(ep, BIG.path, () => cpuSnapshot(serverPid, [id]))
      if (p.kind === 'attach') await waitDetached(id)
      else if (r.wireBytes < ptyBytes(BIG.bytes))
        throw new Error(`${p.key}: only ${r.wireBytes} of ${ptyBytes(BIG.bytes)} bytes arrived`)
      push(p.key, r)
      ctx.progress(
        `throughput ${rep + 1}/${ctx.reps} ${p.key}: ${mbPerS(BIG.bytes, r.ms).toFixed(1)} MB/s (${(r.wireBytes / 1e6).toFixed(1)} MB on the wire; ${cpuText(r.cpu)})`,
      )
    }
    const r = await plainCat(id)
    push('cat-direct', r)
    ctx.progress(
      `throughput ${rep + 1}/${ctx.reps} cat-direct: ${mbPerS(BIG.bytes, r.ms).toFixed(1)} MB/s`,
    )
  }
}

function recordThroughput(ctx: BenchContext, runs: Map<string, RunResult[]>): void {
  const rate = (key: string): number => {
    const list = runs.get(key) ?? []
    return median(list.map((r) => mbPerS(BIG.bytes, r.ms)))
  }
  const detail = (key: string): Record<string, unknown> => ({
    mbPerS: (runs.get(key) ?? []).map((r) => round(mbPerS(BIG.bytes, r.ms), 1)),
    wireMB: (runs.get(key) ?? []).map((r) => round(r.wireBytes / 1e6, 1)),
    cpuMs: cpuMedians(runs.get(key) ?? []),
  })
  // The ratio is the median of each repetition's own ratio: the two runs of a repetition are
  // seconds apart, so a change in the machine's load between repetitions cancels out.
  const pairedRatio = (key: string, floorKey: string): number => {
    const a = runs.get(key) ?? []
    const b = runs.get(floorKey) ?? []
    return median(a.map((r, i) => (b[i] ? b[i].ms / r.ms : Number.NaN)).filter(Number.isFinite))
  }
  const figure = (
    key: string,
    name: string,
    floorKey: string,
    floorName: string,
    peer = false,
  ): void => {
    const v = rate(key)
    const f = rate(floorKey)
    const ratio = pairedRatio(key, floorKey)
    const cpu = cpuMedians(runs.get(key) ?? [])
    const floorCpu = cpuMedians(runs.get(floorKey) ?? [])
    const s = (ms: number | undefined): string => ((ms ?? 0) / 1000).toFixed(2)
    ctx.record({
      section: SECTIONS.throughput,
      name,
      value: round(v, 1),
      unit: 'MB/s',
      baseline: { name: floorName, value: round(f, 1), unit: 'MB/s' },
      ratio: round(ratio, 3),
      ratioKind: 'times',
      ...(peer ? {} : { goal: '≥ 0.95× floor', met: ratio >= 0.95 }),
      note: `CPU for the 64 MiB, all processes on the path: ${s(cpu.total)} s (server ${s(cpu.server)} s, client ${s(cpu.client)} s) vs ${s(floorCpu.total)} s (reader ${s(floorCpu.client)} s)`,
      detail: { runs: detail(key), floor: detail(floorKey) },
    })
  }
  figure('shell-raw', '64 MiB via /ws/shell, raw protocol', 'shell-direct', 'direct PTY bash')
  figure('shell-v1', '64 MiB via /ws/shell, clincus.v1', 'shell-direct', 'direct PTY bash')
  figure(
    'attach-raw',
    '64 MiB via /ws/terminal (tmux), raw',
    'attach-direct',
    'direct PTY tmux attach',
  )
  figure(
    'attach-v1',
    '64 MiB via /ws/terminal (tmux), clincus.v1',
    'attach-direct',
    'direct PTY tmux attach',
  )
  figure('shell-wetty', 'peer: wetty 3.2.0, shell', 'shell-direct', 'direct PTY bash', true)
  figure(
    'attach-wetty',
    'peer: wetty 3.2.0, tmux attach',
    'attach-direct',
    'direct PTY tmux attach',
    true,
  )
  const beats = (ours: string, peer: string): boolean => rate(ours) > rate(peer)
  ctx.record({
    section: SECTIONS.throughput,
    name: 'clincus ahead of every peer (raw and v1, shell and tmux)',
    value: Number.NaN,
    unit: '',
    goal: 'ahead in every row',
    met:
      beats('shell-raw', 'shell-wetty') &&
      beats('shell-v1', 'shell-wetty') &&
      beats('attach-raw', 'attach-wetty') &&
      beats('attach-v1', 'attach-wetty'),
    note: TTYD_NOTE,
  })
  const tmuxRate = rate('attach-direct')
  const catRate = rate('cat-direct')
  const shellRate = rate('shell-direct')
  ctx.record({
    section: SECTIONS.throughput,
    name: 'direct PTY bash (the /ws/shell floor)',
    value: round(shellRate, 1),
    unit: 'MB/s',
    baseline: { name: 'direct PTY `incus exec -t cat`', value: round(catRate, 1), unit: 'MB/s' },
    ratio: round(shellRate / catRate, 3),
    ratioKind: 'times',
    note: 'informational: the handbook floor (≈ 48 MB/s) against the floor used above',
    detail: { shell: detail('shell-direct'), cat: detail('cat-direct') },
  })
  ctx.record({
    section: SECTIONS.throughput,
    name: 'direct PTY tmux attach (the /ws/terminal floor)',
    value: round(tmuxRate, 1),
    unit: 'MB/s',
    baseline: { name: 'direct PTY `incus exec -t cat`', value: round(catRate, 1), unit: 'MB/s' },
    ratio: round(tmuxRate / catRate, 3),
    ratioKind: 'times',
    note: 'informational: what tmux itself costs, with or without clincus',
    detail: { attach: detail('attach-direct') },
  })
}
