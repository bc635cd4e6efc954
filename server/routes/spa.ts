import { existsSync } from 'node:fs'
import { join } from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

const FALLBACK_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>clincus</title></head>
<body><h1>clincus</h1><p>The dashboard UI has not been built. Run <code>npm run build</code> (npm start does this for you).</p>
<p>The REST API is available under <a href="/api/openapi.json">/api/openapi.json</a>.</p></body></html>`

/** Paths that are never answered with the SPA page. */
export function isApiPath(url: string): boolean {
  return url === '/api' || url.startsWith('/api/') || url === '/ws' || url.startsWith('/ws/')
}

/**
 * Static SPA assets with index.html fallback for client routes. Hashed /assets/* are cached for a
 * year; index.html is revalidated every time so a new build is picked up.
 */
export async function registerSpa(
  app: FastifyInstance,
  webRoot: string | undefined,
): Promise<(req: FastifyRequest, reply: FastifyReply) => FastifyReply> {
  const hasBuild = webRoot !== undefined && existsSync(join(webRoot, 'index.html'))
  if (hasBuild) {
    // `sendFile` for the index.html fallback, on the app itself.
    await app.register(fastifyStatic, { root: webRoot, serve: false })
    // One route per built file, all public: the page and its assets hold no data.
    await app.register(async (scope) => {
      scope.addHook('onRoute', (route) => {
        route.config = { ...route.config, public: true }
      })
      await scope.register(fastifyStatic, {
        root: webRoot,
        wildcard: false,
        index: false,
        decorateReply: false,
        setHeaders: (res, path) => {
          res.header(
            'cache-control',
            path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
          )
        },
      })
    })
  }
  return (req, reply) => {
    if (hasBuild) return reply.header('cache-control', 'no-cache').sendFile('index.html')
    return reply.type('text/html; charset=utf-8').send(FALLBACK_PAGE)
  }
}
