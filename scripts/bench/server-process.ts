// The server under test in its own process (what `npm start` runs, minus the UI build), so its
// CPU is not shared with the benchmark's clients and its RSS is its own.
import { spawn, type ChildProcess } from 'node:child_process'
import { open, readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { sleep, waitFor } from './stats.ts'

export interface ServerOptions {
  repoRoot: string
  home: string
  /** The API token, already written to the server's token file. */
  token: string
  prefix: string
  image: string
  logFile: string
}

async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const addr = srv.address()
  const port = typeof addr === 'object' && addr ? addr.port : 0
  await new Promise<void>((resolve) => {
    srv.close(() => {
      resolve()
    })
  })
  return port
}

/** VmRSS of a process in bytes (from /proc/<pid>/status). */
export async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status)
  if (!m?.[1]) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

/** CPU time (user + system) a process has used so far, in ms (from /proc/<pid>/stat). */
export async function cpuMsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // utime and stime are fields 14 and 15 of the full line, in clock ticks (USER_HZ = 100).
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/**
 * The main thread's scheduler accounting (/proc/<pid>/schedstat): time on a CPU and time spent
 * runnable but waiting for one, in ms, and how many times it was scheduled.
 */
export async function schedOf(
  pid: number,
): Promise<{ runMs: number; waitMs: number; slices: number }> {
  const [run = '0', wait = '0', slices = '0'] = (await readFile(`/proc/${pid}/schedstat`, 'utf8'))
    .trim()
    .split(' ')
  return { runMs: Number(run) / 1e6, waitMs: Number(wait) / 1e6, slices: Number(slices) }
}

export class ServerProcess {
  readonly url: string
  readonly wsUrl: string
  /** What every API request and WebSocket upgrade sends (the default token authentication). */
  readonly headers: Record<string, string>
  readonly #child: ChildProcess
  #exit: Promise<number | null>

  private constructor(child: ChildProcess, port: number, token: string) {
    this.#child = child
    this.headers = { authorization: `Bearer ${token}` }
    this.url = `http://127.0.0.1:${port}`
    this.wsUrl = `ws://127.0.0.1:${port}`
    this.#exit = new Promise((resolve) => {
      child.once('exit', (code) => {
        resolve(code)
      })
    })
  }

  get pid(): number {
    const pid = this.#child.pid
    if (pid === undefined) throw new Error('server process has no pid')
    return pid
  }

  static async start(o: ServerOptions): Promise<ServerProcess> {
    const port = await freePort()
    // The log goes straight to a file: a pipe that this process drains would put the benchmark's
    // own scheduling into the server's request path (pino writes synchronously).
    const log = await open(o.logFile, 'a')
    const startedAt = (await log.stat()).size
    // The bundle `npm start` runs (dist/server/main.js, built by scripts/ensure-deps.mjs): one
    // process, so its pid is the server's.
    // BENCH_SERVER_NODE_OPTIONS adds node flags, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
    const extra = process.env.BENCH_SERVER_NODE_OPTIONS?.split(/\s+/).filter(Boolean) ?? []
    const child = spawn(
      process.execPath,
      [
        ...extra,
        '--enable-source-maps',
        'dist/server/main.js',
        'serve',
        '--port',
        String(port),
        '--no-build',
      ],
      {
        cwd: o.repoRoot,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: o.home,
          CLINCUS_CONTAINER_PREFIX: o.prefix,
          CLINCUS_IMAGE: o.image,
          CLINCUS_SYSTEM_CONFIG: `${o.home}/etc-clincus.toml`,
          NODE_ENV: 'production',
        },
        stdio: ['ignore', log.fd, log.fd],
      },
    )
    await log.close()
    const server = new ServerProcess(child, port, o.token)
    let exited = false
    void server.#exit.then(() => {
      exited = true
    })
    await waitFor(
      'the server to answer /api/health and connect its lifecycle monitor',
      async () => {
        if (exited) throw new Error(`the server exited early; see ${o.logFile}`)
        const text = (await readFile(o.logFile)).subarray(startedAt).toString('utf8')
        if (!text.includes('"incus lifecycle monitor connected"')) return false
        try {
          return (await fetch(`${server.url}/api/health`)).ok
        } catch {
          return false
        }
      },
      60_000,
      100,
    )
    return server
  }

  rss(): Promise<number> {
    return rssOf(this.pid)
  }

  cpuMs(): Promise<number> {
    return cpuMsOf(this.pid)
  }

  sched(): Promise<{ runMs: number; waitMs: number; slices: number }> {
    return schedOf(this.pid)
  }

  /** Samples RSS every `everyMs` until `stop` resolves; the samples in bytes. */
  async sampleRss(stop: Promise<unknown>, everyMs = 20): Promise<number[]> {
    const samples: number[] = []
    const state = { done: false }
    void stop.finally(() => {
      state.done = true
    })
    while (!state.done) {
      samples.push(await this.rss())
      await sleep(everyMs)
    }
    samples.push(await this.rss())
    return samples
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    this.#child.kill('SIGTERM')
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000)
    await this.#exit
    clearTimeout(timer)
  }
}
