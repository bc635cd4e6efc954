import { cleanup, fireEvent, screen, within } from '@testing-library/svelte'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../lib/api.ts'
import type { NetworkConnection, SessionNetwork } from '../lib/schemas.ts'
import { renderWithApp, testApp } from '../lib/testing/app.ts'
import NetworkPanel from './NetworkPanel.svelte'

const ID = 'clincus-1234abcd-1'

afterEach(() => {
  cleanup()
  vi.useRealTimers()
})

function conn(over: Partial<NetworkConnection> & { host: string }): NetworkConnection {
  return {
    time: '2026-11-29T20:00:00.000Z',
    port: 443,
    allowed: true,
    reason: 'built-in for claude',
    bytes_up: 2048,
    bytes_down: 1_572_864,
    duration_ms: 120,
    ...over,
  }
}

function log(over: Partial<SessionNetwork> = {}): SessionNetwork {
  const connections = [
    conn({ host: 'api.anthropic.com', time: '2026-11-29T20:03:00Z' }),
    conn({
      host: 'evil.example',
      time: '2026-11-29T20:02:00Z',
      allowed: false,
      reason: 'evil.example matches no allow entry',
      bytes_up: 0,
      bytes_down: 0,
    }),
    conn({
      host: 'db.example',
      port: 5432,
      time: '2026-11-29T20:01:00Z',
      allowed: false,
      reason: 'port 5432 is not allowed for db.example',
      bytes_up: 0,
      bytes_down: 0,
    }),
    conn({ host: 'registry.npmjs.org', time: '2026-11-29T20:00:00Z' }),
  ]
  return {
    mode: 'allowlist',
    allow: ['api.anthropic.com', 'registry.npmjs.org', '*.claude.ai'],
    total: connections.length,
    connections,
    ...over,
  }
}

function setup(data: SessionNetwork = log()) {
  const t = testApp()
  const fetchLog = vi.spyOn(t.api, 'sessionNetwork').mockResolvedValue(data)
  const allow = vi.spyOn(t.api, 'allowNetwork').mockResolvedValue(['evil.example'])
  renderWithApp(t.app, NetworkPanel, { sessionId: ID, debounceMs: 500 })
  return { ...t, fetchLog, allow }
}

function rows(): HTMLElement[] {
  return screen.getAllByTestId('destination')
}

