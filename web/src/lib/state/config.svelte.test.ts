import { describe, expect, it, vi } from 'vitest'
import { ApiClient } from '../api.ts'
import { countingServer } from '../testing/counting-server.ts'
import { AppState } from './app.svelte.ts'
import { ConfigStore, OWN_RELOAD_MS } from './config.svelte.ts'

const win = {
  location: { pathname: '/', search: '', hash: '', origin: 'http://127.0.0.1:3000' },
  history: { pushState: vi.fn(), replaceState: vi.fn() },
  addEventListener: vi.fn(),
  removeEventListener: vi.fn(),
}
const reloaded = { type: 'config.reloaded', timestamp: '2026-11-30T03:00:00Z' } as const

/** An app on a counting server, with config and projects loaded and the request log cleared. */
async function loaded(roots?: string[]) {
  const srv = countingServer(roots)
  const app = new AppState({ api: srv.api(), win })
  await Promise.all([app.config.load(), app.workspaces.load()])
  srv.reset()
  return { srv, app }
}

/** What a hand edit of the config file does on the server's side. */
function handEdit(
  srv: ReturnType<typeof countingServer>,
  dashboard: { port?: number; roots?: string[] },
) {
  srv.config = {
    ...srv.config,
    dashboard: {
      ...srv.config.dashboard,
      ...(dashboard.port === undefined ? {} : { port: dashboard.port }),
      ...(dashboard.roots ? { workspace_roots: dashboard.roots } : {}),
    },
  }
}

describe('ConfigStore', () => {
  it('shows config.invalid until the next config.reloaded', async () => {
    const { srv, app } = await loaded()
    app.onEvent({
      type: 'config.invalid',
      file: '/home/u/.config/clincus/config.toml',
      error: 'line 3: expected =',
    })
    expect(app.config.invalid).toEqual({
      file: '/home/u/.config/clincus/config.toml',
      error: 'line 3: expected =',
    })
    app.onEvent({ type: 'session.launching', id: 'x', step: 'init', progress: 0 })
    expect(app.config.invalid).not.toBeNull()
    app.onEvent(reloaded)
    expect(app.config.invalid).toBeNull()
    await vi.waitFor(() => {
      expect(srv.requests).toEqual(['GET /api/config'])
    })
  })

  it('keeps the load error readable', async () => {
    const api = new ApiClient(() => Promise.reject(new TypeError('Failed to fetch')))
    const store = new ConfigStore(api)
    await store.load()
    expect(store.loadError).toBe('Cannot reach the clincus server. Check that it is still running.')
    expect(store.roots).toEqual([])
  })
})

// Issue 15: "adding a root in Settings costs one request"; one `config.reloaded` per save, which
// the tab that saved must not answer with refetches (before: up to three GETs of /api/config and
// of /api/workspaces per save).
describe('requests per config change', () => {
  it('a hand edit: exactly one GET /api/config; /api/workspaces only when the roots changed', async () => {
    const { srv, app } = await loaded()
    const unwatch = app.workspaces.watch()
    expect(srv.requests).toEqual([])

    handEdit(srv, { port: 4100 })
    app.onEvent(reloaded)
    await vi.waitFor(() => {
      expect(app.config.port).toBe(4100)
    })
    await Promise.resolve()
    expect(srv.requests).toEqual(['GET /api/config'])

    srv.reset()
    handEdit(srv, { roots: ['~/code', '/srv/more'] })
    app.onEvent(reloaded)
    await vi.waitFor(() => {
      expect(app.workspaces.data?.roots).toEqual(['~/code', '/srv/more'])
    })
    expect(srv.requests).toEqual(['GET /api/config', 'GET /api/workspaces'])

    // Nobody shows the projects: the roots change is remembered, and fetched when they are.
    unwatch()
    srv.reset()
    handEdit(srv, { roots: ['/srv/more'] })
    app.onEvent(reloaded)
    await vi.waitFor(() => {
      expect(app.config.roots).toEqual(['/srv/more'])
    })
    await Promise.resolve()
    expect(srv.requests).toEqual(['GET /api/config'])
    const again = app.workspaces.watch()
    await vi.waitFor(() => {
      expect(app.workspaces.data?.roots).toEqual(['/srv/more'])
    })
    expect(srv.requests).toEqual(['GET /api/config', 'GET /api/workspaces'])
    again()
  })

  it('adding or removing a root costs one request, and the config.reloaded it causes none', async () => {
    const { srv, app } = await loaded()
    // The server publishes the event before it answers, so it usually arrives first.
    const adding = app.config.addRoot('/srv/new')
    app.onEvent(reloaded)
    await adding
    expect(app.config.roots).toEqual(['~/code', '/srv/new'])
    expect(srv.requests).toEqual(['POST /api/workspaces'])

    srv.reset()
    await app.config.removeRoot('~/code')
    app.onEvent(reloaded)
    expect(app.config.roots).toEqual(['/srv/new'])
    await Promise.resolve()
    expect(srv.requests).toEqual(['DELETE /api/workspaces'])

    // The projects were not on screen: they are fetched once, when shown.
    const unwatch = app.workspaces.watch()
    await vi.waitFor(() => {
      expect(app.workspaces.data?.roots).toEqual(['/srv/new'])
    })
    expect(srv.requests).toEqual(['DELETE /api/workspaces', 'GET /api/workspaces'])
    unwatch()

    // Each save claimed one event: the next one is somebody else's.
    srv.reset()
    app.onEvent(reloaded)
    await vi.waitFor(() => {
      expect(srv.requests).toEqual(['GET /api/config'])
    })
  })

  it('PUT /api/config: the merged config it answers is the new config (one request)', async () => {
    const { srv, app } = await loaded()
    await app.config.setPort(4200)
    app.onEvent(reloaded)
    expect(app.config.port).toBe(4200)
    expect(app.config.config).toEqual(srv.config)
    await Promise.resolve()
    expect(srv.requests).toEqual(['PUT /api/config'])
  })

  it('an older server answering {status}: one GET after the PUT, still none for the event', async () => {
    const { srv, app } = await loaded()
    srv.oldPut = true
    await app.config.setPort(4300)
    app.onEvent(reloaded)
    expect(app.config.port).toBe(4300)
    await Promise.resolve()
    expect(srv.requests).toEqual(['PUT /api/config', 'GET /api/config'])
  })

  it('a refused save claims no event: the next config.reloaded is fetched', async () => {
    const { srv, app } = await loaded()
    await expect(app.config.addRoot('~/code')).rejects.toThrow('already registered: ~/code')
    app.onEvent(reloaded)
    await vi.waitFor(() => {
      expect(srv.requests).toEqual(['POST /api/workspaces', 'GET /api/config'])
    })
  })

  it('a save that changed nothing claims no event', async () => {
    const { srv, app } = await loaded()
    await app.config.setPort(3000)
    app.onEvent(reloaded)
    await vi.waitFor(() => {
      expect(srv.requests).toEqual(['PUT /api/config', 'GET /api/config'])
    })
  })

  it("a save's claim on the next event lapses after OWN_RELOAD_MS", async () => {
    const srv = countingServer()
    let now = 1_000_000
    const store = new ConfigStore(srv.api(), { now: () => now })
    await store.load()
    await store.setPort(4400)
    now += OWN_RELOAD_MS + 1
    srv.reset()
    store.apply(reloaded)
    await vi.waitFor(() => {
      expect(srv.requests).toEqual(['GET /api/config'])
    })
  })
})
