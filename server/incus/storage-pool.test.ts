// Issue 16: the driver puts sessions' root disks on the configured pool, else on the `clincus`
// copy-on-write pool when setup added one, else on the default profile's pool.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { CliIncusDriver } from './cli-driver.ts'

const STUB = join(import.meta.dirname, '..', 'test', 'fixtures', 'bin', 'incus')

async function stub(
  replies: Array<{ match: string; stdout?: string; stderr?: string; code?: number }>,
  storagePool?: () => string,
) {
  const dir = await tempDir()
  const log = join(dir, 'argv.log')
  const file = join(dir, 'replies.json')
  await writeFile(file, JSON.stringify(replies))
  const driver = new CliIncusDriver({
    project: 'default',
    binary: STUB,
    env: { INCUS_STUB_LOG: log, INCUS_STUB_REPLIES: file },
    ...(storagePool ? { storagePool } : {}),
  })
  const argvs = async (): Promise<string[][]> =>
    (await readFile(log, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string[])
  return { driver, argvs }
}

const initArgv = (argvs: string[][]): string[] | undefined => argvs.find((a) => a.includes('init'))

describe('the storage pool of sessions', () => {
  it('uses the clincus pool when it exists and nothing is configured', async () => {
    const { driver, argvs } = await stub(
      [{ match: 'storage-pools/clincus', stdout: '{"name":"clincus","driver":"btrfs"}' }],
      () => '',
    )
    expect(await driver.rootPoolDriver()).toBe('btrfs')
    await driver.init('clincus-test', 'ct-1', { rootDisk: { size: '20GiB' } })
    const init = initArgv(await argvs())
    expect(init).toContain('root,pool=clincus')
    expect(init).toContain('root,size=20GiB')
    // the answer is reused: one lookup of the pool's existence for both calls
    const lookups = (await argvs()).filter(
      (a) => a.join(' ') === 'query /1.0/storage-pools/clincus',
    )
    expect(lookups).toHaveLength(1)
  })

  it("falls back to the default profile's pool when there is no clincus pool", async () => {
    const { driver, argvs } = await stub(
      [
        {
          match: 'query /1.0/storage-pools/clincus',
          stderr: 'Error: Storage pool not found',
          code: 1,
        },
        {
          match: 'profiles/default',
          stdout:
            '{"name":"default","devices":{"root":{"type":"disk","path":"/","pool":"default"}}}',
        },
        { match: 'storage-pools/default', stdout: '{"name":"default","driver":"dir"}' },
      ],
      () => '',
    )
    expect(await driver.rootPoolDriver()).toBe('dir')
    await driver.init('clincus-test', 'ct-1')
    expect(initArgv(await argvs())).not.toContain('--device')
  })

  it('uses the configured pool, read at each use (hot reload), without looking for clincus', async () => {
    let configured = 'fast'
    const { driver, argvs } = await stub([], () => configured)
    await driver.init('clincus-test', 'ct-1')
    configured = 'other'
    await driver.init('clincus-test', 'ct-2')
    const inits = (await argvs()).filter((a) => a.includes('init'))
    expect(inits[0]).toContain('root,pool=fast')
    expect(inits[1]).toContain('root,pool=other')
    expect((await argvs()).some((a) => a.join(' ').includes('storage-pools/clincus'))).toBe(false)
  })

  it('gives every root-disk key its own --device flag (the CLI takes one key per flag)', async () => {
    const { driver, argvs } = await stub([], () => 'fast')
    await driver.init('clincus-test', 'ct-1', {
      rootDisk: { 'limits.read': '10MiB', 'limits.write': '5MiB', size: '20GiB' },
    })
    const init = initArgv(await argvs()) ?? []
    const devices = init.flatMap((a, i) => (init[i - 1] === '--device' ? [a] : []))
    expect(devices).toEqual([
      'root,pool=fast',
      'root,limits.read=10MiB',
      'root,limits.write=5MiB',
      'root,size=20GiB',
    ])
  })

  it('an explicit pool in the root disk wins; without the option the profile decides', async () => {
    const { driver, argvs } = await stub([], () => 'fast')
    await driver.init('clincus-test', 'ct-1', { rootDisk: { pool: 'mine' } })
    expect(initArgv(await argvs())).toContain('root,pool=mine')
    const plain = await stub([])
    await plain.driver.init('clincus-test', 'ct-2')
    expect(initArgv(await plain.argvs())).not.toContain('--device')
  })
})
