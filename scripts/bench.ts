// `npm run bench`: measures clincus against the floor it runs on (issue 7), on the live Incus
// daemon, and writes bench/results.json and bench/results.md. Every figure's baseline is measured
// in the same run. The server runs in its own process, so its CPU and memory are its own.
//
//   tsx scripts/bench.ts [--reps N] [--only creation,throughput,latency,flood,memory,scaling,events,listing,egress,launch]
//                        [--launches N]  (launches per series of the launch rows; default 20)
//                        [--probe echo|copilot]  (the keys the launch rows type: the test image's
//                                        fake tool, or Copilot's trust menu in the real image)
//   tsx scripts/bench.ts --render    (bench/results.md again from bench/results.json)
// A run with --only writes bench/results-<names>.json and .md instead, so a partial run never
// replaces the whole run's results (e.g. `--only launch` → bench/results-launch.json); with
// --image other than clincus-test the image's name is appended (bench/results-launch-clincus.*).
//   tsx scripts/bench.ts --image ALIAS  (an existing image, as is: no setup of the test image, which
//                                        would rebuild the shared `clincus-test` when stale)
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { execa } from 'execa'
import type { BenchContext, Figure } from './bench/context.ts'
import { benchCreation } from './bench/creation.ts'
import { benchEgress } from './bench/egress.ts'
import { benchEvents } from './bench/events.ts'
import { prepareSession } from './bench/fixtures.ts'
import { daemonPid, incus, removeByPrefix, waitForDaemon } from './bench/incus.ts'
import { benchLaunch, isProbe, poolConfig, PROBES, storageDriver } from './bench/launch.ts'
import { benchFloodLatency, benchLatency } from './bench/latency.ts'
import { benchListing } from './bench/listing.ts'
import { benchAttachedMemory, benchIdleMemory, benchStalledFlood } from './bench/memory.ts'
import { machineInfo, markdown, writeResults, type Results } from './bench/report.ts'
import { benchScaling } from './bench/scaling.ts'
import { ServerProcess } from './bench/server-process.ts'
import { benchThroughput } from './bench/throughput.ts'
import { runSetup } from './setup.ts'

const ALL = [
  'creation',
  'throughput',
  'latency',
  'flood',
  'memory',
  'scaling',
  'events',
  'listing',
  'egress',
  'launch',
] as const
type Step = (typeof ALL)[number]
const IMAGE = 'clincus-test'
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const outDir = join(repoRoot, 'bench')

function isStep(s: string): s is Step {
  return (ALL as readonly string[]).includes(s)
}

