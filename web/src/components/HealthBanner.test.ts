import { cleanup, screen } from '@testing-library/svelte'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Health } from '../../../shared/schemas/health.ts'
import { AppState } from '../lib/state/app.svelte.ts'
import { POLL_HEALTHY_MS, POLL_PROBLEM_MS } from '../lib/state/health.svelte.ts'
import { countingServer } from '../lib/testing/counting-server.ts'
import { renderWithApp } from '../lib/testing/app.ts'
import HealthBanner from './HealthBanner.svelte'

const win = {
  location: { pathname: '/', search: '', hash: '', origin: 'http://127.0.0.1:3000' },
  history: { pushState: vi.fn(), replaceState: vi.fn() },
  addEventListener: vi.fn(),
  removeEventListener: vi.fn(),
}

const HINT =
  'Run `npm start` as root to install and start Incus, or install Incus >= 6 yourself and add your user to the incus-admin group.'

function unreachable(): Health {
  return {
    status: 'degraded',
    version: '0.0.0-test',
    uptime_seconds: 3,
    incus: { reachable: false, error: 'not connected to incus', hint: HINT },
    image: { name: 'clincus', state: 'unknown' },
  }
}

function setup(health: Health) {
  const srv = countingServer()
  srv.health = health
  const app = new AppState({ api: srv.api(), win })
  renderWithApp(app, HealthBanner, {})
  return { srv, app }
}

afterEach(() => {
  cleanup()
  vi.useRealTimers()
})

describe('HealthBanner', () => {
  it('says Incus is unreachable, with its error and the hint, and goes when it is back', async () => {
    const { srv, app } = setup(unreachable())
    await app.health.load()
    const banner = await screen.findByRole('alert')
    expect(banner.textContent).toContain('Incus is not reachable')
    expect(banner.textContent).toContain('not connected to incus')
    expect(banner.textContent).toContain(HINT)

    srv.health = { ...srv.health, status: 'ok', incus: { reachable: true, version: '6.0.4' } }
    srv.health.image = { name: 'clincus', state: 'ready' }
    await app.health.load()
    await vi.waitFor(() => {
      expect(screen.queryByTestId('health-banner')).toBeNull()
    })
  })

  it('says the image is missing, then follows its build from events, then clears', async () => {
    const h = unreachable()
    h.incus = { reachable: true }
    h.image = { name: 'clincus', state: 'missing' }
    const { srv, app } = setup(h)
    await app.health.load()
    expect((await screen.findByRole('alert')).textContent).toContain(
      'The session image clincus is missing',
    )
    srv.reset()
    app.onEvent({ type: 'image.building', alias: 'clincus', step: 'packages', progress: 0.4 })
    const status = await screen.findByRole('status')
    expect(status.textContent).toContain('is being built')
    expect(status.textContent).toContain('packages')
    expect(screen.getByRole('progressbar', { name: 'Image build progress' })).toBeTruthy()
    // Progress comes from the event itself.
    expect(srv.requests).toEqual([])
    // Another image's events are not this one's.
    app.onEvent({ type: 'image.built', alias: 'clincus-test' })
    expect(srv.requests).toEqual([])

    srv.health = { ...h, status: 'ok', image: { name: 'clincus', state: 'ready' } }
    app.onEvent({ type: 'image.built', alias: 'clincus' })
    await vi.waitFor(() => {
      expect(screen.queryByTestId('health-banner')).toBeNull()
    })
    expect(srv.requests).toEqual(['GET /api/health'])
  })

  it('shows a failed build with its message', async () => {
    const h = unreachable()
    h.incus = { reachable: true }
    h.image = { name: 'clincus', state: 'failed', error: 'E: Unable to locate package nope' }
    const { app } = setup(h)
    await app.health.load()
    const banner = await screen.findByRole('alert')
    expect(banner.textContent).toContain('Building the session image clincus failed')
    expect(banner.textContent).toContain('E: Unable to locate package nope')
    expect(banner.getAttribute('data-kind')).toBe('image-failed')
  })

  it('polls every 10 s while there is a problem, every 60 s while healthy', async () => {
    vi.useFakeTimers()
    const { srv, app } = setup(unreachable())
    await app.health.load()
    app.health.start()
    srv.reset()
    await vi.advanceTimersByTimeAsync(POLL_PROBLEM_MS)
    expect(srv.requests).toEqual(['GET /api/health'])
    srv.health = {
      ...srv.health,
      status: 'ok',
      incus: { reachable: true },
      image: { name: 'clincus', state: 'ready' },
    }
    await vi.advanceTimersByTimeAsync(POLL_PROBLEM_MS)
    expect(srv.count('GET /api/health')).toBe(2)
    expect(app.health.problem).toBeNull()
    await vi.advanceTimersByTimeAsync(POLL_HEALTHY_MS - 1)
    expect(srv.count('GET /api/health')).toBe(2)
    await vi.advanceTimersByTimeAsync(1)
    expect(srv.count('GET /api/health')).toBe(3)
    app.health.stop()
    await vi.advanceTimersByTimeAsync(POLL_HEALTHY_MS * 2)
    expect(srv.count('GET /api/health')).toBe(3)
  })
})
