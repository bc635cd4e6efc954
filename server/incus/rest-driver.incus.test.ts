// Issue 16 scope 4: the REST driver keeps the driver contract. The same calls on the CLI driver
// and on the REST driver, each on its own container of the test image, give the same results and
// the same refusals (Incus' message); per-call costs of both are printed (not asserted: speed
// belongs to the bench).
import { randomBytes } from 'node:crypto'
import { afterAll, expect, it } from 'vitest'
import { findIncusSocket } from '../../incus/rest.ts'
import { describeIncus, removeInstances, TEST_IMAGE } from '../test/incus-harness.ts'
import { CliIncusDriver } from './cli-driver.ts'
import type { IncusDriver } from './driver.ts'
import { RestIncusDriver } from './rest-driver.ts'

const prefix = `rst${randomBytes(3).toString('hex')}-`

afterAll(async () => {
  await removeInstances(prefix)
}, 120_000)

/** What a call gave: its value, or the message of its refusal. */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p }
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) }
  }
}

/** The instance as the contract sees it: what may differ between two containers is taken out. */
function shape(inst: Awaited<ReturnType<IncusDriver['getInstance']>>) {
  if (!inst) return null
  const config = Object.fromEntries(
    Object.entries(inst.config).filter(([k]) => !k.startsWith('volatile.')),
  )
  return { status: inst.status, type: inst.type, config, devices: inst.devices }
}

type Timings = Record<string, number[]>

async function timed<T>(t: Timings, key: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now()
  try {
    return await fn()
  } finally {
    ;(t[key] ??= []).push(performance.now() - start)
  }
}

/** The driver contract as a script; every outcome is recorded in order. */
async function script(
  driver: CliIncusDriver | RestIncusDriver,
  name: string,
  t: Timings,
): Promise<unknown[]> {
  const out: unknown[] = []
  const rec = async (key: string, fn: () => Promise<unknown>): Promise<void> => {
    out.push([key, await outcome(timed(t, key, fn))])
  }
  await rec('imageExists', () => driver.imageExists(TEST_IMAGE))
  await rec('imageExists missing', () => driver.imageExists(`${prefix}none`))
  await rec('init', () =>
    driver.init(TEST_IMAGE, name, {
      config: { 'user.clincus.x': 'a b; c', 'boot.autostart': 'false' },
      rootDisk: { size: '3GiB' },
    }),
  )
  await rec('init missing image', () => driver.init(`${prefix}none`, `${name}-x`))
  await rec('init exists', () => driver.init(TEST_IMAGE, name))
  out.push(['getInstance', shape(await timed(t, 'getInstance', () => driver.getInstance(name)))])
  await rec('getInstance missing', () => driver.getInstance(`${prefix}none`))
  await rec('deviceAdd', () =>
    driver.deviceAdd(name, 'ws', { type: 'disk', source: '/tmp', path: '/workspace' }),
  )
  await rec('deviceAdd again', () =>
    driver.deviceAdd(name, 'ws', { type: 'disk', source: '/tmp', path: '/workspace' }),
  )
  await rec('deviceAdd ro', () =>
    driver.deviceAdd(name, 'ro', { type: 'disk', source: '/etc', path: '/ro', readonly: 'true' }),
  )
  await rec('deviceRemove', () => driver.deviceRemove(name, 'ro'))
  await rec('deviceRemove missing', () => driver.deviceRemove(name, 'ro'))
  await rec('configSet', () => driver.configSet(name, { 'user.a': '1', 'user.b': '2' }))
  await rec('configSet unset', () => driver.configSet(name, { 'user.a': '' }))
  await rec('configGet', () => driver.configGet(name, 'user.b'))
  await rec('configGet unset', () => driver.configGet(name, 'user.a'))
  await rec('configSet missing', () => driver.configSet(`${prefix}none`, { 'user.a': '1' }))
  await rec('start', () => driver.start(name))
  await rec('start again', () => driver.start(name))
  await rec('filePush', () =>
    driver.filePush(name, 'hello\n', '/tmp/pushed file', { uid: 1000, gid: 1000, mode: '0440' }),
  )
  await rec('pushed', async () => {
    const res = await driver.exec(name, ['stat', '-c', '%u %g %a', '/tmp/pushed file'])
    const body = await driver.exec(name, ['cat', '/tmp/pushed file'])
    return [res.stdout, body.stdout]
  })
  await rec('containerRoot', async () =>
    /^\/proc\/\d+\/root$/.test((await driver.containerRoot(name)) ?? ''),
  )
  for (let i = 0; i < 3; i++) {
    await rec('freeze', () => driver.freeze(name))
    await rec('unfreeze', () => driver.unfreeze(name))
  }
  await rec('freeze', () => driver.freeze(name))
  out.push(['frozen', (await driver.getInstance(name))?.status])
  await rec('start frozen', () => driver.start(name))
  out.push(['thawed', (await driver.getInstance(name))?.status])
  await rec('delete running', () => driver.delete(name))
  await rec('stop', () => driver.stop(name, { timeoutS: 10 }))
  await rec('stop stopped', () => driver.stop(name, { force: true }))
  await rec('start', () => driver.start(name))
  await rec('configSet running', () => driver.configSet(name, { 'user.c': '3' }))
  await rec('delete force', () => driver.delete(name, { force: true }))
  out.push(['gone', await driver.getInstance(name)])
  out.push(['listed', (await driver.listInstances()).some((i) => i.name === name)])
  return out
}

