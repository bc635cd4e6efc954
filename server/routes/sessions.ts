import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errorResponses } from '../../shared/schemas/common.ts'
import {
  CreatedSessionSchema,
  CreateSessionBodySchema,
  DeleteSessionQuerySchema,
  HistoryEntrySchema,
  HistoryQuerySchema,
  ResumeResponseSchema,
  SessionListSchema,
  SessionParamsSchema,
} from '../../shared/schemas/sessions.ts'
import type { AppServices } from '../services.ts'
import { withNetwork } from './network.ts'

export function sessionRoutes(s: AppServices): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/api/sessions', {
      schema: {
        tags: ['sessions'],
        summary: 'List sessions',
        response: { 200: SessionListSchema, ...errorResponses },
      },
      handler: async () => (await s.registry.list()).map((x) => withNetwork(s, x)),
    })

    app.post('/api/sessions', {
      schema: {
        tags: ['sessions'],
        summary: 'Create and start a session',
        body: CreateSessionBodySchema,
        response: { 200: CreatedSessionSchema, ...errorResponses },
      },
      handler: async (req, reply) => {
        // A client that goes away before the answer cancels the creation (rolled back): a
        // request left behind by a closed tab must not make a container minutes later.
        const gone = new AbortController()
        const onClose = (): void => {
          if (!reply.raw.writableFinished) gone.abort()
        }
        reply.raw.once('close', onClose)
        if (req.raw.socket.destroyed) gone.abort()
        try {
          return withNetwork(s, await s.sessions.create(req.body, gone.signal))
        } finally {
          reply.raw.off('close', onClose)
        }
      },
    })

    app.get('/api/sessions/history', {
      schema: {
        tags: ['sessions'],
        summary: 'Session history, newest first',
        querystring: HistoryQuerySchema,
        response: { 200: Type.Array(HistoryEntrySchema), ...errorResponses },
      },
      handler: async (req) => s.history.list(req.query.limit ?? 50, req.query.offset ?? 0),
    })

    app.delete('/api/sessions/:id', {
      schema: {
        tags: ['sessions'],
        summary: 'Stop (or with force=true delete) a session',
        params: SessionParamsSchema,
        querystring: DeleteSessionQuerySchema,
        response: { 204: Type.Null(), ...errorResponses },
      },
      handler: async (req, reply) => {
        await s.sessions.stop(req.params.id, req.query.force ?? false)
        return reply.code(204).send(null)
      },
    })

    app.post('/api/sessions/:id/resume', {
      schema: {
        tags: ['sessions'],
        summary: 'Start a stopped session and relaunch its tool',
        params: SessionParamsSchema,
        response: { 200: ResumeResponseSchema, ...errorResponses },
      },
      handler: async (req) => s.sessions.resume(req.params.id),
    })
  }
}
