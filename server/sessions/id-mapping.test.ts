import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildTestApp, json } from '../test/helpers.ts'
import { chooseIdMapping, isIdmapUnsupported, rawIdmapHint, subIdAllows } from './id-mapping.ts'

const RAW_1000 = { 'raw.idmap': 'uid 1000 1000\ngid 1000 1000' }

describe('chooseIdMapping', () => {
  it.each([
    ['owner is the code user', false, 1000, 1000, true, 'shift'],
    ['disable_shift', true, 1000, 1000, true, 'raw.idmap'],
    ['no idmapped mounts on the filesystem', false, 1000, 1000, false, 'raw.idmap'],
    ['another owner', false, 1234, 1000, true, 'raw.idmap'],
    ['same uid, another group', false, 1000, 50, true, 'raw.idmap'],
    ['root-owned workspace', false, 0, 0, true, 'raw.idmap'],
  ] as const)('%s → %s', (_label, disableShift, uid, gid, idmappedMounts, method) => {
    const plan = chooseIdMapping({
      disableShift,
      owner: { uid, gid },
      codeUid: 1000,
      idmappedMounts,
    })
    expect(plan.method).toBe(method)
    if (method === 'shift') {
      expect(plan).toEqual({ method, config: {}, disk: { shift: 'true' } })
    } else {
      expect(plan.config).toEqual({ 'raw.idmap': `uid ${uid} 1000\ngid ${gid} 1000` })
      expect(plan.disk).toEqual({})
    }
  })

  it('recognises Incus refusing an idmapped mount', () => {
    expect(
      isIdmapUnsupported(
        'Error: Failed to setup device mount "workspace": idmapping abilities are required but aren\'t supported on system',
      ),
    ).toBe(true)
    expect(isIdmapUnsupported('Error: Instance not found')).toBe(false)
  })

  it('checks root sub-id ranges for raw.idmap, and names the missing lines', async () => {
    expect(subIdAllows('root:1000000:1000000000\n', 0)).toBe(true)
    expect(subIdAllows('root:1000000:1000000000\n', 1000)).toBe(false)
    expect(subIdAllows('root:1000000:1000000000\nroot:1000:1\n', 1000)).toBe(true)
    expect(subIdAllows('me:1000:1\n', 1000)).toBe(false)
    const dir = await mkdtemp(join(tmpdir(), 'clincus-subid-'))
    try {
      await writeFile(join(dir, 'u'), 'root:1000000:1000000000\nroot:1000:1\n')
      await writeFile(join(dir, 'g'), 'root:1000000:1000000000\n')
      const files = { uid: join(dir, 'u'), gid: join(dir, 'g') }
      expect(await rawIdmapHint({ uid: 1000, gid: 1000 }, files)).toBe(
        ` (mapping the workspace owner with raw.idmap needs 'root:1000:1' to ${files.gid})`,
      )
      expect(await rawIdmapHint({ uid: 0, gid: 0 }, files)).toBe('')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('the id mapping of a created session', () => {
  async function created(configText?: string) {
    const t = await buildTestApp()
    if (configText) {
      await writeFile(t.configFile, `${configText}\n[dashboard]\nworkspace_roots = ["${t.root}"]\n`)
      await t.services.config.reload()
    }
    await chown(t.project, 1000, 1000)
    return t
  }

  it('disable_shift maps the owner to the code user with raw.idmap (not left to nobody)', async () => {
    const t = await created('[incus]\ndisable_shift = true\n')
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json()).toMatchObject({ id_mapping: 'raw.idmap' })
    const inst = t.driver.instances.get(res.json<{ id: string }>().id)
    expect(inst?.config).toMatchObject(RAW_1000)
    expect(inst?.devices?.workspace?.shift).toBeUndefined()
    const listed = (await t.app.inject({ url: '/api/sessions' })).json<
      Array<{ id_mapping: string }>
    >()
    expect(listed[0]?.id_mapping).toBe('raw.idmap')
  })

  it('falls back to raw.idmap when Incus refuses the idmapped mount, and remembers the filesystem', async () => {
    const t = await created()
    t.driver.failOn(
      'start',
      'Error: Failed to setup device mount "workspace": idmapping abilities are required but aren\'t supported on system',
    )
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json()).toMatchObject({ id_mapping: 'raw.idmap', status: 'running' })
    const inst = t.driver.instances.get(res.json<{ id: string }>().id)
    expect(inst?.config).toMatchObject(RAW_1000)
    for (const dev of Object.values(inst?.devices ?? {})) expect(dev.shift).toBeUndefined()
    expect(t.driver.callsOf('start')).toHaveLength(2)

    // the next session on the same filesystem starts with raw.idmap straight away
    const next = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(next.json()).toMatchObject({ id_mapping: 'raw.idmap' })
    expect(t.driver.callsOf('start')).toHaveLength(3)
  })

  it('names the missing sub-id line when a raw.idmap start fails', async () => {
    const t = await created()
    await chown(t.project, 1234, 1234)
    t.driver.failOn(
      'start',
      'Error: Failed to run: /usr/libexec/incus/incusd forkstart x: exit status 1\nTry `incus info --show-log x` for more info\n',
    )
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode).toBe(502)
    expect(res.json<{ error: string }>().error).toMatch(
      /^starting the container failed: Failed to run: .*exit status 1 \(mapping the workspace owner with raw\.idmap needs 'root:1234:1' to \/etc\/subuid/,
    )
    expect(t.driver.instances.size).toBe(0)
  })

  it('uses an idmapped mount when the owner is the code user', async () => {
    const t = await created()
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.json()).toMatchObject({ id_mapping: 'shift' })
  })
})
