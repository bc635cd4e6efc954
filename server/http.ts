// The HTTP shell every route lives in: the Fastify instance (JSON only, TypeBox schemas, the one
// error mapping), the OpenAPI document, and what answers when no route matched (405, 404, the
// SPA's index.html). buildApp (app.ts) fills it with the security hooks, transports and routes.
import fastifySwagger from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { registerErrorHandler } from './errors.ts'
import { isApiPath } from './routes/spa.ts'

/** Bytes of a request body (1 MiB); larger ones are answered 413. */
export const BODY_LIMIT = 1024 * 1024
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const

/** The Fastify instance with its parsers and error handler; nothing registered yet. */
export function createHttp(log: Logger) {
  // pino's Logger is a FastifyBaseLogger; widening it keeps the instance's type the default one.
  const logger: FastifyBaseLogger = log
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
  return app
}

export type HttpApp = ReturnType<typeof createHttp>

/** The OpenAPI document of every route registered after it (served at /api/openapi.json). */
export async function registerOpenApi(app: HttpApp, version: string): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'clincus dashboard API',
        version,
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
}

/**
 * What answers when no route matched. Public (no route matched, so nothing to protect): it only
 * ever answers 405 (another method has the path), 404, or the SPA's index.html (`spa`).
 */
export function registerFallback(
  app: HttpApp,
  spa: (req: FastifyRequest, reply: FastifyReply) => FastifyReply,
): void {
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger())
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
}
