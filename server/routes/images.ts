import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../shared/schemas/common.ts'
import {
  ImageAliasParamsSchema,
  ImageBuildAcceptedSchema,
  ImageBuildBodySchema,
  ImageListSchema,
} from '../../shared/schemas/images.ts'
import { ConflictError, NotFoundError } from '../errors.ts'
import type { ImageManager } from '../image-manager.ts'
import { imageTargets } from '../../images/index.ts'
import type { AppServices } from '../services.ts'

/**
 * GET /api/images: the images the config names (default, profiles), with state and tool versions.
 * POST /api/images/{alias}/build: 202 and a background rebuild; 409 while one runs; 404 for an
 * alias the config does not name (no request builds an arbitrary alias).
 */
export function imageRoutes(
  s: AppServices,
  images: ImageManager | undefined,
): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/api/images', {
      schema: {
        tags: ['images'],
        summary: 'The session images the config names, their state and tool versions',
        response: { 200: ImageListSchema, ...errorResponses },
      },
      // Without an image manager (embedded uses, unit tests) there is nothing to list.
      handler: async () => (images ? images.list(imageTargets(s.config.current)) : []),
    })

    app.post('/api/images/:alias/build', {
      schema: {
        tags: ['images'],
        summary: 'Rebuild an image in the background (events image.building/built/failed)',
        params: ImageAliasParamsSchema,
        body: ImageBuildBodySchema,
        response: { 202: ImageBuildAcceptedSchema, ...errorResponses },
      },
      handler: async (req, reply) => {
        const target = imageTargets(s.config.current).find((t) => t.alias === req.params.alias)
        if (!target) {
          throw new NotFoundError(`no image ${req.params.alias} in the config`, 'image_not_found')
        }
        if (!images) throw new ConflictError('image building is not available here', 'no_builder')
        await images.rebuild(target, { update: req.body?.update === true })
        return reply.code(202).send({ alias: target.alias, state: 'building' as const })
      },
    })
  }
}
