import { mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Value } from 'typebox/value'
import { errorResponses } from '../../shared/schemas/common.ts'
import {
  CreateFolderBodySchema,
  CreateFolderResponseSchema,
  FOLDER_NAME_PATTERN,
  RootPathBodySchema,
  RootPathQuerySchema,
  RootsSchema,
  WorkspaceListSchema,
  type Roots,
  type WorkspaceList,
} from '../../shared/schemas/workspaces.ts'
import { expandPath } from '../config/paths.ts'
import { AppError, BadRequestError, ConflictError, NotFoundError } from '../errors.ts'
import type { AppServices } from '../services.ts'
import { discoverProjects } from '../workspaces/discover.ts'

const FOLDER_NAME = new RegExp(FOLDER_NAME_PATTERN)

export function workspaceRoutes(s: AppServices): FastifyPluginAsyncTypebox {
  const expand = (p: string): string => expandPath(p, s.config.home)
  const roots = (): Roots => {
    const raw = s.config.current.dashboard.workspace_roots
    return { roots: [...raw], expanded_roots: raw.map(expand) }
  }

  return async (app) => {
    app.get('/api/workspaces', {
      schema: {
        tags: ['workspaces'],
        summary: 'Workspace roots and the projects in them',
        response: { 200: WorkspaceListSchema, ...errorResponses },
      },
      handler: async (): Promise<WorkspaceList> => {
        const r = roots()
        const active = new Map<string, number>()
        for (const session of await s.registry.list()) {
          if (session.status === 'running')
            active.set(session.workspace, (active.get(session.workspace) ?? 0) + 1)
        }
        const workspaces = (
          await Promise.all(r.expanded_roots.map((root) => discoverProjects(root, active)))
        ).flat()
        return { ...r, workspaces }
      },
    })

    app.post('/api/workspaces', {
      schema: {
        tags: ['workspaces'],
        summary: 'Add a workspace root',
        body: RootPathBodySchema,
        response: { 200: RootsSchema, ...errorResponses },
      },
      handler: async (req) => {
        const path = req.body.path
        const full = expand(path)
        const st = await stat(full).catch(() => null)
        if (!st?.isDirectory())
          throw new BadRequestError(`path is not a directory: ${path}`, 'invalid_root')
        const current = s.config.current.dashboard.workspace_roots
        if (current.some((r) => expand(r) === full))
          throw new ConflictError(`already registered: ${path}`, 'root_exists')
        await s.updateDashboard({ workspace_roots: [...current, path] })
        return roots()
      },
    })

    app.delete('/api/workspaces', {
      schema: {
        tags: ['workspaces'],
        summary: 'Remove a workspace root (JSON body {path}, or ?path=)',
        querystring: RootPathQuerySchema,
        response: { 200: RootsSchema, ...errorResponses },
      },
      handler: async (req) => {
        // The contract sends {"path"} as a JSON body; the original used ?path=. Both work.
        const body: unknown = req.body
        if (body !== undefined && body !== null && !Value.Check(RootPathBodySchema, body)) {
          throw new BadRequestError('body must be {"path": "<workspace root>"}', 'invalid_request')
        }
        const path = (body as { path?: string } | undefined)?.path ?? req.query.path
        if (!path)
          throw new BadRequestError(
            'path is required (JSON body {"path": …} or ?path=)',
            'missing_path',
          )
        const full = expand(path)
        const current = s.config.current.dashboard.workspace_roots
        const next = current.filter((r) => expand(r) !== full)
        if (next.length === current.length)
          throw new NotFoundError(`workspace root not found: ${path}`, 'root_not_found')
        await s.updateDashboard({ workspace_roots: next })
        return roots()
      },
    })

    app.post('/api/workspaces/folder', {
      schema: {
        tags: ['workspaces'],
        summary: 'Create a project folder inside a workspace root',
        body: CreateFolderBodySchema,
        response: { 201: CreateFolderResponseSchema, ...errorResponses },
      },
      handler: async (req, reply) => {
        const { root, name } = req.body
        if (!FOLDER_NAME.test(name)) {
          throw new BadRequestError(
            'invalid folder name: must be lowercase alphanumeric with hyphens (e.g., my-project)',
            'invalid_folder_name',
          )
        }
        const full = expand(root)
        if (!roots().expanded_roots.includes(full))
          throw new BadRequestError(
            `root is not a configured workspace root: ${root}`,
            'unknown_root',
          )
        const path = join(full, name)
        try {
          await mkdir(path, { mode: 0o755 })
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code
          if (code === 'EEXIST')
            throw new ConflictError(`directory already exists: ${path}`, 'folder_exists')
          throw new AppError(
            500,
            'folder_create_failed',
            `failed to create directory: ${(err as Error).message}`,
            { expose: true },
          )
        }
        return reply.code(201).send({ path })
      },
    })
  }
}
