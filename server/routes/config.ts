import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errorResponses } from '../../shared/schemas/common.ts'
import {
  ConfigSchema,
  ConfigUpdateResultSchema,
  ConfigUpdateSchema,
} from '../../shared/schemas/config.ts'
import { TOOLS } from '../../shared/tools.ts'
import type { AppServices } from '../services.ts'

export function configRoutes(s: AppServices): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/api/config', {
      schema: {
        tags: ['config'],
        summary: 'The merged configuration (snake_case, as in config.toml)',
        response: { 200: ConfigSchema, ...errorResponses },
      },
      handler: async () => s.config.current,
    })

    app.put('/api/config', {
      schema: {
        tags: ['config'],
        summary:
          'Update dashboard settings (persisted to the user config file); answers the merged config after the save',
        body: ConfigUpdateSchema,
        response: { 200: ConfigUpdateResultSchema, ...errorResponses },
      },
      handler: async (req) => {
        const patch: { port?: number; workspace_roots?: string[] } = {}
        if (req.body.port !== undefined) patch.port = req.body.port
        if (req.body.workspace_roots !== undefined) patch.workspace_roots = req.body.workspace_roots
        if (Object.keys(patch).length > 0) await s.updateDashboard(patch)
        return { status: 'updated' as const, config: s.config.current }
      },
    })

    app.get('/api/tools', {
      schema: {
        tags: ['config'],
        summary: 'Supported AI tools',
        response: { 200: Type.Array(Type.String()) },
      },
      handler: async () => [...TOOLS],
    })
  }
}
