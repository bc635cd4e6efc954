// Issue 10 row 8: a workspace .clincus.toml can only make limits stricter, key by key.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { Limits } from '../../shared/schemas/config.ts'
import { tempDir } from '../test/helpers.ts'
import { configForWorkspace, loadConfig } from './load.ts'
import { ConfigError, defaultConfig, type Layer } from './merge.ts'
import { configLocations } from './paths.ts'
import { cpuCount, memoryBytes, tightenLimits, tmpfsBytes } from './tighten.ts'

const GiB = 2 ** 30
const HOST = 16 * GiB

/** The limits after user and workspace tables ({section: {key: value}}) are combined. */
function tighten(user: Layer, ws: Layer): Limits {
  const base = defaultConfig()
  const u = configWith(base, user)
  const w = configWith(base, ws)
  return tightenLimits(u, ws, w, { hostMemoryBytes: HOST })
}

function configWith(base: ReturnType<typeof defaultConfig>, layer: Layer): Limits {
  const out = structuredClone(base.limits) as unknown as Record<string, Record<string, unknown>>
  for (const [section, table] of Object.entries(layer))
    Object.assign(out[section] ?? {}, table as Record<string, unknown>)
  return out as unknown as Limits
}

/** [key, user value, workspace value, expected] for `section`. */
type Row = [string, unknown, unknown, unknown]

function table(section: string, rows: Row[]): void {
  describe(`[limits.${section}]`, () => {
    it.each(rows)('%s: user %j, workspace %j → %j', (key, user, ws, expected) => {
      const limits = tighten({ [section]: { [key]: user } }, { [section]: { [key]: ws } })
      expect((limits as unknown as Record<string, Record<string, unknown>>)[section]?.[key]).toBe(
        expected,
      )
    })
  })
}

table('memory', [
  ['limit', '4GiB', '2GiB', '2GiB'],
  ['limit', '2GiB', '4GiB', '2GiB'],
  ['limit', '2GiB', '', '2GiB'],
  ['limit', '', '1GiB', '1GiB'],
  // percentages are resolved against the host (16 GiB here)
  ['limit', '4GiB', '50%', '4GiB'],
  ['limit', '4GiB', '10%', '10%'],
  ['limit', '50%', '9GiB', '50%'],
  ['limit', '2GB', '2GiB', '2GB'],
  ['enforce', 'soft', 'hard', 'hard'],
  ['enforce', 'hard', 'soft', 'hard'],
  ['swap', 'true', 'false', 'false'],
  ['swap', 'false', 'true', 'false'],
])

table('cpu', [
  ['count', '4', '2', '2'],
  ['count', '2', '4', '2'],
  ['count', '2', '', '2'],
  ['count', '', '1', '1'],
  ['count', '4', '0-7', '4'],
  ['count', '4', '0,2', '0,2'],
  ['allowance', '50%', '20%', '20%'],
  ['allowance', '20%', '50%', '20%'],
  ['allowance', '50ms/100ms', '25ms/100ms', '25ms/100ms'],
  ['allowance', '25ms/100ms', '100ms/100ms', '25ms/100ms'],
  ['allowance', '25ms/100ms', '50%', '25ms/100ms'],
  ['allowance', '', '50%', '50%'],
  ['allowance', '50%', '', '50%'],
  ['priority', 5, 2, 2],
  ['priority', 2, 5, 2],
  ['priority', 0, 3, 3],
  ['priority', 3, 0, 3],
])