/** Messages that name the instance are compared with the name taken out. */
function anonymise(results: unknown[], name: string): unknown {
  return JSON.parse(JSON.stringify(results).replaceAll(name, '<name>')) as unknown
}

describeIncus('the REST driver against the CLI driver', () => {
  it('gives the same results and refusals for the same calls', async () => {
    const cli = new CliIncusDriver({ project: 'default', storagePool: () => '' })
    const rest = new RestIncusDriver({
      project: 'default',
      storagePool: () => '',
      socketPath: findIncusSocket(process.env),
    })
    const tc: Timings = {}
    const tr: Timings = {}
    const a = anonymise(await script(cli, `${prefix}cli`, tc), `${prefix}cli`)
    const b = anonymise(await script(rest, `${prefix}rest`, tr), `${prefix}rest`)
    expect(b).toEqual(a)
    // the outcomes are real ones, not two matching failures
    expect(a).toContainEqual(['configGet', { ok: '2' }])
    expect(a).toContainEqual(['pushed', { ok: ['1000 1000 440', 'hello'] }])
    expect(a).toContainEqual(['frozen', 'Frozen'])
    expect(a).toContainEqual(['gone', null])
    expect(await rest.serverVersion()).toBe(await cli.serverVersion())
    expect(await rest.rootPoolDriver()).toBe(await cli.rootPoolDriver())
    expect((await rest.listInstances()).map((i) => i.name).sort()).toEqual(
      (await cli.listInstances()).map((i) => i.name).sort(),
    )
    // a socket that cannot be reached: the same answers, through the CLI
    const fallback = new RestIncusDriver({
      project: 'default',
      storagePool: () => '',
      socketPath: `/nonexistent/${prefix}/unix.socket`,
    })
    expect(await fallback.serverVersion()).toBe(await cli.serverVersion())
    expect(await fallback.imageExists(TEST_IMAGE)).toBe(true)
    expect(await fallback.getInstance(`${prefix}none`)).toBeNull()
    // per-call costs (median ms), CLI vs REST: the figures of the report, not a timed assertion
    const median = (xs: number[] = []): number =>
      [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN
    const rows = Object.keys(tc).map(
      (k) =>
        `${k.padEnd(22)} cli ${median(tc[k]).toFixed(1).padStart(7)}  rest ${median(tr[k]).toFixed(1).padStart(7)}`,
    )
    // eslint-disable-next-line no-console -- the measured figures are this test's report
    console.log(`per-call cost, median ms\n${rows.join('\n')}`)
  }, 300_000)
})
