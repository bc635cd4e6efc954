import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Value } from 'typebox/value'
import { ConfigSchema } from '../../../../shared/schemas/config.ts'
import { ApiClient } from '../api.ts'
import { FakeWebSocket, FakeWebSocketCtor } from '../testing/fake-websocket.ts'
import { session } from '../testing/app.ts'
import { AppState } from './app.svelte.ts'

const win = {
  location: { pathname: '/', search: '', hash: '', origin: 'http://127.0.0.1:3000' },
  history: { pushState: vi.fn(), replaceState: vi.fn() },
  addEventListener: vi.fn(),
  removeEventListener: vi.fn(),
}

function json(status: number, body: unknown): Response {
  return new Response(status === 204 ? null : JSON.stringify(body), { status })
}

/** A fake server: signed in or not, with one session; counts the requests per path. */
function server(): { fetch: typeof fetch; signedIn: boolean; hits: Record<string, number> } {
  const state = {
    signedIn: true,
    hits: {} as Record<string, number>,
    fetch: (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
      const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
      const path = new URL(href, 'http://x').pathname
      state.hits[path] = (state.hits[path] ?? 0) + 1
      if (path === '/api/auth/login') {
        const ok = init?.body === JSON.stringify({ token: 'good' })
        if (ok) state.signedIn = true
        return Promise.resolve(
          ok
            ? json(204, null)
            : json(401, { error: 'that token is not valid', code: 'invalid_token' }),
        )
      }
      if (!state.signedIn)
        return Promise.resolve(json(401, { error: 'a token is required', code: 'unauthorized' }))
      const bodies: Record<string, unknown> = {
        '/api/sessions': [session('c1')],
        '/api/workspaces': { roots: [], expanded_roots: [], workspaces: [] },
        '/api/config': Value.Create(ConfigSchema),
        '/api/tools': ['claude', 'copilot', 'opencode'],
      }
      return Promise.resolve(json(200, bodies[path]))
    },
  }
  return state
}

beforeEach(() => {
  FakeWebSocket.reset()
})
afterEach(() => {
  vi.useRealTimers()
})

describe('AppState', () => {
  it('loads everything, then subscribes to events; every (re)connect loads everything again', async () => {
    const s = server()
    const app = new AppState({
      api: new ApiClient(s.fetch),
      win,
      WebSocket: FakeWebSocketCtor,
      eventsUrl: () => 'ws://x/ws/events',
    })
    app.start()
    await vi.waitFor(() => {
      expect(FakeWebSocket.instances).toHaveLength(1)
    })
    expect(app.sessions.list.map((x) => x.id)).toEqual(['c1'])
    expect(app.tools).toEqual(['claude', 'copilot', 'opencode'])
    FakeWebSocket.last().open()
    await vi.waitFor(() => {
      expect(s.hits['/api/sessions']).toBe(2)
    })
    FakeWebSocket.last().receive('{"type":"session.stopped","id":"c1"}')
    expect(app.sessions.get('c1')?.status).toBe('stopped')
    FakeWebSocket.last().receive('{"type":"config.invalid","file":"/f","error":"bad"}')
    expect(app.config.invalid).toEqual({ file: '/f', error: 'bad' })
    app.dispose()
  })

  it('shows the sign-in page on a 401, opens no socket, and goes live after signing in', async () => {
    const s = server()
    s.signedIn = false
    const app = new AppState({
      api: new ApiClient(s.fetch),
      win,
      WebSocket: FakeWebSocketCtor,
      eventsUrl: () => 'ws://x/ws/events',
    })
    app.start()
    await vi.waitFor(() => {
      expect(app.auth).toBe('required')
    })
    await new Promise((r) => setTimeout(r, 10))
    expect(FakeWebSocket.instances).toHaveLength(0)
    expect(app.toasts.items).toEqual([])

    await expect(app.signIn('bad')).rejects.toThrow('that token is not valid')
    expect(app.auth).toBe('required')
    await app.signIn('good')
    expect(app.auth).toBe('ok')
    await vi.waitFor(() => {
      expect(FakeWebSocket.instances).toHaveLength(1)
    })
    expect(app.sessions.list.map((x) => x.id)).toEqual(['c1'])
    app.dispose()
  })
})
