// Runs the real entry point (`server/main.ts serve`) as a child process, for the tests that kill,
// restart or signal the server itself.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TEST_IMAGE } from './incus-harness.ts'
import { ownByUser } from './owner.ts'
import { waitUntil } from './ws-client.ts'

const repoRoot = join(import.meta.dirname, '..', '..')

export interface ServerProcess {
  child: ChildProcess
  pid: number
  port: number
  url: string
  token: string
  /** The banner's sign-in link (with its single-use code). */
  signInLink: string
  output: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  headers: Record<string, string>
}

let built: Promise<void> | undefined

/** What `npm start` does first: bring node_modules, the SPA and the server bundle up to date. */
function ensureBuilt(): Promise<void> {
  built ??= new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['scripts/ensure-deps.mjs'], {
      cwd: repoRoot,
      stdio: 'ignore',
    })
    child.once('exit', (code) => {
      if (code === 0) resolve()
      else reject(new Error(`scripts/ensure-deps.mjs exited with ${String(code)}`))
    })
  })
  return built
}

/**
 * Lays out a HOME for `spawnServer`: one workspace root `projects` holding `app` (a git folder
 * owned by a normal user, as sessions require) and a user config that launches the test image.
 * Returns the path of `app`.
 */
export async function prepareHome(home: string): Promise<string> {
  const root = join(home, 'projects')
  const app = join(root, 'app')
  await mkdir(join(app, '.git'), { recursive: true })
  await ownByUser(app)
  await mkdir(join(home, '.config', 'clincus'), { recursive: true })
  await writeFile(
    join(home, '.config', 'clincus', 'config.toml'),
    `[defaults]\nimage = "${TEST_IMAGE}"\n[dashboard]\nworkspace_roots = ["${root}"]\n`,
  )
  return app
}

/** Starts the server the way `npm start` runs it: the bundle, under plain node. */
export async function spawnServer(opts: {
  home: string
  prefix: string
  port?: number
  /** LOG_LEVEL of the server (default warn). */
  logLevel?: string
  /** Extra environment (e.g. a PATH with a wrapper in front of incus). */
  env?: Record<string, string>
  /**
   * `[pool] size` (issue 16) in the system config layer (the user's file may still set one).
   * Default 0: the suite pays for no warm containers unless a test asks.
   */
  poolSize?: number
}): Promise<ServerProcess> {
  await ensureBuilt()
  await writeFile(join(opts.home, 'etc-clincus.toml'), `[pool]\nsize = ${opts.poolSize ?? 0}\n`)
  const child = spawn(
    process.execPath,
    [
      '--enable-source-maps',
      'dist/server/main.js',
      'serve',
      '--port',
      String(opts.port ?? 0),
      '--no-build',
    ],
    {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: opts.home,
        CLINCUS_CONTAINER_PREFIX: opts.prefix,
        CLINCUS_SYSTEM_CONFIG: join(opts.home, 'etc-clincus.toml'),
        LOG_LEVEL: opts.logLevel ?? 'warn',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let out = ''
  child.stdout.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr.on('data', (c: Buffer) => (out += c.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal })
    })
  })
  const url = await waitUntil(
    'the server to print its address',
    () => /clincus dashboard: (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1],
    { timeoutMs: 30_000, intervalMs: 50 },
  )
  const signInLink = await waitUntil(
    'the server to print its sign-in link',
    () => /sign in:\s+(\S+)/.exec(out)?.[1],
    { timeoutMs: 5000, intervalMs: 20 },
  )
  const token = (await readFile(join(opts.home, '.config', 'clincus', 'token'), 'utf8')).trim()
  return {
    child,
    pid: child.pid ?? 0,
    port: Number(new URL(url).port),
    url,
    token,
    signInLink,
    output: () => out,
    exited,
    headers: { authorization: `Bearer ${token}` },
  }
}

/** Pids of live processes whose command line contains every one of `needles`. */
export async function processesMatching(...needles: string[]): Promise<number[]> {
  const { readdir } = await import('node:fs/promises')
  const out: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmd = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ')
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8')
      if (/\) Z /.test(stat)) continue // zombies are dead already
      if (needles.every((n) => cmd.includes(n))) out.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return out
}

/** Whether a process with this pid exists (signal 0 probes without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
