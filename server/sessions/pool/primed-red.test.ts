// Red team (session 7) against primed pool members: each test is an attack that broke (or held)
// before its fix. Fake driver, through the app, as primed-app.test.ts.
import { chown, mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ownByUser, WORKSPACE_OWNER } from '../../test/owner.ts'
import { LABEL } from '../registry.ts'
import {
  createSession as create,
  primedApp as makeApp,
  primedMembers as members,
  primedReady,
} from './primed.test-support.ts'

const primedApp = (extra = '') => makeApp({ extra })

describe('red team: primed members', () => {
  it('a workspace replaced at its path (protection disabled) is never served by the old member', async () => {
    const t = await primedApp(`[security]\ndisable_protection = true\n`)
    await create(t)
    await primedReady(t, 1)
    const [stale] = members(t)
    // The user (or anything that may rename in the parent) replaces the workspace: the member
    // still has the old directory mounted (Incus resolved the source when it started).
    await rename(t.project, `${t.project}-old`)
    await mkdir(t.project)
    await ownByUser(t.project)
    const s = await create(t)
    expect(s.id).not.toBe(stale)
    expect(s.path).toBe('cold')
    expect(s.cold_reason).toMatch(/primed container stale/)
  })

  it.each([
    ['tighter limits', '[limits.cpu]\ncount = "1"\n'],
    ['a narrower network', '[network]\nmode = "none"\n'],
  ])(
    'a .clincus.toml changed between the prime and the claim (%s) is never served by the member',
    async (_what, toml) => {
      const t = await primedApp()
      await create(t)
      await primedReady(t, 1)
      const [stale] = members(t)
      await writeFile(join(t.project, '.clincus.toml'), toml)
      await chown(join(t.project, '.clincus.toml'), WORKSPACE_OWNER.uid, WORKSPACE_OWNER.gid)
      const s = await create(t)
      expect(s.id).not.toBe(stale)
      expect(s.path).toBe('cold')
      expect(s.cold_reason).toMatch(/primed container stale: the (config|network settings) changed/)
    },
  )

  it('a mounted file replaced between the prime and the claim (a secret taken out of it) is never served by the member', async () => {
    const t = await primedApp()
    const npmrc = join(t.home, '.npmrc')
    await writeFile(npmrc, '//registry.example/:_authToken=SECRET\n')
    await chown(npmrc, WORKSPACE_OWNER.uid, WORKSPACE_OWNER.gid)
    await writeFile(
      t.configFile,
      `[pool]\nsize = 0\nprimed = 1\n[dashboard]\nworkspace_roots = ["${t.root}"]\n` +
        `[[mounts.default]]\nhost = "~/.npmrc"\ncontainer = "/home/code/.npmrc"\n`,
    )
    await t.services.config.reload()
    await create(t)
    await primedReady(t, 1)
    const [stale] = members(t)
    // The user takes the token out: written as editors and `npm config` do, a new file renamed
    // over the old one. The member's bind mount still holds the old file (and the token).
    const next = `${npmrc}.tmp`
    await writeFile(next, '# no token for agents\n')
    await chown(next, WORKSPACE_OWNER.uid, WORKSPACE_OWNER.gid)
    await rename(next, npmrc)
    const s = await create(t)
    expect(s.id).not.toBe(stale)
    expect(s.path).toBe('cold')
    expect(s.cold_reason).toMatch(/primed container stale: the config mounts changed/)
  })

  it('a create of another workspace never gets the member of this one', async () => {
    const t = await primedApp()
    await create(t)
    await primedReady(t, 1)
    const [member] = members(t)
    const other = `${t.root}/other`
    await mkdir(other)
    await ownByUser(other)
    const s = await create(t, other)
    expect(s.id).not.toBe(member)
    expect(s.path).toBe('cold')
    expect(t.driver.instances.get(member ?? '')?.config[LABEL.primedWorkspace]).not.toBe(other)
  })

  it('a workspace given to another owner since the prime is never served by the member', async () => {
    const t = await primedApp()
    await create(t)
    await primedReady(t, 1)
    const [member] = members(t)
    await chown(t.project, 1001, 1001)
    const s = await create(t)
    expect(s.id).not.toBe(member)
    expect(s.cold_reason).toMatch(/primed container stale: the workspace's owner changed/)
  })

  it('a member primed with agent_sudo (sudoers pushed) never serves a create once sudo is off', async () => {
    const t = await primedApp(`[security]\nagent_sudo = true\n`)
    await create(t)
    await primedReady(t, 1)
    const [member] = members(t)
    const pushed = t.driver
      .callsOf('filePush')
      .some((c) => c.args[0] === member && String(c.args[1]).includes('sudoers'))
    expect(pushed).toBe(true)
    await writeFile(
      t.configFile,
      `[pool]\nsize = 0\nprimed = 1\n[dashboard]\nworkspace_roots = ["${t.root}"]\n`,
    )
    await t.services.config.reload()
    const s = await create(t)
    expect(s.id).not.toBe(member)
    expect(s.warm).not.toBe('primed')
  })

  it('creates of many distinct workspaces never keep more members than [pool] primed', async () => {
    const t = await primedApp()
    await writeFile(
      t.configFile,
      `[pool]\nsize = 0\nprimed = 2\n[dashboard]\nworkspace_roots = ["${t.root}"]\n`,
    )
    await t.services.config.reload()
    let most = 0
    const count = (): void => {
      most = Math.max(most, members(t).length)
    }
    t.driver.gate = () => {
      count()
      return Promise.resolve()
    }
    for (let i = 0; i < 5; i++) {
      const ws = `${t.root}/ws${i}`
      await mkdir(ws)
      await ownByUser(ws)
      await create(t, ws)
      await primedReady(t, Math.min(i + 1, 2))
    }
    count()
    expect(most).toBeLessThanOrEqual(2)
    expect(members(t).map((n) => t.driver.instances.get(n)?.config[LABEL.primedWorkspace])).toEqual(
      expect.arrayContaining([`${t.root}/ws3`, `${t.root}/ws4`]),
    )
  })
})
