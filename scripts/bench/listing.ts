// 3. Listing: GET /api/sessions with 10, 50 and 100 sessions against one `incus list --format json`
// (what a dashboard that asks Incus per request pays). The sessions beyond the running ones are
// `incus init --empty` instances with clincus' labels: stopped, no root filesystem, so a hundred
// are made in seconds. The burst of creations also gives the event latency under load.
import { spawn } from 'node:child_process'
import { SECTIONS, type BenchContext } from './context.ts'
import { EventProbe } from './events.ts'
import { execa } from 'execa'
import {
  createEmptySession,
  daemonDown,
  instanceNames,
  randomHash,
  waitForDaemon,
} from './incus.ts'
import { mapLimit, median, percentile, round, waitFor, wallNow } from './stats.ts'

const LEVELS = [10, 50, 100]
const REQUESTS = 1000
const CREATE_CONCURRENCY = 8

async function timeGet(url: string, headers: Record<string, string>): Promise<number> {
  const t0 = performance.now()
  const res = await fetch(url, { headers })
  await res.arrayBuffer()
  const ms = performance.now() - t0
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`)
  return ms
}

/**
 * GETs alternating between clincus and the control server, so a burst of load elsewhere on the
 * machine hits both alike.
 */
async function timeGets(
  url: string,
  headers: Record<string, string>,
  controlUrl: string,
  count: number,
): Promise<{ clincus: number[]; control: number[] }> {
  const out = { clincus: [] as number[], control: [] as number[] }
  for (let i = 0; i < count; i++) {
    out.clincus.push(await timeGet(url, headers))
    out.control.push(await timeGet(controlUrl, {}))
  }
  return out
}

const CONTROL_SERVER = `
const http = require('node:http')
let body = Buffer.from('[]')
const server = http.createServer((req, res) => {
  if (req.method === 'PUT') {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => { body = Buffer.concat(chunks); res.end() })
    return
  }
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length })
  res.end(body)
})
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'))
process.stdin.on('end', () => process.exit(0)).resume()
`

/**
 * The noise floor of an HTTP round trip on this machine right now: a bare node:http server in its
 * own process answering the same bytes as GET /api/sessions, without routing, auth or schemas.
 */
async function startControl(): Promise<{
  url: string
  setBody: (b: Buffer) => Promise<void>
  stop: () => void
}> {
  const child = spawn(process.execPath, ['-e', CONTROL_SERVER], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => {
      resolve(Number(d.toString().trim()))
    })
    child.once('error', reject)
  })
  const url = `http://127.0.0.1:${port}/`
  return {
    url,
    setBody: async (b) => {
      await fetch(url, { method: 'PUT', body: b })
    },
    stop: () => {
      child.stdin.end()
    },
  }
}

async function timeCli(args: string[], count: number): Promise<number[]> {
  const out: number[] = []
  let failures = 0
  while (out.length < count) {
    const t0 = performance.now()
    try {
      await execa('incus', args, { timeout: 60_000, stdin: 'ignore' })
    } catch (err) {
      // A daemon restart (other work on the machine) spoils the sample: wait, measure again.
      if (!daemonDown(err) || ++failures > 3) throw err
      await waitForDaemon()
      continue
    }
    out.push(performance.now() - t0)
  }
  return out
}

async function listing(url: string, headers: Record<string, string>): Promise<Buffer> {
  const res = await fetch(url, { headers })
  if (!res.ok) throw new Error(`GET /api/sessions answered ${res.status}`)
  return Buffer.from(await res.arrayBuffer())
}

async function listed(url: string, headers: Record<string, string>): Promise<number> {
  return (JSON.parse((await listing(url, headers)).toString('utf8')) as unknown[]).length
}

export async function benchListing(ctx: BenchContext): Promise<void> {
  const url = `${ctx.server.url}/api/sessions`
  const headers = ctx.server.headers
  const probe = await EventProbe.open(ctx)
  const control = await startControl()
  const burstSince = wallNow()
  let made = await listed(url, headers)
  const running = made
  try {
    // Warm the route (JIT, keep-alive connections) before the first measured level.
    await timeGets(url, headers, control.url, 50)
    for (const level of LEVELS) {
      const names = Array.from(
        { length: Math.max(0, level - made) },
        () => `${ctx.prefix}${randomHash()}-1`,
      )
      await mapLimit(names, CREATE_CONCURRENCY, (n) => createEmptySession(n, `/bench/list/${n}`))
      made += names.length
      await waitFor(
        `${level} sessions in GET /api/sessions`,
        async () => (await listed(url, headers)) >= level,
        60_000,
        50,
      )
      await control.setBody(await listing(url, headers))
      const total = (await instanceNames()).length
      const gets = await timeGets(url, headers, control.url, REQUESTS)
      const cli = await timeCli(['list', '--format', 'json'], 5)
      const query = await timeCli(['query', '/1.0/instances?recursion=1'], 10)
      const p50 = percentile(gets.clincus, 0.5)
      const p99 = percentile(gets.clincus, 0.99)
      const cp99 = percentile(gets.control, 0.99)
      const baseline = {
        name: 'one `incus list --format json` (median)',
        value: round(median(cli), 1),
        unit: 'ms',
      }
      ctx.record({
        section: SECTIONS.listing,
        name: `GET /api/sessions, ${level} sessions: p50`,
        value: round(p50, 2),
        unit: 'ms',
        baseline,
        ratio: round(p50 / median(cli), 4),
        ratioKind: 'times',
        detail: {
          requests: REQUESTS,
          instancesInProject: total,
          queryRecursion1Ms: round(median(query), 1),
          controlP50: round(percentile(gets.control, 0.5), 2),
        },
      })
      ctx.record({
        section: SECTIONS.listing,
        name: `GET /api/sessions, ${level} sessions: p99`,
        value: round(p99, 2),
        unit: 'ms',
        baseline,
        ratio: round(p99 / median(cli), 4),
        ratioKind: 'times',
        goal: level === 100 ? 'p99 < 5 ms' : undefined,
        met: level === 100 ? p99 < 5 : undefined,
        note: `${running} running + ${level - running} stopped (empty) sessions, ${total} instances in the project; \`incus query …?recursion=1\` ${median(query).toFixed(0)} ms; a bare node:http server answering the same body, interleaved: p50 ${percentile(gets.control, 0.5).toFixed(2)} ms, p99 ${cp99.toFixed(2)} ms`,
        detail: {
          controlP99: round(cp99, 2),
          max: round(Math.max(...gets.clincus), 2),
          controlMax: round(Math.max(...gets.control), 2),
        },
      })
      ctx.progress(
        `listing ${level}: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms (bare node:http p99 ${cp99.toFixed(2)} ms); incus list ${median(cli).toFixed(0)} ms`,
      )
    }
    const { ms, missing } = probe.latencies(burstSince)
    ctx.record({
      section: SECTIONS.events,
      name: `Incus event → /ws/events client, burst of ${made - running} creations (${CREATE_CONCURRENCY} at a time): p99 (n=${ms.length})`,
      value: round(percentile(ms, 0.99), 1),
      unit: 'ms',
      note: `informational; p50 ${percentile(ms, 0.5).toFixed(1)} ms${missing ? `, ${missing} missing` : ''}`,
      detail: { p50: round(percentile(ms, 0.5), 1), max: round(Math.max(...ms), 1), missing },
    })
  } finally {
    control.stop()
    await probe.close()
  }
}
