// Issue 10 row 9 (second half): a creation whose client went away is cancelled and rolled back.
import { once } from 'node:events'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import type { FakeMethod } from '../incus/fake-driver.ts'
import { buildTestApp } from '../test/helpers.ts'
import { waitUntil } from '../test/ws-client.ts'

type T = Awaited<ReturnType<typeof buildTestApp>>

/** POSTs a creation over a real socket and returns a function that drops the connection. */
async function startCreate(t: T): Promise<{ abort: () => void }> {
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = t.app.server.address() as AddressInfo
  const req = request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/api/sessions',
    headers: { 'content-type': 'application/json' },
    agent: false,
  })
  req.on('error', () => undefined)
  req.end(JSON.stringify({ workspace: t.project }))
  return { abort: () => req.destroy() }
}

function connections(t: T): Promise<number> {
  return new Promise((resolve, reject) => {
    t.app.server.getConnections((err, n) => {
      if (err) reject(err)
      else resolve(n)
    })
  })
}

function launchEvents(t: T): string[] {
  const steps: string[] = []
  t.services.hub.subscribe((e) => {
    if (e.event.type === 'session.launching') steps.push(e.event.step)
  })
  return steps
}

async function openHistory(t: T): Promise<number> {
  const entries = await t.services.history.list(100, 0)
  return entries.filter((h) => h.ended_at === null).length
}

describe('a creation whose client disconnects', () => {
  it.each<[string, FakeMethod, (args: unknown[]) => boolean]>([
    ['the start', 'start', () => true],
    ['the tool-config copy', 'exec', (a) => (a[1] as string[])[0] === 'tar'],
    ['the readiness probe', 'exec', (a) => (a[1] as string[])[0] === 'true'],
  ])('is cancelled during %s and rolled back', async (_label, method, match) => {
    const t = await buildTestApp()
    const steps = launchEvents(t)
    let reached!: () => void
    const atStep = new Promise<void>((r) => (reached = r))
    let signalled = false
    // A slow step that ends only when its call is cancelled (like a killed `incus` process).
    t.driver.gate = async (m, args, opts) => {
      if (m !== method || !match(args)) return
      reached()
      const signal = opts?.signal
      if (!signal) throw new Error('the step got no abort signal')
      if (!signal.aborted) await once(signal, 'abort')
      signalled = true
    }
    const client = await startCreate(t)
    await atStep
    client.abort()
    await waitUntil('the rollback', () => steps.includes('failed'))
    expect(signalled).toBe(true)
    await waitUntil('the container is gone', () => t.driver.instances.size === 0)
    expect(t.driver.callsOf('delete')).toHaveLength(1)
    expect(await openHistory(t)).toBe(0)
    // no tool started after the cancellation
    expect(
      t.driver.callsOf('exec').some((c) => (c.args[1] as string[]).includes('new-session')),
    ).toBe(false)
    // the server is fine and the slot is free again
    t.driver.gate = undefined
    const again = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ workspace: t.project }),
    })
    expect(again.statusCode).toBe(200)
    expect(again.json<{ slot: number }>().slot).toBe(1)
  })

  it('lets an init in flight finish, then deletes what it made (killing `incus init` would not)', async () => {
    const t = await buildTestApp()
    const steps = launchEvents(t)
    let reached!: () => void
    const atInit = new Promise<void>((r) => (reached = r))
    let release!: () => void
    const released = new Promise<void>((r) => (release = r))
    t.driver.gate = async (m) => {
      if (m !== 'init') return
      reached()
      await released
    }
    const client = await startCreate(t)
    await atInit
    client.abort()
    // the server has seen the connection close
    await waitUntil('the server sees the close', async () => (await connections(t)) === 0)
    release()
    await waitUntil('the rollback', () => steps.includes('failed'))
    await waitUntil('the container is gone', () => t.driver.instances.size === 0)
    expect(t.driver.callsOf('init')).toHaveLength(1)
    expect(t.driver.callsOf('deviceAdd')).toHaveLength(0)
    expect(t.driver.callsOf('start')).toHaveLength(0)
    expect(await openHistory(t)).toBe(0)
  })

  it('is rolled back when the client leaves just as the session is recorded', async () => {
    const t = await buildTestApp()
    const steps = launchEvents(t)
    let reached!: () => void
    const atEnd = new Promise<void>((r) => (reached = r))
    // the last driver call of a creation
    t.driver.gate = async (m, _args, opts) => {
      if (m !== 'getInstance' || !opts?.signal) return
      reached()
      if (!opts.signal.aborted) await once(opts.signal, 'abort')
    }
    const client = await startCreate(t)
    await atEnd
    client.abort()
    await waitUntil('the rollback', () => steps.includes('failed'))
    await waitUntil('the container is gone', () => t.driver.instances.size === 0)
    expect(await openHistory(t)).toBe(0)
  })
})
