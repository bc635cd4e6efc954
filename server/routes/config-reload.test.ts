// Issue 15: one Settings save is one config.reloaded. The real watcher runs on the test's config
// file; "no second event" is shown by a later, distinct write whose event must be the next one.
import { readFile, writeFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import type { ConfigWatcher } from '../config/watcher.ts'
import { buildTestApp, json, type TestApp } from '../test/helpers.ts'
import { waitUntil } from '../test/ws-client.ts'

/** The app with hot reload on, and the port the config had at each config.* event, in order. */
async function watched(configText?: string) {
  const t = await buildTestApp({
    deps: { watchConfig: { debounceMs: 20 } },
    ...(configText === undefined ? {} : { configText }),
  })
  const watcher = t.services.config.watcher
  if (!watcher) throw new Error('the store should own a running watcher')
  const events: Array<number | 'invalid'> = []
  t.services.hub.subscribe(({ event }) => {
    if (event.type === 'config.reloaded') events.push(t.services.config.current.dashboard.port)
    if (event.type === 'config.invalid') events.push('invalid')
  })
  return { t, watcher, events }
}

/** Waits until the watcher has seen a file event after `before` and has dealt with it. */
async function seen(watcher: ConfigWatcher, before: number): Promise<void> {
  await waitUntil('the watcher to see the write', () => watcher.changes > before)
  await watcher.settled()
}

/** A hand edit of the port: the marker whose event must come next. */
async function marker(t: TestApp, events: unknown[], port: number): Promise<void> {
  const text = await readFile(t.configFile, 'utf8')
  await writeFile(t.configFile, text.replace(/^port = \d+/m, `port = ${String(port)}`))
  const n = events.length
  await waitUntil(`the event of port ${String(port)}`, () => events.length > n)
}

describe('config.reloaded: one per change of the merged config', () => {
  it('one PUT /api/config is exactly one config.reloaded (the watcher seeing the save is none)', async () => {
    const { t, watcher, events } = await watched()
    const before = watcher.changes
    const res = await t.app.inject({ method: 'PUT', url: '/api/config', ...json({ port: 3001 }) })
    expect(res.statusCode).toBe(200)
    expect(events).toEqual([3001])
    await seen(watcher, before)
    await marker(t, events, 3002)
    expect(events).toEqual([3001, 3002])
  })

  it('a PUT that changes nothing is no event', async () => {
    const { t, watcher, events } = await watched()
    await t.app.inject({ method: 'PUT', url: '/api/config', ...json({ port: 3004 }) })
    await t.app.inject({ method: 'PUT', url: '/api/config', ...json({ port: 3004 }) })
    await t.app.inject({ method: 'PUT', url: '/api/config', ...json({ port: 3005 }) })
    // (chokidar may drop a write's event within 50 ms of the previous one: wait for what it saw)
    await watcher.settled()
    await marker(t, events, 3006)
    expect(events).toEqual([3004, 3005, 3006])
  })

  it('a hand edit that changes nothing but a comment is no event', async () => {
    const { t, watcher, events } = await watched('[dashboard]\nport = 3000\n')
    const before = watcher.changes
    await writeFile(t.configFile, '# only a comment\n[dashboard]\nport = 3000 # the port\n')
    await seen(watcher, before)
    expect(watcher.reloads).toBe(1) // it was read…
    expect(events).toEqual([]) // …and nothing changed
    await marker(t, events, 3007)
    expect(events).toEqual([3007])
  })

  it('an invalid file, then the same good config again, is invalid then reloaded', async () => {
    const { t, events } = await watched('[dashboard]\nport = 3000\n')
    await writeFile(t.configFile, '[dashboard\nport = ')
    await waitUntil('invalid', () => events.length === 1)
    await writeFile(t.configFile, '[dashboard]\nport = 3000\n')
    // the config equals the last good one, but the dashboard must drop the error it shows
    await waitUntil('reloaded', () => events.length === 2)
    expect(events).toEqual(['invalid', 3000])
  })
})
