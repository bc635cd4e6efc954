import { cleanup, fireEvent, screen } from '@testing-library/svelte'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { AppState } from '../lib/state/app.svelte.ts'
import { countingServer } from '../lib/testing/counting-server.ts'
import { renderWithApp } from '../lib/testing/app.ts'
import ProjectsView from './ProjectsView.svelte'
import SettingsView from './SettingsView.svelte'

const win = {
  location: { pathname: '/settings', search: '', hash: '', origin: 'http://127.0.0.1:3000' },
  history: { pushState: vi.fn(), replaceState: vi.fn() },
  addEventListener: vi.fn(),
  removeEventListener: vi.fn(),
}

afterEach(() => {
  cleanup()
})

describe('SettingsView', () => {
  // Issue 15 acceptance: "adding a root in Settings costs one request". Before: POST
  // /api/workspaces, GET /api/config, GET /api/workspaces, then for each config.reloaded the save
  // caused (two per save then) another GET of both.
  it('adding a root costs one request; the config.reloaded it causes costs none', async () => {
    const srv = countingServer(['~/code'])
    const app = new AppState({ api: srv.api(), win })
    await Promise.all([app.config.load(), app.workspaces.load()])
    renderWithApp(app, SettingsView, {})
    // The images section loads its list when shown; only the save is counted.
    await vi.waitFor(() => {
      expect(srv.count('GET /api/images')).toBe(1)
    })
    srv.reset()

    await fireEvent.input(screen.getByLabelText('New workspace root'), {
      target: { value: '/srv/projects' },
    })
    await fireEvent.click(screen.getByRole('button', { name: 'Add root' }))
    app.onEvent({ type: 'config.reloaded', timestamp: '2026-11-30T03:00:00Z' })
    await screen.findByRole('button', { name: 'Remove workspace root /srv/projects' })
    await vi.waitFor(() => {
      expect(app.toasts.items.map((t) => t.message)).toContain('Added workspace root /srv/projects')
    })
    expect(srv.requests).toEqual(['POST /api/workspaces'])

    // The project list is fetched once, when it is shown.
    cleanup()
    renderWithApp(app, ProjectsView, {})
    await vi.waitFor(() => {
      expect(app.workspaces.data?.roots).toEqual(['~/code', '/srv/projects'])
    })
    expect(srv.requests).toEqual(['POST /api/workspaces', 'GET /api/workspaces'])
  })

  it('saving the port costs one request (the answer is the merged config)', async () => {
    const srv = countingServer()
    const app = new AppState({ api: srv.api(), win })
    await app.config.load()
    renderWithApp(app, SettingsView, {})
    await vi.waitFor(() => {
      expect(srv.count('GET /api/images')).toBe(1)
    })
    srv.reset()
    await fireEvent.input(screen.getByLabelText('Port'), { target: { value: '4123' } })
    await fireEvent.click(screen.getByRole('button', { name: /^Save/ }))
    app.onEvent({ type: 'config.reloaded', timestamp: '2026-11-30T03:00:00Z' })
    await vi.waitFor(() => {
      expect(app.config.port).toBe(4123)
    })
    expect(srv.requests).toEqual(['PUT /api/config'])
  })
})
