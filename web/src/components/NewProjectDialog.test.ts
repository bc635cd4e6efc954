import { cleanup, fireEvent, screen } from '@testing-library/svelte'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../lib/api.ts'
import { renderWithApp, testApp } from '../lib/testing/app.ts'
import NewProjectDialog from './NewProjectDialog.svelte'

const group = { raw: '~/code', root: '/home/u/code', projects: [] }

function setup(): ReturnType<typeof testApp> & { onclose: ReturnType<typeof vi.fn> } {
  const t = testApp()
  vi.spyOn(t.api, 'workspaces').mockResolvedValue({
    roots: ['~/code'],
    expanded_roots: ['/home/u/code'],
    workspaces: [],
  })
  const onclose = vi.fn()
  renderWithApp(t.app, NewProjectDialog, { group, onclose })
  return { ...t, onclose }
}

afterEach(() => {
  cleanup()
})

describe('NewProjectDialog', () => {
  it('checks the folder name rule before asking the server', async () => {
    const { api } = setup()
    const create = vi.spyOn(api, 'createFolder')
    expect(screen.getByRole('dialog', { name: 'New project in code' })).toBeTruthy()
    const input = screen.getByRole('textbox', { name: 'Folder name' })
    await fireEvent.input(input, { target: { value: 'My Project' } })
    await fireEvent.click(screen.getByRole('button', { name: 'Create' }))
    expect(input.getAttribute('aria-invalid')).toBe('true')
    expect(screen.getByText(/Use lowercase letters, digits and single hyphens/)).toBeTruthy()
    expect(create).not.toHaveBeenCalled()
  })

  it('shows a server error plainly and keeps the dialog open', async () => {
    const { api, onclose } = setup()
    vi.spyOn(api, 'createFolder').mockRejectedValue(
      new ApiError(409, 'folder_exists', 'directory already exists: /home/u/code/shop'),
    )
    await fireEvent.input(screen.getByRole('textbox', { name: 'Folder name' }), {
      target: { value: 'shop' },
    })
    await fireEvent.click(screen.getByRole('button', { name: 'Create' }))
    const alert = await screen.findByRole('alert')
    expect(alert.textContent.trim()).toBe('directory already exists: /home/u/code/shop')
    expect(onclose).not.toHaveBeenCalled()
  })

  it('creates the folder and closes', async () => {
    const { api, onclose, app } = setup()
    const create = vi.spyOn(api, 'createFolder').mockResolvedValue({ path: '/home/u/code/shop' })
    await fireEvent.input(screen.getByRole('textbox', { name: 'Folder name' }), {
      target: { value: 'shop' },
    })
    await fireEvent.click(screen.getByRole('button', { name: 'Create' }))
    await vi.waitFor(() => {
      expect(onclose).toHaveBeenCalled()
    })
    expect(create).toHaveBeenCalledExactlyOnceWith('/home/u/code', 'shop')
    expect(app.workspaces.created.map((w) => w.path)).toEqual(['/home/u/code/shop'])
  })

  it('creates and launches into the new folder with the chosen agent', async () => {
    const { api, app } = setup()
    vi.spyOn(api, 'createFolder').mockResolvedValue({ path: '/home/u/code/shop' })
    const launch = vi.spyOn(api, 'createSession').mockResolvedValue({
      id: 'clincus-aaaa1111-1',
      workspace: '/home/u/code/shop',
      tool: 'opencode',
      slot: 1,
      status: 'running',
      persistent: false,
    })
    await fireEvent.input(screen.getByRole('textbox', { name: 'Folder name' }), {
      target: { value: 'shop' },
    })
    await fireEvent.change(screen.getByRole('combobox', { name: /Agent/ }), {
      target: { value: 'opencode' },
    })
    await fireEvent.click(screen.getByRole('button', { name: 'Create & launch' }))
    await vi.waitFor(() => {
      expect(launch).toHaveBeenCalledExactlyOnceWith({
        workspace: '/home/u/code/shop',
        tool: 'opencode',
      })
    })
    await vi.waitFor(() => {
      expect(app.router.route).toEqual({ name: 'session', id: 'clincus-aaaa1111-1' })
    })
  })
})
