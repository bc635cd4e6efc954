// 9. Click to accepting keys (issue 16): from `POST /api/sessions` sent until the agent echoes a
// line typed into /ws/terminal, primed (the container made for this very workspace, frozen), warm
// (a generic stopped container claimed from the pool) and cold (a new one), beside the floors
// measured in the same run on the same storage pool: `incus resume` of a frozen container (what a
// primed or warm launch cannot beat) and `incus init` + `incus start` of the same image (what a
// cold one cannot beat).
import { chown, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Value } from 'typebox/value'
import { CLINCUS_POOL } from '../../incus/cli.ts'
import { ConfigSchema } from '../../shared/schemas/config.ts'
import { CreatedSessionSchema, type LaunchPath } from '../../shared/schemas/sessions.ts'
import { SECTIONS, type BenchContext, type Figure } from './context.ts'
import { workspace } from './creation.ts'
import { incus } from './incus.ts'
import { ServerProcess } from './server-process.ts'
import { median, percentile, round, sleep } from './stats.ts'
import { timeToMarker, WsEndpoint } from './terminal-clients.ts'

/** Keys typed into a new session's /ws/terminal, and what shows that the agent took them. */
export interface Probe {
  /** The tool to launch (POST body `tool`); the configured default when absent. */
  tool?: string
  /** Text that shows the tool's prompt is on screen, awaited before typing (when keys typed earlier are lost). */
  ready?: string
  send: string
  marker: string
  /** In words, for the report. */
  describe: string
}

export const PROBES = {
  // What the fake tool of the test image answers to a line (images/fake-tool.sh).
  echo: { send: 'hello\r', marker: 'hello-BACK', describe: '`hello⏎` → `hello-BACK`' },
  // The real image without a network: Claude Code exits ("Unable to connect to Anthropic
  // services"), Copilot opens its folder-trust menu after an intro animation that drops keys;
  // ↓ then moves the cursor to the second entry.
  copilot: {
    tool: 'copilot',
    ready: 'Do you trust the files',
    send: '\x1b[B',
    marker: '❯ 2. Yes',
    describe: "Copilot's trust menu on screen, then ↓ → `❯ 2. Yes`",
  },
} as const satisfies Record<string, Probe>
export type ProbeName = keyof typeof PROBES

export function isProbe(name: string): name is ProbeName {
  return Object.hasOwn(PROBES, name)
}
/** A launch that has not echoed within this long failed (a loaded 2-core machine is slow). */
const LAUNCH_TIMEOUT_MS = 120_000
/** The bounded wait for the pool to have a ready container (the first fill imports the image). */
const POOL_FIRST_FILL_MS = 300_000
const POOL_REFILL_MS = 180_000
const CODE_UID = 1000

/** Whether this build has the warm pool at all: `[pool]` in the config schema (issue 16). */
export function poolSupported(): boolean {
  return Object.hasOwn(ConfigSchema.properties, 'pool')
}

/** Whether this build primes containers per recent request: `[pool] primed` (issue 16). */
export function primedSupported(): boolean {
  const pool = (ConfigSchema.properties as Record<string, unknown>).pool
  const props = (pool as { properties?: Record<string, unknown> } | undefined)?.properties
  return props !== undefined && Object.hasOwn(props, 'primed')
}

/** Whether this build can start the agent in primed containers: `[pool] prestart` (issue 16). */
export function prestartSupported(): boolean {
  const pool = (ConfigSchema.properties as Record<string, unknown>).pool
  const props = (pool as { properties?: Record<string, unknown> } | undefined)?.properties
  return props !== undefined && Object.hasOwn(props, 'prestart')
}

/**
 * The config lines for a pool of `size` generic containers and `primed` primed ones, their agent
 * started ahead with `prestart` (none on a build without the pool: they would be refused;
 * `primed` and `prestart` only where the build has them).
 */
export function poolConfig(size: number, primed = 0, prestart = false): string {
  if (!poolSupported()) return ''
  const more =
    (primedSupported() ? `primed = ${primed}\n` : '') +
    (prestart && prestartSupported() ? 'prestart = true\n' : '')
  return `\n[pool]\nsize = ${size}\n${more}`
}

