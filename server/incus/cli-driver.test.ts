import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { IncusCommandError } from '../errors.ts'
import { tempDir } from '../test/helpers.ts'
import { CliIncusDriver } from './cli-driver.ts'

const STUB = join(import.meta.dirname, '..', 'test', 'fixtures', 'bin', 'incus')

interface Reply {
  match: string
  stdout?: string
  stderr?: string
  code?: number
  sleepMs?: number
}

async function stub(replies: Reply[] = [], project = 'default') {
  const dir = await tempDir()
  const log = join(dir, 'argv.log')
  const file = join(dir, 'replies.json')
  await writeFile(file, JSON.stringify(replies))
  const driver = new CliIncusDriver({
    project,
    binary: STUB,
    env: { INCUS_STUB_LOG: log, INCUS_STUB_REPLIES: file },
  })
  const argvs = async (): Promise<string[][]> =>
    (await readFile(log, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string[])
  return { driver, argvs }
}

/**
 * Every driver call here runs the stub `incus`, a Node script: a Node start per call, up to nine
 * in sequence per test. At load 12 on two cores one test took 4.9 s, at vitest's default 5 s;
 * the limit measured the machine, not the driver (its own timeouts are tested below).
 */
const STUB_TEST_TIMEOUT = 60_000

describe('CliIncusDriver argv contract', { timeout: STUB_TEST_TIMEOUT }, () => {
  it('builds argv arrays with the project for every mutating call', async () => {
    const { driver, argvs } = await stub([], 'work')
    await driver.init('clincus', 'clincus-aaaaaaaa-1', {
      config: { 'user.clincus.managed': 'true', 'limits.cpu': '2' },
      rootDisk: { 'limits.read': '10MiB/s' },
    })
    await driver.deviceAdd('clincus-aaaaaaaa-1', 'workspace', {
      type: 'disk',
      source: '/home/u/my project',
      path: '/workspace',
      shift: 'true',
    })
    await driver.configSet('clincus-aaaaaaaa-1', { 'user.x': 'a b; rm -rf /' })
    await driver.start('clincus-aaaaaaaa-1')
    await driver.stop('clincus-aaaaaaaa-1', { timeoutS: 5 })
    await driver.stop('clincus-aaaaaaaa-1', { force: true })
    await driver.freeze('clincus-aaaaaaaa-1')
    await driver.unfreeze('clincus-aaaaaaaa-1')
    await driver.delete('clincus-aaaaaaaa-1', { force: true })
    expect(await argvs()).toEqual([
      [
        '--project',
        'work',
        'init',
        '--config',
        'user.clincus.managed=true',
        '--config',
        'limits.cpu=2',
        '--device',
        'root,limits.read=10MiB/s',
        '--',
        'clincus',
        'clincus-aaaaaaaa-1',
      ],
      [
        '--project',
        'work',
        'config',
        'device',
        'add',
        '--',
        'clincus-aaaaaaaa-1',
        'workspace',
        'disk',
        'source=/home/u/my project',
        'path=/workspace',
        'shift=true',
      ],
      ['--project', 'work', 'config', 'set', '--', 'clincus-aaaaaaaa-1', 'user.x=a b; rm -rf /'],
      ['--project', 'work', 'start', '--', 'clincus-aaaaaaaa-1'],
      ['--project', 'work', 'stop', '--timeout', '5', '--', 'clincus-aaaaaaaa-1'],
      ['--project', 'work', 'stop', '--force', '--', 'clincus-aaaaaaaa-1'],
      ['--project', 'work', 'pause', '--', 'clincus-aaaaaaaa-1'],
      ['--project', 'work', 'resume', '--', 'clincus-aaaaaaaa-1'],
      ['--project', 'work', 'delete', '--force', '--', 'clincus-aaaaaaaa-1'],
    ])
  })

  it('ends options with -- before every user value, so "--help" or "--vm" is never a flag', async () => {
    const { driver, argvs } = await stub()
    await driver.init('--vm', '-c1', {
      config: { 'user.a': '-x' },
      rootDisk: { 'limits.read': '1MiB/s' },
    })
    await driver.deviceAdd('-c1', '--dev', { type: 'disk', source: '-s', path: '/p' })
    await driver.deviceRemove('-c1', '--dev')
    await driver.configSet('-c1', { '--k': '-v' })
    await driver.configGet('-c1', '--k')
    await driver.start('-c1')
    await driver.stop('-c1', { force: true })
    await driver.delete('-c1', { force: true })
    await driver.filePush('-c1', 'x', '/tmp/-f', { uid: 1, gid: 1, mode: '0600' })
    const all = await argvs()
    expect(all).toHaveLength(9)
    for (const argv of all) {
      const end = argv.indexOf('--')
      expect(end, argv.join(' ')).toBeGreaterThan(0)
      // everything before -- is ours: the project, the verb and our own flags with their values
      const flags = argv.slice(0, end).filter((a) => a.startsWith('-'))
      expect(flags.every((f) => /^--(project|config|device|force|uid|gid|mode)$/.test(f))).toBe(
        true,
      )
    }
    expect(all[0]).toEqual([
      '--project',
      'default',
      'init',
      '--config',
      'user.a=-x',
      '--device',
      'root,limits.read=1MiB/s',
      '--',
      '--vm',
      '-c1',
    ])
  })

  it('an exec printing more than maxOutputBytes is killed and throws', async () => {
    const { driver } = await stub([{ match: 'exec', stdout: 'x'.repeat(256 * 1024) }])
    await expect(driver.exec('c1', ['cat'], { maxOutputBytes: 1024 })).rejects.toBeInstanceOf(
      IncusCommandError,
    )
    expect((await driver.exec('c1', ['cat'])).stdout).toHaveLength(256 * 1024)
  })

  it('execs with user, group, cwd and env, never through a shell', async () => {
    const { driver, argvs } = await stub([{ match: 'exec', stdout: 'out', stderr: 'err', code: 3 }])
    const res = await driver.exec('c1', ['echo', '$(id)'], {
      user: 1000,
      group: 1000,
      cwd: '/workspace',
      env: { HOME: '/home/code' },
    })
    expect(res).toEqual({ stdout: 'out', stderr: 'err', exitCode: 3 })
    expect(await argvs()).toEqual([
      [
        '--project',
        'default',
        'exec',
        'c1',
        '--force-noninteractive',
        '--user',
        '1000',
        '--group',
        '1000',
        '--cwd',
        '/workspace',
        '--env',
        'HOME=/home/code',
        '--',
        'echo',
        '$(id)',
      ],
    ])
  })

  it('lists instances through a cheap query and parses them against the schema', async () => {
    const list = [
      {
        name: 'c1',
        status: 'Running',
        config: { 'user.clincus.managed': 'true' },
        devices: {},
        extra_field: 1,
      },
    ]
    const { driver, argvs } = await stub([
      { match: 'query /1.0/instances?', stdout: JSON.stringify(list) },
    ])
    expect(await driver.listInstances()).toEqual(list)
    expect((await argvs())[0]).toEqual(['query', '/1.0/instances?recursion=1&project=default'])
  })

  it('rejects unexpected JSON from incus instead of trusting it', async () => {
    const { driver } = await stub([{ match: 'query', stdout: JSON.stringify([{ nom: 'x' }]) }])
    await expect(driver.listInstances()).rejects.toBeInstanceOf(IncusCommandError)
  })

  it('keeps incus stderr in the error and shows its reason', async () => {
    const { driver } = await stub([
      {
        match: 'start',
        stderr: 'Error: Failed to run: some detail\nError: Instance is busy\n',
        code: 1,
      },
    ])
    const err = await driver.start('c1').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(IncusCommandError)
    const e = err as IncusCommandError
    expect(e.message).toBe('Instance is busy')
    expect(e.stderr).toContain('some detail')
    expect(e.exitCode).toBe(1)
    expect(e.argv).toEqual(['--project', 'default', 'start', '--', 'c1'])
  })

  it('maps "not found" to null for getInstance and false for imageExists', async () => {
    const { driver } = await stub([
      { match: 'query', stderr: 'Error: Instance not found\n', code: 1 },
    ])
    expect(await driver.getInstance('c1')).toBeNull()
    expect(await driver.imageExists('clincus')).toBe(false)
  })

  it('times out and honours an abort signal', async () => {
    const { driver } = await stub([{ match: 'start', sleepMs: 10_000 }])
    const timed = await driver.start('c1', { timeoutMs: 200 }).catch((e: unknown) => e)
    expect(timed).toBeInstanceOf(IncusCommandError)
    expect((timed as IncusCommandError).timedOut).toBe(true)
    const ctl = new AbortController()
    const p = driver.start('c1', { signal: ctl.signal }).catch((e: unknown) => e)
    ctl.abort()
    const aborted = await p
    expect(aborted).toBeInstanceOf(IncusCommandError)
    expect((aborted as IncusCommandError).message).toContain('cancelled')
  })

  it('parses lifecycle events from incus monitor', async () => {
    const events = [
      {
        type: 'lifecycle',
        timestamp: '2026-01-01T00:00:00Z',
        project: 'default',
        metadata: { action: 'instance-started', source: '/1.0/instances/c1' },
      },
      {
        type: 'lifecycle',
        project: 'default',
        metadata: { action: 'instance-stopped', name: 'c2' },
      },
    ]
    const { driver, argvs } = await stub([
      {
        match: 'monitor',
        stdout: events.map((e) => JSON.stringify(e) + '\n\n').join('') + 'garbage\n',
      },
    ])
    const ctl = new AbortController()
    const got = []
    for await (const e of driver.monitor(ctl.signal)) got.push(e)
    expect(got).toEqual([
      {
        action: 'instance-started',
        name: 'c1',
        project: 'default',
        timestamp: '2026-01-01T00:00:00Z',
      },
      expect.objectContaining({ action: 'instance-stopped', name: 'c2' }),
    ])
    expect((await argvs())[0]).toEqual([
      '--project',
      'default',
      'monitor',
      '--type=lifecycle',
      '--format=json',
    ])
  })
})
