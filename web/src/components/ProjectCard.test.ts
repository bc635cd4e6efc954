import { cleanup, fireEvent, screen, within } from '@testing-library/svelte'
import { tick } from 'svelte'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Value } from 'typebox/value'
import { ConfigSchema } from '../../../shared/schemas/config.ts'
import { ApiError } from '../lib/api.ts'
import type { Session } from '../lib/schemas.ts'
import { renderWithApp, session, testApp } from '../lib/testing/app.ts'
import ProjectCard from './ProjectCard.svelte'

afterEach(() => {
  cleanup()
})

const project = {
  path: '/home/u/code/shop',
  name: 'shop',
  root: '/home/u/code',
  has_config: true,
  active_sessions: 0,
}

function setup(): ReturnType<typeof testApp> {
  const t = testApp()
  t.app.tools = ['claude', 'copilot', 'opencode']
  const config = Value.Create(ConfigSchema)
  config.profiles = { heavy: { persistent: true } }
  t.app.config.config = config
  renderWithApp(t.app, ProjectCard, { project })
  return t
}

describe('ProjectCard', () => {
  it('shows the name, path, .clincus.toml badge and the live active count', async () => {
    const { app } = setup()
    const card = screen.getByRole('article', { name: 'shop' })
    expect(card.textContent).toContain('/home/u/code/shop')
    expect(card.textContent).toContain('.clincus.toml')
    expect(within(card).queryByTestId('active-count')).toBeNull()
    app.sessions.list = [
      session('c1', { workspace: '/home/u/code/shop' }),
      session('c2', { workspace: '/home/u/code/shop', slot: 2 }),
    ]
    await vi.waitFor(() => {
      expect(within(card).getByTestId('active-count').textContent).toBe('2 active')
    })
  })

  it('launches with one click using the configured defaults (no options sent)', async () => {
    const { api, app } = setup()
    const create = vi
      .spyOn(api, 'createSession')
      .mockResolvedValue(session('clincus-1-1', { workspace: project.path }))
    await fireEvent.click(screen.getByRole('button', { name: 'Launch a session in shop' }))
    expect(create).toHaveBeenCalledExactlyOnceWith({ workspace: project.path })
    await vi.waitFor(() => {
      expect(app.router.route).toEqual({ name: 'session', id: 'clincus-1-1' })
    })
  })

  it('launches with the agent, profile and persistence picked in the dialog', async () => {
    const { api } = setup()
    const create = vi
      .spyOn(api, 'createSession')
      .mockResolvedValue(session('clincus-1-1', { workspace: project.path }))
    await fireEvent.click(screen.getByRole('button', { name: 'Launch options for shop' }))
    const dialog = screen.getByRole('dialog', { name: 'Launch in shop' })
    await fireEvent.change(within(dialog).getByRole('combobox', { name: 'Agent' }), {
      target: { value: 'copilot' },
    })
    await fireEvent.change(within(dialog).getByRole('combobox', { name: /Profile/ }), {
      target: { value: 'heavy' },
    })
    await fireEvent.click(within(dialog).getByRole('checkbox', { name: 'Persistent container' }))
    await fireEvent.click(within(dialog).getByRole('button', { name: 'Launch' }))
    expect(create).toHaveBeenCalledExactlyOnceWith({
      workspace: project.path,
      tool: 'copilot',
      persistent: true,
      profile: 'heavy',
    })
    expect(screen.queryByRole('dialog')).toBeNull()
  })

  it('shows a failed launch as the server sentence, once', async () => {
    const { api } = setup()
    const create = vi
      .spyOn(api, 'createSession')
      .mockRejectedValue(
        new ApiError(
          503,
          'image_building',
          "the image 'clincus' is being built (debootstrap, 40%)",
        ),
      )
    await fireEvent.click(screen.getByRole('button', { name: 'Launch a session in shop' }))
    const alert = await screen.findByRole('alert')
    expect(alert.textContent.trim()).toBe(
      "Could not launch: the image 'clincus' is being built (debootstrap, 40%)",
    )
    expect(create).toHaveBeenCalledTimes(1)
  })

  it('shows how the launch went once it answered: warm or cold (with the reason), the time, and each step', async () => {
    const { api, app } = setup()
    let answer: (s: Session) => void = () => undefined
    vi.spyOn(api, 'createSession').mockReturnValue(
      new Promise((resolve) => {
        answer = resolve
      }),
    )
    await fireEvent.click(screen.getByRole('button', { name: 'Launch a session in shop' }))
    const card = screen.getByRole('article', { name: 'shop' })
    expect(within(card).queryByTestId('launch-outcome')).toBeNull()
    // The server's answer carries the launch fields beside the session (CreatedSession).
    answer({
      ...session('clincus-1-1', { workspace: project.path }),
      path: 'warm',
      timings: { 'attach-all': 40, claim: 20, workspace: 120, tool: 300 },
    } as Session)
    const outcome = await within(card).findByTestId('launch-outcome')
    expect(outcome.querySelector('summary')?.textContent.replace(/\s+/g, ' ').trim()).toMatch(
      /^Launched warm in \d+ ms$/,
    )
    const steps = within(outcome)
      .getAllByRole('listitem')
      .map((li) => li.textContent.replace(/\s+/g, ' ').trim())
    // Known steps in creation order with their labels; a step this page does not know by its id.
    expect(steps).toEqual([
      'Claiming a warm container20 ms',
      'Mounting the workspace120 ms',
      'Starting the tool in tmux300 ms',
      'attach-all40 ms',
      'Server total480 ms',
    ])

    // The next launch replaces it: cold, with the server's reason.
    vi.spyOn(api, 'createSession').mockResolvedValue({
      ...session('clincus-1-2', { workspace: project.path, slot: 2 }),
      path: 'cold',
      cold_reason: 'the pool is empty',
      timings: { init: 900, start: 400 },
    } as Session)
    app.router.navigate('/')
    await fireEvent.click(screen.getByRole('button', { name: 'Launch a session in shop' }))
    await vi.waitFor(() => {
      expect(
        within(card).getByTestId('launch-outcome').querySelector('summary')?.textContent,
      ).toContain('cold')
    })
    const summary = within(card).getByTestId('launch-outcome').querySelector('summary')
    expect(summary?.textContent).toContain('(the pool is empty)')
    expect(within(card).getByText('Creating the container')).toBeTruthy()
  })

  it('keeps the outcome for the card shown again after the session was opened', async () => {
    const { api, app } = setup()
    vi.spyOn(api, 'createSession').mockResolvedValue({
      ...session('clincus-1-1', { workspace: project.path }),
      path: 'cold',
      timings: { init: 1200 },
    } as Session)
    await fireEvent.click(screen.getByRole('button', { name: 'Launch a session in shop' }))
    await screen.findByTestId('launch-outcome')
    cleanup()
    renderWithApp(app, ProjectCard, { project })
    const summary = screen.getByTestId('launch-outcome').querySelector('summary')
    expect(summary?.textContent.replace(/\s+/g, ' ').trim()).toMatch(/^Launched cold in /)
  })

  it('shows no outcome when the server says nothing about the launch (an older server)', async () => {
    const { api, app } = setup()
    vi.spyOn(api, 'createSession').mockResolvedValue(
      session('clincus-1-1', { workspace: project.path }),
    )
    await fireEvent.click(screen.getByRole('button', { name: 'Launch a session in shop' }))
    await vi.waitFor(() => {
      expect(app.router.route).toEqual({ name: 'session', id: 'clincus-1-1' })
    })
    await tick()
    expect(screen.queryByTestId('launch-outcome')).toBeNull()
  })
})
