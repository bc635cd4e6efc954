import { writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { CloseCode } from '../../shared/ws/terminal.ts'
import { buildTestApp } from '../test/helpers.ts'
import { EventsClient, waitUntil } from '../test/ws-client.ts'

async function listening(opts: { maxBufferedBytes?: number } = {}) {
  const t = await buildTestApp({ deps: { realtime: { events: opts } } })
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = t.app.server.address() as AddressInfo
  return { ...t, url: `ws://127.0.0.1:${port}/ws/events` }
}

describe('/ws/events', () => {
  it('sends each hub event as one JSON text frame, exactly the event object', async () => {
    const t = await listening()
    const c = new EventsClient(t.url)
    await c.opened
    t.services.hub.publish({ type: 'session.started', id: 'clincus-0123abcd-1' })
    t.services.hub.publish({ type: 'config.reloaded', timestamp: '2026-01-01T12:00:00.000Z' })
    await waitUntil('two events', () => c.events.length === 2)
    expect(c.events).toEqual([
      { type: 'session.started', id: 'clincus-0123abcd-1' },
      { type: 'config.reloaded', timestamp: '2026-01-01T12:00:00.000Z' },
    ])
    await c.close()
  })

  it('publishes config.reloaded / config.invalid for reloads of the store', async () => {
    const t = await listening()
    const c = new EventsClient(t.url)
    await c.opened
    // a reload that changes the merged config (one that changes nothing publishes nothing)
    await writeFile(t.configFile, '[dashboard]\nport = 3009\n')
    await t.services.config.reload()
    const e = await c.next((x) => x.type === 'config.reloaded')
    expect(Object.keys(e.event).sort()).toEqual(['timestamp', 'type'])
    expect(Number.isNaN(Date.parse(String(e.event.timestamp)))).toBe(false)
    await c.close()
  })

  it(
    'disconnects a client that stopped reading (4408) instead of queueing for ever',
    { timeout: 60_000 },
    async () => {
      const t = await listening({ maxBufferedBytes: 64 * 1024 })
      const slow = new EventsClient(t.url)
      const fast = new EventsClient(t.url)
      await Promise.all([slow.opened, fast.opened])
      slow.ws.pause()
      const padding = 'x'.repeat(1000)
      // Enough to fill both kernel socket buffers on loopback and then the server-side bound; in
      // batches, so the fast client (in this same process) gets to read in between.
      for (let i = 0; i < 20_000; i++) {
        t.services.hub.publish({ type: 'config.invalid', file: padding, error: String(i) })
        if (i % 100 === 99) await new Promise((r) => setTimeout(r, 1))
      }
      slow.ws.resume()
      expect((await slow.closed).code).toBe(CloseCode.SLOW_CLIENT)
      expect(slow.events.length).toBeLessThan(20_000)
      await waitUntil('the fast client to get everything', () => fast.events.length === 20_000, {
        timeoutMs: 30_000,
      })
      await fast.close()
    },
  )

  it('closes subscribers with 1001 when the app closes', async () => {
    const t = await listening()
    const c = new EventsClient(t.url)
    await c.opened
    // The socket is the hub's only listener (the reconciler publishes; nothing else subscribes).
    await waitUntil('the subscription', () => t.services.hub.listenerCount >= 1)
    await t.app.close()
    expect((await c.closed).code).toBe(CloseCode.GOING_AWAY)
  })
})
