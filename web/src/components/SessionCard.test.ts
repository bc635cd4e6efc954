import { cleanup, fireEvent, screen, within } from '@testing-library/svelte'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Session } from '../lib/schemas.ts'
import { renderWithApp, session, testApp } from '../lib/testing/app.ts'
import SessionCard from './SessionCard.svelte'

function renderCard(
  status: 'running' | 'stopped' = 'running',
  over: Partial<Session> = {},
): ReturnType<typeof testApp> {
  const t = testApp()
  let last = session('clincus-1234abcd-2', {
    status,
    workspace: '/home/u/code/shop',
    slot: 2,
    ...over,
  })
  t.app.sessions.list = [last]
  // The card reads its session from the props; a parent re-renders it from the store.
  renderWithApp(t.app, SessionCard, {
    // After a delete the list drops it; the sidebar would unmount the card.
    get session() {
      last = t.app.sessions.get('clincus-1234abcd-2') ?? last
      return last
    },
  })
  return t
}

afterEach(() => {
  cleanup()
})

describe('SessionCard', () => {
  it('shows workspace, tool, slot and status, and follows status events without reload', async () => {
    const { app } = renderCard()
    const card = screen.getByRole('article', { name: 'Session shop (slot 2)' })
    expect(within(card).getByRole('link', { name: 'shop' }).getAttribute('href')).toBe(
      '/sessions/clincus-1234abcd-2',
    )
    expect(card.textContent).toContain('claude')
    expect(card.textContent).toContain('slot 2')
    expect(within(card).getByTestId('session-status').textContent.trim()).toBe('running')
    app.sessions.apply({ type: 'session.stopped', id: 'clincus-1234abcd-2' })
    await vi.waitFor(() => {
      expect(within(card).getByTestId('session-status').textContent.trim()).toBe('stopped')
    })
    expect(within(card).getByRole('button', { name: 'Resume shop (slot 2)' })).toBeTruthy()
  })

  it('shows a paused session as "paused" and an error as "error" (words, not colour alone)', async () => {
    const { app, api } = renderCard()
    const sessions = vi.spyOn(api, 'sessions')
    const card = screen.getByRole('article', { name: 'Session shop (slot 2)' })
    const badge = (): HTMLElement => within(card).getByTestId('session-status')
    const id = 'clincus-1234abcd-2'
    const base = app.sessions.get(id)
    if (!base) throw new Error('no session')
    app.sessions.apply({ type: 'session.frozen', id, session: { ...base, status: 'frozen' } })
    await vi.waitFor(() => {
      expect(badge().textContent.trim()).toBe('paused')
    })
    // Distinct from running and from the transitional states.
    expect(badge().className).toContain('accent')
    expect(card.getAttribute('data-status')).toBe('frozen')
    app.sessions.apply({ type: 'session.thawed', id, session: { ...base, status: 'running' } })
    await vi.waitFor(() => {
      expect(badge().textContent.trim()).toBe('running')
    })
    app.sessions.apply({ type: 'session.stopped', id, session: { ...base, status: 'error' } })
    await vi.waitFor(() => {
      expect(badge().textContent.trim()).toBe('error')
    })
    expect(badge().className).toContain('danger')
    expect(sessions).not.toHaveBeenCalled()
  })

  it('stops through the API once', async () => {
    const { api } = renderCard()
    const del = vi.spyOn(api, 'deleteSession').mockResolvedValue(undefined)
    await fireEvent.click(screen.getByRole('button', { name: 'Stop shop (slot 2)' }))
    expect(del).toHaveBeenCalledExactlyOnceWith('clincus-1234abcd-2', false)
  })

  it('asks before force-deleting, and cancelling deletes nothing', async () => {
    const { api, app } = renderCard()
    const del = vi.spyOn(api, 'deleteSession').mockResolvedValue(undefined)
    await fireEvent.click(screen.getByRole('button', { name: 'Delete shop (slot 2)' }))
    const dialog = screen.getByRole('dialog', { name: 'Delete session shop?' })
    await fireEvent.click(within(dialog).getByRole('button', { name: 'Cancel' }))
    expect(screen.queryByRole('dialog')).toBeNull()
    expect(del).not.toHaveBeenCalled()

    await fireEvent.click(screen.getByRole('button', { name: 'Delete shop (slot 2)' }))
    await fireEvent.click(screen.getByRole('button', { name: 'Delete container' }))
    expect(del).toHaveBeenCalledExactlyOnceWith('clincus-1234abcd-2', true)
    await vi.waitFor(() => {
      expect(app.sessions.get('clincus-1234abcd-2')).toBeUndefined()
    })
  })

  it('shows a failed stop as a readable toast', async () => {
    const { app, api } = renderCard()
    const { ApiError } = await import('../lib/api.ts')
    vi.spyOn(api, 'deleteSession').mockRejectedValue(
      new ApiError(502, 'incus_failed', 'Error: The instance is already stopped'),
    )
    await fireEvent.click(screen.getByRole('button', { name: 'Stop shop (slot 2)' }))
    await vi.waitFor(() => {
      expect(app.toasts.items.map((t) => t.message)).toEqual([
        'Could not stop shop: Error: The instance is already stopped',
      ])
    })
  })

  it('flags a refusal of the last minute from the session object, then drops it on the clock', async () => {
    const now = Date.parse('2026-11-29T20:00:00.000Z')
    const { app } = renderCard('running', {
      network: { mode: 'allowlist', last_refused_at: '2026-11-29T19:59:30.000Z' },
    })
    app.clock.now = now
    const badge = await screen.findByTestId('refused-badge')
    // Text, not colour alone, and a tooltip that says what happened and where to look.
    expect(badge.textContent).toContain('refused')
    expect(badge.getAttribute('title')).toBe(
      "A network connection was refused in the last minute. The session's Network tab lists it and can allow it.",
    )
    app.clock.now = now + 29_000
    await Promise.resolve()
    expect(screen.queryByTestId('refused-badge')).not.toBeNull()
    app.clock.now = now + 30_000
    await vi.waitFor(() => {
      expect(screen.queryByTestId('refused-badge')).toBeNull()
    })
  })

  it('flags a live refused event (with its target) and drops it a minute later', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-11-29T20:00:00.000Z'), toFake: ['Date'] })
    try {
      const { app } = renderCard()
      app.clock.now = Date.now()
      app.onEvent({
        type: 'session.network',
        id: 'clincus-1234abcd-2',
        host: 'ok.example',
        port: 443,
        allowed: true,
      })
      await Promise.resolve()
      expect(screen.queryByTestId('refused-badge')).toBeNull()
      app.onEvent({
        type: 'session.network',
        id: 'clincus-1234abcd-2',
        host: 'evil.example',
        port: 8443,
        allowed: false,
      })
      const badge = await screen.findByTestId('refused-badge')
      expect(badge.getAttribute('title')).toContain('to evil.example:8443 was refused')
      app.clock.now = Date.now() + 59_000
      await Promise.resolve()
      expect(screen.queryByTestId('refused-badge')).not.toBeNull()
      app.clock.now = Date.now() + 60_000
      await vi.waitFor(() => {
        expect(screen.queryByTestId('refused-badge')).toBeNull()
      })
    } finally {
      vi.useRealTimers()
    }
  })

  it("shows the agent's status as a badge with words, each status its own (issue 17)", async () => {
    const { app } = renderCard()
    const card = screen.getByRole('article', { name: 'Session shop (slot 2)' })
    expect(within(card).queryByTestId('agent-status')).toBeNull()
    const id = 'clincus-1234abcd-2'
    const seen = new Map<string, { text: string; className: string; glyph: string }>()
    for (const status of ['working', 'waiting', 'idle', 'exited'] as const) {
      app.onEvent({ type: 'session.agent', id, agent: { status, since: '2026-11-30T06:00:00Z' } })
      await vi.waitFor(() => {
        expect(within(card).getByTestId('agent-status').getAttribute('data-agent')).toBe(status)
      })
      const badge = within(card).getByTestId('agent-status')
      seen.set(status, {
        // The text a screen reader reads (the hidden "Agent" included).
        text: badge.textContent.replace(/\s+/g, ' ').trim(),
        className: badge.className,
        glyph: badge.querySelector('svg')?.innerHTML ?? '',
      })
      expect(card.getAttribute('data-agent')).toBe(status)
    }
    expect([...seen.values()].map((b) => b.text)).toEqual([
      'Agent working',
      'Agent waiting for you',
      'Agent idle',
      'Agent exited',
    ])
    // Not colour alone: each has its own glyph too.
    expect(new Set([...seen.values()].map((b) => b.glyph)).size).toBe(4)
    expect(seen.get('waiting')?.className).toContain('warn')
    // The container status keeps its own badge.
    expect(within(card).getByTestId('session-status').textContent.trim()).toBe('running')
  })

  it("shows a waiting agent's question as text, however hostile, and how long it has waited", async () => {
    const now = Date.parse('2026-11-30T06:10:00.000Z')
    const reason =
      '<img src=x onerror="window.__pwned=1">\u001b[31m Allow\n\n rm -rf /?\u202e{@html x}'
    const { app } = renderCard('running', {
      agent: { status: 'waiting', reason, since: '2026-11-30T06:07:00.000Z' },
    })
    app.clock.now = now
    const card = screen.getByRole('article', { name: 'Session shop (slot 2)' })
    const shown = await within(card).findByTestId('agent-reason')
    expect(shown.querySelector('img')).toBeNull()
    expect(card.querySelector('img')).toBeNull()
    expect(shown.textContent.replace(/\s+/g, ' ').trim()).toBe(
      'The agent asks: <img src=x onerror="window.__pwned=1"> Allow rm -rf /?{@html x}',
    )
    await vi.waitFor(() => {
      expect(card.textContent).toContain('waiting for you 3m')
    })
    // Working: no question shown.
    app.onEvent({
      type: 'session.agent',
      id: 'clincus-1234abcd-2',
      agent: { status: 'working', since: '2026-11-30T06:09:00.000Z' },
    })
    await vi.waitFor(() => {
      expect(within(card).queryByTestId('agent-reason')).toBeNull()
    })
    expect(card.textContent).toContain('working 1m')
  })

  it('shows no agent status for a session that is not running (it would be stale)', () => {
    renderCard('stopped', {
      agent: { status: 'waiting', reason: 'old', since: '2026-11-30T06:00:00Z' },
    })
    const card = screen.getByRole('article')
    expect(within(card).queryByTestId('agent-status')).toBeNull()
    expect(within(card).queryByTestId('agent-reason')).toBeNull()
  })

  it('shows the agent version the session runs, when known', () => {
    renderCard('running', { tool_version: '2.1.197' })
    const card = screen.getByRole('article', { name: 'Session shop (slot 2)' })
    expect(card.textContent).toContain('claude 2.1.197')
    cleanup()
    renderCard('running', { tool_version: null })
    expect(screen.getByRole('article').textContent).not.toContain('claude null')
  })
})
