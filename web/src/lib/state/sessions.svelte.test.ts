import { beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiClient, ApiError } from '../api.ts'
import type { Session as SessionInfo } from '../schemas.ts'
import { SessionsStore } from './sessions.svelte.ts'

function session(id: string, over: Partial<SessionInfo> = {}): SessionInfo {
  return {
    id,
    workspace: `/p/${id}`,
    tool: 'claude',
    slot: 1,
    status: 'running',
    persistent: false,
    ...over,
  }
}

// The API, with each method this store calls replaced by a spy.
function fakeApi(list: SessionInfo[] = []) {
  const api = new ApiClient(() => Promise.reject(new Error('no network in tests')))
  const calls = {
    sessions: vi
      .spyOn(api, 'sessions')
      .mockImplementation(() => Promise.resolve(structuredClone(list))),
    deleteSession: vi.spyOn(api, 'deleteSession').mockResolvedValue(undefined),
    createSession: vi
      .spyOn(api, 'createSession')
      .mockImplementation((body) =>
        Promise.resolve(session('c-new', { workspace: body.workspace })),
      ),
  }
  vi.spyOn(api, 'resumeSession').mockImplementation((id) =>
    Promise.resolve({ id, status: 'running' }),
  )
  return { api, calls }
}

let now = 1_000_000
beforeEach(() => {
  now = 1_000_000
})

