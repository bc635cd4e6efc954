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

/**
 * A fake server: a request is signed in with the session it handed out (Bearer s1) or when
 * `open` is set; one session; counts the requests per path.
 */
function server(): {
  fetch: typeof fetch
  signedIn: boolean
  hits: Record<string, number>
  auth: (string | null)[]
} {
  const state = {
    signedIn: true,
    hits: {} as Record<string, number>,
    auth: [] as (string | null)[],
    fetch: (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
      const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
      const path = new URL(href, 'http://x').pathname
      const headers = new Headers(init?.headers)
      state.hits[path] = (state.hits[path] ?? 0) + 1
      state.auth.push(headers.get('authorization'))
      expect(init?.credentials).toBe('omit')
      if (path === '/api/auth/login') {
        const ok =
          init?.body === JSON.stringify({ token: 'good' }) ||
          init?.body === JSON.stringify({ code: 'c0de' })
        return Promise.resolve(
          ok
            ? json(200, { session: 's1', expires_at: '2030-01-01T00:00:00.000Z' })
            : json(401, { error: 'that token is not valid', code: 'invalid_token' }),
        )
      }
      const withSession = headers.get('authorization') === 'Bearer s1'
      if (path === '/api/auth/session' && init?.method === 'DELETE') {
        state.signedIn = false
        return Promise.resolve(json(204, null))
      }
      if (!state.signedIn && !withSession)
        return Promise.resolve(json(401, { error: 'a token is required', code: 'unauthorized' }))
      const bodies: Record<string, unknown> = {
        '/api/sessions': [session('c1')],
        '/api/workspaces': { roots: [], expanded_roots: [], workspaces: [] },
        '/api/config': Value.Create(ConfigSchema),
        '/api/tools': ['claude', 'copilot', 'opencode'],
        '/api/auth/ticket': { ticket: `t${state.hits[path] ?? 0}`, expires_at: '2030-01-01' },
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

  it('applies session events that carry the session without a request; a reconnect refetches', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] })
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
    FakeWebSocket.last().open()
    await vi.waitFor(() => {
      expect(s.hits['/api/sessions']).toBe(2)
      expect(app.sessions.loaded).toBe(true)
    })
    const socket = FakeWebSocket.last()
    const send = (type: string, over: Record<string, unknown>): void => {
      socket.receive(JSON.stringify({ type, id: 'c1', session: session('c1', over) }))
    }
    send('session.frozen', { status: 'frozen' })
    expect(app.sessions.get('c1')?.status).toBe('frozen')
    send('session.thawed', { status: 'running' })
    expect(app.sessions.get('c1')?.status).toBe('running')
    socket.receive(
      JSON.stringify({ type: 'session.created', id: 'c2', session: session('c2', { slot: 2 }) }),
    )
    expect(app.sessions.list.map((x) => x.id)).toEqual(['c1', 'c2'])
    await vi.advanceTimersByTimeAsync(0)
    expect(s.hits['/api/sessions']).toBe(2)

    // Events may have been missed while the socket was down: the list is fetched again.
    socket.serverClose()
    await vi.advanceTimersByTimeAsync(1000)
    FakeWebSocket.last().open()
    await vi.waitFor(() => {
      expect(s.hits['/api/sessions']).toBe(3)
    })
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
    // Every request after signing in carries the session as a header (there is no cookie).
    expect(s.auth.at(-1)).toBe('Bearer s1')
    app.dispose()
  })

  it('opens the events socket with a fresh single-use ticket per attempt', async () => {
    const s = server()
    const app = new AppState({ api: new ApiClient(s.fetch), win, WebSocket: FakeWebSocketCtor })
    app.start()
    await vi.waitFor(() => {
      expect(FakeWebSocket.instances).toHaveLength(1)
    })
    expect(FakeWebSocket.last().url).toBe('ws://localhost:3000/ws/events?ticket=t1')
    app.dispose()
  })

  it('trades the sign-in link code for a session and drops it from the address bar', async () => {
    const s = server()
    s.signedIn = false
    const replaceState = vi.fn()
    const linkWin = {
      ...win,
      location: { ...win.location, pathname: '/settings', search: '?code=c0de&x=1' },
      history: { pushState: vi.fn(), replaceState },
    }
    const app = new AppState({
      api: new ApiClient(s.fetch),
      win: linkWin,
      WebSocket: FakeWebSocketCtor,
      eventsUrl: () => 'ws://x/ws/events',
    })
    app.start()
    expect(replaceState).toHaveBeenCalledWith(null, '', '/settings?x=1')
    await vi.waitFor(() => {
      expect(FakeWebSocket.instances).toHaveLength(1)
    })
    expect(app.auth).toBe('ok')
    expect(s.hits['/api/auth/login']).toBe(1)
    app.dispose()
  })

  it('says so when the link code is no longer valid, and asks for the token', async () => {
    const s = server()
    s.signedIn = false
    const app = new AppState({
      api: new ApiClient(s.fetch),
      win: { ...win, location: { ...win.location, search: '?code=used' } },
      WebSocket: FakeWebSocketCtor,
      eventsUrl: () => 'ws://x/ws/events',
    })
    app.start()
    await vi.waitFor(() => {
      expect(app.auth).toBe('required')
    })
    expect(app.signInProblem).toMatch(/expired or was used already/)
    app.dispose()
  })

  it('signs out: revokes the session on the server and shows the sign-in page', async () => {
    const s = server()
    s.signedIn = false
    const app = new AppState({
      api: new ApiClient(s.fetch),
      win,
      WebSocket: FakeWebSocketCtor,
      eventsUrl: () => 'ws://x/ws/events',
    })
    await app.signIn('good')
    expect(app.api.signedIn).toBe(true)
    await app.signOut()
    expect(s.hits['/api/auth/session']).toBe(1)
    expect(s.auth.at(-1)).toBe('Bearer s1')
    expect(app.api.signedIn).toBe(false)
    expect(app.auth).toBe('required')
    app.dispose()
  })
})
