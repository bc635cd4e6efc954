import { describe, expect, it, vi } from 'vitest'
import { ApiClient } from '../api.ts'
import { WorkspacesStore, basename, folderNameProblem } from './workspaces.svelte.ts'

describe('folderNameProblem (the contract rule ^[a-z0-9]+(-[a-z0-9]+)*$)', () => {
  it.each(['my-project', 'a', 'x1', 'a-b-c', '2048'])('accepts %s', (name) => {
    expect(folderNameProblem(name)).toBeNull()
  })
  it.each([
    '',
    'My-Project',
    'my project',
    '-lead',
    'trail-',
    'dou--ble',
    'a/b',
    '../x',
    'ünï',
    'a_b',
  ])('refuses %j', (name) => {
    expect(folderNameProblem(name)).not.toBeNull()
  })
})

describe('WorkspacesStore', () => {
  it('groups projects under their roots, sorted by name, keeping new unlisted folders', async () => {
    const api = new ApiClient(() => Promise.reject(new Error('offline')))
    const list = {
      roots: ['~/code', '/srv/other'],
      expanded_roots: ['/home/u/code', '/srv/other'],
      workspaces: [
        {
          path: '/home/u/code/zeta',
          name: 'zeta',
          root: '/home/u/code',
          has_config: false,
          active_sessions: 0,
        },
        {
          path: '/home/u/code/Alpha',
          name: 'Alpha',
          root: '/home/u/code',
          has_config: true,
          active_sessions: 1,
        },
      ],
    }
    vi.spyOn(api, 'workspaces').mockResolvedValue(list)
    vi.spyOn(api, 'createFolder').mockResolvedValue({ path: '/srv/other/fresh' })
    const store = new WorkspacesStore(api)
    await store.load()
    expect(store.groups.map((g) => [g.raw, g.projects.map((p) => p.name)])).toEqual([
      ['~/code', ['Alpha', 'zeta']],
      ['/srv/other', []],
    ])
    await expect(store.createFolder('/srv/other', 'fresh')).resolves.toBe('/srv/other/fresh')
    expect(store.groups[1]?.projects.map((p) => p.name)).toEqual(['fresh'])
  })

  it('basename', () => {
    expect(basename('/a/b/c/')).toBe('c')
    expect(basename('/')).toBe('/')
    expect(basename('rel')).toBe('rel')
  })
})
