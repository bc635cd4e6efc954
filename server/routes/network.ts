import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../shared/schemas/common.ts'
import {
  NetworkAllowBodySchema,
  NetworkAllowResponseSchema,
  SessionNetworkQuerySchema,
  SessionNetworkSchema,
} from '../../shared/schemas/network.ts'
import { SessionParamsSchema, type SessionInfo } from '../../shared/schemas/sessions.ts'
import { NotFoundError } from '../errors.ts'
import type { AppServices } from '../services.ts'

/** The session object with its additive `network` summary (mode, last refusal). */
export function withNetwork<T extends SessionInfo>(s: AppServices, session: T): T {
  const network = s.egress.summary(session.id)
  return network ? { ...session, network } : session
}

export function networkRoutes(s: AppServices): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/api/sessions/:id/network', {
      schema: {
        tags: ['sessions'],
        summary: "A session's network: mode, effective allow list, connections (newest first)",
        params: SessionParamsSchema,
        querystring: SessionNetworkQuerySchema,
        response: { 200: SessionNetworkSchema, ...errorResponses },
      },
      handler: async (req) => {
        const { id } = req.params
        if (!(await s.registry.list()).some((x) => x.id === id))
          throw new NotFoundError('session not found', 'session_not_found')
        return s.egress.network(id, req.query.offset ?? 0, req.query.limit ?? 100)
      },
    })

    app.post('/api/network/allow', {
      schema: {
        tags: ['config'],
        summary: 'Add an entry to [network] allow in the user config file (comments kept)',
        body: NetworkAllowBodySchema,
        response: { 200: NetworkAllowResponseSchema, ...errorResponses },
      },
      handler: async (req) => ({ allow: await s.egress.allow(req.body.entry) }),
    })
  }
}