table('disk', [
  ['read', '100MiB/s', '10MiB/s', '10MiB/s'],
  ['read', '10MiB/s', '100MiB/s', '10MiB/s'],
  ['read', '10MiB/s', '', '10MiB/s'],
  ['read', '', '10MiB/s', '10MiB/s'],
  ['read', '1000iops', '500iops', '500iops'],
  ['read', '1000iops', '1MiB/s', '1000iops'],
  ['write', '50MB/s', '40MiB/s', '40MiB/s'],
  ['write', '40MiB/s', '50MB/s', '40MiB/s'],
  ['write', '40MiB/s', '', '40MiB/s'],
  ['max', '40MiB/s', '80MiB/s', '40MiB/s'],
  ['priority', 4, 8, 4],
  ['priority', 8, 4, 4],
  ['priority', 0, 8, 0],
  // the root-disk quota
  ['size', '20GiB', '5GiB', '5GiB'],
  ['size', '5GiB', '50GiB', '5GiB'],
  ['size', '20GiB', '', '20GiB'],
  ['size', '', '8GiB', '8GiB'],
  // tmpfs: never unbounded ("0"), never larger, never one where the user has none
  ['tmpfs_size', '1GiB', '512MiB', '512MiB'],
  ['tmpfs_size', '512MiB', '1GiB', '512MiB'],
  ['tmpfs_size', '512MiB', '0', '512MiB'],
  ['tmpfs_size', '512MiB', '', '512MiB'],
  ['tmpfs_size', '', '1GiB', ''],
  ['tmpfs_size', '', '0', ''],
  ['tmpfs_size', '0', '1GiB', '1GiB'],
])

table('runtime', [
  ['max_duration', '2h', '30m', '30m'],
  ['max_duration', '30m', '2h', '30m'],
  ['max_duration', '1h', '', '1h'],
  ['max_duration', '', '1h', '1h'],
  ['max_duration', '90m', '1h30m1s', '90m'],
  ['max_processes', 500, 100, 100],
  ['max_processes', 100, 500, 100],
  ['max_processes', 100, 0, 100],
  ['max_processes', 0, 200, 200],
  ['auto_stop', true, false, true],
  ['auto_stop', false, true, true],
  ['stop_graceful', true, false, true],
  ['stop_graceful', false, true, true],
])

describe('tightenLimits', () => {
  it('leaves every key the workspace does not set as the user has it', () => {
    const user = { memory: { limit: '2GiB' }, runtime: { max_duration: '1h', max_processes: 100 } }
    const limits = tighten(user, {})
    expect(limits.memory.limit).toBe('2GiB')
    expect(limits.runtime).toMatchObject({ max_duration: '1h', max_processes: 100 })
  })

  it('parses sizes, tmpfs sizes and CPU sets', () => {
    expect(memoryBytes('50%', HOST)).toBe(8 * GiB)
    expect(memoryBytes('1KB', HOST)).toBe(1000)
    expect(memoryBytes('lots', HOST)).toBeNull()
    expect(tmpfsBytes('2GiB')).toBe(2 * GiB)
    expect(tmpfsBytes('2GB')).toBe(2 * GiB)
    expect(tmpfsBytes('4096')).toBe(4096)
    expect(cpuCount('0-3,8,10-11')).toBe(7)
  })
})

