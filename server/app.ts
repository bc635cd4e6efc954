import { join } from 'node:path'
import fastifySwagger from '@fastify/swagger'
import fastifyWebsocket from '@fastify/websocket'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Health, ImageState } from '../shared/schemas/health.ts'
import type { ServerEvent } from '../shared/schemas/events.ts'
import { TERMINAL_SUBPROTOCOL } from '../shared/ws/terminal.ts'
import { dataDirs } from './config/dirs.ts'
import type { ConfigStore } from './config/store.ts'
import type { ConfigWatcherOptions } from './config/watcher.ts'
import { AppError, registerErrorHandler } from './errors.ts'
import type { CredentialLimits } from './security/credentials.ts'
import { registerSecurity, type AuthSetting, type Security } from './security/plugin.ts'
import { EventHub } from './events/hub.ts'
import { LifecycleMonitor } from './events/lifecycle-monitor.ts'
import { SessionStateTracker, resyncEvents } from './events/resync.ts'
import type { HistoryStore } from './history/store.ts'
import type { ImageManager } from './image-manager.ts'
import type { IncusDriver, LifecycleEvent } from './incus/driver.ts'
import type { BridgeOptions } from './pty/bridge.ts'
import { nodePtySpawner, type PtySpawner } from './pty/spawner.ts'
import { TerminalManager } from './pty/terminals.ts'
import { authRoutes } from './routes/auth.ts'
import { configRoutes } from './routes/config.ts'
import { SseStreams, sseEventsRoutes, type SseOptions } from './routes/events-sse.ts'
import { healthRoutes } from './routes/health.ts'
import { networkRoutes } from './routes/network.ts'
import { EgressService, type EgressOptions } from './network/egress.ts'
import { imageRoutes } from './routes/images.ts'
import { sessionRoutes } from './routes/sessions.ts'
import { isApiPath, registerSpa } from './routes/spa.ts'
import { workspaceRoutes } from './routes/workspaces.ts'
import { EventSockets, wsEventsRoutes, type EventSocketOptions } from './routes/ws-events.ts'
import { terminalRoutes } from './routes/ws-terminal.ts'
import type { AppServices } from './services.ts'
import { parseContainerName } from './sessions/naming.ts'
import { SessionRegistry } from './sessions/registry.ts'
import { SessionService } from './sessions/service.ts'

export interface AppDeps {
  driver: IncusDriver
  config: ConfigStore
  history: HistoryStore
  log: Logger
  /** Container name prefix (CLINCUS_CONTAINER_PREFIX). */
  prefix: string
  /** The host user's home (tool config is copied from here). */
  home: string
  version: string
  images?: ImageManager
  /** Why Incus may be unavailable and what to do, shown by /api/health when it is unreachable. */
  incusHint?: string
  /** Built SPA directory (dist/web). */
  webRoot?: string
  /** Run the incus lifecycle monitor (default true). */
  monitor?: boolean
  readyTimeoutMs?: number
  registryTtlMs?: number
  /** Access control: the token, or none (unit tests; main.ts allows none only on loopback). */
  auth?: AuthSetting
  /** The address the listener binds to (an extra allowed Host when it is not loopback). */
  bindHost?: string
  /** Lifetimes of sign-in codes, sessions and tickets (tests shorten them). */
  credentialLimits?: Partial<CredentialLimits>
  /** PTYs for /ws/terminal and /ws/shell (default node-pty). */
  pty?: PtySpawner
  /** Hot reload of the config files (default on; false in unit tests). */
  watchConfig?: false | ConfigWatcherOptions
  /** Tuning of the live transports (tests shorten intervals and bounds). */
  realtime?: RealtimeOptions
  /**
   * Network egress (issue 12). Default: sockets under <home>/.clincus/run/egress, the audit
   * under <paths.sessions_dir>/network, the system resolver, no upstream, no registries.
   */
  egress?: Partial<EgressOptions>
}

export interface RealtimeOptions {
  pingIntervalMs?: number
  maxTerminalsPerSession?: number
  terminal?: Omit<BridgeOptions, 'protocol' | 'log' | 'onDelivered'>
  events?: EventSocketOptions
  sse?: SseOptions
}

export interface App {
  app: FastifyInstance
  services: AppServices
  terminals: TerminalManager
  /** Access control: main.ts prints a sign-in code from it. */
  security: Security
}

const BODY_LIMIT = 1024 * 1024
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const

/** Maps incus lifecycle actions to our events (contract: deleted also counts as stopped). */
export function lifecycleToEvents(e: LifecycleEvent): ServerEvent[] {
  switch (e.action) {
    case 'instance-created':
      return [{ type: 'session.created', id: e.name }]
    case 'instance-started':
    case 'instance-restarted':
      return [{ type: 'session.started', id: e.name }]
    case 'instance-stopped':
    case 'instance-shutdown':
      return [{ type: 'session.stopped', id: e.name }]
    case 'instance-deleted':
      return [
        { type: 'session.stopped', id: e.name },
        { type: 'session.deleted', id: e.name },
      ]
    default:
      return []
  }
}

