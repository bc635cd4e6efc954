import { Value } from 'typebox/value'
import { describe, expect, it, vi } from 'vitest'
import { ConfigSchema, type Config } from '../../../shared/schemas/config.ts'
import {
  ApiClient,
  ApiError,
  errorMessage,
  localCredentialStore,
  memoryCredentialStore,
  messageForResponse,
} from './api.ts'

function respond(status: number, body: string, type = 'application/json'): typeof fetch {
  return vi.fn(() =>
    Promise.resolve(
      new Response(status === 204 ? null : body, { status, headers: { 'content-type': type } }),
    ),
  )
}

async function failure(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p
  } catch (err) {
    if (err instanceof ApiError) return err
    throw err
  }
  throw new Error('expected the request to fail')
}

describe('error mapping', () => {
  it('uses the server message and code of an {error, code} body', () => {
    const e = messageForResponse(
      409,
      { error: 'directory already exists: /p/x', code: 'folder_exists' },
      '',
    )
    expect(e).toMatchObject({
      status: 409,
      code: 'folder_exists',
      message: 'directory already exists: /p/x',
    })
  })

  it('accepts the contract bare {error} shape', () => {
    expect(messageForResponse(400, { error: 'workspace is required' }, '').message).toBe(
      'workspace is required',
    )
  })

  it('never shows raw JSON or HTML', () => {
    const json = messageForResponse(500, { message: 'x' }, '{"message":"x"}')
    expect(json.message).toBe('The server failed while handling the request (HTTP 500)')
    const html = messageForResponse(502, undefined, '<html><body>Bad gateway</body></html>')
    expect(html.message).toBe('The server could not talk to Incus (HTTP 502)')
  })

  it('shows a short plain-text body after a sentence for the status', () => {
    expect(messageForResponse(503, undefined, 'upstream unavailable\n').message).toBe(
      'The server is not ready yet; try again in a moment: upstream unavailable',
    )
    expect(messageForResponse(418, undefined, '').message).toBe('The request failed (HTTP 418)')
  })

  it('errorMessage reads anything thrown', () => {
    expect(errorMessage(new ApiError(404, 'x', 'session not found'))).toBe('session not found')
    expect(errorMessage('plain')).toBe('plain')
    expect(errorMessage({ weird: true })).toBe('Something went wrong')
  })
})

