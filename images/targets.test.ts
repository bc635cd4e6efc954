import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../server/config/load.ts'
import { ConfigError } from '../server/config/merge.ts'
import { configLocations } from '../server/config/paths.ts'
import { tempDir } from '../server/test/helpers.ts'
import { resolveSetup } from './build.ts'
import { imageTargets } from './targets.ts'

async function load(user: string) {
  const home = await tempDir()
  await mkdir(join(home, '.config', 'clincus'), { recursive: true })
  await writeFile(join(home, '.config', 'clincus', 'config.toml'), user)
  const env = { CLINCUS_SYSTEM_CONFIG: join(home, 'none.toml') }
  return { home, config: (await loadConfig(configLocations(env, home), env, home)).config }
}

describe('[image] and profile images', () => {
  it('defaults to no extras for the default image', async () => {
    const { config } = await load('')
    expect(imageTargets(config)).toEqual([
      { alias: 'clincus', extras: { packages: [], npm: [], setup: '' } },
    ])
  })

  it('gives the default image [image] and a profile image [image] plus its image_extras', async () => {
    const { config } = await load(
      [
        '[image]',
        'packages = ["cowsay"]',
        'npm = ["typescript", "@scope/pkg@1.2"]',
        'setup = "echo hi"',
        '[profiles.py]',
        'image = "clincus-py"',
        '[profiles.py.image_extras]',
        'packages = ["python3-numpy", "cowsay"]',
        'setup = "echo py"',
        '[profiles.same]',
        'image = "clincus"',
        '[profiles.plain]',
        'persistent = true',
        '',
      ].join('\n'),
    )
    expect(imageTargets(config)).toEqual([
      {
        alias: 'clincus',
        extras: { packages: ['cowsay'], npm: ['typescript', '@scope/pkg@1.2'], setup: 'echo hi' },
      },
      {
        alias: 'clincus-py',
        extras: {
          packages: ['cowsay', 'python3-numpy'],
          npm: ['typescript', '@scope/pkg@1.2'],
          setup: 'echo hi\necho py',
        },
      },
    ])
  })

  it.each([
    ['[image]\npackages = ["--allow-unauthenticated"]\n', 'image.packages'],
    ['[image]\npackages = ["Bad Name"]\n', 'image.packages'],
    ['[image]\nnpm = ["--global-style"]\n', 'image.npm'],
    ['[image]\nnpm = ["-g"]\n', 'image.npm'],
    ['[image]\nunknown = 1\n', 'image'],
  ])('refuses %j at load, naming the key', async (text, key) => {
    const err = await load(text).then(
      () => null,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).key).toMatch(new RegExp(`^${key.replace('.', '\\.')}`))
  })
})

describe('resolveSetup', () => {
  it('reads a one-line absolute or ~/ path, keeps any other text as the script', async () => {
    const home = await tempDir()
    await writeFile(join(home, 'setup.sh'), 'apt-get clean\n')
    expect(await resolveSetup('~/setup.sh', home)).toBe('apt-get clean\n')
    expect(await resolveSetup(join(home, 'setup.sh'), home)).toBe('apt-get clean\n')
    expect(await resolveSetup('echo one\necho two', home)).toBe('echo one\necho two')
    expect(await resolveSetup('', home)).toBe('')
    await expect(resolveSetup('~/missing.sh', home)).rejects.toThrow(/ENOENT/)
  })
})

describe('rootlessProblem', () => {
  const ok = { user: 'alice', root: false, missing: [], subuid: 'alice:100000:65536\n' }

  it('names the exact command for what a builder without root lacks', async () => {
    const { rootlessProblem } = await import('./build.ts')
    expect(rootlessProblem({ ...ok, subgid: 'alice:100000:65536\n' })).toBeUndefined()
    expect(rootlessProblem({ ...ok, subgid: 'root:1000000:1000000000\n' })).toMatch(
      /`sudo usermod --add-subuids \S+ --add-subgids \S+ alice`/,
    )
    expect(
      rootlessProblem({ ...ok, subgid: ok.subuid, missing: ['mmdebstrap', 'uidmap'] }),
    ).toMatch(/`sudo apt-get install --no-install-recommends mmdebstrap uidmap`/)
    // Root installs the packages itself (setup, or the build's first step).
    expect(
      rootlessProblem({
        ...ok,
        user: 'root',
        root: true,
        missing: ['mmdebstrap'],
        subuid: 'root:1000000:1000000000\n',
        subgid: 'root:1000000:1000000000\n',
      }),
    ).toBeUndefined()
  })
})