describe('NetworkPanel', () => {
  it('shows the mode, the allow list collapsed, and destinations refused first with their reason', async () => {
    const { fetchLog } = setup()
    await screen.findByText('mode: allowlist')
    expect(fetchLog).toHaveBeenCalledExactlyOnceWith(ID, 1000, 0)

    const details = screen.getByText('Allowed destinations (3)').closest('details')
    expect(details?.open).toBe(false)
    expect(within(details as HTMLElement).getByText('*.claude.ai')).toBeTruthy()

    const r = rows()
    expect(r.map((x) => x.dataset.status)).toEqual(['refused', 'refused', 'allowed', 'allowed'])
    expect(r[0]?.textContent).toContain('evil.example')
    expect(r[0]?.textContent).toContain('evil.example matches no allow entry')
    expect(within(r[0] as HTMLElement).getByText('refused')).toBeTruthy()
    expect(r[1]?.textContent).toContain('port 5432 is not allowed for db.example')
    expect(r[2]?.textContent).toContain('api.anthropic.com')
    expect(r[2]?.textContent).toContain('↑ 2.0 KiB')
    expect(r[2]?.textContent).toContain('↓ 1.5 MiB')
    // Allowed destinations have no Allow button; refused ones offer the entry they need.
    expect(within(r[2] as HTMLElement).queryByRole('button')).toBeNull()
    expect(
      within(r[0] as HTMLElement).getByRole('button', { name: 'Allow evil.example' }),
    ).toBeTruthy()
    expect(
      within(r[1] as HTMLElement).getByRole('button', { name: 'Allow db.example:5432' }),
    ).toBeTruthy()
  })

  it('Allow posts the host, toasts success and marks the host allowed pending a retry', async () => {
    const { allow, app } = setup()
    await fireEvent.click(await screen.findByRole('button', { name: 'Allow evil.example' }))
    expect(allow).toHaveBeenCalledExactlyOnceWith('evil.example')
    await vi.waitFor(() => {
      expect(rows()[0]?.dataset.status).toBe('pending')
    })
    expect(within(rows()[0] as HTMLElement).getByText('allowed, retry pending')).toBeTruthy()
    expect(screen.queryByRole('button', { name: 'Allow evil.example' })).toBeNull()
    expect(app.toasts.items).toMatchObject([
      {
        kind: 'success',
        message:
          'Added evil.example to [network] allow in your config file. Retry the connection in the session.',
      },
    ])
  })

  it('a non-default port is allowed as host:port', async () => {
    const { allow } = setup()
    await fireEvent.click(await screen.findByRole('button', { name: 'Allow db.example:5432' }))
    expect(allow).toHaveBeenCalledExactlyOnceWith('db.example:5432')
  })

  it('a refused entry (400) shows the server message and leaves the host refused', async () => {
    const { allow, app } = setup()
    allow.mockRejectedValue(
      new ApiError(400, 'invalid_network_entry', 'invalid allow entry "evil.example": reserved'),
    )
    const button = await screen.findByRole('button', { name: 'Allow evil.example' })
    await fireEvent.click(button)
    await vi.waitFor(() => {
      expect(app.toasts.items).toMatchObject([
        {
          kind: 'error',
          message: 'Could not allow evil.example: invalid allow entry "evil.example": reserved',
        },
      ])
    })
    expect(rows()[0]?.dataset.status).toBe('refused')
    expect(
      screen.getByRole('button', { name: 'Allow evil.example' }).hasAttribute('disabled'),
    ).toBe(false)
  })

  it('refetches once per burst of events for this session, ignores others, and never polls', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] })
    const { app, fetchLog } = setup()
    await vi.waitFor(() => {
      expect(fetchLog).toHaveBeenCalledTimes(1)
    })
    // Nothing happens by itself: no timer refetches.
    await vi.advanceTimersByTimeAsync(120_000)
    expect(fetchLog).toHaveBeenCalledTimes(1)

    const refused = {
      type: 'session.network',
      host: 'x.example',
      port: 443,
      allowed: false,
    } as const
    app.onEvent({ ...refused, id: 'clincus-other-1' })
    await vi.advanceTimersByTimeAsync(1000)
    expect(fetchLog).toHaveBeenCalledTimes(1)

    fetchLog.mockResolvedValue(
      log({
        total: 5,
        connections: [
          conn({ host: 'x.example', time: '2026-11-29T20:09:00Z', allowed: false, reason: 'no' }),
          ...log().connections,
        ],
      }),
    )
    app.onEvent({ ...refused, id: ID })
    await vi.advanceTimersByTimeAsync(300)
    app.onEvent({ ...refused, id: ID })
    await vi.advanceTimersByTimeAsync(300)
    app.onEvent({ ...refused, id: ID })
    await vi.advanceTimersByTimeAsync(499)
    expect(fetchLog).toHaveBeenCalledTimes(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(fetchLog).toHaveBeenCalledTimes(2)
    await vi.waitFor(() => {
      expect(rows()[0]?.textContent).toContain('x.example')
    })
  })

  it('refetches after a config reload, so an allowed entry shows in the effective list', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const { app, fetchLog } = setup()
    await vi.waitFor(() => {
      expect(fetchLog).toHaveBeenCalledTimes(1)
    })
    vi.spyOn(app.api, 'config').mockRejectedValue(new ApiError(500, 'x', 'x'))
    vi.spyOn(app.api, 'workspaces').mockResolvedValue({
      roots: [],
      expanded_roots: [],
      workspaces: [],
    })
    fetchLog.mockResolvedValue(log({ allow: [...log().allow, 'evil.example'] }))
    app.onEvent({ type: 'config.reloaded', timestamp: '2026-11-29T20:10:00Z' })
    await vi.advanceTimersByTimeAsync(500)
    expect(fetchLog).toHaveBeenCalledTimes(2)
    await vi.waitFor(() => {
      expect(rows()[0]?.dataset.status).toBe('pending')
    })
    expect(screen.getByText('Allowed destinations (4)')).toBeTruthy()
  })

  it('reloads when the events stream reconnects, and stops listening when closed', async () => {
    const { app, fetchLog } = setup()
    await vi.waitFor(() => {
      expect(fetchLog).toHaveBeenCalledTimes(1)
    })
    vi.spyOn(app.api, 'sessions').mockResolvedValue([])
    vi.spyOn(app.api, 'workspaces').mockResolvedValue({
      roots: [],
      expanded_roots: [],
      workspaces: [],
    })
    vi.spyOn(app.api, 'config').mockRejectedValue(new ApiError(500, 'x', 'x'))
    vi.spyOn(app.api, 'tools').mockResolvedValue([])
    await app.refreshAll()
    expect(fetchLog).toHaveBeenCalledTimes(2)
    cleanup()
    await app.refreshAll()
    expect(fetchLog).toHaveBeenCalledTimes(2)
  })

  it('says when the log cannot be read, in the server words', async () => {
    const t = testApp()
    vi.spyOn(t.api, 'sessionNetwork').mockRejectedValue(
      new ApiError(404, 'session_not_found', 'no session clincus-1234abcd-1'),
    )
    renderWithApp(t.app, NetworkPanel, { sessionId: ID })
    const alert = await screen.findByRole('alert')
    expect(alert.textContent.trim()).toBe(
      'Could not load the network log: no session clincus-1234abcd-1',
    )
  })

  it('shows an agent-chosen host as text and offers no Allow for one that is not a host name', async () => {
    const crafted = '<img src=x onerror="alert(1)">*.com'
    setup(
      log({
        total: 2,
        connections: [
          conn({ host: crafted, allowed: false, reason: '<b>not</b> a host name' }),
          conn({ host: '*.com', time: '2026-11-29T20:00:01Z', allowed: false, reason: 'bad' }),
        ],
      }),
    )
    await screen.findByText('mode: allowlist')
    const r = rows()
    expect(r).toHaveLength(2)
    expect(document.querySelector('img')).toBeNull()
    expect(document.querySelector('b')).toBeNull()
    expect(screen.getByText(crafted.toLowerCase())).toBeTruthy()
    expect(screen.getByText('<b>not</b> a host name')).toBeTruthy()
    expect(screen.queryAllByRole('button', { name: /^Allow/ })).toEqual([])
    expect(screen.getAllByText('Not a host name an entry can allow')).toHaveLength(2)
  })

  it('explains mode none and an empty log', async () => {
    setup(log({ mode: 'none', allow: [], total: 0, connections: [] }))
    await screen.findByText('mode: none')
    expect(
      screen.getByText('This session has no network: nothing inside it can connect out.'),
    ).toBeTruthy()
    expect(screen.getByText('No connections yet.')).toBeTruthy()
  })
})