describe('ApiClient', () => {
  it('returns schema-checked bodies', async () => {
    const api = new ApiClient(respond(200, '["claude","copilot","opencode"]'))
    await expect(api.tools()).resolves.toEqual(['claude', 'copilot', 'opencode'])
  })

  it('rejects a body that does not match the schema with a readable error', async () => {
    const api = new ApiClient(respond(200, '{"not":"a list"}'))
    const e = await failure(api.sessions())
    expect(e.code).toBe('bad_response')
    expect(e.message).toBe('The server sent an unexpected response for GET /api/sessions')
  })

  it('maps server errors to ApiError with the server message', async () => {
    const api = new ApiClient(
      respond(
        400,
        '{"error":"invalid folder name: must be lowercase","code":"invalid_folder_name"}',
      ),
    )
    const e = await failure(api.createFolder('/r', 'Bad Name'))
    expect(e).toMatchObject({ status: 400, code: 'invalid_folder_name' })
    expect(e.message).toBe('invalid folder name: must be lowercase')
  })

  it('turns a network failure into a sentence', async () => {
    const api = new ApiClient(vi.fn(() => Promise.reject(new TypeError('Failed to fetch'))))
    const e = await failure(api.sessions())
    expect(e).toMatchObject({ status: 0, code: 'network' })
    expect(e.message).toBe('Cannot reach the clincus server. Check that it is still running.')
  })

  it('sends JSON with a content type only when there is a body, and never retries', async () => {
    const fetchImpl = vi.fn<typeof fetch>(() =>
      Promise.resolve(
        new Response('{"error":"boom","code":"session_setup_failed"}', { status: 502 }),
      ),
    )
    const api = new ApiClient(fetchImpl)
    await failure(api.createSession({ workspace: '/w', tool: 'claude' }))
    expect(fetchImpl).toHaveBeenCalledTimes(1)
    const [url, init] = fetchImpl.mock.calls[0] ?? []
    expect(url).toBe('/api/sessions')
    expect(init?.method).toBe('POST')
    expect(init?.headers).toMatchObject({ 'content-type': 'application/json' })
    expect(init?.body).toBe('{"workspace":"/w","tool":"claude"}')

    fetchImpl.mockClear()
    fetchImpl.mockResolvedValueOnce(new Response(null, { status: 204 }))
    await api.deleteSession('clincus-abc-1', true)
    const [delUrl, delInit] = fetchImpl.mock.calls[0] ?? []
    expect(delUrl).toBe('/api/sessions/clincus-abc-1?force=true')
    expect(delInit?.method).toBe('DELETE')
    expect(delInit?.headers).not.toHaveProperty('content-type')
    expect(delInit?.body).toBeUndefined()
  })

  it('PUT /api/config: reads the merged config from {status, config} or a bare config, else null', async () => {
    const config = Value.Default(ConfigSchema, {}) as Config
    const answers = [
      { status: 'updated', config },
      config,
      { status: 'updated' },
      { status: 'updated', config: { dashboard: 'not a config' } },
    ]
    const fetchImpl = vi.fn<typeof fetch>(() =>
      Promise.resolve(new Response(JSON.stringify(answers.shift()), { status: 200 })),
    )
    const api = new ApiClient(fetchImpl)
    expect(await api.updateConfig({ port: 4000 })).toEqual(config)
    expect(await api.updateConfig({ port: 4000 })).toEqual(config)
    expect(await api.updateConfig({ port: 4000 })).toBeNull()
    expect(await api.updateConfig({ port: 4000 })).toBeNull()
    const [url, init] = fetchImpl.mock.calls[0] ?? []
    expect(url).toBe('/api/config')
    expect(init?.method).toBe('PUT')
    expect(init?.body).toBe('{"port":4000}')
  })

  it('removes a workspace root with a JSON body {path}', async () => {
    const fetchImpl = vi.fn<typeof fetch>(() =>
      Promise.resolve(new Response('{"roots":[],"expanded_roots":[]}', { status: 200 })),
    )
    await new ApiClient(fetchImpl).removeRoot('~/code')
    const [url, init] = fetchImpl.mock.calls[0] ?? []
    expect(url).toBe('/api/workspaces')
    expect(init).toMatchObject({ method: 'DELETE', body: '{"path":"~/code"}' })
  })

  it('pages the history with limit and offset', async () => {
    const fetchImpl = vi.fn<typeof fetch>(() =>
      Promise.resolve(new Response('[]', { status: 200 })),
    )
    await new ApiClient(fetchImpl).history(26, 50)
    expect(fetchImpl.mock.calls[0]?.[0]).toBe('/api/sessions/history?limit=26&offset=50')
  })
})