/** Ready primed containers as `GET /api/health` reports them (`pool.primed.ready`), or null. */
export function primedReady(health: unknown): number | null {
  const pool = (health as { pool?: { primed?: { ready?: unknown } } } | null)?.pool
  const ready = pool?.primed?.ready
  return typeof ready === 'number' ? ready : null
}

/**
 * Ready pool containers as `GET /api/health` reports them under `pool`, or null when it reports
 * no pool. Reads `ready` as a count (or a flag), directly or summed over per-image entries.
 */
export function poolReady(health: unknown): number | null {
  if (typeof health !== 'object' || health === null || !('pool' in health)) return null
  const count = (v: unknown): number => {
    if (typeof v !== 'object' || v === null) return 0
    const ready = (v as { ready?: unknown }).ready
    if (typeof ready === 'number') return ready
    if (typeof ready === 'boolean') return ready ? 1 : 0
    return Object.values(v).reduce<number>((n, child) => n + count(child), 0)
  }
  const pool = health.pool
  if (typeof pool !== 'object' || pool === null) return null
  return count(pool)
}

async function health(server: ServerProcess): Promise<Record<string, unknown>> {
  const res = await fetch(`${server.url}/api/health`, { headers: server.headers })
  return (await res.json()) as Record<string, unknown>
}

/** The storage driver of the sessions' pool, as the server reports it. */
export async function storageDriver(server: ServerProcess): Promise<string> {
  const h = await health(server)
  const incusInfo = h.incus as { storage_driver?: unknown } | undefined
  return typeof incusInfo?.storage_driver === 'string' ? incusInfo.storage_driver : 'unknown'
}

/**
 * Waits (bounded) until the server's pool has a ready container (a primed one with `primed`);
 * false when it did not.
 */
async function waitPoolReady(
  server: ServerProcess,
  timeoutMs: number,
  primed = false,
): Promise<boolean> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const h = await health(server).catch(() => null)
    const ready = primed ? primedReady(h) : poolReady(h)
    if (ready === null) return false
    if (ready > 0) return true
    if (Date.now() > until) return false
    await sleep(100)
  }
}

export interface LaunchSample {
  id: string
  /** Click to the agent's echo of the probe line, ms. */
  totalMs: number
  /** Click to the POST's answer, ms. */
  responseMs: number
  path: LaunchPath
  /** For a warm launch: `primed` or `stopped` (the server's `warm` field). */
  warm?: string
  /** `[pool] prestart`: `prestarted` or `restarted` (the server's `agent_start` field). */
  agentStart?: string
  /** Why the agent started ahead was started again (`agent_start_reason`). */
  agentStartReason?: string
  coldReason?: string
  timings: Record<string, number>
}

/** When `marker` arrives on `ep` (performance.now); the error quotes the terminal's last output. */
async function markerOn(ep: WsEndpoint, marker: string, deadline: number): Promise<number> {
  let tail = ''
  const arrived = timeToMarker(ep, marker, Math.max(1000, deadline - performance.now()))
  const watch = ep.currentSink
  ep.sink = (chunk) => {
    tail = (tail + chunk.toString('utf8')).slice(-400)
    watch?.(chunk)
  }
  return arrived.catch((err: unknown) => {
    throw new Error(`${String(err)}; the terminal's last output: ${JSON.stringify(tail)}`)
  })
}

/**
 * One launch as the browser does it: POST /api/sessions, then /ws/terminal/{id}, type the probe
 * line, wait for its echo. `created` gets the id as soon as it is known (for the cleanup).
 */
