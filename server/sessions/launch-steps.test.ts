// Creation as data: progress comes from the step loop in LAUNCH_STEPS order, and a failure undoes
// what was done (the container deleted, nothing left in the list, history or events).
import { describe, expect, it } from 'vitest'
import { LAUNCH_STEPS } from '../../shared/schemas/launch.ts'
import { IncusCommandError } from '../errors.ts'
import { buildTestApp, json } from '../test/helpers.ts'

type T = Awaited<ReturnType<typeof buildTestApp>>

function record(t: T): Array<{ type: string; step?: string; progress?: number; status?: string }> {
  const out: Array<{ type: string; step?: string; progress?: number; status?: string }> = []
  t.services.hub.subscribe(({ event }) => {
    if (event.type === 'session.launching')
      out.push({ type: event.type, step: event.step, progress: event.progress })
    else if ('session' in event) out.push({ type: event.type, status: event.session?.status })
  })
  return out
}

describe('launch steps', () => {
  it('publishes every step in order with rising progress, then done and the session', async () => {
    const t = await buildTestApp()
    const events = record(t)
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode).toBe(200)
    const launching = events.filter((e) => e.type === 'session.launching')
    expect(launching.map((e) => e.step)).toEqual([...LAUNCH_STEPS, 'done'])
    const progress = launching.map((e) => e.progress ?? -1)
    expect(progress[0]).toBe(0)
    expect(progress.at(-1)).toBe(1)
    for (let i = 1; i < progress.length; i++)
      expect(progress[i]).toBeGreaterThan(progress[i - 1] ?? 1)
    // The command reported its outcome: the session exists, running, with the object.
    expect(events.filter((e) => e.type !== 'session.launching')).toEqual([
      { type: 'session.created', status: 'running' },
      { type: 'session.started', status: 'running' },
    ])
  })

  it('undoes a failed launch: the container is deleted and nothing of it is left', async () => {
    const t = await buildTestApp({
      configText: '[limits.disk]\ntmpfs_size = "64MiB"\n[limits.runtime]\nmax_duration = "1h"\n',
    })
    t.driver.execHandler = (_n, argv) =>
      argv[0] === 'mount'
        ? { stdout: '', stderr: 'mount: permission denied', exitCode: 32 }
        : undefined
    const events = record(t)
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode).toBe(500)
    expect(res.json()).toMatchObject({
      code: 'session_setup_failed',
      error: 'mounting tmpfs on /tmp failed: mount tmpfs failed: mount: permission denied',
    })
    expect(events.at(-1)).toMatchObject({ type: 'session.launching', step: 'failed' })
    expect(t.driver.instances.size).toBe(0)
    expect(
      t.driver.callsOf('exec').some((c) => (c.args[1] as string[]).includes('new-session')),
    ).toBe(false)
    expect(await t.services.registry.list()).toEqual([])
    expect(await t.services.history.list(10, 0)).toEqual([])
    expect(t.services.sessions.deadlines.has('clincus-')).toBe(false)
  })

  // Abort path: `incus init` timed out (a slow disk, a busy daemon) but the daemon finished the
  // creation. The rollback used to keep only a note (deleted at the next reconnect or restart):
  // meanwhile the half-created container was listed as a stopped session and held its slot.
  it('undoes an init that failed after the daemon created the container', async () => {
    const t = await buildTestApp()
    const init = t.driver.init.bind(t.driver)
    t.driver.init = async (image, name, opts) => {
      await init(image, name, opts)
      throw new IncusCommandError({
        argv: ['init', image, name],
        exitCode: undefined,
        stderr: '',
        timedOut: true,
      })
    }
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode).toBe(502)
    expect(t.driver.instances.size).toBe(0)
    expect(await t.services.registry.list()).toEqual([])
  })
})
