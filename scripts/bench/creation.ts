// 4. Session creation: POST /api/sessions until the session is running, against the raw floor on
// the same image: `incus init` (with the same labels) + the workspace device + `incus start` +
// the same `tmux new-session` the server runs, retried until the container answers.
import { randomUUID } from 'node:crypto'
import { chown, mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { WebSocket } from 'ws'
import { tmuxSessionName, workspaceHash } from '../../server/sessions/naming.ts'
import { TOOL_SPECS, toolWrapperArgv } from '../../server/sessions/tools.ts'
import { SECTIONS, type BenchContext } from './context.ts'
import { configArgs, incus, sessionLabels } from './incus.ts'
import { median, round, sleep } from './stats.ts'

const CODE_UID = 1000

/** A workspace folder owned by uid/gid 1000 (clincus refuses root-owned ones), mapped with raw.idmap. */
export async function workspace(ctx: BenchContext, name: string): Promise<string> {
  const dir = join(ctx.root, name)
  await mkdir(dir, { recursive: true })
  await chown(dir, CODE_UID, CODE_UID)
  return dir
}

/** The server's tmux launch (service.ts #startTool), as the code user. */
function tmuxLaunchArgv(name: string): string[] {
  const env = {
    HOME: '/home/code',
    USER: 'code',
    LOGNAME: 'code',
    TERM: 'xterm-256color',
    IS_SANDBOX: '1',
  }
  return [
    'exec',
    name,
    '--user',
    String(CODE_UID),
    '--group',
    String(CODE_UID),
    '--cwd',
    '/workspace',
    ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    '--',
    'tmux',
    'start-server',
    ';',
    'set-option',
    '-g',
    'history-limit',
    '10000',
    ';',
    'new-session',
    '-d',
    '-s',
    tmuxSessionName(name),
    '-x',
    '200',
    '-y',
    '50',
    '-c',
    '/workspace',
    ...toolWrapperArgv(TOOL_SPECS.claude.start(randomUUID())),
  ]
}

type Steps = Record<string, number>

interface Created {
  ms: number
  name: string
  steps: Steps
}

async function floorOnce(ctx: BenchContext, dir: string): Promise<Created> {
  const name = `${ctx.runId}f${workspaceHash(dir)}-1`
  const steps: Steps = {}
  const t0 = performance.now()
  let mark = t0
  const step = (key: string): void => {
    const now = performance.now()
    steps[key] = (steps[key] ?? 0) + now - mark
    mark = now
  }
  const idmap = { 'raw.idmap': `uid ${CODE_UID} ${CODE_UID}\ngid ${CODE_UID} ${CODE_UID}` }
  await incus(['init', ctx.image, name, ...configArgs({ ...sessionLabels(dir), ...idmap })])
  step('init')
  await incus([
    'config',
    'device',
    'add',
    name,
    'workspace',
    'disk',
    `source=${dir}`,
    'path=/workspace',
  ])
  step('workspace')
  await incus(['start', name])
  step('start')
  // Right after start the container may not take an exec yet: retry like a script would.
  for (let attempt = 0; ; attempt++) {
    try {
      await incus(tmuxLaunchArgv(name), 30_000)
      break
    } catch (err) {
      if (attempt >= 100) throw err
      await sleep(20)
    }
  }
  step('tool')
  return { ms: performance.now() - t0, name, steps }
}

/**
 * POST /api/sessions, with the server's own progress events (`session.launching`, one per step)
 * timed on /ws/events to split the request into its steps.
 */
async function clincusOnce(ctx: BenchContext, dir: string): Promise<Created> {
  const ws = new WebSocket(`${ctx.server.wsUrl}/ws/events`, { headers: ctx.server.headers })
  const marks: Array<{ step: string; at: number }> = []
  ws.on('message', (data: Buffer) => {
    const at = performance.now()
    const e = JSON.parse(data.toString('utf8')) as { type?: string; step?: string }
    if (e.type === 'session.launching' && e.step) marks.push({ step: e.step, at })
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      resolve()
    })
    ws.once('error', reject)
  })
  try {
    const t0 = performance.now()
    const res = await fetch(`${ctx.server.url}/api/sessions`, {
      method: 'POST',
      headers: { ...ctx.server.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ workspace: dir }),
    })
    const end = performance.now()
    const body = (await res.json()) as { id?: string; status?: string; error?: string }
    if (res.status !== 200 || !body.id || body.status !== 'running')
      throw new Error(`POST /api/sessions answered ${res.status}: ${JSON.stringify(body)}`)
    // Each step lasts until the next one is announced; before the first: checks and the slot.
    const steps: Steps = { prepare: (marks[0]?.at ?? end) - t0 }
    marks.forEach((m, i) => {
      steps[m.step] = (marks[i + 1]?.at ?? end) - m.at
    })
    return { ms: end - t0, name: body.id, steps }
  } finally {
    ws.close()
  }
}

function medianSteps(list: readonly Steps[]): Record<string, number> {
  const keys = [...new Set(list.flatMap((s) => Object.keys(s)))]
  return Object.fromEntries(keys.map((k) => [k, round(median(list.map((s) => s[k] ?? 0)), 0)]))
}

/**
 * A host ~/.claude like a user's: settings, credentials and `files` small plugin and hook files,
 * which clincus copies into every new session (tool-config.ts). Returns a cleanup.
 */
