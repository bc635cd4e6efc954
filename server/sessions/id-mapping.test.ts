import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildTestApp, json } from '../test/helpers.ts'
import { chooseIdMapping, rawIdmapHint, refuseRootOwner } from './id-mapping.ts'

const RAW_1000 = { 'raw.idmap': 'uid 1000 1000\ngid 1000 1000' }

describe('chooseIdMapping', () => {
  it.each([
    [1000, 1000],
    [1234, 50],
  ])('maps exactly the owner %i:%i onto the code user, nothing shifted', (uid, gid) => {
    expect(chooseIdMapping({ uid, gid }, 1000)).toEqual({
      method: 'raw.idmap',
      config: { 'raw.idmap': `uid ${uid} 1000\ngid ${gid} 1000` },
    })
  })

  it('refuses folders owned by the root user or group, naming the fix', () => {
    expect(() => {
      refuseRootOwner('the workspace', '/w', { uid: 0, gid: 0 })
    }).toThrow(/owned by the root user.*chown -R <you>:<your group> \/w/)
    expect(() => {
      refuseRootOwner('the workspace', '/w', { uid: 1000, gid: 0 })
    }).toThrow(/root group/)
    expect(() => {
      refuseRootOwner('the workspace', '/w', { uid: 1000, gid: 1000 })
    }).not.toThrow()
  })

  it('names the missing sub-id lines for raw.idmap', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clincus-subid-'))
    try {
      await writeFile(join(dir, 'u'), 'root:1000000:1000000000\nroot:1000:1\n')
      await writeFile(join(dir, 'g'), 'root:1000000:1000000000\n')
      const files = { uid: join(dir, 'u'), gid: join(dir, 'g') }
      expect(await rawIdmapHint({ uid: 1000, gid: 1000 }, files)).toMatch(
        ` (mapping the workspace owner with raw.idmap needs 'root:1000:1' to ${files.gid}, then a restart of incusd`,
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

  it('maps the owner with raw.idmap, never shifts a disk, turns the guest API off', async () => {
    const t = await created('[incus]\ndisable_shift = false\n')
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json()).toMatchObject({ id_mapping: 'raw.idmap' })
    const inst = t.driver.instances.get(res.json<{ id: string }>().id)
    expect(inst?.config).toMatchObject({
      ...RAW_1000,
      'security.guestapi': 'false',
      'security.idmap.isolated': 'true',
    })
    for (const dev of Object.values(inst?.devices ?? {})) expect(dev.shift).toBeUndefined()
  })

  it('does not resume a session made with shifted mounts before issue 11', async () => {
    const t = await created()
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    const id = res.json<{ id: string }>().id
    const stopped = await t.app.inject({ method: 'DELETE', url: `/api/sessions/${id}` })
    expect(stopped.statusCode).toBeLessThan(300)
    const ws = t.driver.instances.get(id)?.devices?.workspace
    if (ws) ws.shift = 'true'
    const resumed = await t.app.inject({ method: 'POST', url: `/api/sessions/${id}/resume` })
    expect(resumed.statusCode).toBe(409)
    expect(resumed.json()).toMatchObject({ code: 'legacy_session' })
    expect(t.driver.callsOf('start')).toHaveLength(1)
  })

  it('refuses a workspace owned by root with the fix, creating nothing', async () => {
    const t = await created()
    await chown(t.project, 0, 0)
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ code: 'root_owned_folder' })
    expect(res.json<{ error: string }>().error).toContain(
      `chown -R <you>:<your group> ${t.project}`,
    )
    expect(t.driver.callsOf('init')).toHaveLength(0)
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
})
