// The warm pool with the fake driver (issue 16): filling, claims (atomic, matching the create's
// baked settings, else cold with the reason), refill, rebuild, leftovers and disposal. The same
// through the app: a warm create gives the session what a cold one gets, and pool containers are
// never sessions (no list entry, no `session.*` event, no history), also via the monitor path.
import { chown, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { WARM_LAUNCH_STEPS } from '../../../shared/schemas/launch.ts'
import type { ServerEvent } from '../../../shared/schemas/events.ts'
import type { CreatedSession } from '../../../shared/schemas/sessions.ts'
import { FakeIncusDriver } from '../../incus/fake-driver.ts'
import { buildTestApp, json, type TestApp } from '../../test/helpers.ts'
import { bakedConfig } from '../launch-config.ts'
import { isWarmName, workspaceHash } from '../naming.ts'
import { SlotAllocator } from '../slots.ts'
import { LABEL } from '../registry.ts'
import { PROTECTION } from '../session-config.ts'
import type { PoolSpec } from './key.ts'
import { WarmPool } from './manager.ts'

const WAIT = { timeout: 20_000, interval: 20 }

function spec(key: string, rootDisk: Record<string, string> = {}): PoolSpec {
  return { key, image: 'clincus', config: bakedConfig(), rootDisk, storagePool: '' }
}

function poolOf(
  driver: FakeIncusDriver,
  opts: { size?: () => number; spec?: PoolSpec | null } = {},
): WarmPool {
  return new WarmPool({
    driver,
    log: pino({ level: 'silent' }),
    prefix: 'clincus-',
    size: opts.size ?? (() => 2),
    defaultSpec: async () => (opts.spec === undefined ? spec('k1') : opts.spec),
  })
}

function poolInstances(driver: FakeIncusDriver): string[] {
  return [...driver.instances.values()]
    .filter((i) => i.config[LABEL.pool] !== undefined)
    .map((i) => i.name)
}

describe('WarmPool', () => {
  it('fills to size with stopped pool-labelled containers that carry no session label', async () => {
    const driver = new FakeIncusDriver()
    const pool = poolOf(driver)
    await pool.connected()
    await vi.waitFor(() => {
      expect(pool.status()).toMatchObject({ size: 2, ready: 2, creating: 0 })
    }, WAIT)
    for (const inst of driver.instances.values()) {
      expect(isWarmName('clincus-', inst.name)).toBe(true)
      expect(inst.status).toBe('Stopped')
      expect(inst.config[LABEL.pool]).toBe('k1')
      expect(inst.config[LABEL.managed]).toBeUndefined()
      expect(inst.config['security.idmap.isolated']).toBe('true')
      expect(inst.config['security.guestapi']).toBe('false')
      expect(inst.config['boot.autostart']).toBe('false')
      // The id mapping is the session's, set at the claim before the first start.
      expect(inst.config['raw.idmap']).toBeUndefined()
    }
    // Stopped containers hold no memory.
    expect(pool.status().memory_bytes).toBe(0)
    await pool.dispose()
    expect(driver.instances.size).toBe(0)
  })

  it('never hands one container to two claims, and refills behind them', async () => {
    const driver = new FakeIncusDriver()
    const pool = poolOf(driver, { size: () => 1 })
    await pool.connected()
    await vi.waitFor(() => {
      expect(pool.status().ready).toBe(1)
    }, WAIT)
    const done = pool.beginCreate()
    const a = pool.claim(spec('k1'))
    const b = pool.claim(spec('k1'))
    expect('name' in a).toBe(true)
    expect(b).toEqual({ reason: 'pool empty' })
    expect(pool.isMember((a as { name: string }).name)).toBe(false)
    // While a create runs the pool makes nothing; after it, one more.
    expect(pool.status()).toMatchObject({ ready: 0, creating: 0 })
    done()
    await vi.waitFor(() => {
      expect(pool.status().ready).toBe(1)
    }, WAIT)
    const c = pool.claim(spec('k1'))
    expect('name' in c && c.name !== (a as { name: string }).name).toBe(true)
    await pool.dispose()
    // Claimed containers are the creates' (they delete them on failure): the pool leaves them.
    expect(poolInstances(driver).sort()).toEqual(
      [(a as { name: string }).name, (c as { name: string }).name].sort(),
    )
  })

  it('says why a create goes cold: disabled, or the baked settings differ', async () => {
    const driver = new FakeIncusDriver()
    let size = 1
    const pool = poolOf(driver, { size: () => size })
    await pool.connected()
    await vi.waitFor(() => {
      expect(pool.status().ready).toBe(1)
    }, WAIT)
    expect(pool.claim(spec('k2', { 'limits.read': '100MiB/s' }))).toEqual({
      reason: 'root disk settings differ',
    })
    // The pool now fills for the owner of that create: the old member is replaced.
    await vi.waitFor(() => {
      expect(pool.status().ready).toBe(1)
      expect(driver.instances.size).toBe(1)
      expect([...driver.instances.values()][0]?.config[LABEL.pool]).toBe('k2')
    }, WAIT)
    size = 0
    expect(pool.claim(spec('k2'))).toEqual({ reason: 'pool disabled' })
    pool.resize()
    await vi.waitFor(() => {
      expect(driver.instances.size).toBe(0)
    }, WAIT)
    await pool.dispose()
  })

  it('rebuilds every member when the image changes', async () => {
    const driver = new FakeIncusDriver()
    const pool = poolOf(driver)
    await pool.connected()
    await vi.waitFor(() => {
      expect(pool.status().ready).toBe(2)
    }, WAIT)
    const before = new Set(driver.instances.keys())
    pool.invalidate('test')
    await vi.waitFor(() => {
      expect(pool.status().ready).toBe(2)
      const now = [...driver.instances.keys()]
      expect(now).toHaveLength(2)
      expect(now.some((n) => before.has(n))).toBe(false)
    }, WAIT)
    await pool.dispose()
    expect(driver.instances.size).toBe(0)
  })

  it('deletes leftover pool containers of its prefix at connect, and nothing else', async () => {
    const driver = new FakeIncusDriver()
    driver.addInstance('clincus-warm-0123456789', {
      status: 'Frozen',
      config: { [LABEL.pool]: 'old' },
    })
    driver.addInstance('other-warm-0123456789', { status: 'Frozen', config: { [LABEL.pool]: 'x' } })
    // A claimed one (a session) and a stranger with the form but no label stay.
    driver.addInstance('clincus-warm-aaaaaaaaaa', {
      config: { [LABEL.managed]: 'true', [LABEL.slot]: '1' },
    })
    driver.addInstance('clincus-warm-bbbbbbbbbb', { status: 'Stopped' })
    const pool = poolOf(driver, { spec: null })
    await pool.connected()
    await vi.waitFor(() => {
      expect(driver.instances.has('clincus-warm-0123456789')).toBe(false)
    }, WAIT)
    expect([...driver.instances.keys()].sort()).toEqual([
      'clincus-warm-aaaaaaaaaa',
      'clincus-warm-bbbbbbbbbb',
      'other-warm-0123456789',
    ])
    await pool.dispose()
  })

  it('a failed fill deletes its container and backs off', async () => {
    const driver = new FakeIncusDriver()
    driver.failOn('init', 'Error: injected', { times: 1 })
    const pool = poolOf(driver, { size: () => 1 })
    await pool.connected()
    await vi.waitFor(() => {
      expect(driver.callsOf('delete')).toHaveLength(1)
    }, WAIT)
    expect(driver.instances.size).toBe(0)
    expect(pool.status()).toMatchObject({ ready: 0, creating: 0 })
    await pool.dispose()
  })
})

async function poolApp(
  size: number,
  configText = '',
): Promise<TestApp & { events: ServerEvent[] }> {
  const events: ServerEvent[] = []
  const t = await buildTestApp({
    deps: { warmPool: true, monitor: true },
    configText: `[pool]\nsize = 0\n`,
  })
  t.services.hub.subscribe((e) => events.push(e.event))
  // The pool fills for the owner of the first workspace root's folders (the project's).
  await writeFile(
    t.configFile,
    `[pool]\nsize = ${size}\nprimed = 0\n[dashboard]\nworkspace_roots = ["${t.root}"]\n${configText}`,
  )
  await t.services.config.reload()
  return { ...t, events }
}

async function create(t: TestApp, workspace = t.project): Promise<CreatedSession> {
  const res = await t.app.inject({ method: 'POST', url: '/api/sessions', ...json({ workspace }) })
  expect(res.statusCode, res.body).toBe(200)
  return res.json<CreatedSession>()
}

function ready(t: TestApp, n: number): Promise<void> {
  return vi.waitFor(() => {
    expect(t.services.poolStatus?.().ready).toBe(n)
  }, WAIT)
}

const sessionEvents = (events: ServerEvent[]): ServerEvent[] =>
  events.filter((e) => e.type.startsWith('session.'))

describe('warm creates through the app', () => {
  it('pool containers are never sessions: no list entry, no event, no history', async () => {
    const t = await poolApp(2)
    await ready(t, 2)
    // Their lifecycle events went through the monitor path (the fake emits them).
    expect(t.driver.callsOf('init')).toHaveLength(2)
    expect((await t.app.inject({ url: '/api/sessions' })).json()).toEqual([])
    expect(sessionEvents(t.events)).toEqual([])
    const health = (await t.app.inject({ url: '/api/health' })).json<{ pool: unknown }>()
    expect(health.pool).toEqual({
      size: 2,
      ready: 2,
      creating: 0,
      memory_bytes: 0,
      primed: { size: 0, ready: 0, creating: 0 },
    })
    expect((await t.app.inject({ url: '/api/sessions/history' })).json()).toEqual([])
    await t.app.close()
    // Shutdown deletes them (their deletions are no session's either).
    expect(t.driver.instances.size).toBe(0)
    expect(sessionEvents(t.events)).toEqual([])
  })

  it('a create claims a warm container and gets exactly what a cold one gets', async () => {
    const t = await poolApp(1, '[limits.memory]\nlimit = "1GiB"\n')
    await ready(t, 1)
    const warm = await create(t)
    expect(warm.path).toBe('warm')
    expect(warm.cold_reason).toBeUndefined()
    expect(isWarmName('clincus-', warm.id)).toBe(true)
    expect(warm.slot).toBe(1)
    expect(Object.keys(warm.timings)).toEqual([...WARM_LAUNCH_STEPS])
    const launching = t.events.filter((e) => e.type === 'session.launching' && e.id === warm.id)
    expect(launching.map((e) => (e as { step: string }).step)).toEqual([
      ...WARM_LAUNCH_STEPS,
      'done',
    ])
    // The refill comes after the create, then a second create of the workspace is warm too.
    await ready(t, 1)
    const list = (await t.app.inject({ url: '/api/sessions' })).json<Array<{ id: string }>>()
    expect(list.map((s) => s.id)).toEqual([warm.id])

    // A cold session of the same workspace, for comparison (the pool disabled).
    await writeFile(
      t.configFile,
      `[pool]\nsize = 0\nprimed = 0\n[dashboard]\nworkspace_roots = ["${t.root}"]\n[limits.memory]\nlimit = "1GiB"\n`,
    )
    await t.services.config.reload()
    const cold = await create(t)
    expect(cold).toMatchObject({ path: 'cold', cold_reason: 'pool disabled', slot: 2 })
    const w = t.driver.instances.get(warm.id)
    const c = t.driver.instances.get(cold.id)
    const strip = (cfg: Record<string, string>): Record<string, string> => {
      const out = { ...cfg }
      // The protection label differs only in the folders the first session made (`created`).
      const keys = [LABEL.created, LABEL.started, LABEL.sessionId, LABEL.slot, LABEL.ready]
      for (const k of [...keys, PROTECTION]) Reflect.deleteProperty(out, k)
      return out
    }
    expect(w?.config[LABEL.pool]).toBeUndefined()
    expect(w?.config[LABEL.slot]).toBe('1')
    expect(strip(w?.config ?? {})).toEqual(strip(c?.config ?? {}))
    expect(w?.config['limits.memory']).toBe('1GiB')
    // The same devices (the egress socket is named after the container).
    const devices = (name: string): string =>
      JSON.stringify(t.driver.instances.get(name)?.devices).replaceAll(name, 'NAME')
    expect(w?.devices?.['clincus-host']).toBeDefined()
    expect(devices(warm.id)).toBe(devices(cold.id))
    expect(w?.status).toBe('Running')
    // Same tmpfs, sudoers, tool config and tool start commands (by the container's name).
    const execs = (name: string): string[] =>
      t.driver
        .callsOf('exec')
        .filter((x) => x.args[0] === name)
        .map((x) =>
          JSON.stringify(x.args[1])
            .replaceAll(name, 'NAME')
            .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'UUID'),
        )
        .filter((x) => !x.includes('"true"'))
    expect(execs(warm.id)).toEqual(execs(cold.id))
    const ids = sessionEvents(t.events).map((e) => ('id' in e ? e.id : ''))
    expect(ids.every((id) => id === warm.id || id === cold.id)).toBe(true)
  })

  it('a second concurrent create never gets the same container', async () => {
    const t = await poolApp(1)
    await ready(t, 1)
    const [a, b] = await Promise.all([create(t), create(t)])
    expect(a.id).not.toBe(b.id)
    expect([a.path, b.path].sort()).toEqual(['cold', 'warm'])
    const coldOne = a.path === 'cold' ? a : b
    expect(coldOne.cold_reason).toBe('pool empty')
    expect([a.slot, b.slot].sort()).toEqual([1, 2])
  })

  it('another workspace owner still gets a warm container, with its own id mapping', async () => {
    const t = await poolApp(1)
    await ready(t, 1)
    const other = join(t.root, 'other')
    await mkdir(other)
    await chown(other, 1001, 1002)
    const s = await create(t, other)
    expect(s.path).toBe('warm')
    expect(t.driver.instances.get(s.id)?.config['raw.idmap']).toBe('uid 1001 1000\ngid 1002 1000')
  })

  it('a workspace whose root-disk limits differ takes the cold path and says why', async () => {
    const t = await poolApp(1)
    await ready(t, 1)
    await writeFile(join(t.project, '.clincus.toml'), '[limits.disk]\nread = "100MiB/s"\n')
    const s = await create(t)
    expect(s).toMatchObject({ path: 'cold', cold_reason: 'root disk settings differ' })
    const launching = t.events.filter((e) => e.type === 'session.launching' && e.id === s.id)
    expect(launching.at(-1)).toMatchObject({
      step: 'done',
      cold_reason: 'root disk settings differ',
    })
  })

  it('a failed warm launch deletes the claimed container and the create runs cold', async () => {
    const t = await poolApp(1)
    await ready(t, 1)
    const [member] = t.driver.instances.keys()
    t.driver.failOn('start', 'Error: injected start failure', {
      match: (args) => args[0] === member,
    })
    const s = await create(t)
    expect(s).toMatchObject({ path: 'cold', cold_reason: 'the warm container failed' })
    expect(member && t.driver.instances.has(member)).toBe(false)
    const failed = t.events.find(
      (e) => e.type === 'session.launching' && e.id === member && e.step === 'failed',
    )
    expect(failed).toMatchObject({ step: 'failed' })
    await ready(t, 1)
  })

  it('an image event through the monitor rebuilds the pool', async () => {
    const t = await poolApp(1)
    await ready(t, 1)
    const [before] = t.driver.instances.keys()
    t.driver.emit({ action: 'image-alias-updated', name: 'clincus' })
    await vi.waitFor(() => {
      const now = [...t.driver.instances.keys()]
      expect(now).toHaveLength(1)
      expect(now[0]).not.toBe(before)
      expect(t.services.poolStatus?.().ready).toBe(1)
    }, WAIT)
    expect(sessionEvents(t.events)).toEqual([])
  })
})

describe('slots of warm sessions', () => {
  it('count against their workspace by its label: the name carries no slot', async () => {
    const driver = new FakeIncusDriver()
    const ws = '/home/u/projects/app'
    const hash = workspaceHash(ws)
    driver.addInstance('clincus-warm-0123456789', {
      config: { [LABEL.managed]: 'true', [LABEL.workspace]: ws, [LABEL.slot]: '1' },
    })
    // A pool member (no slot label) and another workspace's warm session take none of them.
    driver.addInstance('clincus-warm-aaaaaaaaaa', { config: { [LABEL.pool]: 'k' } })
    driver.addInstance('clincus-warm-bbbbbbbbbb', {
      config: { [LABEL.managed]: 'true', [LABEL.workspace]: '/other', [LABEL.slot]: '2' },
    })
    driver.addInstance(`clincus-${hash}-2`)
    const slots = new SlotAllocator(driver, 'clincus-')
    expect(await slots.reserve(hash, new AbortController().signal)).toBe(3)
  })
})
