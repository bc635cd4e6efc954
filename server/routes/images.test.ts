// Images API (issue 13) against a fake backend: shapes, outdated, 202/409/404, events in order,
// a failed build's message, and the previous image kept.
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import type { ServerEvent } from '../../shared/schemas/events.ts'
import type { ImageInfo } from '../../shared/schemas/images.ts'
import {
  ImageManager,
  type BuildRequest,
  type ImageBackend,
  type StoredImage,
} from '../image-manager.ts'
import { FakeIncusDriver } from '../incus/fake-driver.ts'
import type { ImageExtras } from '../../images/index.ts'
import { buildTestApp } from '../test/helpers.ts'
import { waitUntil } from '../test/ws-client.ts'

/** Hash = the packages joined; a build publishes an image recording them and the agents. */
class FakeBackend implements ImageBackend {
  readonly images = new Map<string, StoredImage>()
  readonly requests: Array<{ alias: string } & BuildRequest> = []
  /** Resolves the running build (tests control when it finishes). */
  release: ((error?: Error) => void) | undefined

  async describe(alias: string): Promise<StoredImage | undefined> {
    return this.images.get(alias)
  }

  async expectedHash(_alias: string, extras: ImageExtras): Promise<string> {
    return `h:${[...extras.packages].sort().join(',')}`
  }

  async build(
    alias: string,
    request: BuildRequest,
    onProgress: (p: { step: string; progress: number }) => void,
  ): Promise<void> {
    this.requests.push({ alias, ...request })
    onProgress({ step: 'mmdebstrap bookworm', progress: 0.1 })
    const failure = await new Promise<Error | undefined>((resolve) => {
      this.release = resolve
    })
    this.release = undefined
    if (failure) throw failure
    onProgress({ step: 'done', progress: 1 })
    this.images.set(alias, {
      fingerprint: `fp-${this.requests.length}`,
      sizeBytes: 1234,
      createdAt: '2026-11-29T20:00:00Z',
      properties: {
        'clincus.input-hash': await this.expectedHash(alias, request.extras),
        'clincus.tool.claude': request.update ? '9.9.9' : '2.1.332',
        'clincus.node-version': '24.22.1',
      },
    })
  }
}

async function setup(configText: string) {
  const backend = new FakeBackend()
  const images = new ImageManager(new FakeIncusDriver(), pino({ level: 'silent' }), { backend })
  const t = await buildTestApp({ configText, deps: { images } })
  const events: ServerEvent[] = []
  const unsubscribe = t.services.hub.subscribe((e) => events.push(e.event))
  return { t, backend, images, events, unsubscribe }
}

async function list(t: Awaited<ReturnType<typeof setup>>['t']): Promise<ImageInfo[]> {
  const res = await t.app.inject({ url: '/api/images' })
  expect(res.statusCode).toBe(200)
  return res.json<ImageInfo[]>()
}

