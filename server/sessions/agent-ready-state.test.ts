// Root in a container (the agent with sudo) may PATCH /1.0 {"state": "Ready"} on /dev/incus, and
// Incus then reports the running instance as "Ready". That must not make the session a status
// clincus does not act on: Stop must still stop it, and max_duration must still end it.
import { describe, expect, it } from 'vitest'
import { buildTestApp, json } from '../test/helpers.ts'
import { toStatus } from './registry.ts'

async function launched(configText?: string) {
  const t = await buildTestApp(configText === undefined ? {} : { configText })
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/sessions',
    ...json({ workspace: t.project }),
  })
  expect(res.statusCode).toBe(200)
  const id = res.json<{ id: string }>().id
  const inst = t.driver.instances.get(id)
  if (!inst) throw new Error('no instance')
  return { t, id, inst }
}

describe('an instance the agent reports as Ready', () => {
  it('is listed as running and stopped by Stop', async () => {
    const { t, id, inst } = await launched()
    inst.status = 'Ready'
    expect(toStatus(inst.status)).toBe('running')
    const res = await t.app.inject({ method: 'DELETE', url: `/api/sessions/${id}` })
    expect(res.statusCode).toBe(204)
    expect(t.driver.callsOf('stop').map((c) => c.args[0])).toEqual([id])
    expect(inst.status).toBe('Stopped')
  })

  it('is still stopped when max_duration passes', async () => {
    const { t, inst } = await launched(
      `[limits.runtime]\nmax_duration = "300ms"\nstop_graceful = false\n`,
    )
    inst.status = 'Ready'
    const stopped = new Promise<unknown[]>((resolve) => {
      t.driver.gate = async (method, args) => {
        if (method === 'stop') resolve(args)
      }
    })
    expect((await stopped)[0]).toBe(inst.name)
  })
})
