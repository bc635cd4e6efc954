// Issue 10 row 15: /api/health needs no credentials, so it must never make the server run
// incus per request; it serves what the lifecycle monitor and the image manager keep cached.
import { writeFile } from 'node:fs/promises'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import type { Health } from '../../shared/schemas/health.ts'
import { ImageManager } from '../image-manager.ts'
import { FakeIncusDriver } from '../incus/fake-driver.ts'
import { buildTestApp, type TestApp } from '../test/helpers.ts'
import { waitUntil } from '../test/ws-client.ts'

async function health(t: TestApp): Promise<Health> {
  const res = await t.app.inject({ url: '/api/health' })
  expect(res.statusCode).toBe(200)
  return res.json<Health>()
}

async function started(): Promise<{ t: TestApp; driver: FakeIncusDriver }> {
  const driver = new FakeIncusDriver()
  const images = new ImageManager(driver, pino({ level: 'silent' }))
  const t = await buildTestApp({ driver, deps: { monitor: true, images } })
  await waitUntil('the monitor to connect and the image to be checked', async () => {
    const h = await health(t)
    return h.incus.reachable && h.image.state === 'ready' && h.incus.version !== undefined
  })
  return { t, driver }
}

describe('GET /api/health', () => {
  it('answers 200 concurrent requests from cached state, without one incus call', async () => {
    const { t, driver } = await started()
    const before = driver.calls.length
    const t0 = performance.now()
    const all = await Promise.all(
      Array.from({ length: 200 }, () => t.app.inject({ url: '/api/health' })),
    )
    const elapsed = performance.now() - t0
    for (const res of all) {
      expect(res.statusCode).toBe(200)
      expect(res.json<Health>()).toMatchObject({
        status: 'ok',
        // issue 16: the session pool's storage driver, learnt once per connection
        incus: { reachable: true, version: '6.0.4-fake', storage_driver: 'dir' },
        image: { name: 'clincus', state: 'ready' },
      })
    }
    expect(driver.calls.slice(before)).toEqual([])
    expect(elapsed).toBeLessThan(2000)
  })

  it('follows the monitor: unreachable when it drops, reachable again when it reconnects', async () => {
    const { t, driver } = await started()
    driver.reachable = false
    driver.dropMonitors()
    const down = await waitUntil('health to show the outage', async () => {
      const h = await health(t)
      return h.incus.reachable ? undefined : h
    })
    expect(down.status).toBe('degraded')
    expect(down.incus.error).toContain('daemon')
    expect(down.incus.version).toBeUndefined()
    // While down, requests still cost nothing: only the monitor's own retries ask incus.
    const calls = driver.calls.length
    await Promise.all(Array.from({ length: 50 }, () => health(t)))
    expect(driver.calls.length - calls).toBeLessThanOrEqual(2)

    driver.reachable = true
    const up = await waitUntil('health to show the recovery', async () => {
      const h = await health(t)
      return h.incus.reachable && h.incus.version ? h : undefined
    })
    expect(up).toMatchObject({ status: 'ok', incus: { reachable: true, version: '6.0.4-fake' } })
  })

  it('updates the image state on image events and on a change of the default image', async () => {
    const { t, driver } = await started()
    driver.images.delete('clincus')
    // Nothing asks incus per request, so the deletion is unseen until incus reports it.
    expect((await health(t)).image.state).toBe('ready')
    driver.emit({ action: 'image-alias-deleted', name: 'clincus' })
    const missing = await waitUntil('the image to be reported missing', async () => {
      const h = await health(t)
      return h.image.state === 'missing' ? h : undefined
    })
    expect(missing.status).toBe('degraded')

    driver.images.add('clincus')
    driver.emit({ action: 'image-alias-created', name: 'clincus' })
    await waitUntil('the image to be reported ready', async () => {
      return (await health(t)).image.state === 'ready'
    })

    await writeFile(
      t.configFile,
      `[defaults]\nimage = "other-image"\n[dashboard]\nworkspace_roots = ["${t.root}"]\n`,
    )
    await t.services.config.reload()
    const other = await waitUntil('the new default image to be checked', async () => {
      const h = await health(t)
      return h.image.name === 'other-image' && h.image.state !== 'unknown' ? h : undefined
    })
    expect(other.image.state).toBe('missing')
    expect(driver.callsOf('imageExists').map((c) => c.args[0])).toContain('other-image')
  })
})
