import { mkdir, rename, rm, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it, onTestFinished } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { waitUntil } from '../test/ws-client.ts'
import type { ConfigLocations } from './paths.ts'
import { ConfigWatcher, nearestExistingDir, watchedFiles } from './watcher.ts'

const log = pino({ level: 'silent' })

async function setup(root: string, debounceMs = 40) {
  const locations: ConfigLocations = {
    system: join(root, 'etc', 'clincus', 'config.toml'),
    user: join(root, 'home', '.config', 'clincus', 'config.toml'),
    extra: join(root, 'extra.toml'),
    writable: join(root, 'home', '.config', 'clincus', 'config.toml'),
  }
  let reloads = 0
  const store = {
    locations,
    reload: async () => {
      reloads++
      return true
    },
  }
  const watcher = new ConfigWatcher(store, log, { debounceMs })
  onTestFinished(() => watcher.close())
  await watcher.start()
  return { locations, watcher, reloads: () => reloads }
}

describe('watchedFiles / nearestExistingDir', () => {
  it('lists each file of the merge order once', () => {
    expect(
      watchedFiles({
        system: '/etc/c.toml',
        user: '/h/u.toml',
        extra: undefined,
        writable: '/h/u.toml',
      }),
    ).toEqual(['/etc/c.toml', '/h/u.toml'])
  })

  it('walks up to the closest directory that exists', async () => {
    const root = await tempDir()
    expect(await nearestExistingDir(join(root, 'a', 'b', 'c.toml'))).toBe(root)
  })
})

describe('ConfigWatcher', () => {
  it('reloads when a file appears in a directory that did not exist at start', async () => {
    const root = await tempDir()
    await mkdir(join(root, 'home'))
    const { locations, watcher, reloads } = await setup(root)
    expect(watcher.dirs).toContain(join(root, 'home'))
    await mkdir(join(root, 'home', '.config', 'clincus'), { recursive: true })
    await writeFile(locations.user, '[dashboard]\nport = 3001\n')
    await waitUntil('a reload', () => reloads() >= 1)
    await watcher.settled()
    expect(watcher.dirs).toContain(join(root, 'home', '.config', 'clincus'))
    // …and keeps watching it at its own level.
    const before = reloads()
    await writeFile(locations.user, '[dashboard]\nport = 3002\n')
    await waitUntil('another reload', () => reloads() > before)
  })

  it('sees an editor-style save: temp file renamed over the config', async () => {
    const root = await tempDir()
    const { locations, watcher, reloads } = await setup(root)
    const extra = locations.extra ?? ''
    await writeFile(extra, 'a = 1\n')
    await waitUntil('the first reload', () => reloads() === 1)
    await watcher.settled()
    const tmp = join(root, '.extra.toml.swp')
    await writeFile(tmp, 'a = 2\n')
    await rename(tmp, extra)
    await waitUntil('the reload after the rename', () => reloads() === 2)
    await watcher.settled()
    expect(reloads()).toBe(2)
  })

  it('debounces a burst of writes into one reload', async () => {
    const root = await tempDir()
    const { locations, watcher, reloads } = await setup(root, 150)
    const extra = locations.extra ?? ''
    for (let i = 0; i < 10; i++) await writeFile(extra, `a = ${i}\n`)
    await waitUntil('a reload', () => reloads() >= 1)
    await watcher.settled()
    expect(reloads()).toBe(1)
  })

  it('ignores events that leave the bytes unchanged, and other files in the directory', async () => {
    const root = await tempDir()
    const { locations, watcher, reloads } = await setup(root)
    const extra = locations.extra ?? ''
    await writeFile(extra, 'a = 1\n')
    await waitUntil('the first reload', () => reloads() === 1)
    await watcher.settled()
    const seen = watcher.changes
    await writeFile(join(root, 'unrelated.toml'), 'x = 1\n')
    const later = new Date(Date.now() + 5000)
    await utimes(extra, later, later)
    await waitUntil('the touch to be seen', () => watcher.changes > seen)
    await watcher.settled()
    expect(reloads()).toBe(1)
  })

  it('reloads when a config file is deleted (the defaults apply again)', async () => {
    const root = await tempDir()
    const { locations, watcher, reloads } = await setup(root)
    const extra = locations.extra ?? ''
    await writeFile(extra, 'a = 1\n')
    await waitUntil('the first reload', () => reloads() === 1)
    await watcher.settled()
    await rm(extra)
    await waitUntil('the reload after the delete', () => reloads() === 2)
  })

  it('stops on close', async () => {
    const root = await tempDir()
    const { locations, watcher, reloads } = await setup(root)
    await watcher.close()
    await writeFile(locations.extra ?? '', 'a = 1\n')
    await watcher.settled()
    expect(reloads()).toBe(0)
  })
})