describe('ApiClient: network and images (issues 12, 13)', () => {
  const session = {
    id: 'clincus-abc-1',
    workspace: '/w',
    tool: 'claude',
    slot: 1,
    status: 'running',
    persistent: false,
  }

  it('reads the additive session fields, and refuses a malformed one', async () => {
    const good = [
      {
        ...session,
        tool_version: '2.1.197',
        network: { mode: 'allowlist', last_refused_at: '2026-11-29T20:00:00Z' },
      },
      { ...session, id: 'clincus-abc-2', tool_version: null },
      { ...session, id: 'clincus-abc-3' },
    ]
    const list = await new ApiClient(respond(200, JSON.stringify(good))).sessions()
    expect(list[0]?.network?.last_refused_at).toBe('2026-11-29T20:00:00Z')
    expect(list[0]?.tool_version).toBe('2.1.197')
    const bad = [{ ...session, network: { mode: 'wide-open', last_refused_at: null } }]
    expect((await failure(new ApiClient(respond(200, JSON.stringify(bad))).sessions())).code).toBe(
      'bad_response',
    )
  })

  it('asks for a session network log page', async () => {
    const fetchImpl = vi.fn<typeof fetch>(() =>
      Promise.resolve(
        new Response('{"mode":"open","allow":[],"total":0,"connections":[]}', { status: 200 }),
      ),
    )
    await expect(new ApiClient(fetchImpl).sessionNetwork('clincus-abc-1')).resolves.toMatchObject({
      mode: 'open',
    })
    expect(fetchImpl.mock.calls[0]?.[0]).toBe(
      '/api/sessions/clincus-abc-1/network?limit=1000&offset=0',
    )
  })

  it('posts an allow entry, and reads a 400 as the server message', async () => {
    const fetchImpl = vi.fn<typeof fetch>(() =>
      Promise.resolve(new Response('{"allow":["a.example","b.example"]}', { status: 200 })),
    )
    const api = new ApiClient(fetchImpl)
    await expect(api.allowNetwork('b.example')).resolves.toEqual(['a.example', 'b.example'])
    expect(fetchImpl.mock.calls[0]?.[0]).toBe('/api/network/allow')
    expect(fetchImpl.mock.calls[0]?.[1]).toMatchObject({
      method: 'POST',
      body: '{"entry":"b.example"}',
    })
    fetchImpl.mockResolvedValueOnce(
      new Response(
        '{"error":"not a valid allow entry: \\"a b\\"","code":"invalid_network_entry"}',
        {
          status: 400,
        },
      ),
    )
    const e = await failure(api.allowNetwork('a b'))
    expect(e).toMatchObject({ status: 400, code: 'invalid_network_entry' })
    expect(e.message).toBe('not a valid allow entry: "a b"')
  })

  it('lists images and starts builds (update only when asked); 409 stays a 409', async () => {
    const fetchImpl = vi.fn<typeof fetch>(() =>
      Promise.resolve(new Response('{"status":"building"}', { status: 202 })),
    )
    const api = new ApiClient(fetchImpl)
    await api.buildImage('clincus')
    await api.buildImage('clincus', true)
    expect(fetchImpl.mock.calls.map((c) => [c[0], c[1]?.method, c[1]?.body])).toEqual([
      ['/api/images/clincus/build', 'POST', '{}'],
      ['/api/images/clincus/build', 'POST', '{"update":true}'],
    ])
    fetchImpl.mockResolvedValueOnce(
      new Response('{"error":"a build is running","code":"image_building"}', { status: 409 }),
    )
    expect(await failure(api.buildImage('clincus'))).toMatchObject({ status: 409 })

    fetchImpl.mockResolvedValueOnce(
      new Response(
        JSON.stringify([
          {
            alias: 'clincus',
            fingerprint: null,
            size_bytes: null,
            created_at: null,
            state: 'missing',
            progress: null,
            step: null,
            tools: { claude: null, copilot: null, opencode: null, node: null },
          },
        ]),
        { status: 200 },
      ),
    )
    await expect(api.images()).resolves.toMatchObject([{ alias: 'clincus', state: 'missing' }])
  })
})

describe('credentials', () => {
  it('sends the sign-in session as a Bearer header, never cookies, and forgets it on 401', async () => {
    const seen: RequestInit[] = []
    let status = 200
    const fetchImpl = vi.fn((_url: RequestInfo | URL, init?: RequestInit) => {
      seen.push(init ?? {})
      return Promise.resolve(new Response('[]', { status }))
    })
    const store = memoryCredentialStore('secret-1')
    const api = new ApiClient(fetchImpl, '', store)
    let signedOut = 0
    api.onUnauthorized = () => signedOut++
    await api.sessions()
    expect(new Headers(seen[0]?.headers).get('authorization')).toBe('Bearer secret-1')
    expect(seen[0]?.credentials).toBe('omit')
    status = 401
    await failure(api.sessions())
    expect(store.get()).toBeNull()
    expect(signedOut).toBe(1)
    status = 200
    await api.sessions()
    expect(new Headers(seen[2]?.headers).has('authorization')).toBe(false)
  })

  it("keeps the session in this origin's localStorage", () => {
    const store = localCredentialStore()
    store.set('abc')
    expect(localStorage.getItem('clincus.session')).toBe('abc')
    expect(localCredentialStore().get()).toBe('abc')
    store.set(null)
    expect(localStorage.getItem('clincus.session')).toBeNull()
  })

  it('builds WebSocket URLs with a fresh ticket', async () => {
    let n = 0
    const fetchImpl = vi.fn(() =>
      Promise.resolve(
        new Response(JSON.stringify({ ticket: `t/${++n}`, expires_at: 'x' }), { status: 200 }),
      ),
    )
    const api = new ApiClient(fetchImpl, 'http://127.0.0.1:9')
    expect(await api.socketUrl('/ws/events')).toBe('ws://127.0.0.1:9/ws/events?ticket=t%2F1')
    expect(await api.socketUrl('/ws/shell/c1')).toBe('ws://127.0.0.1:9/ws/shell/c1?ticket=t%2F2')
  })
})
