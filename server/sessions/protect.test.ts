// git.writable_hooks (issue 15): the one opening in the read-only git metadata, only on opt-in.
import { chown, mkdir, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { planProtection } from './protect.ts'

const owner = { uid: 1000, gid: 1000 }
async function plan(ws: string, writableHooks: boolean) {
  await chown(ws, owner.uid, owner.gid)
  const p = await planProtection(ws, '/workspace', { paths: ['.git'], owner, writableHooks })
  return p.devices.map((d) => [d.path, d.readonly ? 'ro' : 'rw'])
}

describe('git.writable_hooks', () => {
  it('off (the default): the hooks stay inside the read-only .git', async () => {
    const ws = await tempDir()
    await mkdir(join(ws, '.git', 'hooks'), { recursive: true })
    expect(await plan(ws, false)).toEqual([['/workspace/.git', 'ro']])
  })

  it('on: .git/hooks is mounted read-write over the read-only .git', async () => {
    const ws = await tempDir()
    await mkdir(join(ws, '.git', 'hooks'), { recursive: true })
    expect(await plan(ws, true)).toEqual([
      ['/workspace/.git', 'ro'],
      ['/workspace/.git/hooks', 'rw'],
    ])
  })

  it('on, without a .git: the empty .git and its hooks folder are made (owned by the owner)', async () => {
    const ws = await tempDir()
    expect(await plan(ws, true)).toEqual([
      ['/workspace/.git', 'ro'],
      ['/workspace/.git/hooks', 'rw'],
    ])
    expect((await stat(join(ws, '.git', 'hooks'))).uid).toBe(owner.uid)
  })

  it('on, with a gitfile: the hooks of the git directory it names (inside the workspace)', async () => {
    const ws = await tempDir()
    await mkdir(join(ws, 'meta', 'hooks'), { recursive: true })
    await writeFile(join(ws, '.git'), 'gitdir: meta\n')
    expect(await plan(ws, true)).toEqual([
      ['/workspace/.git', 'ro'],
      ['/workspace/meta', 'ro'],
      ['/workspace/meta/hooks', 'rw'],
    ])
  })

  it('on, with .git/hooks a symlink: refused, never followed', async () => {
    const ws = await tempDir()
    await mkdir(join(ws, '.git'))
    await symlink('/etc', join(ws, '.git', 'hooks'))
    await expect(plan(ws, true)).rejects.toMatchObject({ code: 'protected_path_symlink' })
  })
})
