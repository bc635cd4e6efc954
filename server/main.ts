// The only file that touches `process`: arguments, environment, signals, the real drivers.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import closeWithGrace from 'close-with-grace'
import { pino } from 'pino'
import { buildApp } from './app.ts'
import { parseArgs, USAGE, UsageError } from './cli-args.ts'
import { ConfigError } from './config/merge.ts'
import { configLocations } from './config/paths.ts'
import { ConfigStore } from './config/store.ts'
import { dataDirs, openServerLog, prepareDataDirs } from './config/dirs.ts'
import { HistoryStore } from './history/store.ts'
import { ImageManager } from './image-manager.ts'
import { buildImage, imageTargets, incusImageBackend, kindOfAlias } from '../images/index.ts'
import { findIncusSocket } from '../incus/rest.ts'
import { RestIncusDriver } from './incus/rest-driver.ts'
import { Listener, type ConnectionLimits } from './listener.ts'
import {
  aptSourceEntries,
  entryForUrl,
  hostNpmRegistry,
  hostUpstreamProxy,
} from './network/builtins.ts'
import { RuntimeDirError } from './network/runtime-dir.ts'
import { repoRoot } from './paths.ts'
import { loggerOptions } from './security/log-redaction.ts'
import { isLoopbackHost, type AuthSetting } from './security/plugin.ts'
import { loadOrCreateToken } from './security/token.ts'
import { DEFAULT_PREFIX, validPrefix } from './sessions/naming.ts'

const version = (
  JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }
).version

function fail(message: string): never {
  process.stderr.write(`clincus: ${message}\n`)
  process.exit(2)
}

/**
 * Connection caps from the file-descriptor limit (Node raises the soft limit to the hard one at
 * startup, so the soft one is what we have): half of it for connections leaves the rest to
 * PTYs, incus processes and files.
 */
function connectionLimits(): Partial<ConnectionLimits> {
  let fds = 1024
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    if (line?.[1]) fds = Number(line[1])
  } catch {
    // not Linux: keep the conservative default
  }
  const maxConnections = Math.max(64, Math.floor(fds / 2))
  return { maxConnections, maxWaiting: Math.min(256, Math.floor(maxConnections / 4)) }
}

