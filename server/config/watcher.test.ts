import { mkdir, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it, onTestFinished } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { fifo } from './fifo-fixture.ts'
import { fingerprint } from './fingerprint.ts'
import { waitUntil } from '../test/ws-client.ts'
import { configLocations, type ConfigLocations } from './paths.ts'
import { ConfigStore, type ConfigChange } from './store.ts'
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
  // A stand-in for the store: reloads when the bytes differ from those of its last load.
  let last = await fingerprint(watchedFiles(locations))
  const store = {
    locations,
    reloadIfChanged: async () => {
      const now = await fingerprint(watchedFiles(locations))
      if (now === last) return null
      last = now
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

  it("a write right after a reload is not lost in chokidar's drop window for repeated events", async () => {
    // chokidar drops a second change of a path within 50 ms of the first; a reload that read the
    // file inside that window must look again after it.
    const root = await tempDir()
    const { locations, watcher, reloads } = await setup(root, 5)
    const extra = locations.extra ?? ''
    await writeFile(extra, 'a = 1\n')
    await waitUntil('the first reload', () => reloads() === 1)
    await watcher.settled()
    for (let i = 2; i <= 4; i++) {
      await writeFile(extra, `a = ${String(i)}\n`)
      await waitUntil(`reload ${String(i)}`, () => reloads() === i, { intervalMs: 1 })
      // …and at once the next write, inside the window opened by the change just reported.
    }
    await watcher.settled()
    expect(reloads()).toBe(4)
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

describe('ConfigWatcher re-arms when the config directory moves, goes, comes back or is swapped', () => {
  /** A real store over ~/.config/clincus/config.toml, and the changes it reports, in order. */
  async function real(root: string) {
    const home = join(root, 'home')
    const dir = join(home, '.config', 'clincus')
    await mkdir(dir, { recursive: true })
    const env = { CLINCUS_SYSTEM_CONFIG: join(root, 'none.toml') }
    const store = await ConfigStore.open(configLocations(env, home), env, home)
    const seen: ConfigChange[] = []
    store.subscribe((c) => seen.push(c))
    const watcher = new ConfigWatcher(store, log, { debounceMs: 20 })
    onTestFinished(() => watcher.close())
    await watcher.start()
    /** Resolves with the port of the next config.reloaded (or 'invalid'). */
    const next = async (): Promise<number | 'invalid'> => {
      const index = seen.length
      await waitUntil('the next config change', () => seen.length > index)
      const change = seen[index]
      return change?.type === 'reloaded' ? change.current.dashboard.port : 'invalid'
    }
    const port = (p: number) => `[dashboard]\nport = ${p}\n`
    return { dir, file: join(dir, 'config.toml'), watcher, next, port, home }
  }

  it('the directory moved away and back', async () => {
    const root = await tempDir()
    const r = await real(root)
    await writeFile(r.file, r.port(3001))
    expect(await r.next()).toBe(3001)
    await rename(r.dir, `${r.dir}.moved`)
    expect(await r.next()).toBe(3000) // the defaults apply again
    await writeFile(join(`${r.dir}.moved`, 'config.toml'), r.port(3002))
    await rename(`${r.dir}.moved`, r.dir)
    expect(await r.next()).toBe(3002)
    await writeFile(r.file, r.port(3003))
    expect(await r.next()).toBe(3003)
  })

  it('the directory deleted and re-created, the file coming back broken then fixed', async () => {
    const root = await tempDir()
    const r = await real(root)
    await writeFile(r.file, r.port(3011))
    expect(await r.next()).toBe(3011)
    await rm(r.dir, { recursive: true })
    expect(await r.next()).toBe(3000)
    await mkdir(r.dir)
    await writeFile(r.file, '[dashboard\nport = ')
    expect(await r.next()).toBe('invalid')
    await writeFile(r.file, r.port(3012))
    expect(await r.next()).toBe(3012)
  })

  it('the directory deleted and made again at once (same path, another inode)', async () => {
    const root = await tempDir()
    const r = await real(root)
    await writeFile(r.file, r.port(3061))
    expect(await r.next()).toBe(3061)
    await rm(r.dir, { recursive: true })
    await mkdir(r.dir)
    await writeFile(r.file, r.port(3062))
    // whether the removal was seen on its own or not, the store ends on the new file
    await waitUntil('3062', async () => (await r.next()) === 3062)
    await r.watcher.settled()
    // the new directory is watched, not the deleted one
    await writeFile(r.file, r.port(3063))
    expect(await r.next()).toBe(3063)
  })

  it('the directory moved away and another put in its place at once', async () => {
    const root = await tempDir()
    const r = await real(root)
    await writeFile(r.file, r.port(3071))
    expect(await r.next()).toBe(3071)
    const other = join(root, 'other')
    await mkdir(other)
    await writeFile(join(other, 'config.toml'), r.port(3072))
    await rename(r.dir, `${r.dir}.old`)
    await rename(other, r.dir)
    await waitUntil('3072', async () => (await r.next()) === 3072)
    await r.watcher.settled()
    // edits of the old directory are not the config any more; the new one's are
    await writeFile(join(`${r.dir}.old`, 'config.toml'), r.port(3073))
    await writeFile(r.file, r.port(3074))
    expect(await r.next()).toBe(3074)
  })

  it('a directory symlink swapped to another target (dotfiles managers)', async () => {
    const root = await tempDir()
    const r = await real(root)
    const a = join(root, 'dots', 'a')
    const b = join(root, 'dots', 'b')
    await mkdir(a, { recursive: true })
    await mkdir(b, { recursive: true })
    await writeFile(join(a, 'config.toml'), r.port(3021))
    await writeFile(join(b, 'config.toml'), r.port(3022))
    await rm(r.dir, { recursive: true })
    await symlink(a, r.dir)
    // whatever the removal and the link produced first, the store ends on a's file
    await waitUntil('a', async () => (await r.next()) === 3021)
    await r.watcher.settled()
    // ln -sfn: a new link renamed over the old one
    await symlink(b, `${r.dir}.tmp`)
    await rename(`${r.dir}.tmp`, r.dir)
    expect(await r.next()).toBe(3022)
    await writeFile(join(a, 'config.toml'), r.port(3023))
    await writeFile(join(b, 'config.toml'), r.port(3024))
    expect(await r.next()).toBe(3024)
  })

  it('a config.toml that is a symlink: edits of its target, then the link re-pointed', async () => {
    const root = await tempDir()
    const r = await real(root)
    const dots = join(root, 'dotfiles')
    await mkdir(dots)
    await writeFile(join(dots, 'one.toml'), r.port(3031))
    await writeFile(join(dots, 'two.toml'), r.port(3041))
    await symlink(join(dots, 'one.toml'), r.file)
    expect(await r.next()).toBe(3031)
    await r.watcher.settled()
    await writeFile(join(dots, 'one.toml'), r.port(3032))
    expect(await r.next()).toBe(3032)
    await symlink(join(dots, 'two.toml'), `${r.file}.tmp`)
    await rename(`${r.file}.tmp`, r.file)
    expect(await r.next()).toBe(3041)
    await r.watcher.settled()
    await writeFile(join(dots, 'two.toml'), r.port(3042))
    expect(await r.next()).toBe(3042)
  })

  it('a config.toml linked into a dotfiles directory that is deleted and cloned again', async () => {
    const root = await tempDir()
    const r = await real(root)
    const dots = join(root, 'dotfiles')
    await mkdir(dots)
    await writeFile(join(dots, 'clincus.toml'), r.port(3081))
    await symlink(join(dots, 'clincus.toml'), r.file)
    expect(await r.next()).toBe(3081)
    await r.watcher.settled()
    await rm(dots, { recursive: true })
    expect(await r.next()).toBe(3000) // a dangling link: the defaults apply again
    await r.watcher.settled()
    await mkdir(dots)
    await writeFile(join(dots, 'clincus.toml'), r.port(3082))
    expect(await r.next()).toBe(3082)
    await r.watcher.settled()
    await writeFile(join(dots, 'clincus.toml'), r.port(3083))
    expect(await r.next()).toBe(3083)
  })

  it('a FIFO in place of config.toml is reported invalid at once, and the watcher goes on', async () => {
    const root = await tempDir()
    const r = await real(root)
    await writeFile(r.file, r.port(3051))
    expect(await r.next()).toBe(3051)
    await rm(r.file)
    fifo(r.file)
    // (the removal and the FIFO may be seen as one change or two)
    await waitUntil('invalid', async () => (await r.next()) === 'invalid')
    await r.watcher.settled()
    await rm(r.file)
    await writeFile(r.file, r.port(3052))
    expect(await r.next()).toBe(3052)
  })
})
