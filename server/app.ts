import { join } from 'node:path'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Health, ImageState } from '../shared/schemas/health.ts'
import { TERMINAL_SUBPROTOCOL } from '../shared/ws/terminal.ts'
import { dataDirs } from './config/dirs.ts'
import type { ConfigStore } from './config/store.ts'
import type { ConfigWatcherOptions } from './config/watcher.ts'
import { exposedMessage } from './errors.ts'
import { createHttp, registerFallback, registerOpenApi } from './http.ts'
import type { CredentialLimits } from './security/credentials.ts'
import { registerSecurity, type AuthSetting, type Security } from './security/plugin.ts'
import { EventHub } from './events/hub.ts'
import { LifecycleMonitor } from './events/lifecycle-monitor.ts'
import type { HistoryStore } from './history/store.ts'
import type { ImageManager } from './image-manager.ts'
import type { IncusDriver } from './incus/driver.ts'
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
import { registerSpa } from './routes/spa.ts'
import { workspaceRoutes } from './routes/workspaces.ts'
import { EventSockets, wsEventsRoutes, type EventSocketOptions } from './routes/ws-events.ts'
import { terminalRoutes } from './routes/ws-terminal.ts'
import type { AppServices } from './services.ts'
import { AgentTracker, type AgentTrackerOptions } from './sessions/agent/tracker.ts'
import { SessionReconciler } from './sessions/reconciler.ts'
import { createWarmPool } from './sessions/pool/wiring.ts'
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
  /** Agent status (issue 17); its connections come in on the egress sockets (issue 16). */
  agents?: Partial<AgentTrackerOptions>
  /**
   * Run the warm pool (issue 16) sized by `[pool] size`: main.ts does; tests and dev servers
   * opt in, so the suite never pays for pool containers it does not test.
   */
  warmPool?: boolean
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