describe('SessionsStore', () => {
  it('loads the list and patches known sessions from events', async () => {
    const { api, calls } = fakeApi([session('c1'), session('c2', { status: 'stopped' })])
    const s = new SessionsStore(api, () => now)
    await s.load()
    expect(s.list.map((x) => x.id)).toEqual(['c1', 'c2'])
    expect(s.running.map((x) => x.id)).toEqual(['c1'])

    s.apply({ type: 'session.stopped', id: 'c1' })
    s.apply({ type: 'session.started', id: 'c2' })
    expect(s.get('c1')?.status).toBe('stopped')
    expect(s.get('c2')?.status).toBe('running')
    s.apply({ type: 'session.deleted', id: 'c1' })
    expect(s.get('c1')).toBeUndefined()
    expect(calls.sessions).toHaveBeenCalledTimes(1)
  })

  it('fetches the list once for an event about a session it does not know', async () => {
    const { api, calls } = fakeApi([session('c1')])
    const s = new SessionsStore(api, () => now)
    s.apply({ type: 'session.created', id: 'c1' })
    s.apply({ type: 'session.started', id: 'c1' })
    await vi.waitFor(() => {
      expect(s.get('c1')).toBeDefined()
    })
    // The second fetch is the re-run for the event that arrived while the first was in flight.
    expect(calls.sessions.mock.calls.length).toBeLessThanOrEqual(2)
  })

  it('keeps an event that lands while a fetch is in flight, without fetching again', async () => {
    let release: (v: SessionInfo[]) => void = () => undefined
    const { api, calls } = fakeApi()
    calls.sessions.mockImplementationOnce(() => new Promise((r) => (release = r)))
    const s = new SessionsStore(api, () => now)
    await Promise.resolve()
    const first = s.load()
    s.list = [session('c1')]
    s.apply({ type: 'session.stopped', id: 'c1' })
    s.apply({
      type: 'session.frozen',
      id: 'c2',
      session: session('c2', { status: 'frozen' }),
    })
    s.apply({ type: 'session.deleted', id: 'c3' })
    // The answer predates all three events.
    release([session('c1', { status: 'running' }), session('c3')])
    await first
    expect(s.get('c1')?.status).toBe('stopped')
    expect(s.get('c2')?.status).toBe('frozen')
    expect(s.get('c3')).toBeUndefined()
    expect(calls.sessions).toHaveBeenCalledTimes(1)
  })

  it('applies session.agent to the session without fetching (issue 17)', async () => {
    const { api, calls } = fakeApi([session('c1'), session('c2')])
    const s = new SessionsStore(api, () => now)
    await s.load()
    const c2 = s.get('c2')
    const waiting = {
      status: 'waiting' as const,
      reason: 'Proceed?',
      since: '2026-11-30T06:00:00Z',
    }
    s.apply({ type: 'session.agent', id: 'c1', agent: waiting })
    expect(s.get('c1')?.agent).toEqual(waiting)
    expect(s.get('c1')?.status).toBe('running')
    // Only that session changes (the other keeps its object: no re-render).
    expect(s.get('c2')).toBe(c2)
    s.apply({
      type: 'session.agent',
      id: 'c1',
      agent: { status: 'working', since: '2026-11-30T06:00:05Z' },
    })
    expect(s.get('c1')?.agent).toEqual({ status: 'working', since: '2026-11-30T06:00:05Z' })
    // An unknown id is not fetched for: its lifecycle event brings the session.
    s.apply({ type: 'session.agent', id: 'c9', agent: waiting })
    expect(s.get('c9')).toBeUndefined()
    expect(calls.sessions).toHaveBeenCalledTimes(1)
  })

  it('keeps a session.agent that lands while a fetch is in flight', async () => {
    let release: (v: SessionInfo[]) => void = () => undefined
    const { api, calls } = fakeApi()
    calls.sessions.mockImplementationOnce(() => new Promise((r) => (release = r)))
    const s = new SessionsStore(api, () => now)
    const first = s.load()
    const agent = { status: 'waiting' as const, since: '2026-11-30T06:00:00Z' }
    s.apply({ type: 'session.agent', id: 'c1', agent })
    release([session('c1', { agent: { status: 'working', since: '2026-11-30T05:00:00Z' } })])
    await first
    expect(s.get('c1')?.agent).toEqual(agent)
    expect(calls.sessions).toHaveBeenCalledTimes(1)
  })

  it('applies the session object of every lifecycle event without fetching (issue 15)', async () => {
    const { api, calls } = fakeApi([session('c1')])
    const s = new SessionsStore(api, () => now)
    await s.load()
    expect(calls.sessions).toHaveBeenCalledTimes(1)
    const created = session('c2', { status: 'stopped', slot: 2, profile: 'small' })
    s.apply({ type: 'session.created', id: 'c2', session: created })
    expect(s.get('c2')).toEqual(created)
    s.apply({
      type: 'session.started',
      id: 'c2',
      session: { ...created, status: 'running', started_at: '2026-11-30T01:00:00Z' },
    })
    expect(s.get('c2')?.status).toBe('running')
    expect(s.get('c2')?.started_at).toBe('2026-11-30T01:00:00Z')
    s.apply({ type: 'session.frozen', id: 'c1', session: session('c1', { status: 'frozen' }) })
    expect(s.get('c1')?.status).toBe('frozen')
    expect(s.running.map((x) => x.id)).toEqual(['c2'])
    s.apply({ type: 'session.thawed', id: 'c1', session: session('c1') })
    expect(s.get('c1')?.status).toBe('running')
    s.apply({ type: 'session.stopped', id: 'c1', session: session('c1', { status: 'error' }) })
    expect(s.get('c1')?.status).toBe('error')
    s.apply({ type: 'session.deleted', id: 'c1', session: session('c1', { status: 'stopped' }) })
    expect(s.get('c1')).toBeUndefined()
    // Order is kept: a changed session stays where it was.
    expect(s.list.map((x) => x.id)).toEqual(['c2'])
    await Promise.resolve()
    expect(calls.sessions).toHaveBeenCalledTimes(1)
  })

  it('an older server (ids only): frozen/thawed patch a known session, an unknown id fetches', async () => {
    const { api, calls } = fakeApi([session('c1'), session('c9', { status: 'frozen' })])
    const s = new SessionsStore(api, () => now)
    await s.load()
    s.apply({ type: 'session.frozen', id: 'c1' })
    expect(s.get('c1')?.status).toBe('frozen')
    s.apply({ type: 'session.thawed', id: 'c1' })
    expect(s.get('c1')?.status).toBe('running')
    expect(calls.sessions).toHaveBeenCalledTimes(1)
    s.list = [session('c1')]
    s.apply({ type: 'session.frozen', id: 'c9' })
    await vi.waitFor(() => {
      expect(s.get('c9')?.status).toBe('frozen')
    })
    expect(calls.sessions).toHaveBeenCalledTimes(2)
  })

  it('ignores a session object that names another id, and falls back to the id', async () => {
    const { api, calls } = fakeApi([session('c1')])
    const s = new SessionsStore(api, () => now)
    await s.load()
    s.apply({ type: 'session.stopped', id: 'c1', session: session('c2', { status: 'stopped' }) })
    expect(s.get('c2')).toBeUndefined()
    expect(s.get('c1')?.status).toBe('stopped')
    expect(calls.sessions).toHaveBeenCalledTimes(1)
  })

  it('tracks launch progress until the session runs its agent', () => {
    const s = new SessionsStore(fakeApi([]).api, () => now)
    s.list = [session('c1', { status: 'stopped' })]
    s.apply({ type: 'session.launching', id: 'c1', step: 'start', progress: 0.44 })
    expect(s.launch('c1')).toMatchObject({ step: 'start', progress: 0.44 })
    s.apply({ type: 'session.launching', id: 'c1', step: 'tool', progress: 0.89 })
    expect(s.launches).toHaveLength(1)
    expect(s.launch('c1')?.step).toBe('tool')
    s.apply({ type: 'session.started', id: 'c1' })
    expect(s.launch('c1')).toBeUndefined()
  })

  it('drops launches that went quiet', () => {
    const s = new SessionsStore(fakeApi([]).api, () => now)
    s.apply({ type: 'session.launching', id: 'c9', step: 'init', progress: 0 })
    now += 60_000
    s.prune()
    expect(s.launches).toHaveLength(1)
    now += 61_000
    s.prune()
    expect(s.launches).toHaveLength(0)
  })

  it('stop, force delete and resume call the API once and update the list', async () => {
    const { api, calls } = fakeApi()
    const s = new SessionsStore(api, () => now)
    s.list = [session('c1'), session('c2', { status: 'stopped' })]
    const stopping = s.stop('c1')
    expect(s.pending).toEqual({ c1: 'stopping' })
    await stopping
    expect(calls.deleteSession).toHaveBeenCalledWith('c1', false)
    expect(s.get('c1')?.status).toBe('stopped')
    expect(s.pending).toEqual({})
    await s.resume('c2')
    expect(s.get('c2')?.status).toBe('running')
    await s.forceDelete('c2')
    expect(calls.deleteSession).toHaveBeenCalledWith('c2', true)
    expect(s.get('c2')).toBeUndefined()
  })

  it('never retries a failed create, and reports the server message', async () => {
    const { api, calls } = fakeApi()
    calls.createSession.mockRejectedValue(
      new ApiError(502, 'container_create_failed', 'Creating the container failed: no space'),
    )
    const s = new SessionsStore(api, () => now)
    const p = s.create({ workspace: '/p/x' })
    expect(s.creating).toEqual(['/p/x'])
    await expect(p).rejects.toThrow('Creating the container failed: no space')
    expect(calls.createSession).toHaveBeenCalledTimes(1)
    expect(s.creating).toEqual([])
  })

  it('counts active sessions per workspace', () => {
    const s = new SessionsStore(fakeApi().api, () => now)
    s.list = [
      session('a', { workspace: '/p/w' }),
      session('b', { workspace: '/p/w', slot: 2 }),
      session('c', { workspace: '/p/w', slot: 3, status: 'stopped' }),
    ]
    expect(s.activeCount('/p/w')).toBe(2)
    expect(s.activeCount('/p/other')).toBe(0)
  })

  it('knows the last refusal from the session object and from live events, for one minute', () => {
    const s = new SessionsStore(fakeApi().api, () => now)
    const at = new Date(now - 30_000).toISOString()
    s.list = [
      session('c1', { network: { mode: 'allowlist', last_refused_at: at } }),
      session('c2', { network: { mode: 'allowlist', last_refused_at: null } }),
      session('c3'),
    ]
    // A reloaded page knows the time (not the host) from the session object.
    expect(s.recentRefusal('c1', now)).toEqual({ at: now - 30_000, target: null })
    expect(s.recentRefusal('c1', now + 29_999)).not.toBeNull()
    expect(s.recentRefusal('c1', now + 30_000)).toBeNull()
    expect(s.recentRefusal('c2', now)).toBeNull()
    expect(s.recentRefusal('c3', now)).toBeNull()

    // Allowed connections never flag; a refused one does, with its target, at its arrival.
    s.apply({ type: 'session.network', id: 'c2', host: 'ok.example', port: 443, allowed: true })
    expect(s.recentRefusal('c2', now)).toBeNull()
    s.apply({ type: 'session.network', id: 'c2', host: '::1', port: 3000, allowed: false })
    expect(s.recentRefusal('c2', now + 59_999)).toEqual({ at: now, target: '[::1]:3000' })
    expect(s.recentRefusal('c2', now + 60_000)).toBeNull()

    // The newer of the two wins; a deleted session forgets its refusals.
    s.apply({ type: 'session.network', id: 'c1', host: 'evil.example', port: 443, allowed: false })
    expect(s.lastRefused('c1')).toEqual({ at: now, target: 'evil.example:443' })
    s.apply({ type: 'session.deleted', id: 'c2' })
    expect(s.refusedLive).not.toHaveProperty('c2')
  })
})
