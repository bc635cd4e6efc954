import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { buildApp } from '../app.ts'
import { HistoryStore } from '../history/store.ts'
import { buildTestApp, json } from '../test/helpers.ts'

function stopCall(t: Awaited<ReturnType<typeof buildTestApp>>): Promise<unknown[]> {
  return new Promise((resolve) => {
    t.driver.gate = async (method, args) => {
      if (method === 'stop') resolve(args)
    }
  })
}

describe('max_duration', () => {
  it.each([
    [true, false],
    [false, true],
  ])('stop_graceful=%s stops with force=%s when the deadline passes', async (graceful, force) => {
    const t = await buildTestApp({
      configText: `[limits.runtime]\nmax_duration = "300ms"\nstop_graceful = ${graceful}\n`,
    })
    const stopped = stopCall(t)
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode).toBe(200)
    const id = res.json<{ id: string }>().id
    expect(t.driver.instances.get(id)?.config['user.clincus.deadline']).toMatch(/^\d{4}-/)
    const args = await stopped
    expect(args).toEqual([id, { force }])
    await vi.waitFor(async () => {
      const history = (await t.app.inject({ url: '/api/sessions/history' })).json<
        Array<{ ended_at: string | null }>
      >()
      expect(history[0]?.ended_at).not.toBeNull()
    })
  })

  it('is cancelled by a stop, and re-armed from the instance after a server restart', async () => {
    const t = await buildTestApp({ configText: `[limits.runtime]\nmax_duration = "1h"\n` })
    const a = (
      await t.app.inject({
        method: 'POST',
        url: '/api/sessions',
        ...json({ workspace: t.project }),
      })
    ).json<{ id: string }>().id
    const b = (
      await t.app.inject({
        method: 'POST',
        url: '/api/sessions',
        ...json({ workspace: t.project }),
      })
    ).json<{ id: string }>().id
    expect(t.services.sessions.deadlines.has(a)).toBe(true)
    expect((await t.app.inject({ method: 'DELETE', url: `/api/sessions/${a}` })).statusCode).toBe(
      204,
    )
    expect(t.services.sessions.deadlines.has(a)).toBe(false)

    // a second server over the same Incus (the first one "crashed")
    const second = await buildApp({
      driver: t.driver,
      config: t.services.config,
      history: new HistoryStore(join(t.home, '.clincus', 'history.jsonl')),
      log: pino({ level: 'silent' }),
      prefix: 'clincus-',
      home: t.home,
      version: 'x',
      monitor: false,
    })
    try {
      await second.services.sessions.restore()
      expect(second.services.sessions.deadlines.has(b)).toBe(true)
      expect(second.services.sessions.deadlines.has(a)).toBe(false)
    } finally {
      await second.app.close()
    }
  })

  it('does nothing when auto_stop is off', async () => {
    const t = await buildTestApp({
      configText: `[limits.runtime]\nmax_duration = "1ms"\nauto_stop = false\n`,
    })
    const id = (
      await t.app.inject({
        method: 'POST',
        url: '/api/sessions',
        ...json({ workspace: t.project }),
      })
    ).json<{ id: string }>().id
    expect(t.services.sessions.deadlines.has(id)).toBe(false)
  })
})

describe('transitions made outside clincus', () => {
  it('an external stop updates the list, ends history and publishes session.stopped', async () => {
    const t = await buildTestApp({ deps: { monitor: true } })
    const events: string[] = []
    t.services.hub.subscribe((e) =>
      events.push(`${e.event.type}:${'id' in e.event ? e.event.id : ''}`),
    )
    const id = (
      await t.app.inject({
        method: 'POST',
        url: '/api/sessions',
        ...json({ workspace: t.project }),
      })
    ).json<{ id: string }>().id
    await vi.waitFor(() => {
      expect(events).toContain(`session.started:${id}`)
    })
    // `incus stop` run by hand
    const inst = t.driver.instances.get(id)
    if (inst) inst.status = 'Stopped'
    t.driver.emit({ action: 'instance-stopped', name: id })
    await vi.waitFor(() => {
      expect(events).toContain(`session.stopped:${id}`)
    })
    const list = (await t.app.inject({ url: '/api/sessions' })).json<Array<{ status: string }>>()
    expect(list[0]?.status).toBe('stopped')
    await vi.waitFor(async () => {
      const history = (await t.app.inject({ url: '/api/sessions/history' })).json<
        Array<{ ended_at: string | null }>
      >()
      expect(history[0]?.ended_at).not.toBeNull()
    })
  })

  it('serves the list from the cache while the monitor is live', async () => {
    const t = await buildTestApp({ deps: { monitor: true } })
    await t.app.inject({ method: 'POST', url: '/api/sessions', ...json({ workspace: t.project }) })
    await vi.waitFor(async () => {
      const before = t.driver.callsOf('listInstances').length
      await t.app.inject({ url: '/api/sessions' })
      expect(t.driver.callsOf('listInstances').length).toBe(before)
    })
    const before = t.driver.callsOf('listInstances').length
    for (let i = 0; i < 20; i++) await t.app.inject({ url: '/api/sessions' })
    expect(t.driver.callsOf('listInstances').length).toBe(before)
  })
})