async function launchOnce(
  server: ServerProcess,
  workspace: string,
  probe: Probe,
  created: (id: string) => void,
): Promise<LaunchSample> {
  const t0 = performance.now()
  const res = await fetch(`${server.url}/api/sessions`, {
    method: 'POST',
    headers: { ...server.headers, 'content-type': 'application/json' },
    body: JSON.stringify(probe.tool ? { workspace, tool: probe.tool } : { workspace }),
    signal: AbortSignal.timeout(LAUNCH_TIMEOUT_MS),
  })
  const responseMs = performance.now() - t0
  const body: unknown = await res.json()
  if (res.status !== 200 || !Value.Check(CreatedSessionSchema, body))
    throw new Error(`POST /api/sessions answered ${res.status}: ${JSON.stringify(body)}`)
  created(body.id)
  const reason = (body as { cold_reason?: unknown }).cold_reason
  const warmKind = (body as { warm?: unknown }).warm
  const agentStart = (body as { agent_start?: unknown }).agent_start
  const agentReason = (body as { agent_start_reason?: unknown }).agent_start_reason
  const ep = new WsEndpoint(
    '/ws/terminal',
    `${server.wsUrl}/ws/terminal/${encodeURIComponent(body.id)}?cols=120&rows=40`,
    'raw',
    server.headers,
  )
  try {
    await ep.opened
    const deadline = t0 + LAUNCH_TIMEOUT_MS
    if (probe.ready !== undefined) await markerOn(ep, probe.ready, deadline)
    const echoed = markerOn(ep, probe.marker, deadline)
    ep.write(probe.send)
    const t1 = await echoed
    return {
      id: body.id,
      totalMs: t1 - t0,
      responseMs,
      path: body.path,
      ...(typeof warmKind === 'string' ? { warm: warmKind } : {}),
      ...(typeof agentStart === 'string' ? { agentStart } : {}),
      ...(typeof agentReason === 'string' ? { agentStartReason: agentReason } : {}),
      ...(typeof reason === 'string' ? { coldReason: reason } : {}),
      timings: body.timings,
    }
  } finally {
    await ep.close()
  }
}

async function deleteSession(server: ServerProcess, id: string): Promise<void> {
  const res = await fetch(`${server.url}/api/sessions/${encodeURIComponent(id)}?force=true`, {
    method: 'DELETE',
    headers: server.headers,
    signal: AbortSignal.timeout(120_000),
  }).catch(() => null)
  // The server is the owner; the CLI is the fallback when it could not (the run's cleanup also
  // deletes by prefix at the end).
  if (!res?.ok) await incus(['delete', '--force', id]).catch(() => '')
}

/** `--storage <pool>` as the server picks it: the `clincus` pool when it exists, else the default. */
async function storageArgs(): Promise<string[]> {
  const exists = await incus(['query', `/1.0/storage-pools/${CLINCUS_POOL}`]).then(
    () => true,
    () => false,
  )
  return exists ? ['--storage', CLINCUS_POOL] : []
}

/** The cold floor: `incus init` + `incus start` of the image; both ms, and the start alone. */
async function initStartFloor(
  ctx: BenchContext,
  name: string,
  storage: string[],
): Promise<{ ms: number; startMs: number }> {
  const t0 = performance.now()
  await incus(['init', ctx.image, name, ...storage])
  const t1 = performance.now()
  await incus(['start', name])
  const t2 = performance.now()
  return { ms: t2 - t0, startMs: t2 - t1 }
}

