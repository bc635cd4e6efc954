import { describe, expect, it, vi } from 'vitest'
import { ApiClient } from '../api.ts'
import { ConfigStore } from './config.svelte.ts'

describe('ConfigStore', () => {
  it('shows config.invalid until the next config.reloaded, which re-fetches', () => {
    const api = new ApiClient(() => Promise.reject(new Error('offline')))
    const config = vi.spyOn(api, 'config').mockRejectedValue(new Error('offline'))
    const store = new ConfigStore(api)
    expect(
      store.apply({
        type: 'config.invalid',
        file: '/home/u/.config/clincus/config.toml',
        error: 'line 3: expected =',
      }),
    ).toBe(false)
    expect(store.invalid).toEqual({
      file: '/home/u/.config/clincus/config.toml',
      error: 'line 3: expected =',
    })
    expect(store.apply({ type: 'session.started', id: 'x' })).toBe(false)
    expect(store.invalid).not.toBeNull()
    expect(store.apply({ type: 'config.reloaded', timestamp: '2026-01-01T00:00:00Z' })).toBe(true)
    expect(store.invalid).toBeNull()
    expect(config).toHaveBeenCalledTimes(1)
  })

  it('keeps the load error readable', async () => {
    const api = new ApiClient(() => Promise.reject(new TypeError('Failed to fetch')))
    const store = new ConfigStore(api)
    await store.load()
    expect(store.loadError).toBe('Cannot reach the clincus server. Check that it is still running.')
    expect(store.roots).toEqual([])
  })
})
