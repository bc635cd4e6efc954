import { lstat, mkdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { configLocations } from './paths.ts'
import { ConfigStore, type ConfigChange } from './store.ts'

async function storeWithLink(home: string, linkTarget: string) {
  const env = { CLINCUS_SYSTEM_CONFIG: join(home, 'none.toml') }
  const locations = configLocations(env, home)
  await mkdir(join(home, '.config', 'clincus'), { recursive: true })
  await symlink(linkTarget, locations.user)
  return { store: await ConfigStore.open(locations, env, home), link: locations.user }
}

describe('ConfigStore.updateDashboard with a symlinked config.toml (dotfiles managers)', () => {
  it('writes through the link to its target, atomically, keeping the mode and the link', async () => {
    const home = await tempDir()
    const real = join(home, 'dotfiles', 'clincus', 'config.toml')
    await mkdir(join(home, 'dotfiles', 'clincus'), { recursive: true })
    await writeFile(real, '# mine\n[dashboard]\nport = 3000\n', { mode: 0o640 })
    const { store, link } = await storeWithLink(home, '../../dotfiles/clincus/config.toml')
    const config = await store.updateDashboard({ port: 3111 })
    expect(config.dashboard.port).toBe(3111)
    expect((await lstat(link)).isSymbolicLink()).toBe(true)
    expect(await readlink(link)).toBe('../../dotfiles/clincus/config.toml')
    const text = await readFile(real, 'utf8')
    expect(text).toContain('# mine')
    expect(text).toContain('port = 3111')
    expect((await stat(real)).mode & 0o777).toBe(0o640)
  })

  it('follows a chain of links, and creates the target of a dangling one', async () => {
    const home = await tempDir()
    const real = join(home, 'store', 'clincus.toml')
    await mkdir(join(home, 'store'))
    await symlink(real, join(home, 'middle.toml'))
    const { store, link } = await storeWithLink(home, join(home, 'middle.toml'))
    await store.updateDashboard({ port: 3222 })
    expect((await lstat(link)).isSymbolicLink()).toBe(true)
    expect((await lstat(join(home, 'middle.toml'))).isSymbolicLink()).toBe(true)
    expect(await readFile(real, 'utf8')).toContain('port = 3222')
    expect(store.current.dashboard.port).toBe(3222)
  })
})

describe('ConfigStore.reload with a bad profile (issue 15)', () => {
  it('keeps the last good config and reports config.invalid naming the file and the key', async () => {
    const home = await tempDir()
    const env = { CLINCUS_SYSTEM_CONFIG: join(home, 'none.toml') }
    const locations = configLocations(env, home)
    await mkdir(join(home, '.config', 'clincus'), { recursive: true })
    await writeFile(locations.user, '[profiles.big]\npersistent = true\n')
    const store = await ConfigStore.open(locations, env, home)
    const changes: ConfigChange[] = []
    store.subscribe((c) => changes.push(c))
    await writeFile(locations.user, '[profiles.big.limits.memory]\nlimit = "lots"\n')
    expect(await store.reload()).toBe(false)
    expect(changes).toEqual([
      {
        type: 'invalid',
        file: locations.user,
        error: `${locations.user}: profiles.big.limits.memory.limit: expected a size like "2GiB", "512MiB" or "50%", got "lots"`,
      },
    ])
    expect(store.current.profiles.big).toEqual({ persistent: true })
  })
})
