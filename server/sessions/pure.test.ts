import { chown, lstat, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { LimitsSchema } from '../../shared/schemas/config.ts'
import { Value } from 'typebox/value'
import { encodeIndex } from '../test/git-index-fixture.ts'
import { tempDir } from '../test/helpers.ts'
import { instanceLimitConfig, parseDuration, rootDiskLimits, tmpfsSize } from './limits.ts'
import { containerName, parseContainerName, validPrefix, workspaceHash } from './naming.ts'
import {
  deviceName,
  insideWorkspace,
  parseCoreWorktree,
  parseGitfile,
  planProtection,
  removeCreatedDirs,
} from './protect.ts'
import { mergeSettings, TOOL_SPECS, toolWrapperArgv } from './tools.ts'
import { forbiddenReason } from './workspace-check.ts'

describe('naming', () => {
  it('hashes the real path and round-trips names', () => {
    const hash = workspaceHash('/home/u/proj')
    expect(hash).toMatch(/^[0-9a-f]{8}$/)
    const name = containerName('clincus-', hash, 3)
    expect(parseContainerName('clincus-', name)).toEqual({ hash, slot: 3 })
  })

  it.each([
    '../x',
    '--force',
    'c2',
    'clincus-ABCDEF12-1',
    'clincus-abcdef12-0',
    'clincus-abcdef12-11',
    'clincus-abcdef12-01',
    'clincus-abcdef12-1;rm',
    'other-abcdef12-1',
  ])('rejects %s', (name) => {
    expect(parseContainerName('clincus-', name)).toBeNull()
  })

  it('validates prefixes', () => {
    expect(validPrefix('clincus-')).toBe(true)
    expect(validPrefix('ct1a2b3c-')).toBe(true)
    expect(validPrefix('Bad')).toBe(false)
    expect(validPrefix('-x')).toBe(false)
    expect(validPrefix('a;b')).toBe(false)
  })
})

describe('limits', () => {
  const limits = (over: object) =>
    Value.Default(LimitsSchema, structuredClone(over)) as Parameters<typeof instanceLimitConfig>[0]

  it('caps processes and memory by default, and sizes the root disk only where the pool enforces it', () => {
    expect(instanceLimitConfig(limits({}))).toEqual({
      'limits.memory': '50%',
      'limits.memory.enforce': 'hard',
      'limits.processes': '4096',
    })
    for (const pool of ['btrfs', 'zfs', 'lvm', 'ceph'])
      expect(rootDiskLimits(limits({}), pool), pool).toEqual({ device: { size: '20GiB' } })
    expect(rootDiskLimits(limits({}), 'dir')).toEqual({
      device: {},
      sizeSkipped: "the 'dir' storage pool does not enforce a root-disk size",
    })
    expect(rootDiskLimits(limits({}), null).device).toEqual({})
    // explicit opt-outs
    expect(
      instanceLimitConfig(limits({ memory: { limit: '' }, runtime: { max_processes: 0 } })),
    ).toEqual({})
    expect(rootDiskLimits(limits({ disk: { size: '' } }), 'btrfs')).toEqual({ device: {} })
  })

  it('maps to real Incus keys; disk I/O goes to the root disk device', () => {
    const l = limits({
      cpu: { count: '2', allowance: '50%', priority: 5 },
      memory: { limit: '1GiB', enforce: 'hard', swap: 'false' },
      disk: { read: '10MiB/s', write: '5MiB/s', max: '100iops', priority: 3 },
      runtime: { max_processes: 100 },
    })
    expect(instanceLimitConfig(l)).toEqual({
      'limits.cpu': '2',
      'limits.cpu.allowance': '50%',
      'limits.cpu.priority': '5',
      'limits.memory': '1GiB',
      'limits.memory.enforce': 'hard',
      'limits.memory.swap': 'false',
      'limits.disk.priority': '3',
      'limits.processes': '100',
    })
    expect(rootDiskLimits(l, 'zfs').device).toEqual({
      'limits.read': '10MiB/s',
      'limits.write': '5MiB/s',
      'limits.max': '100iops',
      size: '20GiB',
    })
  })

  it('parses Go durations and tmpfs sizes', () => {
    expect(parseDuration('5s')).toBe(5000)
    expect(parseDuration('1h30m')).toBe(5_400_000)
    expect(parseDuration('1.5h')).toBe(5_400_000)
    expect(parseDuration('')).toBeNull()
    expect(parseDuration('5 s')).toBeNull()
    expect(parseDuration('forever')).toBeNull()
    expect(tmpfsSize('2GiB')).toBe('2G')
    expect(tmpfsSize('512MB')).toBe('512M')
  })
})

describe('tools', () => {
  it('builds the original argv for each tool', () => {
    expect(TOOL_SPECS.claude.start('id-1')).toEqual([
      'claude',
      '--verbose',
      '--permission-mode',
      'bypassPermissions',
      '--session-id',
      'id-1',
    ])
    expect(TOOL_SPECS.claude.resume('id-1')).toContain('--resume')
    expect(TOOL_SPECS.copilot.start('x')).toEqual(['copilot', '--allow-all-tools'])
    expect(TOOL_SPECS.opencode.start('x')).toEqual(['opencode'])
  })

  it('passes the tool argv as positional parameters, never inside the script', () => {
    const argv = toolWrapperArgv(['claude', '--session-id', "x'; rm -rf / #"])
    expect(argv.slice(0, 2)).toEqual(['bash', '-c'])
    expect(argv[2]).not.toContain('rm -rf')
    expect(argv.slice(3)).toEqual(['clincus-tool', 'claude', '--session-id', "x'; rm -rf / #"])
  })

  it('merges settings like dict.update one level deep', () => {
    expect(
      mergeSettings(
        { a: 1, env: { X: '1' }, permissions: { allow: ['x'] } },
        { env: { Y: '2' }, b: 2 },
      ),
    ).toEqual({ a: 1, b: 2, env: { X: '1', Y: '2' }, permissions: { allow: ['x'] } })
  })
})

describe('protected paths', () => {
  const owner = { uid: 1000, gid: 1000 }
  const plan = async (ws: string, paths: string[], writableHooks = false) => {
    await chown(ws, owner.uid, owner.gid)
    return planProtection(ws, '/workspace', { paths, owner, writableHooks })
  }

  it('names devices, parses gitfiles and core.worktree', () => {
    const taken = new Set<string>()
    expect(deviceName('protect', '.git/hooks', taken)).toBe('protect-git-hooks')
    expect(deviceName('protect', '.git/hooks', taken)).toBe('protect-git-hooks-2')
    expect(parseGitfile('gitdir: ../.git/modules/sub\n')).toBe('../.git/modules/sub')
    expect(parseCoreWorktree('[core]\n\tbare = false\n\tworktree = ../../../sub\n[x]\n')).toBe(
      '../../../sub',
    )
    expect(parseCoreWorktree('[remote "o"]\n\tworktree = /x\n')).toBeNull()
    expect(insideWorkspace('/w', '/w/.git/modules/a', '../../../a')).toBe('a')
    expect(insideWorkspace('/w', '/w', '/elsewhere/.git')).toBeNull()
  })

  it('protects .git whole (made when absent), creates absent paths, keeps their parents', async () => {
    const ws = await tempDir()
    await chown(ws, 1000, 1000)
    const p = await plan(ws, ['.git/hooks', '.husky', 'a/b/.vscode'])
    expect(p.devices.map((d) => [d.device, d.path, d.readonly])).toEqual([
      ['keep-a', '/workspace/a', false],
      ['protect-git', '/workspace/.git', true],
      ['protect-husky', '/workspace/.husky', true],
      ['keep-a-b', '/workspace/a/b', false],
      ['protect-a-b-vscode', '/workspace/a/b/.vscode', true],
    ])
    expect(p.created).toEqual(['.git', '.husky', 'a', 'a/b', 'a/b/.vscode'])
    expect((await lstat(join(ws, 'a/b/.vscode'))).uid).toBe(1000)
    await removeCreatedDirs(ws, p.created)
    expect(await readdir(ws)).toEqual([])
  })

  it('refuses symlinks anywhere in the chain, a symlinked .git and a gitfile pointing outside', async () => {
    const ws = await tempDir()
    await symlink('/etc', join(ws, '.vscode'))
    await expect(plan(ws, ['.vscode'])).rejects.toThrow(/\.vscode .*symlink/)
    await rm(join(ws, '.vscode'))
    await symlink('/etc', join(ws, 'a'))
    await expect(plan(ws, ['a/.vscode'])).rejects.toThrow(/a .*symlink/)
    await expect(plan(ws, ['../escape'])).rejects.toThrow(/relative/)
    await rm(join(ws, 'a'))
    await symlink('/tmp', join(ws, '.git'))
    await expect(plan(ws, [])).rejects.toMatchObject({ code: 'protected_path_symlink' })
    await rm(join(ws, '.git'))
    await writeFile(join(ws, '.git'), 'gitdir: /srv/elsewhere/.git\n')
    await expect(plan(ws, [])).rejects.toMatchObject({ code: 'gitfile_outside' })
    // nothing was left behind by the refusals
    expect((await readdir(ws)).sort()).toEqual(['.git'])
  })

  it('protects a gitfile inside and its gitdir, submodule and worktree gitfiles', async () => {
    const ws = await tempDir()
    await mkdir(join(ws, 'repo/.git/modules/sub'), { recursive: true })
    await writeFile(
      join(ws, 'repo/.git/modules/sub/config'),
      '[core]\n\tworktree = ../../../../sub\n',
    )
    await mkdir(join(ws, 'repo/.git/worktrees/wt'), { recursive: true })
    await writeFile(join(ws, 'repo/.git/worktrees/wt/gitdir'), `${ws}/trees/wt/.git\n`)
    await writeFile(join(ws, '.git'), 'gitdir: repo/.git\n')
    await mkdir(join(ws, 'sub'))
    await writeFile(join(ws, 'sub/.git'), 'gitdir: ../repo/.git/modules/sub\n')
    await mkdir(join(ws, 'trees/wt'), { recursive: true })
    await writeFile(join(ws, 'trees/wt/.git'), 'gitdir: ../../repo/.git/worktrees/wt\n')
    const p = await plan(ws, [])
    expect(p.devices.map((d) => [d.path, d.readonly]).sort()).toEqual(
      [
        ['/workspace/.git', true],
        ['/workspace/repo', false],
        ['/workspace/repo/.git', true],
        ['/workspace/sub', false],
        ['/workspace/sub/.git', true],
        ['/workspace/trees', false],
        ['/workspace/trees/wt', false],
        ['/workspace/trees/wt/.git', true],
      ].sort(),
    )
    expect(p.created).toEqual([])
  })

  it('makes a submodule that is not checked out read-only, so no .git can be planted in it', async () => {
    const ws = await tempDir()
    await mkdir(join(ws, '.git/modules/lib'), { recursive: true })
    await writeFile(join(ws, '.git/modules/lib/config'), '[core]\n\tworktree = ../../../lib\n')
    const p = await plan(ws, [])
    expect(p.devices.map((d) => [d.path, d.readonly])).toEqual([
      ['/workspace/.git', true],
      ['/workspace/lib', true],
    ])
    expect(p.created).toEqual(['lib'])
  })

  it('makes the folder of a registered, never-cloned submodule read-only (from the index)', async () => {
    const ws = await tempDir()
    await mkdir(join(ws, '.git/modules/done'), { recursive: true })
    await writeFile(join(ws, '.git/modules/done/config'), '[core]\n\tworktree = ../../../done\n')
    await mkdir(join(ws, 'done'))
    await writeFile(join(ws, 'done/.git'), 'gitdir: ../.git/modules/done\n')
    await mkdir(join(ws, 'empty'))
    const gitlink = (path: string) => ({ path, mode: 0o160000 })
    // a checked-out submodule's and a linked worktree's own indexes count, relative to their checkout
    await writeFile(join(ws, '.git/modules/done/index'), encodeIndex(3, [gitlink('inner')]))
    await mkdir(join(ws, '.git/worktrees/wt'), { recursive: true })
    await writeFile(join(ws, '.git/worktrees/wt/gitdir'), `${ws}/trees/wt/.git\n`)
    await writeFile(join(ws, '.git/worktrees/wt/index'), encodeIndex(2, [gitlink('lib')]))
    await mkdir(join(ws, 'trees/wt'), { recursive: true })
    await writeFile(join(ws, 'trees/wt/.git'), 'gitdir: ../../.git/worktrees/wt\n')
    await writeFile(
      join(ws, '.git/index'),
      encodeIndex(4, [
        gitlink('../escape'),
        gitlink('/etc'),
        gitlink('.git/hooks'),
        gitlink('done'),
        gitlink('empty'),
        { path: 'file', mode: 0o100644 },
        gitlink('vendor/deep/lib'),
      ]),
    )
    const p = await plan(ws, [])
    expect(p.devices.map((d) => [d.path, d.readonly]).sort()).toEqual(
      [
        ['/workspace/.git', true],
        ['/workspace/done', false],
        ['/workspace/done/.git', true],
        ['/workspace/done/inner', true],
        ['/workspace/empty', true],
        ['/workspace/trees', false],
        ['/workspace/trees/wt', false],
        ['/workspace/trees/wt/.git', true],
        ['/workspace/trees/wt/lib', true],
        ['/workspace/vendor', false],
        ['/workspace/vendor/deep', false],
        ['/workspace/vendor/deep/lib', true],
      ].sort(),
    )
    expect(p.created).toEqual([
      'vendor',
      'vendor/deep',
      'vendor/deep/lib',
      'done/inner',
      'trees/wt/lib',
    ])
    expect((await lstat(join(ws, 'vendor/deep/lib'))).uid).toBe(1000)
    await removeCreatedDirs(ws, p.created)
    expect((await readdir(ws)).sort()).toEqual(['.git', 'done', 'empty', 'trees'])
    // a hostile index is ignored, not a 500; a gitlink behind a symlink refuses the launch
    await writeFile(join(ws, '.git/index'), Buffer.from('DIRC\0\0\0\x02\xff\xff\xff\xff', 'latin1'))
    expect((await plan(ws, [])).devices.map((d) => d.path)).not.toContain('/workspace/empty')
    await symlink('/etc', join(ws, 'link'))
    await writeFile(join(ws, '.git/index'), encodeIndex(2, [gitlink('link/sub')]))
    await expect(plan(ws, [])).rejects.toMatchObject({ code: 'protected_path_symlink' })
  })

  it('writable_hooks opens .git/hooks on top of the read-only .git', async () => {
    const ws = await tempDir()
    await mkdir(join(ws, '.git'))
    const p = await plan(ws, [], true)
    expect(p.devices.map((d) => [d.device, d.readonly])).toEqual([
      ['protect-git', true],
      ['open-git-hooks', false],
    ])
  })
})

describe('forbidden workspaces', () => {
  it.each([
    ['/', true],
    ['/etc', true],
    ['/usr/local/src', true],
    ['/home', true],
    ['/home/u', true],
    ['/home/u/.ssh', true],
    ['/home/u/.ssh/keys', true],
    ['/home/u/.config/clincus', true],
    ['/home/u/projects/app', false],
    ['/srv/code/app', false],
    ['/tmp/x', false],
  ])('%s forbidden: %s', (path, forbidden) => {
    expect(forbiddenReason(path, '/home/u') !== null).toBe(forbidden)
  })
})