describe('configForWorkspace: the workspace file against the user files', () => {
  async function user(text: string) {
    const home = await tempDir()
    const env = {
      CLINCUS_SYSTEM_CONFIG: join(home, 'none.toml'),
      CLINCUS_CONFIG: join(home, 'u.toml'),
    }
    await writeFile(join(home, 'u.toml'), text)
    const locations = configLocations(env, home)
    return { loaded: await loadConfig(locations, env, home), home, locations }
  }

  it('[limits.runtime] max_duration = "" in the workspace leaves the user\'s duration in force', async () => {
    const u = await user('[limits.runtime]\nmax_duration = "2h"\n')
    const config = configForWorkspace(
      u.loaded,
      '/w/.clincus.toml',
      { limits: { runtime: { max_duration: '' } } },
      u.home,
      u.locations,
    )
    expect(config?.limits.runtime.max_duration).toBe('2h')
  })

  it('the workspace tightens after the profile and the environment, never before', async () => {
    const u = await user(
      '[limits.memory]\nlimit = "2GiB"\n[profiles.big.limits.memory]\nlimit = "8GiB"\n',
    )
    const ws = { limits: { memory: { limit: '4GiB' }, runtime: { max_processes: 50 } } }
    const big = configForWorkspace(u.loaded, '/w/.clincus.toml', ws, u.home, u.locations, {
      profile: 'big',
      hostMemoryBytes: HOST,
    })
    expect(big?.limits.memory.limit).toBe('4GiB')
    expect(big?.limits.runtime.max_processes).toBe(50)
    const plain = configForWorkspace(u.loaded, '/w/.clincus.toml', ws, u.home, u.locations)
    expect(plain?.limits.memory.limit).toBe('2GiB')
  })

  it.each([
    [{ defaults: { image: 'images:debian' } }, 'defaults.image'],
    [{ defaults: { image: 'clincus' } }, 'defaults.image'],
    [{ profiles: { default: { image: 'x' } } }, 'profiles'],
    [{ profiles: {} }, 'profiles'],
    [{ image: { packages: ['x'] } }, 'image'],
  ])('refuses %j naming the key', async (layer, key) => {
    const u = await user('')
    let err: unknown
    try {
      configForWorkspace(u.loaded, '/w/.clincus.toml', layer, u.home, u.locations)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).key).toBe(key)
    expect((err as ConfigError).message).toMatch(
      /^\/w\/\.clincus\.toml: .*not allowed in a workspace/,
    )
  })

  it('a mistake in the workspace limits is reported against the workspace file', async () => {
    const u = await user('')
    expect(() =>
      configForWorkspace(
        u.loaded,
        '/w/.clincus.toml',
        { limits: { memory: { limit: 'lots' } } },
        u.home,
        u.locations,
      ),
    ).toThrow(/^\/w\/\.clincus\.toml: limits\.memory\.limit/)
  })
})

describe('[network]: a workspace only narrows (issue 12)', () => {
  async function user(text: string) {
    const home = await tempDir()
    const env = {
      CLINCUS_SYSTEM_CONFIG: join(home, 'none.toml'),
      CLINCUS_CONFIG: join(home, 'u.toml'),
    }
    await writeFile(join(home, 'u.toml'), text)
    const locations = configLocations(env, home)
    return { loaded: await loadConfig(locations, env, home), home, locations }
  }
  const USER =
    '[network]\nallow = ["a.example", "b.example:8443"]\nupstream = "http://proxy.corp:3128"\n' +
    '[profiles.open]\nnetwork = { mode = "open" }\n[profiles.off]\nnetwork = { mode = "none" }\n'

  it.each([
    ['open', undefined, 'allowlist'],
    ['none', undefined, 'none'],
    ['allowlist', 'open', 'allowlist'],
    ['none', 'open', 'none'],
    ['open', 'off', 'none'],
  ] as const)('workspace mode %s with profile %s → %s', async (wsMode, profile, expected) => {
    const u = await user(USER)
    const c = configForWorkspace(
      u.loaded,
      '/w/.clincus.toml',
      { network: { mode: wsMode } },
      u.home,
      u.locations,
      { profile },
    )
    expect(c?.network.mode).toBe(expected)
  })

  it('a workspace allow keeps only the user entries it also lists; its upstream is ignored', async () => {
    const u = await user(USER)
    const c = configForWorkspace(
      u.loaded,
      '/w/.clincus.toml',
      { network: { allow: ['A.example', 'evil.example'], upstream: 'http://evil:1' } },
      u.home,
      u.locations,
    )
    expect(c?.network.allow).toEqual(['a.example'])
    expect(c?.network.upstream).toBe('http://proxy.corp:3128')
  })

  it('without [network] in the workspace the user policy stands; a bad entry names the file', async () => {
    const u = await user(USER)
    const c = configForWorkspace(u.loaded, '/w/.clincus.toml', {}, u.home, u.locations)
    expect(c?.network).toEqual({
      mode: 'allowlist',
      allow: ['a.example', 'b.example:8443'],
      upstream: 'http://proxy.corp:3128',
    })
    expect(() =>
      configForWorkspace(
        u.loaded,
        '/w/.clincus.toml',
        { network: { mode: 'wide' } },
        u.home,
        u.locations,
      ),
    ).toThrow(/^\/w\/\.clincus\.toml: network\.mode/)
  })
})
