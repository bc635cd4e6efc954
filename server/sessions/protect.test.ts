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

// Red team (a hostile repository, or an earlier session preparing a folder the user later opens):
// host git reads a gitfile as everything after "gitdir: " up to the trailing line ends, and
// resolves `..` after following links. clincus must protect the directory git will use, or
// refuse; before, it trimmed blanks, read only the first line and resolved `..` as text.
describe('a gitfile names the git directory exactly as host git reads it', () => {
  async function gitfilePlan(ws: string, text: string) {
    await mkdir(join(ws, 'meta', 'hooks'), { recursive: true })
    await writeFile(join(ws, '.git'), text)
    return plan(ws, false)
  }

  it('a trailing blank is part of the path: "meta " is protected, not "meta"', async () => {
    const ws = await tempDir()
    await mkdir(join(ws, 'meta '))
    expect(await gitfilePlan(ws, 'gitdir: meta \n')).toEqual([
      ['/workspace/.git', 'ro'],
      ['/workspace/meta ', 'ro'],
    ])
  })

  it('a second line is part of the path, never a gitdir of its own', async () => {
    const ws = await tempDir()
    await mkdir(join(ws, 'meta\n'))
    await mkdir(join(ws, 'a', 'x'), { recursive: true })
    await expect(gitfilePlan(ws, 'gitdir: meta\n/../a/x\n')).rejects.toMatchObject({
      status: 400,
    })
  })

  it('".." after a link is refused (git follows the link first; clincus used to drop it)', async () => {
    const ws = await tempDir()
    await mkdir(join(ws, 'a', 'b'), { recursive: true })
    await mkdir(join(ws, 'a', 'x'))
    await mkdir(join(ws, 'x'))
    await symlink('a/b', join(ws, 'l'))
    await expect(gitfilePlan(ws, 'gitdir: l/../x\n')).rejects.toMatchObject({ status: 400 })
  })

  it('a gitfile git would not read (no "gitdir: " at its start) is refused', async () => {
    const ws = await tempDir()
    await expect(gitfilePlan(ws, 'junk\ngitdir: meta\n')).rejects.toMatchObject({ status: 400 })
  })
})