async function terminalsLanded(): Promise<string | null> {
  const files = ['server/routes/ws-terminal.ts', 'server/pty/bridge.ts', 'server/pty/terminals.ts']
  const r = await execa('git', ['ls-files', '--error-unmatch', ...files], {
    cwd: repoRoot,
    reject: false,
  })
  if (r.exitCode === 0) {
    const dirty = await execa(
      'git',
      ['status', '--porcelain', '--', 'server/pty', 'server/routes'],
      {
        cwd: repoRoot,
        reject: false,
      },
    )
    return dirty.stdout.trim() === '' ? null : 'uncommitted changes in server/pty or server/routes'
  }
  return 'the /ws/terminal code (issue 4) is not committed yet'
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      reps: { type: 'string', default: '3' },
      only: { type: 'string' },
      // Re-renders bench/results.md from bench/results.json without measuring anything.
      render: { type: 'boolean', default: false },
      image: { type: 'string' },
      launches: { type: 'string', default: '20' },
      probe: { type: 'string', default: 'echo' },
    },
  })
  if (values.render) {
    const results = JSON.parse(await readFile(join(outDir, 'results.json'), 'utf8')) as Results
    await writeResults(outDir, results)
    console.log(markdown(results))
    return
  }
  const reps = Math.max(1, Number(values.reps) || 3)
  const launches = Math.max(1, Number(values.launches) || 20)
  const probe = values.probe
  if (!isProbe(probe))
    throw new Error(`unknown --probe ${probe} (${Object.keys(PROBES).join(', ')})`)
  const only = values.only?.split(',').map((s) => s.trim()) ?? [...ALL]
  const unknown = only.filter((s) => !isStep(s))
  if (unknown.length > 0) throw new Error(`unknown benchmark(s): ${unknown.join(', ')}`)
  const want = new Set(only.filter(isStep))

  const started = Date.now()
  const progress = (message: string): void => {
    const s = Math.round((Date.now() - started) / 1000)
    const stamp = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
    console.log(`[${stamp}] ${message}`)
  }

  const image = values.image ?? IMAGE
  progress(
    values.image
      ? `setup: Incus (image ${image} as it is)`
      : 'setup: Incus and the clincus-test image',
  )
  const setup = await runSetup(values.image ? 'start' : 'test')
  if (!setup.incus.ok) throw new Error(`Incus is not available: ${setup.incus.reason}`)
  if (values.image) await incus(['image', 'info', image])
  const machine = await machineInfo()

  const runId = `bn${randomBytes(3).toString('hex')}`
  const prefix = `${runId}-`
  const home = await mkdtemp(join(tmpdir(), 'clincus-bench-'))
  const root = join(home, 'projects')
  await mkdir(root, { recursive: true })
  await mkdir(join(home, '.config', 'clincus'), { recursive: true })
  // The run's server has no warm pool: the other rows measure the cold path against its floors,
  // and no pool refills in the background of them (the launch rows start their own pool server).
  await writeFile(
    join(home, '.config', 'clincus', 'config.toml'),
    `[defaults]\nimage = "${image}"\n\n[dashboard]\nworkspace_roots = ["${root}"]\n${poolConfig(0)}`,
  )
  const token = randomBytes(32).toString('base64url')
  await writeFile(join(home, '.config', 'clincus', 'token'), `${token}\n`, { mode: 0o600 })
  await mkdir(outDir, { recursive: true })
  const figures: Figure[] = []
  let staged: Figure[] = []
  const errors: string[] = []
  const pending: string[] = []
  const landed = await terminalsLanded()
  if (landed)
    pending.push(
      `terminal figures (1, 2, 6, 7) were measured against the working tree, not a commit: ${landed}`,
    )

  let server: ServerProcess | null = null
  let interrupted = false
  const cleanups: Array<() => Promise<void>> = []
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined)
    await server?.stop().catch(() => undefined)
    server = null
    const n = await removeByPrefix(runId).catch((err: unknown) => {
      console.error(`cleanup failed: ${String(err)}`)
      return 0
    })
    progress(`cleanup: removed ${n} containers starting with ${runId}`)
    await rm(home, { recursive: true, force: true })
  }
  process.once('SIGINT', () => {
    interrupted = true
    console.error('interrupted: cleaning up')
    void cleanup().finally(() => process.exit(130))
  })

  try {
    progress(`starting the server (prefix ${prefix})`)
    server = await ServerProcess.start({
      repoRoot,
      home,
      token,
      prefix,
      image,
      logFile: join(outDir, 'server.log'),
    })
    machine.storageDriver = await storageDriver(server)
    const ctx: BenchContext = {
      server,
      repoRoot,
      runId,
      prefix,
      home,
      root,
      image,
      sessions: [],
      reps,
      record: (f) => {
        staged.push(f)
      },
      progress,
      cleanups,
    }
    // The Incus daemon is shared: other work on the machine may restart it, which ends every
    // `incus exec` (terminals) and fails calls in flight. A step during which the daemon's pid
    // changed is measured again once; its figures from the disturbed attempt are dropped.
    const run = async (
      name: string,
      fn: () => Promise<void>,
      reset?: () => Promise<void>,
    ): Promise<void> => {
      for (let attempt = 1; attempt <= 2 && !interrupted; attempt++) {
        const t0 = Date.now()
        progress(`${name}: start${attempt > 1 ? ' (again)' : ''}`)
        staged = []
        const pid0 = await daemonPid()
        let failure: string | null = null
        try {
          await fn()
        } catch (err) {
          failure = err instanceof Error ? err.message : String(err)
        }
        await waitForDaemon()
        const restarted = pid0 !== (await daemonPid())
        if (restarted && attempt === 1) {
          progress(`${name}: the Incus daemon restarted meanwhile (other work on this machine)`)
          await reset?.()
          continue
        }
        if (restarted)
          for (const f of staged) f.note = `${f.note ? `${f.note}; ` : ''}Incus restarted meanwhile`
        figures.push(...staged)
        staged = []
        if (failure !== null) {
          errors.push(`${name}: ${failure}${restarted ? ' (the Incus daemon restarted)' : ''}`)
          progress(`${name}: FAILED: ${failure}`)
          return
        }
        progress(`${name}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
        return
      }
    }

    if (want.has('memory')) await run('memory (idle)', () => benchIdleMemory(ctx))
    const needSessions = ['throughput', 'latency', 'flood', 'memory', 'scaling'].some((s) =>
      want.has(s as Step),
    )
    if (want.has('creation') || needSessions)
      await run(
        'session creation',
        () => benchCreation(ctx, 2),
        async () => {
          await Promise.all(
            ctx.sessions.map((id) => incus(['delete', '--force', id]).catch(() => '')),
          )
          ctx.sessions.length = 0
        },
      )
    if (ctx.sessions.length >= 2) {
      const [first] = ctx.sessions
      machine.tmux = first
        ? (await incus(['exec', first, '--', 'tmux', '-V']).catch(() => 'tmux ?')).trim()
        : machine.tmux
      await run('preparing sessions', async () => {
        await Promise.all(ctx.sessions.map((id) => prepareSession(id)))
      })
      if (want.has('throughput')) await run('terminal throughput', () => benchThroughput(ctx))
      if (want.has('latency')) await run('keystroke latency', () => benchLatency(ctx))
      if (want.has('flood'))
        await run('keystroke latency during a flood', () => benchFloodLatency(ctx))
      if (want.has('memory')) {
        await run('memory (20 attached)', () => benchAttachedMemory(ctx))
        await run('memory (stalled flood)', () => benchStalledFlood(ctx))
      }
      if (want.has('scaling')) await run('scaling', () => benchScaling(ctx))
    } else if (needSessions) {
      pending.push('terminal benchmarks skipped: no sessions could be created')
    }
    if (want.has('events')) await run('event latency', () => benchEvents(ctx))
    if (want.has('listing')) await run('listing', () => benchListing(ctx))
    if (want.has('egress')) await run('network egress', () => benchEgress(ctx))
    if (want.has('launch'))
      await run('click to accepting keys', () => benchLaunch(ctx, launches, PROBES[probe]))
  } finally {
    await cleanup()
  }

  const results: Results = {
    date: new Date().toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine,
    figures,
    pending,
    errors,
  }
  // Another image's figures go beside the test image's, not over them.
  const suffix = image === IMAGE ? '' : `-${image.replace(/[^A-Za-z0-9._-]/g, '_')}`
  const base = values.only ? `results-${[...want].join('-')}${suffix}` : `results${suffix}`
  await writeResults(outDir, results, base)
  console.log(`\n${markdown(results)}`)
  progress(`wrote ${join('bench', `${base}.json`)} and ${join('bench', `${base}.md`)}`)
  const missed = figures.filter((f) => f.met === false).length
  console.log(
    `${figures.length} figures, ${missed} goals missed, ${errors.length} errors in ${results.durationSeconds} s`,
  )
  if (errors.length > 0) process.exitCode = 1
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err))
  process.exit(1)
})