/** Builds the whole app from its drivers; never listens and never touches `process`. */
export async function buildApp(deps: AppDeps): Promise<App> {
  const app = createHttp(deps.log)
  const security = await registerSecurity(app, {
    auth: deps.auth ?? { mode: 'none' },
    config: deps.config,
    bindHost: deps.bindHost,
    limits: deps.credentialLimits,
  })

  // Ids start from the clock (µs), so an SSE client's Last-Event-ID from before a restart is
  // older than anything kept now and it is told to refetch, instead of silently missing events.
  const hub = new EventHub(1024, Date.now() * 1000)
  // The one writer of the session cache, session events and history (sessions/reconciler.ts).
  const warm = deps.warmPool
    ? createWarmPool({
        driver: deps.driver,
        config: deps.config,
        log: deps.log.child({ component: 'pool' }),
        prefix: deps.prefix,
      })
    : null
  const reconciler = new SessionReconciler({
    driver: deps.driver,
    prefix: deps.prefix,
    hub,
    history: deps.history,
    log: deps.log.child({ component: 'reconciler' }),
    ttlMs: deps.registryTtlMs,
    ...(warm ? { poolMember: (name: string) => warm.pool.isMember(name) } : {}),
  })
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
  const agents = new AgentTracker({
    driver: deps.driver,
    reconciler,
    log: deps.log.child({ component: 'agents' }),
    codeUser: () => {
      const { code_uid: uid, code_user: user } = deps.config.current.incus
      return { uid, home: `/home/${user}` }
    },
    options: { ...deps.agents },
  })
  // One socket and device per session (issue 16): the hook channel's connections come in there.
  egress.routeHooks((id, socket, head) => {
    agents.accept(id, socket, head)
  })
  const sessions = new SessionService({
    driver: deps.driver,
    reconciler,
    config: deps.config,
    log: deps.log.child({ component: 'sessions' }),
    prefix: deps.prefix,
    home: deps.home,
    imageState: (alias) => deps.images?.current(alias) ?? null,
    readyTimeoutMs: deps.readyTimeoutMs,
    egress,
    agents,
    ...(warm ? { pool: warm.pool } : {}),
  })

  const services: AppServices = {
    version: deps.version,
    startedAt: Date.now(),
    driver: deps.driver,
    config: deps.config,
    registry: reconciler,
    sessions,
    history: deps.history,
    hub,
    egress,
    agents,
    // Public (no credentials): answered from state the monitor and the image manager keep, so
    // a flood of requests costs the serialisation of a cached object and never an incus process.
    incusStatus: (): Health['incus'] => {
      if (monitor.connected)
        return {
          reachable: true,
          ...(incusVersion ? { version: incusVersion } : {}),
          ...(storageDriver ? { storage_driver: storageDriver } : {}),
        }
      const err = monitor.lastError
      const out: Health['incus'] = {
        reachable: false,
        // Only incus' own reasons are shown to whoever asks; anything else stays in the log.
        error:
          exposedMessage(err) ??
          (monitor.started ? 'not connected to incus' : 'the incus monitor is not running'),
      }
      if (deps.incusHint) out.hint = deps.incusHint
      return out
    },
    ...(warm ? { poolStatus: () => warm.pool.status() } : {}),
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
  let storageDriver: string | undefined
  const refreshImage = (): void => {
    void deps.images?.check(deps.config.current.defaults.image)
  }
  // Image builds (issue 13) reach /ws/events and /api/events like every other event.
  const unsubscribeImageEvents = deps.images?.subscribe((e) => {
    hub.publish(e)
    if (e.type === 'image.built') warm?.pool.invalidate(`image ${e.alias} built`)
  })
  const unsubscribeImage = deps.config.subscribe((change) => {
    if (
      change.type === 'reloaded' &&
      change.current.defaults.image !== change.previous.defaults.image
    )
      refreshImage()
  })

  await registerOpenApi(app, deps.version)
  const rt = deps.realtime ?? {}
  const terminals = new TerminalManager({
    spawner: deps.pty ?? nodePtySpawner,
    driver: deps.driver,
    registry: reconciler,
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
  registerFallback(app, await registerSpa(app, deps.webRoot))

  let recheck: NodeJS.Timeout | undefined
  const monitor = new LifecycleMonitor({
    driver: deps.driver,
    log: deps.log.child({ component: 'monitor' }),
    onConnect: async () => {
      await sessions.restore()
      // Leftover pool containers (a previous process, a daemon restart) go; then it fills.
      await warm?.pool.connected()
      await egress.loadAudit((await reconciler.instances()).map((i) => i.name))
      reconciler.setLive(true)
      // Once per connection: the version for /api/health, and the image (it may have changed
      // while the monitor was down).
      // (both set at once: a reader sees neither or both)
      const [version, storage] = await Promise.all([
        deps.driver.serverVersion({ timeoutMs: 3000 }).catch(() => undefined),
        deps.driver.rootPoolDriver({ timeoutMs: 3000 }).catch(() => null),
      ])
      incusVersion = version
      storageDriver = storage ?? undefined
      refreshImage()
      // `incus monitor` subscribes a few ms after it starts: a transition in that window would
      // be seen by neither the resync above nor the stream, so look once more a moment later.
      clearTimeout(recheck)
      recheck = setTimeout(() => {
        reconciler.resync().catch((err: unknown) => {
          deps.log.warn({ err }, 'resync after connect failed')
        })
      }, 1000)
      recheck.unref()
    },
    onDisconnect: () => {
      clearTimeout(recheck)
      reconciler.setLive(false)
      incusVersion = undefined
      storageDriver = undefined
    },
    onEvent: (e) => {
      if (e.action.startsWith('image-')) {
        refreshImage()
        // An alias moved to another image (rebuilt outside this server too): new pool members.
        if (e.action === 'image-alias-updated' || e.action === 'image-alias-created')
          warm?.pool.invalidate(`image event ${e.action}`)
        return
      }
      reconciler.onLifecycle(e)
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
    unsubscribeConfig()
    unsubscribeImage()
    unsubscribeImageEvents?.()
    await monitor.stop()
    await sessions.dispose()
    await warm?.dispose()
    await egress.dispose()
    await agents.dispose()
    await deps.images?.dispose()
  })

  return { app, services, terminals, security }
}
