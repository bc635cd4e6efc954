import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { HealthSchema, type Health } from '../../shared/schemas/health.ts'
import type { AppServices } from '../services.ts'

export function healthRoutes(s: AppServices): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/api/health', {
      schema: {
        tags: ['health'],
        summary: 'Version, uptime, Incus reachability, image state and the warm pool',
        response: { 200: HealthSchema },
      },
      // Public, so it only reads cached state: no request can make the server run incus.
      handler: async (): Promise<Health> => {
        const incus = s.incusStatus()
        const image = s.imageState(s.config.current.defaults.image)
        return {
          status: incus.reachable && image.state === 'ready' ? 'ok' : 'degraded',
          version: s.version,
          uptime_seconds: Math.round((Date.now() - s.startedAt) / 100) / 10,
          incus,
          image,
          ...(s.poolStatus ? { pool: s.poolStatus() } : {}),
        }
      },
    })
  }
}
