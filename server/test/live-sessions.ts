// The warm-pool live tests' server (issue 16: the pool on, a home of its own) and the session
// calls they make against it: create
// (expects 200), remove (force, expects 204), wait for a ready primed member, and the fake
// agent's `hello` → `hello-BACK` through /ws/terminal.
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'vitest'
import type { Health } from '../../shared/schemas/health.ts'
import type { CreatedSession } from '../../shared/schemas/sessions.ts'
import { requestJson, startLiveServer, TEST_IMAGE, type LiveServer } from './incus-harness.ts'
import { TerminalClient, waitUntil } from './ws-client.ts'

/** Generous: a loaded 2-core CI machine primes a member in tens of seconds. */
export const LIVE_WAIT = { timeoutMs: 180_000, intervalMs: 200 }

export interface LiveSessions {
  create: (workspace: string) => Promise<CreatedSession>
  remove: (id: string) => Promise<void>
  /** Until `GET /api/health` reports `ready` primed members (default 1). */
  primedReady: (ready?: number) => Promise<unknown>
  /** The fake agent's prompt, then `hello` answered with `hello-BACK`. */
  helloBack: (id: string) => Promise<void>
}

/** The calls against the server `server()` gives (read at each call: set in a beforeAll). */
export function liveSessions(server: () => LiveServer): LiveSessions {
  return {
    create: async (workspace) => {
      const res = await requestJson(server().url, 'POST', '/api/sessions', { workspace })
      expect(res.status, JSON.stringify(res.body)).toBe(200)
      return res.body as CreatedSession
    },
    remove: async (id) => {
      const res = await requestJson(server().url, 'DELETE', `/api/sessions/${id}?force=true`)
      expect(res.status).toBe(204)
    },
    primedReady: (ready = 1) =>
      waitUntil(
        'a primed member ready',
        async () => {
          const body = (await requestJson(server().url, 'GET', '/api/health')).body as Health
          return body.pool?.primed?.ready === ready
        },
        LIVE_WAIT,
      ),
    helloBack: async (id) => {
      const term = new TerminalClient(`${server().wsUrl}/ws/terminal/${id}?cols=100&rows=30`)
      await term.opened
      await term.waitFor('ready', LIVE_WAIT.timeoutMs)
      term.send('hello\r')
      await term.waitFor('hello-BACK', LIVE_WAIT.timeoutMs)
      await term.close()
    },
  }
}

/** A live server of the warm-pool tests, its home, and what ends both. */
export interface PoolServer {
  server: LiveServer
  home: string
  close: () => Promise<void>
}

/**
 * A live server with the warm pool on, in a new home (`clincus-<tag>-…`) whose `projects` folder
 * is the workspace root; `config`: TOML after `[defaults] image` (`image`, the test image by
 * default) and `[dashboard]`. `close` stops the server and removes the home.
 */
export async function startPoolServer(
  tag: string,
  config: readonly string[],
  image = TEST_IMAGE,
): Promise<PoolServer> {
  const home = await mkdtemp(join(tmpdir(), `clincus-${tag}-`))
  const root = join(home, 'projects')
  await mkdir(root, { recursive: true })
  const server = await startLiveServer({
    home,
    warmPool: true,
    configText: [
      `[defaults]\nimage = "${image}"`,
      `[dashboard]\nworkspace_roots = ["${root}"]`,
      ...config,
    ].join('\n'),
  })
  return {
    server,
    home,
    close: async () => {
      await server.close()
      await rm(home, { recursive: true, force: true })
    },
  }
}
