// Starts the real server against the live Incus daemon for *.incus.test.ts and e2e tests: an
// isolated HOME, a container prefix unique to the run, a random loopback port, and cleanup of
// every container the run made, even when a test fails.
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import type { ImageManager } from '../image-manager.ts'
import { pino } from 'pino'
import { describe } from 'vitest'
import { buildApp, type App, type AppDeps } from '../app.ts'
import { configLocations } from '../config/paths.ts'
import { ConfigStore } from '../config/store.ts'
import { HistoryStore } from '../history/store.ts'
import { loggerOptions } from '../security/log-redaction.ts'
import { findIncusSocket } from '../../incus/rest.ts'
import { RestIncusDriver } from '../incus/rest-driver.ts'
import { Listener } from '../listener.ts'
import { ownByUser } from './owner.ts'

export const incusAvailable = process.env.CLINCUS_IT_INCUS === '1'
export const skipReason =
  process.env.CLINCUS_IT_SKIP_REASON ??
  'CLINCUS_IT_INCUS is not set (run through `npm test`, which provisions Incus)'

/** describe() for tests that need the live daemon; skipped with the reason printed otherwise. */
export const describeIncus: typeof describe = incusAvailable
  ? describe
  : (((name: string, fn: () => void) => {
      describe.skip(`${name} [skipped: ${skipReason}]`, fn)
    }) as unknown as typeof describe)

/** CLINCUS_IT_IMAGE picks another alias (a helper's own build of the test image). */
export const TEST_IMAGE = process.env.CLINCUS_IT_IMAGE ?? 'clincus-test'

export interface LiveServer extends App {
  url: string
  wsUrl: string
  port: number
  home: string
  root: string
  prefix: string
  configFile: string
  driver: RestIncusDriver
  /** Makes a project folder (a git repo) inside the workspace root. */
  project(name: string): Promise<string>
  /** Makes project `name` and starts a session on it (expects 200); the session's id. */
  launch(name: string): Promise<string>
  close(): Promise<void>
}

/** Deletes every instance whose name starts with `prefix` (the run's own containers). */
export async function removeInstances(prefix: string): Promise<void> {
  const { stdout } = await execa('incus', ['list', '--format=json', '--columns=n'], {
    timeout: 30_000,
  })
  const names = (JSON.parse(stdout) as Array<{ name: string }>)
    .map((i) => i.name)
    .filter((n) => n.startsWith(prefix))
  await Promise.all(
    names.map((n) => execa('incus', ['delete', '--force', n], { timeout: 60_000, reject: false })),
  )
}

/**
 * Runs `argv` inside a container as the code user (uid and gid 1000, HOME and working directory
 * /home/code unless `cwd` says otherwise), the way the server's own execs do. Never rejects on a
 * non-zero exit: the caller asserts `exitCode` (-1 when the process was killed). Output is kept
 * as written (a final newline included). Default timeout 60 s.
 */
export async function execArgvAsCode(
  id: string,
  argv: readonly string[],
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await execa(
    'incus',
    [
      'exec',
      id,
      '--user',
      '1000',
      '--group',
      '1000',
      '--env',
      'HOME=/home/code',
      '--cwd',
      opts.cwd ?? '/home/code',
      '--',
      ...argv,
    ],
    { timeout: opts.timeoutMs ?? 60_000, reject: false, stdin: 'ignore', stripFinalNewline: false },
  )
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? -1 }
}

/** {@link execArgvAsCode} of `bash -c script`, with the final newline of the output stripped. */
export async function execAsCode(
  id: string,
  script: string,
  opts: { cwd?: string } = {},
): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await execArgvAsCode(id, ['bash', '-c', script], opts)
  return { ...r, stdout: r.stdout.replace(/\n$/, ''), stderr: r.stderr.replace(/\n$/, '') }
}

/**
 * One JSON request to a live server: the status and the parsed body (`{}` when the answer has
 * none, e.g. 204). Callers state the body's shape for the route they call.
 */
export async function requestJson(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : {} }
}

export async function startLiveServer(
  opts: {
    home: string
    configText?: string
    log?: boolean
    /** A built SPA to serve (the browser tests build one); without it the API only. */
    webRoot?: string
    /** Egress options (a resolver that maps test names to loopback). */
    egress?: AppDeps['egress']
    /** The image manager (images API, issue 13); none by default. */
    images?: ImageManager
    /** Run the warm pool (issue 16) as `[pool] size` in configText says; none by default. */
    warmPool?: boolean
    /** Terminal and socket options (e.g. a smaller flow-control window); the defaults otherwise. */
    realtime?: AppDeps['realtime']
  } = { home: '' },
): Promise<LiveServer> {
  const home = opts.home
  const prefix = `ct${randomBytes(3).toString('hex')}-`
  const root = join(home, 'projects')
  await mkdir(root, { recursive: true })
  const configFile = join(home, '.config', 'clincus', 'config.toml')
  await mkdir(join(home, '.config', 'clincus'), { recursive: true })
  await writeFile(
    configFile,
    opts.configText ??
      `[defaults]\nimage = "${TEST_IMAGE}"\n\n[dashboard]\nworkspace_roots = ["${root}"]\n`,
  )
  const env = { HOME: home, CLINCUS_SYSTEM_CONFIG: join(home, 'etc-clincus.toml') }
  const config = await ConfigStore.open(configLocations(env, home), env, home)
  // What the server builds (server/main.ts): REST, the CLI as the per-call fallback.
  const driver = new RestIncusDriver({
    socketPath: findIncusSocket(process.env),
    project: config.current.incus.project,
    storagePool: () => config.current.incus.storage_pool,
  })
  const built = await buildApp({
    driver,
    config,
    history: new HistoryStore(join(home, '.clincus', 'history.jsonl')),
    log: pino(loggerOptions(opts.log ? 'info' : (process.env.TEST_LOG_LEVEL ?? 'silent'))),
    prefix,
    home,
    version: '0.0.0-it',
    ...(opts.webRoot ? { webRoot: opts.webRoot } : {}),
    ...(opts.egress ? { egress: opts.egress } : {}),
    ...(opts.images ? { images: opts.images } : {}),
    ...(opts.warmPool ? { warmPool: true } : {}),
    ...(opts.realtime ? { realtime: opts.realtime } : {}),
  })
  await built.app.ready()
  const listener = new Listener(built.app.server)
  const port = await listener.listen(0, '127.0.0.1')
  built.services.egress.setOwnListener('127.0.0.1', port)
  const url = `http://127.0.0.1:${port}`
  const project = async (name: string): Promise<string> => {
    const dir = join(root, name)
    await mkdir(join(dir, '.git', 'hooks'), { recursive: true })
    await writeFile(join(dir, '.git', 'config'), '[core]\n\tbare = false\n')
    // Sessions refuse root-owned workspaces: a normal user's, as in real use.
    await ownByUser(dir)
    return dir
  }
  let closed = false
  return {
    ...built,
    url,
    wsUrl: `ws://127.0.0.1:${port}`,
    port,
    home,
    root,
    prefix,
    configFile,
    driver,
    project,
    launch: async (name: string) => {
      const res = await requestJson(url, 'POST', '/api/sessions', {
        workspace: await project(name),
      })
      if (res.status !== 200)
        throw new Error(`POST /api/sessions: ${res.status} ${JSON.stringify(res.body)}`)
      const { id } = res.body as { id: string }
      return id
    },
    close: async () => {
      if (closed) return
      closed = true
      await listener.close()
      await built.app.close()
      listener.destroySockets()
      await removeInstances(prefix)
    },
  }
}
