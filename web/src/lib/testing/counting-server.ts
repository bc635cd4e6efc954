// A fake clincus API for request-count tests (issue 15: a save costs one request, its own
// `config.reloaded` none). It keeps a config and its workspace roots, answers like the server, and
// records every request as "METHOD /path".
import { Value } from 'typebox/value'
import { ConfigSchema, type Config } from '../../../../shared/schemas/config.ts'
import type { Health } from '../../../../shared/schemas/health.ts'
import { ApiClient } from '../api.ts'

export interface CountingServer {
  fetch: typeof fetch
  /** Every request so far, "METHOD /path", in order. */
  requests: string[]
  /** How many requests match "METHOD /path". */
  count(what: string): number
  /** Forgets the requests so far. */
  reset(): void
  config: Config
  health: Health
  /** PUT /api/config answers the pre-issue-15 `{status}` instead of the merged config. */
  oldPut: boolean
  api(): ApiClient
}

function json(status: number, body: unknown): Response {
  return new Response(status === 204 ? null : JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json' },
  })
}

const expand = (root: string): string => root.replace(/^~(?=\/|$)/, '/home/u')

export function countingServer(roots: string[] = ['~/code']): CountingServer {
  // Value.Default fills the nested sections' defaults (Value.Create leaves them `{}`).
  const base = Value.Default(ConfigSchema, {}) as Config
  const state: CountingServer = {
    requests: [],
    count: (what) => state.requests.filter((r) => r === what).length,
    reset: () => {
      state.requests.length = 0
    },
    config: { ...base, dashboard: { ...base.dashboard, workspace_roots: roots } },
    health: {
      status: 'ok',
      version: '0.0.0-test',
      uptime_seconds: 1,
      incus: { reachable: true, version: '6.0.0' },
      image: { name: 'clincus', state: 'ready' },
    },
    oldPut: false,
    api: () => new ApiClient(state.fetch),
    fetch: async (input, init) => {
      const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
      const path = new URL(href, 'http://x').pathname
      const method = init?.method ?? 'GET'
      state.requests.push(`${method} ${path}`)
      const body: unknown =
        typeof init?.body === 'string' ? (JSON.parse(init.body) as unknown) : undefined
      const current = (): string[] => state.config.dashboard.workspace_roots
      const setRoots = (next: string[]): Response => {
        state.config = {
          ...state.config,
          dashboard: { ...state.config.dashboard, workspace_roots: next },
        }
        return json(200, { roots: next, expanded_roots: next.map(expand) })
      }
      const bodyPath =
        typeof body === 'object' && body !== null && 'path' in body && typeof body.path === 'string'
          ? body.path
          : ''
      await Promise.resolve()
      switch (`${method} ${path}`) {
        case 'GET /api/config':
          return json(200, state.config)
        case 'PUT /api/config': {
          const patch = body as { port?: number; workspace_roots?: string[] }
          state.config = {
            ...state.config,
            dashboard: {
              ...state.config.dashboard,
              ...(patch.port === undefined ? {} : { port: patch.port }),
              ...(patch.workspace_roots ? { workspace_roots: patch.workspace_roots } : {}),
            },
          }
          // Issue 15's answer: the contract's {status} plus the merged config.
          return json(
            200,
            state.oldPut ? { status: 'updated' } : { status: 'updated', config: state.config },
          )
        }
        case 'POST /api/workspaces':
          if (current().includes(bodyPath))
            return json(409, { error: `already registered: ${bodyPath}`, code: 'root_exists' })
          return setRoots([...current(), bodyPath])
        case 'DELETE /api/workspaces':
          return setRoots(current().filter((r) => r !== bodyPath))
        case 'GET /api/workspaces':
          return json(200, {
            roots: current(),
            expanded_roots: current().map(expand),
            workspaces: current().map((r) => ({
              path: `${expand(r)}/demo`,
              name: 'demo',
              root: expand(r),
              has_config: false,
              active_sessions: 0,
            })),
          })
        case 'GET /api/sessions':
          return json(200, [])
        case 'GET /api/tools':
          return json(200, ['claude', 'copilot', 'opencode'])
        case 'GET /api/health':
          return json(200, state.health)
        case 'GET /api/images':
          return json(200, [])
        default:
          return json(404, { error: `no route ${method} ${path}`, code: 'not_found' })
      }
    },
  }
  return state
}
