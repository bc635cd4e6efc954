import fastifySwagger from '@fastify/swagger'
import fastifyWebsocket from '@fastify/websocket'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Health, ImageState } from '../shared/schemas/health.ts'
import type { ServerEvent } from '../shared/schemas/events.ts'
import type { ConfigStore } from './config/store.ts'
import { registerErrorHandler } from './errors.ts'
import { EventHub } from './events/hub.ts'
import { LifecycleMonitor } from './events/lifecycle-monitor.ts'
import type { HistoryStore } from './history/store.ts'
import type { ImageManager } from './image-manager.ts'
import type { IncusDriver, LifecycleEvent } from './incus/driver.ts'
import { configRoutes } from './routes/config.ts'
import { healthRoutes } from './routes/health.ts'
import { sessionRoutes } from './routes/sessions.ts'
import { isApiPath, registerSpa } from './routes/spa.ts'
import { workspaceRoutes } from './routes/workspaces.ts'
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
}

export interface App {
  app: FastifyInstance
  services: AppServices
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

  const hub = new EventHub()
  const registry = new SessionRegistry(
    deps.driver,
    deps.prefix,
    deps.log.child({ component: 'registry' }),
    deps.registryTtlMs,
  )
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
    incusStatus: async (): Promise<Health['incus']> => {
      try {
        return { reachable: true, version: await deps.driver.serverVersion({ timeoutMs: 3000 }) }
      } catch (err) {
        const out: Health['incus'] = {
          reachable: false,
          error: err instanceof Error ? err.message : String(err),
        }
        if (deps.incusHint) out.hint = deps.incusHint
        return out
      }
    },
    imageState: async (alias): Promise<ImageState> =>
      deps.images ? deps.images.check(alias) : { name: alias, state: 'unknown' },
    updateDashboard: async (patch) => {
      await deps.config.updateDashboard(patch)
    },
  }

  const unsubscribeConfig = deps.config.subscribe((change) => {
    if (change.type === 'reloaded')
      hub.publish({ type: 'config.reloaded', timestamp: new Date().toISOString() })
    else hub.publish({ type: 'config.invalid', file: change.file, error: change.error })
  })

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'clincus dashboard API',
        version: deps.version,
        description: 'Run AI coding agents in Incus containers',
      },
      tags: [{ name: 'sessions' }, { name: 'workspaces' }, { name: 'config' }, { name: 'health' }],
    },
  })
  await app.register(fastifyWebsocket, { options: { maxPayload: BODY_LIMIT } })

  await app.register(sessionRoutes(services))
  await app.register(configRoutes(services))
  await app.register(workspaceRoutes(services))
  await app.register(healthRoutes(services))
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  const spa = await registerSpa(app, deps.webRoot)
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
    if (
      isApiPath(path) ||
      (req.method !== 'GET' && req.method !== 'HEAD') ||
      path.startsWith('/assets/')
    ) {
      return reply
        .code(404)
        .send({ error: `no route for ${req.method} ${path}`, code: 'not_found' })
    }
    return spa(req, reply)
  })

  const monitor = new LifecycleMonitor({
    driver: deps.driver,
    log: deps.log.child({ component: 'monitor' }),
    onConnect: async () => {
      await sessions.restore()
      registry.setLive(true)
    },
    onDisconnect: () => {
      registry.setLive(false)
    },
    onEvent: async (e) => {
      if (!parseContainerName(deps.prefix, e.name)) return
      await sessions.handleLifecycle(e)
      for (const ev of lifecycleToEvents(e)) hub.publish(ev)
    },
  })
  if (deps.monitor !== false) {
    app.addHook('onReady', async () => {
      monitor.start()
    })
  }

  app.addHook('onClose', async () => {
    unsubscribeConfig()
    await monitor.stop()
    await sessions.dispose()
    await deps.images?.dispose()
  })

  return { app, services }
}
