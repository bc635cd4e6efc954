import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { onTestFinished } from 'vitest'
import { buildApp, type App, type AppDeps } from '../app.ts'
import { configLocations } from '../config/paths.ts'
import { ConfigStore } from '../config/store.ts'
import { HistoryStore } from '../history/store.ts'
import { loggerOptions } from '../security/log-redaction.ts'
import { FakeIncusDriver } from '../incus/fake-driver.ts'
import { ownByUser } from './owner.ts'

export interface TestApp extends App {
  driver: FakeIncusDriver
  home: string
  /** A workspace root inside home with one project (`proj`, a git repo). */
  root: string
  project: string
  configFile: string
}

/** A temp dir removed when the test ends. */
export { ownByUser, WORKSPACE_OWNER } from './owner.ts'

export async function tempDir(prefix = 'clincus-test-'): Promise<string> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), prefix)))
  onTestFinished(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  return dir
}

export async function buildTestApp(
  opts: {
    configText?: string
    env?: Record<string, string>
    driver?: FakeIncusDriver
    deps?: Partial<AppDeps>
  } = {},
): Promise<TestApp> {
  const home = await tempDir()
  const root = join(home, 'projects')
  const project = join(root, 'proj')
  await mkdir(join(project, '.git'), { recursive: true })
  await ownByUser(project)
  const configFile = join(home, '.config', 'clincus', 'config.toml')
  await mkdir(join(home, '.config', 'clincus'), { recursive: true })
  await writeFile(configFile, opts.configText ?? `[dashboard]\nworkspace_roots = ["${root}"]\n`)
  const env = {
    HOME: home,
    CLINCUS_SYSTEM_CONFIG: join(home, 'etc-clincus.toml'),
    ...(opts.env ?? {}),
  }
  const config = await ConfigStore.open(configLocations(env, home), env, home)
  const driver = opts.driver ?? new FakeIncusDriver()
  const built = await buildApp({
    driver,
    config,
    history: new HistoryStore(join(home, '.clincus', 'history.jsonl')),
    log: pino(loggerOptions(process.env.TEST_LOG_LEVEL ?? 'silent')),
    prefix: 'clincus-',
    home,
    version: '0.0.0-test',
    monitor: false,
    watchConfig: false,
    readyTimeoutMs: 2000,
    ...opts.deps,
  })
  onTestFinished(async () => {
    await built.app.close()
  })
  await built.app.ready()
  return { ...built, driver, home, root, project, configFile }
}

export function json(body: unknown): { payload: string; headers: Record<string, string> } {
  return { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }
}