async function toolConfigHome(ctx: BenchContext, files: number): Promise<() => Promise<void>> {
  const dir = join(ctx.home, '.claude')
  await mkdir(join(dir, 'plugins', 'bench'), { recursive: true })
  await mkdir(join(dir, 'hooks'), { recursive: true })
  await writeFile(join(dir, 'settings.json'), JSON.stringify({ model: 'bench' }))
  await writeFile(join(dir, '.credentials.json'), JSON.stringify({ token: 'not-a-secret' }))
  for (let i = 0; i < files; i++) {
    const sub = i % 4 === 0 ? join(dir, 'hooks') : join(dir, 'plugins', 'bench')
    await writeFile(join(sub, `file-${i}.json`), JSON.stringify({ i, pad: 'x'.repeat(512) }))
  }
  return () => rm(dir, { recursive: true, force: true })
}

/** Creates `keep` sessions for the later benchmarks along the way (the first clincus ones). */
export async function benchCreation(ctx: BenchContext, keep: number): Promise<void> {
  const rounds = Math.max(ctx.reps + 2, 3)
  const floor: Created[] = []
  const clincus: Created[] = []
  // One untimed run of each side first (page cache, incus' caches, the server's JIT), so the
  // first round does not pay for them on one side only. The clincus one is kept for later.
  {
    const w = await floorOnce(ctx, await workspace(ctx, 'warmup-floor'))
    await incus(['delete', '--force', w.name])
    const c = await clincusOnce(ctx, await workspace(ctx, 'warmup-clincus'))
    ctx.sessions.push(c.name)
  }
  for (let i = 0; i < rounds; i++) {
    // Alternate the order so drift in the machine's load hits both sides alike.
    const order = i % 2 === 0 ? (['floor', 'clincus'] as const) : (['clincus', 'floor'] as const)
    for (const side of order) {
      const dir = await workspace(ctx, `create-${side}-${i}`)
      if (side === 'floor') {
        const r = await floorOnce(ctx, dir)
        floor.push(r)
        await incus(['delete', '--force', r.name])
      } else {
        const r = await clincusOnce(ctx, dir)
        clincus.push(r)
        if (ctx.sessions.length < keep) ctx.sessions.push(r.name)
        else await incus(['delete', '--force', r.name])
      }
    }
    ctx.progress(
      `creation round ${i + 1}/${rounds}: floor ${Math.round(floor.at(-1)?.ms ?? 0)} ms, clincus ${Math.round(clincus.at(-1)?.ms ?? 0)} ms`,
    )
  }
  const f = median(floor.map((r) => r.ms))
  const c = median(clincus.map((r) => r.ms))
  const fs = medianSteps(floor.map((r) => r.steps))
  const cs = medianSteps(clincus.map((r) => r.steps))
  // `incus init` is the same call on both sides and by far the noisiest step on a shared daemon:
  // the rest of each side shows what clincus adds, whatever init did in this run.
  const fRest = median(floor.map((r) => r.ms - (r.steps.init ?? 0)))
  // The machine's speed drifts over the minute this takes (init grew from 0.8 s to 4 s within
  // one run here): the ratio is the median of each round's own ratio, its two sides adjacent.
  const paired = median(
    clincus.map((r, i) => r.ms / (floor[i]?.ms ?? Number.NaN)).filter(Number.isFinite),
  )
  const cRest = median(clincus.map((r) => r.ms - (r.steps.init ?? 0)))
  ctx.record({
    section: SECTIONS.creation,
    name: `POST /api/sessions → running (median of ${rounds}; ratio: median of the rounds' ratios)`,
    value: round(c, 0),
    unit: 'ms',
    baseline: { name: 'init + device add + start + tmux', value: round(f, 0), unit: 'ms' },
    ratio: round(paired, 3),
    ratioKind: 'times',
    goal: '≤ 1.15× floor',
    met: paired <= 1.15,
    note: `without \`incus init\` (the same call on both sides): clincus ${Math.round(cRest)} ms, floor ${Math.round(fRest)} ms; steps (median ms), clincus: ${Object.entries(
      cs,
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}; floor: ${Object.entries(fs)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    detail: {
      clincusMs: clincus.map((r) => round(r.ms, 1)),
      floorMs: floor.map((r) => round(r.ms, 1)),
      clincusSteps: cs,
      floorSteps: fs,
      clincusWithoutInitMs: round(cRest, 0),
      floorWithoutInitMs: round(fRest, 0),
    },
  })

  // What a user with a populated ~/.claude waits for (the benchmark's own HOME is empty).
  const files = 40
  const cleanup = await toolConfigHome(ctx, files)
  try {
    const r = await clincusOnce(ctx, await workspace(ctx, 'create-with-config'))
    await incus(['delete', '--force', r.name])
    ctx.record({
      section: SECTIONS.creation,
      name: `POST /api/sessions with a ~/.claude of ${files + 2} files (informational)`,
      value: round(r.ms, 0),
      unit: 'ms',
      baseline: { name: 'the same with an empty home (median)', value: round(c, 0), unit: 'ms' },
      ratio: round(r.ms - c, 0),
      ratioKind: 'delta',
      note: `tool-config step ${Math.round(r.steps['tool-config'] ?? 0)} ms (empty home: ${cs['tool-config'] ?? 0} ms): one \`incus file push\` process per file (6 at a time)`,
      detail: { steps: medianSteps([r.steps]) },
    })
  } finally {
    await cleanup()
  }
}
