// Primed members through the app with the fake driver (issue 16): a create primes its request (a
// member started, with the workspace and protection mounted, frozen, no session label), the next
// create of it claims that member (thaw, verify, tool-config, tool), a changed workspace
// makes it stale (deleted, cold with the reason), two racing creates never share one, nothing is
// primed while a create runs, a failed fill drops its request, and shutdown leaves nothing.
import { mkdir, rename, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { PRIMED_LAUNCH_STEPS } from '../../../shared/schemas/launch.ts'
import { ownByUser } from '../../test/owner.ts'
import { isWarmName } from '../naming.ts'
import { LABEL } from '../registry.ts'
import {
  createSession as create,
  primedApp as makeApp,
  primedMembers as members,
  primedReady,
  WAIT,
} from './primed.test-support.ts'

/** 50 MiB per member, as the fake reports it. */
const primedApp = (o: { size?: number; primed?: number } = {}) =>
  makeApp({ ...o, memoryBytes: 52428800 })

describe('primed members', () => {
  it('a create primes its request; the next create claims the member and starts only the tool', async () => {
    const t = await primedApp()
    const first = await create(t)
    expect(first).toMatchObject({ path: 'cold', cold_reason: 'pool disabled' })
    await primedReady(t, 1)
    const [name] = members(t)
    const member = t.driver.instances.get(name ?? '')
    // Made like the cold create up to tmpfs, then frozen; no session label, no tool.
    expect(member?.status).toBe('Frozen')
    expect(isWarmName('clincus-', name ?? '')).toBe(true)
    expect(member?.config[LABEL.managed]).toBeUndefined()
    expect(member?.config[LABEL.primedWorkspace]).toBe(t.project)
    expect(member?.config['raw.idmap']).toBeDefined()
    expect(member?.devices?.workspace?.source).toBe(t.project)
    expect(Object.keys(member?.devices ?? {}).some((d) => d.startsWith('protect-'))).toBe(true)
    const tmux = t.driver.callsOf('exec').filter((c) => c.args[0] === name)
    expect(tmux.some((c) => JSON.stringify(c.args[1]).includes('tmux'))).toBe(false)
    const health = t.services.poolStatus?.()
    expect(health).toMatchObject({ memory_bytes: 52428800, primed: { size: 1, ready: 1 } })
    // Never a session: not listed, no event.
    const list = (await t.app.inject({ url: '/api/sessions' })).json<Array<{ id: string }>>()
    expect(list.map((s) => s.id)).toEqual([first.id])
    expect(t.events.some((e) => 'id' in e && e.id === name)).toBe(false)

    const second = await create(t)
    expect(second).toMatchObject({ id: name, path: 'warm', warm: 'primed', slot: 2 })
    expect(second.cold_reason).toBeUndefined()
    expect(Object.keys(second.timings)).toEqual([...PRIMED_LAUNCH_STEPS])
    const done = t.events.find(
      (e) => e.type === 'session.launching' && e.id === name && e.step === 'done',
    )
    expect(done).toMatchObject({ path: 'warm', warm: 'primed' })
    const claimed = t.driver.instances.get(name ?? '')
    expect(claimed?.status).toBe('Running')
    expect(claimed?.config[LABEL.managed]).toBe('true')
    expect(claimed?.config[LABEL.slot]).toBe('2')
    expect(claimed?.config[LABEL.pool] ?? '').toBe('')
    expect(claimed?.config[LABEL.ready]).toBe('true')
    // No frozen/thawed event for a launch: it was woken before it was labelled.
    expect(t.events.some((e) => e.type === 'session.frozen' || e.type === 'session.thawed')).toBe(
      false,
    )
    // The same request is primed again behind the claim.
    await primedReady(t, 1)
    expect(members(t)).toHaveLength(1)
    expect(members(t)[0]).not.toBe(name)
  })

  it('a changed workspace makes the member stale: deleted, cold with the reason', async () => {
    const t = await primedApp()
    await create(t)
    await primedReady(t, 1)
    const [stale] = members(t)
    // .git replaced between the prime and the claim: another directory (the old one kept, as the
    // member's mount keeps it in a real container, so its inode is not reused).
    await rename(join(t.project, '.git'), join(t.project, 'old-git'))
    await mkdir(join(t.project, '.git'))
    await ownByUser(join(t.project, '.git'))
    const s = await create(t)
    expect(s.path).toBe('cold')
    expect(s.cold_reason).toMatch(/primed container stale: .*\.git replaced/)
    await vi.waitFor(() => {
      expect(t.driver.instances.has(stale ?? '')).toBe(false)
    }, WAIT)
    // No folder of the workspace went.
    expect((await stat(join(t.project, '.git'))).isDirectory()).toBe(true)
  })

  it('two racing creates never share one member', async () => {
    const t = await primedApp()
    await create(t)
    await primedReady(t, 1)
    const [a, b] = await Promise.all([create(t), create(t)])
    expect(a.id).not.toBe(b.id)
    expect([a.warm, b.warm].filter((w) => w === 'primed')).toHaveLength(1)
  })

  it('primes nothing while a create runs', async () => {
    const t = await primedApp()
    await create(t)
    await primedReady(t, 1)
    // Hold the next create in its tool step; the claim takes the member; no refill meanwhile.
    let release: () => void = () => undefined
    const held = new Promise<void>((r) => (release = r))
    let holding = false
    t.driver.gate = async (method, args) => {
      if (method === 'exec' && JSON.stringify(args[1]).includes('tmux') && !holding) {
        holding = true
        await held
      }
    }
    const inits = t.driver.callsOf('init').length
    const pending = create(t)
    await vi.waitFor(() => {
      expect(holding).toBe(true)
    }, WAIT)
    expect(t.driver.callsOf('init')).toHaveLength(inits)
    expect(t.services.poolStatus?.().primed).toMatchObject({ ready: 0, creating: 0 })
    release()
    expect((await pending).warm).toBe('primed')
    await primedReady(t, 1)
  })

  it('a failed fill drops its request (logged, never retried in a loop)', async () => {
    const t = await primedApp()
    const warmStart = (args: unknown[]): boolean => isWarmName('clincus-', String(args[0]))
    t.driver.failOn('start', 'Error: injected', { times: 1, match: warmStart })
    const warmInits = (): number =>
      t.driver.callsOf('init').filter((c) => isWarmName('clincus-', String(c.args[1]))).length
    await create(t)
    await vi.waitFor(() => {
      expect(warmInits()).toBe(1)
      expect(t.driver.instances.size).toBe(1)
      expect(t.services.poolStatus?.().primed).toMatchObject({ ready: 0, creating: 0 })
    }, WAIT)
    // The pool runs again for another request: the failed one is not tried again.
    const other = join(t.root, 'other')
    await mkdir(other)
    await ownByUser(other)
    await create(t, other)
    await primedReady(t, 1)
    expect(warmInits()).toBe(2)
    expect(members(t).map((n) => t.driver.instances.get(n)?.config[LABEL.primedWorkspace])).toEqual(
      [other],
    )
  })

  it('shutdown deletes the members; the sessions stay', async () => {
    const t = await primedApp()
    const s = await create(t)
    await primedReady(t, 1)
    await t.app.close()
    expect(members(t)).toEqual([])
    expect([...t.driver.instances.keys()]).toEqual([s.id])
  })
})