describe('GET /api/images and POST /api/images/{alias}/build', () => {
  it('lists the configured images: missing, then built with its tools, then outdated when [image] changes', async () => {
    const s = await setup('[image]\npackages = ["cowsay"]\n[profiles.p]\nimage = "other"\n')
    expect(await list(s.t)).toEqual([
      {
        alias: 'clincus',
        fingerprint: null,
        size_bytes: null,
        created_at: null,
        state: 'missing',
        progress: null,
        step: null,
        tools: { claude: null, copilot: null, opencode: null, node: null },
      },
      expect.objectContaining({ alias: 'other', state: 'missing' }),
    ])

    const res = await s.t.app.inject({ method: 'POST', url: '/api/images/clincus/build' })
    expect(res.statusCode).toBe(202)
    expect(res.json()).toEqual({ alias: 'clincus', state: 'building' })
    await waitUntil('the build to start', () => s.backend.release !== undefined)
    expect((await list(s.t))[0]).toMatchObject({
      state: 'building',
      step: 'mmdebstrap bookworm',
      progress: 0.1,
    })
    // No image yet: launches wait for this build (503 image_building).
    expect(s.images.current('clincus')?.state).toBe('building')
    // One build at a time.
    const again = await s.t.app.inject({ method: 'POST', url: '/api/images/other/build' })
    expect(again.statusCode).toBe(409)
    s.backend.release?.()
    await s.images.settled()

    expect((await list(s.t))[0]).toEqual({
      alias: 'clincus',
      fingerprint: 'fp-1',
      size_bytes: 1234,
      created_at: '2026-11-29T20:00:00Z',
      state: 'ready',
      progress: null,
      step: null,
      tools: { claude: '2.1.332', copilot: null, opencode: null, node: '24.22.1' },
    })
    expect(s.backend.requests[0]).toEqual({
      alias: 'clincus',
      update: false,
      extras: { packages: ['cowsay'], npm: [], setup: '' },
    })
    const imageEvents = s.events.filter((e) => e.type.startsWith('image.'))
    expect(imageEvents).toEqual([
      { type: 'image.building', alias: 'clincus', step: 'starting', progress: 0 },
      { type: 'image.building', alias: 'clincus', step: 'mmdebstrap bookworm', progress: 0.1 },
      { type: 'image.building', alias: 'clincus', step: 'done', progress: 1 },
      { type: 'image.built', alias: 'clincus' },
    ])

    // The config changes: the image no longer matches its inputs.
    s.t.services.config.current.image.packages = ['cowsay', 'sl']
    expect((await list(s.t))[0]?.state).toBe('outdated')
    s.unsubscribe()
  })

  it('answers an unreadable [image] setup file as outdated with the reason, never a 500', async () => {
    const s = await setup('')
    s.backend.images.set('clincus', {
      fingerprint: 'fp',
      sizeBytes: 1,
      createdAt: '2026-01-01T00:00:00Z',
      properties: {},
    })
    s.backend.expectedHash = () => Promise.reject(new Error("ENOENT: no such file, open '/x.sh'"))
    const info = (await list(s.t))[0]
    expect(info?.state).toBe('outdated')
    expect(info?.error).toContain('ENOENT')
    s.backend.describe = () => Promise.reject(new Error('incus: connection refused'))
    const res = await s.t.app.inject({ url: '/api/images' })
    expect(res.statusCode).toBe(503)
    s.unsubscribe()
  })

  it('passes {"update": true} on, and refuses an alias the config does not name', async () => {
    const s = await setup('')
    const missing = await s.t.app.inject({ method: 'POST', url: '/api/images/evil/build' })
    expect(missing.statusCode).toBe(404)
    const bad = await s.t.app.inject({
      method: 'POST',
      url: '/api/images/clincus/build',
      payload: { update: 'yes' },
    })
    expect(bad.statusCode).toBe(400)
    const res = await s.t.app.inject({
      method: 'POST',
      url: '/api/images/clincus/build',
      payload: { update: true },
    })
    expect(res.statusCode).toBe(202)
    await waitUntil('the build to start', () => s.backend.release !== undefined)
    s.backend.release?.()
    await s.images.settled()
    expect(s.backend.requests.map((r) => r.update)).toEqual([true])
    expect((await list(s.t))[0]?.tools.claude).toBe('9.9.9')
    s.unsubscribe()
  })

  it("a failed build sends image.failed with the build's message and keeps the previous image", async () => {
    const s = await setup('')
    s.backend.images.set('clincus', {
      fingerprint: 'old',
      sizeBytes: 1,
      createdAt: '2026-01-01T00:00:00Z',
      properties: { 'clincus.input-hash': 'h:' },
    })
    await s.t.app.inject({ method: 'POST', url: '/api/images/clincus/build' })
    await waitUntil('the build to start', () => s.backend.release !== undefined)
    // The previous image keeps serving launches while the rebuild runs.
    expect(s.images.current('clincus')?.state).toBe('ready')
    s.backend.release?.(new Error('E: Unable to locate package nope'))
    await s.images.settled()
    expect(s.events.filter((e) => e.type === 'image.failed')).toEqual([
      { type: 'image.failed', alias: 'clincus', error: 'E: Unable to locate package nope' },
    ])
    expect((await list(s.t))[0]).toMatchObject({
      fingerprint: 'old',
      state: 'ready',
      error: 'E: Unable to locate package nope',
    })
    s.unsubscribe()
  })
})
