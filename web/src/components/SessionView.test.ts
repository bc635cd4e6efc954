import { cleanup, fireEvent, screen } from '@testing-library/svelte'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { renderWithApp, session, testApp } from '../lib/testing/app.ts'
import SessionView from './SessionView.svelte'

vi.mock('./TerminalPane.svelte', async () => import('../lib/testing/StubTerminalPane.svelte'))

afterEach(() => {
  cleanup()
})

const ID = 'clincus-1234abcd-1'

function setup() {
  const t = testApp()
  t.app.sessions.list = [session(ID, { workspace: '/home/u/code/shop', tool_version: '2.1.197' })]
  t.app.sessions.loaded = true
  const fetchLog = vi.spyOn(t.api, 'sessionNetwork').mockResolvedValue({
    mode: 'allowlist',
    allow: ['api.anthropic.com'],
    total: 0,
    connections: [],
  })
  renderWithApp(t.app, SessionView, { id: ID })
  return { ...t, fetchLog }
}

describe('SessionView', () => {
  it('has a Network tab beside the terminals, loaded only when first shown', async () => {
    const { fetchLog } = setup()
    expect(screen.getByRole('heading', { name: 'shop' })).toBeTruthy()
    expect(screen.getByText('claude 2.1.197')).toBeTruthy()
    const tabs = screen.getAllByRole('tab').map((t) => t.textContent.trim())
    expect(tabs).toEqual(['Agent', 'Shell', 'Network'])
    await screen.findByText('Agent terminal')
    // The agent terminal has the room by default; the log is not fetched until asked for.
    expect(fetchLog).not.toHaveBeenCalled()
    const agentPanel = document.getElementById('panel-agent')
    expect(agentPanel?.hidden).toBe(false)

    await fireEvent.click(screen.getByRole('tab', { name: 'Network' }))
    await screen.findByText('mode: allowlist')
    expect(fetchLog).toHaveBeenCalledTimes(1)
    expect(agentPanel?.hidden).toBe(true)
    expect(document.getElementById('panel-network')?.hidden).toBe(false)

    // Back to the agent: its terminal was kept, the panel stays mounted (no refetch on return).
    await fireEvent.click(screen.getByRole('tab', { name: 'Agent' }))
    expect(agentPanel?.hidden).toBe(false)
    await fireEvent.click(screen.getByRole('tab', { name: 'Network' }))
    expect(fetchLog).toHaveBeenCalledTimes(1)
  })

  it('marks the Network tab in text while a refusal is recent', async () => {
    const { app } = setup()
    app.clock.now = Date.now()
    expect(screen.getByRole('tab', { name: 'Network' })).toBeTruthy()
    app.onEvent({
      type: 'session.network',
      id: ID,
      host: 'evil.example',
      port: 443,
      allowed: false,
    })
    await screen.findByRole('tab', { name: 'Network refused' })
    app.clock.now = Date.now() + 61_000
    await screen.findByRole('tab', { name: 'Network' })
  })
})
