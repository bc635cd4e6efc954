// 6. Memory of the server process (VmRSS from /proc): idle, with 20 attached terminals, and the
// growth while 64 MiB flood towards a client that has stopped reading.
import { spawn } from 'node:child_process'
import { SECTIONS, type BenchContext } from './context.ts'
import { BIG, opened, ptyBytes, wsTerminal } from './fixtures.ts'
import { rssOf } from './server-process.ts'
import { median, MiB, round, sleep } from './stats.ts'
import { commandWithMarker, timeToMarker, type WsEndpoint } from './terminal-clients.ts'

const MB = 1e6

/** Median of a few samples a moment apart (RSS wobbles with GC). */
async function steadyRss(ctx: BenchContext, samples = 5, everyMs = 200): Promise<number> {
  const out: number[] = []
  for (let i = 0; i < samples; i++) {
    out.push(await ctx.server.rss())
    await sleep(everyMs)
  }
  return median(out)
}

/** RSS of the runtime alone: node (how `npm start` runs the bundled server), doing nothing. */
async function runtimeRss(repoRoot: string): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--enable-source-maps', '-e', 'setTimeout(() => {}, 60000)'],
    {
      cwd: repoRoot,
      stdio: 'ignore',
    },
  )
  try {
    await sleep(3000)
    return await rssOf(child.pid ?? 0)
  } finally {
    child.kill('SIGKILL')
  }
}

export async function benchIdleMemory(ctx: BenchContext): Promise<void> {
  await sleep(2000)
  const rss = await steadyRss(ctx, 10)
  const runtime = await runtimeRss(ctx.repoRoot)
  ctx.record({
    section: SECTIONS.memory,
    name: 'server RSS, idle (after start, monitor connected)',
    value: round(rss / MB, 1),
    unit: 'MB',
    baseline: {
      name: 'node running nothing',
      value: round(runtime / MB, 1),
      unit: 'MB',
    },
    ratio: round((rss - runtime) / MB, 1),
    ratioKind: 'delta',
    goal: '< 100 MB',
    met: rss < 100 * MB,
  })
}

export async function benchAttachedMemory(ctx: BenchContext, count = 20): Promise<void> {
  if (ctx.sessions.length < 2) throw new Error('memory needs two sessions')
  const before = await steadyRss(ctx)
  const clients: WsEndpoint[] = []
  try {
    // Spread over the sessions (16 per session at most) and over both protocols.
    for (let i = 0; i < count; i++) {
      const id = ctx.sessions[i % ctx.sessions.length] ?? ''
      clients.push(wsTerminal(ctx, id, 'attach', i % 2 === 0 ? 'v1' : 'raw'))
    }
    await Promise.all(clients.map((c) => opened(c)))
    await Promise.all(clients.map((c) => c.settle(500)))
    const rss = await steadyRss(ctx)
    ctx.record({
      section: SECTIONS.memory,
      name: `server RSS with ${count} attached terminals`,
      value: round(rss / MB, 1),
      unit: 'MB',
      baseline: {
        name: 'the same server, none attached',
        value: round(before / MB, 1),
        unit: 'MB',
      },
      ratio: round((rss - before) / MB, 1),
      ratioKind: 'delta',
      goal: '< 150 MB',
      met: rss < 150 * MB,
      detail: { perTerminalMB: round((rss - before) / MB / count, 2) },
    })
    ctx.progress(`memory: ${count} terminals attached, RSS ${(rss / MB).toFixed(1)} MB`)
  } finally {
    await Promise.all(clients.map((c) => c.close()))
  }
}

/**
 * A /ws/shell client stops reading, then `cat` writes 64 MiB. The server must hold back (pause
 * the PTY) instead of buffering: RSS is sampled while stalled, then the client reads on and must
 * receive every byte.
 */
export async function benchStalledFlood(ctx: BenchContext, stallMs = 4000): Promise<void> {
  const id = ctx.sessions[0] ?? ''
  for (const protocol of ['v1', 'raw'] as const) {
    const ep = wsTerminal(ctx, id, 'shell', protocol)
    try {
      await opened(ep)
      await ep.settle(300)
      const before = await steadyRss(ctx)
      ep.stall()
      const marker = '__BENCH_STALL__'
      const done = timeToMarker(ep, marker, 90_000)
      ep.write(commandWithMarker(`cat ${BIG.path}`, marker))
      const samples = await ctx.server.sampleRss(sleep(stallMs), 20)
      const received = ep.bytes
      ep.unstall()
      await done
      const peak = Math.max(...samples)
      const growth = peak - before
      const complete = ep.bytes >= ptyBytes(BIG.bytes)
      ctx.record({
        section: SECTIONS.memory,
        name: `RSS growth, 64 MiB flood to a stalled client (${protocol === 'v1' ? 'clincus.v1' : 'raw'})`,
        value: round(growth / MB, 1),
        unit: 'MB',
        baseline: { name: 'RSS before the flood', value: round(before / MB, 1), unit: 'MB' },
        goal: '< 32 MB',
        met: growth < 32 * MB && complete,
        note: complete ? undefined : 'not every byte arrived after the client resumed',
        detail: {
          peakMB: round(peak / MB, 1),
          receivedWhileStalledMiB: round(received / MiB, 2),
          totalReceivedMiB: round(ep.bytes / MiB, 2),
          samples: samples.length,
        },
      })
      ctx.progress(
        `memory: stalled ${protocol} client, growth ${(growth / MB).toFixed(1)} MB, ${(received / MiB).toFixed(1)} MiB in before the stall ended`,
      )
    } finally {
      await ep.close()
    }
  }
}