/** Builds the whole app from its drivers; never listens and never touches `process`. */
export async function buildApp(deps: AppDeps): Promise<App> {
  // pino's Logger is a FastifyBaseLogger; widening it keeps the instance's type the default one.
  const logger: FastifyBaseLogger = deps.log
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: BODY_LIMIT,
    ajv: {
      customOptions: {
        removeAdditional: false,
        coerceTypes: true,
        allErrors: false,
        keywords: ['x-expected'],
      },
    },
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Only JSON bodies: a cross-site form or text/plain POST is refused with 415.
  app.removeContentTypeParser(['text/plain'])
  registerErrorHandler(app)
  const security = await registerSecurity(app, {
    auth: deps.auth ?? { mode: 'none' },
    config: deps.config,
    bindHost: deps.bindHost,
    limits: deps.credentialLimits,
  })

  // Ids start from the clock (µs), so an SSE client's Last-Event-ID from before a restart is
  // older than anything kept now and it is told to refetch, instead of silently missing events.
  const hub = new EventHub(1024, Date.now() * 1000)
  const tracker = new SessionStateTracker(hub)
  const registry = new SessionRegistry(
    deps.driver,
    deps.prefix,
    deps.log.child({ component: 'registry' }),
    deps.registryTtlMs,
  )
  const egress = new EgressService({
    driver: deps.driver,
    config: deps.config,
    hub,
    log: deps.log.child({ component: 'egress' }),
    options: {
      runtimeDir: join(deps.home, '.clincus', 'run', 'egress'),
      auditDir: dataDirs(deps.config.current).network,
      ...deps.egress,
    },
  })
  const sessions = new SessionService({
    driver: deps.driver,
    registry,
    config: deps.config,
    history: deps.history,
    hub,
    log: deps.log.child({ component: 'sessions' }),
    prefix: deps.prefix,
    home: deps.home,
    imageState: (alias) => deps.images?.current(alias) ?? null,
    readyTimeoutMs: deps.readyTimeoutMs,
    egress,
  })

  const services: AppServices = {
    version: deps.version,
    startedAt: Date.now(),
    driver: deps.driver,
    config: deps.config,
    registry,
    sessions,
    history: deps.history,
    hub,
    egress,
    // Public (no credentials): answered from state the monitor and the image manager keep, so
    // a flood of requests costs the serialisation of a cached object and never an incus process.
    incusStatus: (): Health['incus'] => {
      if (monitor.connected)
        return incusVersion ? { reachable: true, version: incusVersion } : { reachable: true }
      const err = monitor.lastError
      const out: Health['incus'] = {
        reachable: false,
        // Only incus' own reasons are shown to whoever asks; anything else stays in the log.
        error:
          err instanceof AppError && err.expose
            ? err.message
            : monitor.started
              ? 'not connected to incus'
              : 'the incus monitor is not running',
      }
      if (deps.incusHint) out.hint = deps.incusHint
      return out
    },
    imageState: (alias): ImageState =>
      deps.images?.state(alias) ?? { name: alias, state: 'unknown' },
    updateDashboard: async (patch) => {
      await deps.config.updateDashboard(patch)
    },
  }

  const unsubscribeConfig = deps.config.subscribe((change) => {
    if (change.type === 'reloaded')
      hub.publish({ type: 'config.reloaded', timestamp: new Date().toISOString() })
    else hub.publish({ type: 'config.invalid', file: change.file, error: change.error })
  })
  // What /api/health reports about incus and the image is refreshed on these events only.
  let incusVersion: string | undefined
  const refreshImage = (): void => {
    void deps.images?.check(deps.config.current.defaults.image)
  }
  // Image builds (issue 13) reach /ws/events and /api/events like every other event.
  const unsubscribeImageEvents = deps.images?.subscribe((e) => hub.publish(e))
  const unsubscribeImage = deps.config.subscribe((change) => {
    if (
      change.type === 'reloaded' &&
      change.current.defaults.image !== change.previous.defaults.image
    )
      refreshImage()
  })

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'clincus dashboard API',
        version: deps.version,
        description: 'Run AI coding agents in Incus containers',
      },
      tags: [
        { name: 'sessions' },
        { name: 'workspaces' },
        { name: 'config' },
        { name: 'events' },
        { name: 'health' },
        { name: 'images' },
        { name: 'auth' },
      ],
    },
  })
  const rt = deps.realtime ?? {}
  const terminals = new TerminalManager({
    spawner: deps.pty ?? nodePtySpawner,
    driver: deps.driver,
    registry,
    config: deps.config,
    log: deps.log.child({ component: 'terminals' }),
    // Read per connection, so a config reload changes the cap without a restart.
    maxPerSession:
      rt.maxTerminalsPerSession ?? (() => deps.config.current.dashboard.max_terminals_per_session),
    pingIntervalMs: rt.pingIntervalMs,
    bridge: rt.terminal,
  })
  const eventSockets = new EventSockets(hub, deps.log.child({ component: 'ws-events' }), {
    pingIntervalMs: rt.pingIntervalMs,
    // A page that connects while a config file is broken learns it at once.
    greeting: () => {
      const e = deps.config.lastError
      return e ? [{ type: 'config.invalid', file: e.file, error: e.error }] : []
    },
    ...rt.events,
  })
  const sseStreams = new SseStreams(hub, deps.log.child({ component: 'sse' }), rt.sse)
  // Registered before @fastify/websocket, whose own preClose closes every socket without a
  // code: ours go first so clients get 1001 and every PTY is gone before the server closes.
  app.addHook('preClose', async () => {
    eventSockets.closeAll()
    sseStreams.closeAll()
    await terminals.closeAll()
  })
  await app.register(fastifyWebsocket, {
    options: {
      maxPayload: deps.config.current.dashboard.ws_max_message_bytes,
      // `ws` would otherwise accept whatever subprotocol a client lists first.
      handleProtocols: (offered: Set<string>) =>
        offered.has(TERMINAL_SUBPROTOCOL) ? TERMINAL_SUBPROTOCOL : false,
    },
  })
  await app.register(terminalRoutes({ terminals }))
  await app.register(wsEventsRoutes(eventSockets))
  await app.register(sseEventsRoutes(sseStreams))

  await app.register(sessionRoutes(services))
  await app.register(networkRoutes(services))
  await app.register(configRoutes(services))
  await app.register(workspaceRoutes(services))
  await app.register(healthRoutes(services))
  await app.register(imageRoutes(services, deps.images))
  await app.register(authRoutes(security))
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  const spa = await registerSpa(app, deps.webRoot)
  // Public (no route matched, so nothing to protect): it only ever answers 404, 405 or index.html.
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '/'
    const allowed = METHODS.filter(
      (m) => m !== req.method && (app.findRoute({ method: m, url: path }) as unknown) !== null,
    )
    if (allowed.length > 0) {
      return reply
        .code(405)
        .header('allow', allowed.join(', '))
        .send({ error: `method ${req.method} not allowed on ${path}`, code: 'method_not_allowed' })
    }
    // Client routes are plain (`/settings`, `/session/<id>`): an encoded path is nothing of ours.
    if (
      isApiPath(path) ||
      path.includes('%') ||
      (req.method !== 'GET' && req.method !== 'HEAD') ||
      path.startsWith('/assets/')
    ) {
      return reply
        .code(404)
        .send({ error: `no route for ${req.method} ${path}`, code: 'not_found' })
    }
    return spa(req, reply)
  })

  let recheck: NodeJS.Timeout | undefined
  const monitor = new LifecycleMonitor({
    driver: deps.driver,
    log: deps.log.child({ component: 'monitor' }),
    onConnect: async () => {
      await sessions.restore()
      await egress.loadAudit((await registry.instances()).map((i) => i.name))
      registry.setLive(true)
      // Once per connection: the version for /api/health, and the image (it may have changed
      // while the monitor was down).
      incusVersion = await deps.driver.serverVersion({ timeoutMs: 3000 }).catch(() => undefined)
      refreshImage()
      // Transitions missed while the monitor was down (daemon restart) are published now.
      const now = await registry.list()
      if (!tracker.seeded) tracker.seed(now)
      else for (const ev of resyncEvents(tracker.known, now)) hub.publish(ev)
      // `incus monitor` subscribes a few ms after it starts: a transition in that window would
      // be seen by neither the list above nor the stream, so look once more a moment later.
      clearTimeout(recheck)
      recheck = setTimeout(() => {
        registry
          .refresh()
          .then(async () => {
            for (const ev of resyncEvents(tracker.known, await registry.list())) hub.publish(ev)
          })
          .catch((err: unknown) => {
            deps.log.warn({ err }, 'resync after connect failed')
          })
      }, 1000)
      recheck.unref()
    },
    onDisconnect: () => {
      clearTimeout(recheck)
      registry.setLive(false)
      incusVersion = undefined
    },
    onEvent: async (e) => {
      if (e.action.startsWith('image-')) {
        refreshImage()
        return
      }
      if (!parseContainerName(deps.prefix, e.name)) return
      // Cache first, then publish, then the slower follow-up (history, a fresh read) in the
      // background: an event never waits for an incus query, and a burst does not queue on one.
      sessions.noteLifecycle(e)
      for (const ev of lifecycleToEvents(e)) hub.publish(ev)
      sessions.followUpLifecycle(e).catch((err: unknown) => {
        deps.log.warn({ err, session: e.name }, 'lifecycle follow-up failed')
      })
    },
  })
  if (deps.monitor !== false) {
    app.addHook('onReady', async () => {
      monitor.start()
    })
  }
  const watchConfig = deps.watchConfig
  if (watchConfig !== false) {
    app.addHook('onReady', async () => {
      await deps.config.watch(deps.log.child({ component: 'config-watcher' }), watchConfig)
    })
  }

  app.addHook('onClose', async () => {
    clearTimeout(recheck)
    await deps.config.close()
    tracker.dispose()
    unsubscribeConfig()
    unsubscribeImage()
    unsubscribeImageEvents?.()
    await monitor.stop()
    await sessions.dispose()
    await egress.dispose()
    await deps.images?.dispose()
  })

  return { app, services, terminals, security }
}