describe('half-created leftovers', () => {
  it('removes a container a crashed server left half-made, and retries a failed rollback', async () => {
    const t = await buildTestApp()
    // left by a previous process: ours, never marked ready
    t.driver.addInstance('clincus-0123abcd-1', {
      status: 'Stopped',
      config: { 'user.clincus.managed': 'true', 'user.clincus.created': '2020-01-01T00:00:00Z' },
    })
    // a finished session survives
    const ok = (
      await t.app.inject({
        method: 'POST',
        url: '/api/sessions',
        ...json({ workspace: t.project }),
      })
    ).json<{ id: string }>().id
    // a launch whose rollback fails because Incus went away at that moment
    t.driver.failOn('start', 'Error: daemon went away')
    t.driver.failOn('delete', 'Error: daemon went away', { times: 4 })
    const failed = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(failed.statusCode).toBe(502)
    expect(t.driver.instances.size).toBe(3)
    await t.services.sessions.restore()
    expect([...t.driver.instances.keys()]).toEqual([ok])
  })
})

describe('rollback', () => {
  it('waits out an operation that keeps the container busy, and leaves nothing behind', async () => {
    const t = await buildTestApp()
    // A cancelled `incus start` leaves the daemon's start running; a delete meanwhile is refused
    // (seen live: 'Instance is busy running a "start" operation') for as long as the start takes.
    t.driver.failOn('start', 'Error: the client went away')
    t.driver.failOn(
      'delete',
      'Error: Failed deleting instance: Failed to create instance delete operation: Instance is busy running a "start" operation',
      { times: 6 },
    )
    const failed = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(failed.statusCode).toBe(502)
    expect(t.driver.callsOf('delete')).toHaveLength(7)
    expect(t.driver.instances.size).toBe(0)
    // The rollback really sleeps between refusals (100·2^n ms, at most 1 s: 3.5 s for six), by
    // design; that left 1.5 s of vitest's default 5 s for the app and the launch (4.4 s at
    // load 12 on two cores).
  }, 30_000)
})

describe('launch progress and start times', () => {
  it('ends every launch with done or failed, and keeps started_at per launch', async () => {
    const t = await buildTestApp()
    const launching: Array<{ step: string; error?: string }> = []
    t.services.hub.subscribe(({ event }) => {
      if (event.type === 'session.launching') launching.push(event)
    })
    const ok = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    const s = ok.json<{ id: string; started_at: string; created_at: string }>()
    expect(launching.at(-1)).toMatchObject({ step: 'done' })
    expect(s.started_at).toBe(s.created_at)
    t.driver.failOn('start', 'Error: no luck')
    await t.app.inject({ method: 'POST', url: '/api/sessions', ...json({ workspace: t.project }) })
    expect(launching.at(-1)).toMatchObject({
      step: 'failed',
      error: 'starting the container failed: no luck',
    })

    await t.app.inject({ method: 'DELETE', url: `/api/sessions/${s.id}` })
    t.driver.execHandler = (_n, argv) =>
      argv[1] === 'has-session' ? { stdout: '', stderr: '', exitCode: 1 } : undefined
    await t.app.inject({ method: 'POST', url: `/api/sessions/${s.id}/resume` })
    const after = (await t.app.inject({ url: '/api/sessions' })).json<
      Array<{ id: string; started_at: string }>
    >()
    expect(Date.parse(after.find((x) => x.id === s.id)?.started_at ?? '')).toBeGreaterThan(
      Date.parse(s.started_at),
    )
  })

  it('tells a new /ws/events subscriber about a config file that is broken right now', async () => {
    const t = await buildTestApp()
    await writeFile(t.configFile, '[dashboard\n')
    expect(await t.services.config.reload()).toBe(false)
    let resolveFirst: (text: string) => void = () => undefined
    const firstMessage = new Promise<string>((resolve) => {
      resolveFirst = resolve
    })
    const ws = await t.app.injectWS(
      '/ws/events',
      {},
      {
        onInit: (client) => {
          client.once('message', (d: Buffer) => {
            resolveFirst(d.toString())
          })
        },
      },
    )
    const first = await firstMessage
    expect(JSON.parse(first)).toMatchObject({ type: 'config.invalid', file: t.configFile })
    ws.terminate()
  })
})
