import { describe, expect, it, vi } from 'vitest'
import { ApiClient, ApiError } from '../api.ts'
import type { ImageInfo } from '../schemas.ts'
import { ImagesStore } from './images.svelte.ts'

function image(over: Partial<ImageInfo> = {}): ImageInfo {
  return {
    alias: 'clincus',
    fingerprint: 'abc123',
    size_bytes: 900 * 1024 * 1024,
    created_at: '2026-11-29T18:00:00Z',
    state: 'ready',
    progress: null,
    step: null,
    tools: { claude: '2.1.197', copilot: '1.0.3', opencode: '0.9.1', node: '22.21.1' },
    ...over,
  }
}

function setup(list: ImageInfo[] = [image()]) {
  const api = new ApiClient(() => Promise.reject(new Error('no network in tests')))
  const images = vi.spyOn(api, 'images').mockImplementation(() => Promise.resolve(list))
  const build = vi.spyOn(api, 'buildImage').mockResolvedValue(undefined)
  return { api, images, build, store: new ImagesStore(api) }
}

describe('ImagesStore', () => {
  it('follows image.building events in order, then refetches on image.built', async () => {
    const { store, images } = setup()
    await store.load()
    store.apply({ type: 'image.building', alias: 'clincus', step: 'debootstrap', progress: 0.1 })
    expect(store.get('clincus')).toMatchObject({
      state: 'building',
      step: 'debootstrap',
      progress: 0.1,
    })
    store.apply({ type: 'image.building', alias: 'clincus', step: 'apt', progress: 0.5 })
    expect(store.get('clincus')).toMatchObject({ step: 'apt', progress: 0.5 })
    expect(images).toHaveBeenCalledTimes(1)

    images.mockResolvedValue([
      image({ fingerprint: 'def456', tools: { ...image().tools, claude: '2.2.0' } }),
    ])
    store.apply({ type: 'image.built', alias: 'clincus' })
    await vi.waitFor(() => {
      expect(store.get('clincus')).toMatchObject({ state: 'ready', fingerprint: 'def456' })
    })
    expect(images).toHaveBeenCalledTimes(2)
  })

  it('a list fetched mid-build does not hide the live progress', async () => {
    const { store } = setup()
    await store.load()
    store.apply({ type: 'image.building', alias: 'clincus', step: 'npm', progress: 0.7 })
    await store.load()
    expect(store.get('clincus')).toMatchObject({ state: 'building', step: 'npm', progress: 0.7 })
  })

  it('keeps a failed build’s own message after the list says the old image is ready', async () => {
    const { store } = setup()
    await store.load()
    store.apply({ type: 'image.building', alias: 'clincus', step: 'apt', progress: 0.3 })
    const apt = 'E: Unable to locate package not-a-package'
    store.apply({ type: 'image.failed', alias: 'clincus', error: apt })
    await vi.waitFor(() => {
      expect(store.get('clincus')?.state).toBe('ready')
    })
    expect(store.failures).toEqual({ clincus: apt })
    // The next build clears it.
    store.apply({ type: 'image.building', alias: 'clincus', step: 'apt', progress: 0 })
    expect(store.failures).toEqual({})
  })

  it('build: 202 marks it building; 409 image_building answers already-building; others reject', async () => {
    const { store, build } = setup()
    await store.load()
    await expect(store.build('clincus', true)).resolves.toEqual({ outcome: 'started' })
    expect(build).toHaveBeenCalledExactlyOnceWith('clincus', true)
    expect(store.get('clincus')).toMatchObject({ state: 'building', progress: 0 })

    build.mockRejectedValueOnce(new ApiError(409, 'image_building', 'image other is being built'))
    await expect(store.build('clincus')).resolves.toEqual({
      outcome: 'already-building',
      message: 'image other is being built',
    })

    build.mockRejectedValueOnce(new ApiError(409, 'no_builder', 'image building is not available'))
    await expect(store.build('clincus')).rejects.toThrow('image building is not available')
    build.mockRejectedValueOnce(new ApiError(502, 'incus_failed', 'incus: no space left'))
    await expect(store.build('clincus')).rejects.toThrow('incus: no space left')
    expect(store.requesting).toEqual([])
  })

  it('refetches on reconnect only once the list was asked for', async () => {
    const { store, images } = setup()
    await store.reload()
    expect(images).not.toHaveBeenCalled()
    await store.load()
    await store.reload()
    expect(images).toHaveBeenCalledTimes(2)
  })
})