/** The warm floor: `incus resume` (un-freeze) of a paused container, ms. */
async function thawFloor(name: string): Promise<number> {
  await incus(['pause', name])
  const t0 = performance.now()
  await incus(['resume', name])
  return performance.now() - t0
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function loadAverage(): Promise<string> {
  return readFile('/proc/loadavg', 'utf8').then((t) => t.split(' ').slice(0, 3).join(' '))
}

function medianTimings(list: readonly Record<string, number>[]): Record<string, number> {
  const keys = [...new Set(list.flatMap((s) => Object.keys(s)))]
  return Object.fromEntries(keys.map((k) => [k, round(median(list.map((s) => s[k] ?? 0)), 0)]))
}

function stepsText(steps: Record<string, number>): string {
  const list = Object.entries(steps)
  return list.length === 0 ? 'none reported' : list.map(([k, v]) => `${k} ${v}`).join(', ')
}

export interface LaunchSeries {
  path: LaunchPath
  /** Only warm launches of this kind count (`primed`); the others are off the series' path. */
  warmKind?: string
  /** And only those whose agent was handed over so (`prestarted`: started ahead). */
  agentStart?: string
  samples: LaunchSample[]
  floorMs: number[]
  floorName: string
  /** Launches of the series that came back on the other path, with their reasons. */
  offPath: LaunchSample[]
  /** Why the series has no figure at all, when it has none. */
  unavailable?: string
  /** Launches that failed (the server's error), left out of the figures. */
  failed: string[]
  /** A second floor, named in the note (p50 / p95). */
  alsoFloor?: { name: string; ms: number[] }
}

/** Whether a launch took the series' path (its kind of warm container and agent start). */
export function onSeriesPath(s: LaunchSeries, x: LaunchSample): boolean {
  return (
    x.path === s.path &&
    (s.warmKind === undefined || x.warm === s.warmKind) &&
    (s.agentStart === undefined || x.agentStart === s.agentStart)
  )
}

/** The figures of one series: p50 and p95 beside the floor's, or one n/a row saying why. */
export function seriesFigures(s: LaunchSeries, image: string, context: string): Figure[] {
  const on = s.samples.filter((x) => onSeriesPath(s, x))
  const label = s.warmKind
    ? `${s.path} (${s.warmKind}${s.agentStart ? `, agent ${s.agentStart}` : ''})`
    : s.path
  const total = s.samples.length
  const off = s.offPath
  const offText =
    off.length > 0
      ? `; ${off.length} of ${total} came back ${s.warmKind ? `not ${s.warmKind}${s.agentStart ? ` with the agent ${s.agentStart}` : ''}` : s.path === 'warm' ? 'cold' : 'warm'}${
          off.some((x) => x.coldReason ?? x.agentStartReason)
            ? ` (${[...new Set(off.map((x) => x.coldReason ?? x.agentStartReason ?? 'no reason given'))].join('; ')})`
            : ''
        } and are left out`
      : ''
  const also = s.alsoFloor
  const alsoText =
    also && also.ms.length > 0
      ? `; ${also.name}: p50 ${Math.round(percentile(also.ms, 0.5))} / p95 ${Math.round(percentile(also.ms, 0.95))} ms`
      : ''
  const failText =
    s.failed.length > 0 ? `; ${s.failed.length} launches failed (first: ${s.failed[0] ?? ''})` : ''
  const name = (q: string): string =>
    `${label}: click → agent accepts keys, ${q} (${image}, ${on.length} launches)`
  if (on.length === 0) {
    const why =
      s.unavailable ??
      (total > 0
        ? `every launch came back ${s.path === 'warm' ? 'cold (pool not ready)' : 'warm'}`
        : 'no launch completed')
    return [
      {
        section: SECTIONS.launch,
        name: `${label}: click → agent accepts keys (${image})`,
        value: Number.NaN,
        unit: 'ms',
        ...(s.floorMs.length > 0
          ? { baseline: { name: s.floorName, value: round(median(s.floorMs), 0), unit: 'ms' } }
          : {}),
        note: `n/a — ${why}${offText}${failText}${alsoText}; ${context}`,
        detail: { floorMs: s.floorMs.map((v) => round(v, 1)), offPath: off },
      },
    ]
  }
  const ms = on.map((x) => x.totalMs)
  const steps = medianTimings(on.map((x) => x.timings))
  const response = median(on.map((x) => x.responseMs))
  const note = `POST answered at ${Math.round(response)} ms (median), the echo came ${Math.round(
    median(on.map((x) => x.totalMs - x.responseMs)),
  )} ms later; server steps (median ms): ${stepsText(steps)}${offText}${failText}${alsoText}; ${context}`
  const goal = s.path === 'warm' ? { goal: 'p50 < 1000 ms', met: percentile(ms, 0.5) < 1000 } : {}
  return [0.5, 0.95].map((q, i) => {
    const v = percentile(ms, q)
    const f = percentile(s.floorMs, q)
    return {
      section: SECTIONS.launch,
      name: name(q === 0.5 ? 'p50' : 'p95'),
      value: round(v, 0),
      unit: 'ms',
      baseline: {
        name: `${s.floorName} ${q === 0.5 ? 'p50' : 'p95'}`,
        value: round(f, 0),
        unit: 'ms',
      },
      ratio: round(v - f, 0),
      ratioKind: 'delta',
      ...(i === 0 ? goal : {}),
      ...(i === 0 ? { note } : {}),
      ...(i === 0
        ? {
            detail: {
              totalMs: ms.map((x) => round(x, 1)),
              responseMs: on.map((x) => round(x.responseMs, 1)),
              floorMs: s.floorMs.map((x) => round(x, 1)),
              steps,
              offPath: off.map((x) => ({ path: x.path, coldReason: x.coldReason ?? null })),
            },
          }
        : {}),
    } satisfies Figure
  })
}

/**
 * A second server of the run with a pool of `size` generic and `primed` primed containers (its
 * own home, prefix and log).
 */
async function poolServer(
  ctx: BenchContext,
  size: number,
  primed = 0,
  prestart = false,
): Promise<ServerProcess> {
  const tag = `${size}${primed > 0 ? `p${primed}` : ''}${prestart ? 's' : ''}`
  const home = join(ctx.home, `pool-${tag}`)
  const dir = join(home, '.config', 'clincus')
  await mkdir(dir, { recursive: true })
  await writeFile(
    join(dir, 'config.toml'),
    `[defaults]\nimage = "${ctx.image}"\n\n[dashboard]\nworkspace_roots = ["${ctx.root}"]\n${poolConfig(size, primed, prestart)}`,
  )
  // The pool fills for the owner of the first workspace root until a create says better: the
  // bench's workspaces are uid 1000's, so its root is too (else every first claim is cold).
  await chown(ctx.root, CODE_UID, CODE_UID)
  const token = (await readFile(join(ctx.home, '.config', 'clincus', 'token'), 'utf8')).trim()
  await writeFile(join(dir, 'token'), `${token}\n`, { mode: 0o600 })
  return ServerProcess.start({
    repoRoot: ctx.repoRoot,
    home,
    token,
    // Starts with the run id, so the run's cleanup by prefix takes its containers too.
    prefix: `${ctx.runId}w${primed > 0 ? 'p' : ''}${prestart ? 's' : ''}-`,
    image: ctx.image,
    logFile: join(ctx.repoRoot, 'bench', `server-pool-${tag}.log`),
  })
}

/**
 * Both series and their floors; records the figures. Every session and container it creates is
 * deleted before it returns, also when it fails (and by the run's cleanup on Ctrl-C).
 */
export async function benchLaunch(
  ctx: BenchContext,
  launches: number,
  probe: Probe = PROBES.echo,
): Promise<void> {
  const n = Math.max(1, launches)
  const storage = await storageArgs()
  const driver = await storageDriver(ctx.server)
  const loadBefore = await loadAverage()
  const floorName = (i: number | string): string => `${ctx.runId}fl${i}`
  const cold: LaunchSeries = {
    path: 'cold',
    samples: [],
    floorMs: [],
    floorName: '`incus init` + `incus start`',
    offPath: [],
    failed: [],
  }
  const warm: LaunchSeries = {
    path: 'warm',
    samples: [],
    floorMs: [],
    floorName: '`incus resume` of a frozen container',
    offPath: [],
    failed: [],
  }
  const primed: LaunchSeries = {
    ...warm,
    warmKind: 'primed',
    samples: [],
    floorMs: [],
    offPath: [],
    failed: [],
  }
  // `[pool] prestart`: the primed member's agent started ahead and handed over at the click.
  const prestarted: LaunchSeries = {
    ...primed,
    agentStart: 'prestarted',
    samples: [],
    floorMs: [],
    offPath: [],
    failed: [],
  }
  // Sessions not yet deleted, by the server that made them.
  const context = async (): Promise<string> =>
    `keys: ${probe.describe}${probe.tool ? ` (tool ${probe.tool})` : ''}; storage driver ${driver}; load average ${loadBefore} before, ${await loadAverage()} after`
  // `incus start` alone, from the cold floor's rounds: a warm claim of a stopped pool container
  // (what the pool keeps since it stopped freezing them) still runs it.
  const startMs: number[] = []
  warm.alsoFloor = {
    name: '`incus start` of a stopped container (the cold floor without its init)',
    ms: startMs,
  }
  const created = new Map<string, ServerProcess>()
  const servers: ServerProcess[] = []
  const frozen = floorName('z')
  const cleanup = async (): Promise<void> => {
    for (const [id, server] of [...created]) {
      created.delete(id)
      await deleteSession(server, id)
    }
    for (const s of servers.splice(0)) await s.stop().catch(() => undefined)
    await incus(['delete', '--force', frozen]).catch(() => '')
  }
  ctx.cleanups.push(cleanup)
  const launch = async (server: ServerProcess, name: string): Promise<LaunchSample> => {
    const s = await launchOnce(server, await workspace(ctx, name), probe, (id) =>
      created.set(id, server),
    )
    created.delete(s.id)
    await deleteSession(server, s.id)
    return s
  }
  try {
    // Cold, on the run's server (its pool is off). One untimed launch and floor first: the image
    // volume on the pool, the page cache and the server's JIT are then warm for both sides.
    ctx.progress(`launch: cold series (${n} launches, storage driver ${driver})`)
    await initStartFloor(ctx, floorName('w'), storage)
    await incus(['delete', '--force', floorName('w')])
    await launch(ctx.server, 'launch-warmup')
    for (let i = 0; i < n; i++) {
      // Alternate the order so drift in the machine's load hits both sides alike.
      const sides = i % 2 === 0 ? (['floor', 'clincus'] as const) : (['clincus', 'floor'] as const)
      for (const side of sides) {
        if (side === 'floor') {
          const f = await initStartFloor(ctx, floorName(i), storage)
          cold.floorMs.push(f.ms)
          startMs.push(f.startMs)
          await incus(['delete', '--force', floorName(i)])
        } else {
          const s = await launch(ctx.server, `launch-cold-${i}`)
          cold.samples.push(s)
          if (s.path !== 'cold') cold.offPath.push(s)
        }
      }
      ctx.progress(
        `launch: cold ${i + 1}/${n}: ${Math.round(cold.samples.at(-1)?.totalMs ?? 0)} ms (floor ${Math.round(cold.floorMs.at(-1) ?? 0)} ms)`,
      )
    }

    // Kept even when the warm series fails.
    for (const f of seriesFigures(cold, ctx.image, await context())) ctx.record(f)

    // The warm floor: one container of the image on the same pool, paused and resumed.
    await initStartFloor(ctx, frozen, storage)
    if (!poolSupported()) {
      for (let i = 0; i < n; i++) warm.floorMs.push(await thawFloor(frozen))
      warm.unavailable = 'this build has no warm pool (`[pool]` is not in the config schema)'
    } else {
      ctx.progress('launch: starting a server with a pool of 1')
      const server = await poolServer(ctx, 1)
      servers.push(server)
      if (poolReady(await health(server)) === null) {
        warm.unavailable = 'the server reports no pool in GET /api/health'
      } else {
        let ready = await waitPoolReady(server, POOL_FIRST_FILL_MS)
        ctx.progress(`launch: warm series (${n} launches; pool ${ready ? 'ready' : 'NOT ready'})`)
        await launch(server, 'launch-warm-warmup').catch((err: unknown) => {
          warm.failed.push(message(err))
        })
        for (let i = 0; i < n; i++) {
          // A create while the pool refills takes the cold path: wait for a ready container.
          ready = await waitPoolReady(server, POOL_REFILL_MS)
          warm.floorMs.push(await thawFloor(frozen))
          let s: LaunchSample
          try {
            s = await launch(server, `launch-warm-${i}`)
          } catch (err) {
            // Counted and reported; a series that keeps failing stops (the run reports the error).
            warm.failed.push(message(err))
            ctx.progress(`launch: warm ${i + 1}/${n}: FAILED: ${message(err)}`)
            if (warm.failed.length >= 3 && warm.samples.length === 0) break
            continue
          }
          warm.samples.push(s)
          if (s.path !== 'warm') warm.offPath.push(s)
          ctx.progress(
            `launch: warm ${i + 1}/${n}: ${s.path} ${Math.round(s.totalMs)} ms${ready ? '' : ' (pool was not ready)'} (floor ${Math.round(warm.floorMs.at(-1) ?? 0)} ms)`,
          )
        }
        await server.stop().catch(() => undefined)
        servers.splice(servers.indexOf(server), 1)
      }
    }
    if (!primedSupported()) {
      primed.unavailable = 'this build primes no containers (`[pool] primed` is not in the schema)'
    } else {
      await primedSeries(ctx, n, primed, {
        launch,
        thaw: () => thawFloor(frozen),
        server: async () => {
          const server = await poolServer(ctx, 0, 1)
          servers.push(server)
          return server
        },
      })
    }
    if (!prestartSupported()) {
      prestarted.unavailable =
        'this build starts no agent ahead (`[pool] prestart` is not in the schema)'
    } else {
      await primedSeries(ctx, n, prestarted, {
        launch,
        thaw: () => thawFloor(frozen),
        server: async () => {
          const server = await poolServer(ctx, 0, 1, true)
          servers.push(server)
          return server
        },
      })
    }
  } finally {
    await cleanup()
    const at = ctx.cleanups.indexOf(cleanup)
    if (at >= 0) ctx.cleanups.splice(at, 1)
  }
  for (const f of seriesFigures(warm, ctx.image, await context())) ctx.record(f)
  for (const f of seriesFigures(primed, ctx.image, await context())) ctx.record(f)
  for (const f of seriesFigures(prestarted, ctx.image, await context())) ctx.record(f)
  if (prestarted.failed.length > 0)
    throw new Error(
      `${prestarted.failed.length} prestarted launches failed; first: ${prestarted.failed[0] ?? ''}`,
    )
  if (primed.failed.length > 0)
    throw new Error(
      `${primed.failed.length} primed launches failed; first: ${primed.failed[0] ?? ''}`,
    )
  if (warm.failed.length > 0)
    throw new Error(`${warm.failed.length} warm launches failed; first: ${warm.failed[0] ?? ''}`)
}

/**
 * The primed series: a server with `[pool] primed = 1` and no generic pool; one workspace launched
 * again and again (each session deleted after its echo), waiting before each launch until the
 * member primed for it is ready. The first launch is cold (it is what primes the request).
 */
async function primedSeries(
  ctx: BenchContext,
  n: number,
  series: LaunchSeries,
  use: {
    launch: (server: ServerProcess, name: string) => Promise<LaunchSample>
    thaw: () => Promise<number>
    server: () => Promise<ServerProcess>
  },
): Promise<void> {
  const kind = series.agentStart ? `primed, agent ${series.agentStart}` : 'primed'
  ctx.progress(`launch: starting a server with [pool] primed = 1 (${kind})`)
  const server = await use.server()
  const name = series.agentStart ? 'launch-prestart' : 'launch-primed'
  await use.launch(server, name).catch((err: unknown) => {
    series.failed.push(message(err))
  })
  for (let i = 0; i < n; i++) {
    const ready = await waitPoolReady(server, POOL_REFILL_MS, true)
    series.floorMs.push(await use.thaw())
    let s: LaunchSample
    try {
      s = await use.launch(server, name)
    } catch (err) {
      series.failed.push(message(err))
      ctx.progress(`launch: ${kind} ${i + 1}/${n}: FAILED: ${message(err)}`)
      if (series.failed.length >= 3 && series.samples.length === 0) break
      continue
    }
    series.samples.push(s)
    if (!onSeriesPath(series, s)) series.offPath.push(s)
    ctx.progress(
      `launch: ${kind} ${i + 1}/${n}: ${s.warm ?? s.path}${s.agentStart ? ` ${s.agentStart}` : ''} ${Math.round(s.totalMs)} ms${ready ? '' : ' (member was not ready)'} (floor ${Math.round(series.floorMs.at(-1) ?? 0)} ms)`,
    )
  }
}