async function main(): Promise<void> {
  let command
  try {
    command = parseArgs(process.argv.slice(2))
  } catch (err) {
    if (err instanceof UsageError) fail(`${err.message}\n${USAGE}`)
    throw err
  }
  if (command.kind === 'help') {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  if (command.kind === 'version') {
    process.stdout.write(`clincus ${version}\n`)
    return
  }

  const env = process.env
  const home = env.HOME ?? homedir()
  let config: ConfigStore
  try {
    config = await ConfigStore.open(configLocations(env, home), env, home)
  } catch (err) {
    if (err instanceof ConfigError) fail(`invalid configuration: ${err.message}`)
    throw err
  }
  const dirs = dataDirs(config.current)
  // Request URLs are logged with every credential-like query value redacted (log-redaction.ts),
  // to stdout and to <paths.logs_dir>/server.log (the serve command only).
  let logFile: Awaited<ReturnType<typeof openServerLog>> | null = null
  if (command.kind === 'serve') {
    // Ours alone before anything is written there (a link or another user's folder is refused).
    try {
      logFile = await openServerLog(dirs)
      await prepareDataDirs(dirs)
    } catch (err) {
      if (err instanceof RuntimeDirError) fail(err.message)
      throw err
    }
  }
  const log = pino(
    loggerOptions(env.LOG_LEVEL ?? 'info'),
    pino.multistream([
      { stream: process.stdout, level: 'trace' },
      ...(logFile ? [{ stream: logFile, level: 'trace' as const }] : []),
    ]),
  )
  // The REST API over the daemon's socket, the CLI per call when the socket is unreachable.
  const driver = new RestIncusDriver({
    socketPath: findIncusSocket(env),
    project: config.current.incus.project,
    storagePool: () => config.current.incus.storage_pool,
  })

  if (command.kind === 'build') {
    const controller = new AbortController()
    process.once('SIGINT', () => {
      controller.abort()
    })
    let last = ''
    // `clincus build` builds the default image (`--test`: clincus-test) with its `[image]` extras.
    const targets = imageTargets(config.current)
    const alias = command.image === 'clincus-test' ? 'clincus-test' : config.current.defaults.image
    const extras = targets.find((t) => t.alias === alias)?.extras
    await buildImage(kindOfAlias(alias), {
      project: config.current.incus.project,
      alias,
      update: command.update,
      ...(extras ? { extras } : {}),
      signal: controller.signal,
      onProgress: (p) => {
        if (p.step === last) return
        last = p.step
        process.stdout.write(
          `==> [${String(Math.round(p.progress * 100)).padStart(3)}%] ${p.step}\n`,
        )
      },
    })
    process.stdout.write(`image ${alias} is ready\n`)
    return
  }

  const prefix = env.CLINCUS_CONTAINER_PREFIX ?? DEFAULT_PREFIX
  if (!validPrefix(prefix))
    fail(
      `CLINCUS_CONTAINER_PREFIX must be lowercase letters, digits and hyphens, starting with a letter: ${prefix}`,
    )
  const images = new ImageManager(driver, log.child({ component: 'images' }), {
    backend: incusImageBackend(() => config.current.incus.project),
    autoBuild: command.build,
  })
  // Access: a token by default; "none" only while bound to loopback (anyone who can reach the
  // port could otherwise start containers with host folders mounted).
  const authMode = config.current.dashboard.auth
  if (authMode === 'none' && !isLoopbackHost(command.host)) {
    fail(
      `refusing to listen on ${command.host} without authentication: [dashboard] auth = "none" is only allowed on 127.0.0.1, ::1 or localhost`,
    )
  }
  const tokenFile = join(dirname(config.locations.user), 'token')
  const auth: AuthSetting =
    authMode === 'token'
      ? { mode: 'token', token: await loadOrCreateToken(tokenFile) }
      : { mode: 'none' }
  // Egress (issue 12): the sockets live in the runtime directory, the registries the host itself
  // uses are allowed, and the host's own proxy is the default upstream.
  const runtimeBase =
    process.getuid?.() === 0 ? '/run' : (env.XDG_RUNTIME_DIR ?? join(home, '.clincus', 'run'))
  const [npmRegistry, aptEntries] = await Promise.all([
    hostNpmRegistry(env, home),
    aptSourceEntries(),
  ])
  const npmEntry = npmRegistry ? entryForUrl(npmRegistry) : undefined
  const registries = [...aptEntries, ...(npmEntry ? [npmEntry] : [])]
  const hostUpstream = hostUpstreamProxy(env)
  const { app, security, services } = await buildApp({
    auth,
    bindHost: command.host,
    driver,
    config,
    history: new HistoryStore(join(home, '.clincus', 'history.jsonl')),
    log,
    prefix,
    home,
    version,
    images,
    incusHint: `Run \`npm start\` as root to install and start Incus, or install Incus >= 6 yourself and add your user to the ${config.current.incus.group} group.`,
    webRoot: join(repoRoot, 'dist', 'web'),
    warmPool: true,
    egress: {
      runtimeDir: join(runtimeBase, 'clincus', 'egress'),
      registries: registries.filter((r) => r !== ''),
      ...(npmRegistry ? { npmRegistry } : {}),
      ...(hostUpstream ? { hostUpstream } : {}),
    },
  })
  await app.ready()
  const listener = new Listener(app.server, {
    log: log.child({ component: 'listener' }),
    limits: connectionLimits(),
    websockets: app.websocketServer,
  })
  const portFromFlag = command.port !== undefined
  const port = command.port ?? config.current.dashboard.port
  try {
    await listener.listen(port, command.host)
  } catch (err) {
    fail(`cannot listen on ${command.host}:${port}: ${(err as Error).message}`)
  }
  services.egress.setOwnListener(command.host, listener.port)
  const url = `http://${command.host.includes(':') ? `[${command.host}]` : command.host}:${listener.port}`
  log.info({ url, version, prefix }, 'clincus dashboard listening')
  if (auth.mode === 'token') {
    // The link carries a single-use code valid for 10 minutes, never the token: the page trades
    // it for a sign-in session and drops it from the address bar. Scripts read the token file.
    const { code } = security.credentials.issueCode()
    process.stdout.write(
      `\n  clincus dashboard: ${url}/\n  sign in:           ${url}/?code=${code}  (works once, for 10 minutes)\n  API token file:    ${tokenFile}\n\n`,
    )
  } else {
    process.stdout.write(`\n  clincus dashboard: ${url}/ (no authentication)\n\n`)
  }

  // A port change in the config moves the listener (unless --port pinned it).
  config.subscribe((change) => {
    if (change.type !== 'reloaded' || portFromFlag) return
    const next = change.current.dashboard.port
    if (next === change.previous.dashboard.port || next === listener.port) return
    listener.move(next).then(
      (p) => {
        services.egress.setOwnListener(command.host, p)
        log.info({ port: p }, 'listener moved')
      },
      (err: unknown) => {
        log.error({ err, port: next }, 'could not move the listener; staying on the old port')
      },
    )
  })

  const defaultTarget = imageTargets(config.current)[0]
  if (defaultTarget) {
    void images
      .ensure(defaultTarget)
      .then(async (state) => {
        if (state.state === 'missing')
          log.warn({ image: state.name }, 'session image missing; run `clincus build`')
        if (state.state !== 'ready') return
        // Built from other inputs than the config now gives ([image] extras, a new builder).
        const [info] = await images.list([defaultTarget])
        if (info?.state === 'outdated') {
          log.warn(
            { image: info.alias },
            'session image is out of date with the config; run `clincus build` or rebuild it in Settings',
          )
          process.stdout.write(
            `  image ${info.alias} is out of date with the config: run \`clincus build\`\n`,
          )
        }
      })
      .catch((err: unknown) => {
        log.warn({ err }, 'could not check the session image')
      })
  }

  if (command.open) {
    const child = spawn('xdg-open', [`${url}/`], { stdio: 'ignore', detached: true })
    child.on('error', () => {
      log.warn('could not run xdg-open')
    })
    child.unref()
  }

  closeWithGrace({ delay: 5000 }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'fatal error; shutting down')
    else log.info({ signal }, 'shutting down')
    await listener.close()
    await app.close()
    listener.destroySockets()
    logFile?.end()
  })
}

main().catch((err: unknown) => {
  process.stderr.write(
    `clincus: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  )
  process.exit(1)
})
