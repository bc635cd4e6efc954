import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { applyProfile, configForWorkspace, loadConfig } from './load.ts'
import { ConfigError } from './merge.ts'
import { configLocations } from './paths.ts'

async function setup(
  files: { system?: string; user?: string; extra?: string },
  env: Record<string, string> = {},
) {
  const home = await tempDir()
  const system = join(home, 'etc', 'config.toml')
  const extra = join(home, 'extra.toml')
  const allEnv: Record<string, string> = { CLINCUS_SYSTEM_CONFIG: system, ...env }
  if (files.system !== undefined) {
    await mkdir(join(home, 'etc'), { recursive: true })
    await writeFile(system, files.system)
  }
  if (files.user !== undefined) {
    await mkdir(join(home, '.config', 'clincus'), { recursive: true })
    await writeFile(join(home, '.config', 'clincus', 'config.toml'), files.user)
  }
  if (files.extra !== undefined) {
    await writeFile(extra, files.extra)
    allEnv.CLINCUS_CONFIG = extra
  }
  const locations = configLocations(allEnv, home)
  return { home, locations, env: allEnv }
}

describe('loadConfig', () => {
  it('has the contract defaults', async () => {
    const { home, locations, env } = await setup({})
    const { config } = await loadConfig(locations, env, home)
    expect(config.defaults).toEqual({
      image: 'clincus',
      persistent: false,
      model: 'claude-sonnet-4-5',
    })
    expect(config.incus).toEqual({
      project: 'default',
      storage_pool: '',
      group: 'incus-admin',
      code_uid: 1000,
      code_user: 'code',
      disable_shift: false,
    })
    expect(config.limits.memory).toEqual({ limit: '50%', enforce: 'hard', swap: 'true' })
    expect(config.limits.runtime).toEqual({
      max_duration: '',
      max_processes: 4096,
      auto_stop: true,
      stop_graceful: true,
    })
    expect(config.security.protected_paths).toEqual(['.git', '.husky', '.vscode'])
    expect(config.security.agent_sudo).toBe(false)
    expect(config.dashboard).toEqual({
      port: 3000,
      workspace_roots: [],
      auth: 'token',
      allowed_hosts: [],
      public_origins: [],
      rate_limit_per_minute: 120,
      ws_max_message_bytes: 1048576,
      max_terminals_per_session: 16,
    })
    expect(config.pool).toEqual({ size: 2, primed: 1, prestart: false })
    expect(config.paths.sessions_dir).toBe(join(home, '.clincus', 'sessions'))
    expect(Object.keys(config).sort()).toEqual([
      'dashboard',
      'defaults',
      'git',
      'image',
      'incus',
      'limits',
      'mounts',
      'network',
      'paths',
      'pool',
      'profiles',
      'security',
      'tool',
    ])
  })

  it('merges /etc → user → $CLINCUS_CONFIG → env, and a later file can turn a boolean off', async () => {
    const { home, locations, env } = await setup(
      {
        system:
          '[defaults]\nimage = "sys"\npersistent = true\n[limits.runtime]\nauto_stop = true\n',
        user: '[defaults]\nimage = "user"\n[limits.runtime]\nauto_stop = false\n',
        extra: '[dashboard]\nport = 4000\n',
      },
      { CLINCUS_IMAGE: 'from-env' },
    )
    const { config } = await loadConfig(locations, env, home)
    expect(config.defaults.image).toBe('from-env')
    expect(config.defaults.persistent).toBe(true) // not clobbered by a file that omits it
    expect(config.limits.runtime.auto_stop).toBe(false) // turned off by the later file
    expect(config.limits.runtime.stop_graceful).toBe(true)
    expect(config.dashboard.port).toBe(4000)
  })

  it('appends mounts and additional protected paths, replaces other arrays', async () => {
    const { home, locations, env } = await setup({
      system:
        '[[mounts.default]]\nhost = "~/a"\ncontainer = "/a"\n[security]\nadditional_protected_paths = ["x"]\nprotected_paths = [".git/hooks"]\n',
      user: '[[mounts.default]]\nhost = "~/b"\ncontainer = "/b"\n[security]\nadditional_protected_paths = ["y"]\nprotected_paths = [".husky"]\n',
    })
    const { config } = await loadConfig(locations, env, home)
    expect(config.mounts.default.map((m) => m.container)).toEqual(['/a', '/b'])
    expect(config.security.additional_protected_paths).toEqual(['x', 'y'])
    expect(config.security.protected_paths).toEqual(['.husky'])
  })

  it.each([
    ['[limits.cpu]\ncount = "two"\n', 'limits.cpu.count', 'a CPU count'],
    ['[limits.memory]\nenforce = "maybe"\n', 'limits.memory.enforce', '"soft" or "hard"'],
    ['[limits.runtime]\nmax_duration = "forever"\n', 'limits.runtime.max_duration', 'a duration'],
    ['[dashboard]\nport = 70000\n', 'dashboard.port', 'a port 1-65535'],
    ['[dashboard]\nport = "3000"\n', 'dashboard.port', 'got "3000"'],
    ['[defaults]\npersistent = "yes"\n', 'defaults.persistent', 'true or false'],
    ['[defaults]\nimgae = "x"\n', 'defaults.imgae', 'unknown key'],
  ])('names the file, key and expected form for %j', async (text, key, expected) => {
    const { home, locations, env } = await setup({ user: text })
    const err = await loadConfig(locations, env, home).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigError)
    const msg = (err as ConfigError).message
    expect(msg).toContain(locations.user)
    expect(msg).toContain(key)
    expect(msg).toContain(expected)
  })

  // A profile's environment holds the agent's API keys: a mistyped one (a number, an array) must
  // not be echoed into the error the dashboard shows and the log records.
  it.each([
    ['ANTHROPIC_API_KEY = 4242424242424242\n', 'a number'],
    ['ANTHROPIC_API_KEY = ["sk-ant-secret-4242"]\n', 'an array'],
    ['ANTHROPIC_API_KEY = { v = "sk-ant-secret-4242" }\n', 'a table'],
    ['ANTHROPIC_API_KEY = true\n', 'a boolean'],
  ])('never shows a mistyped environment value: %j', async (line, kind) => {
    const { home, locations, env } = await setup({
      user: `[profiles.p.environment]\n${line}`,
    })
    const err = await loadConfig(locations, env, home).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigError)
    const msg = (err as ConfigError).message
    expect(msg).toContain('profiles.p.environment.ANTHROPIC_API_KEY')
    expect(msg).toContain(`got ${kind}`)
    expect(msg).not.toMatch(/4242/)
  })

  it('reports invalid TOML with its line', async () => {
    const { home, locations, env } = await setup({ user: '[defaults]\nimage = \n' })
    await expect(loadConfig(locations, env, home)).rejects.toThrow(
      /config\.toml: invalid TOML at line 2/,
    )
  })

  it('rejects bad environment values with the variable name', async () => {
    const { home, locations, env } = await setup({}, { CLINCUS_PERSISTENT: 'perhaps' })
    await expect(loadConfig(locations, env, home)).rejects.toThrow(/CLINCUS_PERSISTENT/)
  })

  it('honours XDG_CONFIG_HOME', async () => {
    const home = await tempDir()
    const xdg = join(home, 'xdg')
    await mkdir(join(xdg, 'clincus'), { recursive: true })
    await writeFile(join(xdg, 'clincus', 'config.toml'), '[defaults]\nimage = "xdg"\n')
    const env = { XDG_CONFIG_HOME: xdg, CLINCUS_SYSTEM_CONFIG: join(home, 'none.toml') }
    const { config } = await loadConfig(configLocations(env, home), env, home)
    expect(config.defaults.image).toBe('xdg')
  })
})

describe('workspace config and profiles', () => {
  it('applies a workspace .clincus.toml under the user config; its limits only tighten', async () => {
    const { home, locations, env } = await setup(
      { user: '[defaults]\nimage = "user"\n[limits.cpu]\ncount = "1"\n' },
      { CLINCUS_LIMIT_CPU: '3' },
    )
    const loaded = await loadConfig(locations, env, home)
    const ws = configForWorkspace(
      loaded,
      '/w/.clincus.toml',
      { defaults: { persistent: true }, limits: { cpu: { count: '2' } } },
      home,
      locations,
    )
    expect(ws?.defaults).toMatchObject({ image: 'user', persistent: true })
    // the environment says 3, the workspace 2: the stricter holds
    expect(ws?.limits.cpu.count).toBe('2')
    const looser = configForWorkspace(
      loaded,
      '/w/.clincus.toml',
      { limits: { cpu: { count: '8' } } },
      home,
      locations,
    )
    expect(looser?.limits.cpu.count).toBe('3')
    expect(() =>
      configForWorkspace(
        loaded,
        '/w/.clincus.toml',
        { mounts: { default: [{ host: '/', container: '/host' }] } },
        home,
        locations,
      ),
    ).toThrow(/\[mounts\] is not allowed/)
    expect(() =>
      configForWorkspace(
        loaded,
        '/w/.clincus.toml',
        { security: { disable_protection: true } },
        home,
        locations,
      ),
    ).toThrow(/not allowed/)
  })

  it('applies a profile', async () => {
    const { home, locations, env } = await setup({
      user: '[profiles.big]\nimage = "big-img"\npersistent = true\n[profiles.big.limits.memory]\nlimit = "4GiB"\n',
    })
    const { config } = await loadConfig(locations, env, home)
    const big = applyProfile(config, 'big')
    expect(big?.defaults).toMatchObject({ image: 'big-img', persistent: true })
    expect(big?.limits.memory.limit).toBe('4GiB')
    expect(applyProfile(config, 'missing')).toBeNull()
  })

  it('validates every profile at load: a bad one names the file that defines it and the key', async () => {
    const { home, locations, env } = await setup({
      system: '[profiles.bad.limits.cpu]\ncount = "2"\n',
      user: '[profiles.ok]\npersistent = true\n[profiles.bad.limits.cpu]\ncount = "lots"\n',
    })
    const user = join(home, '.config', 'clincus', 'config.toml')
    const err: unknown = await loadConfig(locations, env, home).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).file).toBe(user)
    expect((err as ConfigError).message).toBe(
      `${user}: profiles.bad.limits.cpu.count: expected a CPU count or set like "2", "0-3" or "0,2", got "lots"`,
    )
    const unknown = await setup({ user: '[profiles.p.limits]\ngpu = 1\n' })
    await expect(loadConfig(unknown.locations, unknown.env, unknown.home)).rejects.toThrow(
      /config\.toml: profiles\.p\.limits\.gpu: unknown key "limits\.gpu"/,
    )
  })
})

describe('values that become argv elements (issue 10 row 12)', () => {
  it.each(['--help', '--vm', '-x', 'images:debian', 'local:clincus', 'a b', ''])(
    'refuses defaults.image = %j at load, naming the file and the key',
    async (image) => {
      const { home, locations, env } = await setup({
        user: `[defaults]\nimage = ${JSON.stringify(image)}\n`,
      })
      const err = await loadConfig(locations, env, home).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ConfigError)
      expect((err as ConfigError).key).toBe('defaults.image')
      expect((err as ConfigError).message).toMatch(
        /config\.toml: defaults\.image: expected a local image alias/,
      )
    },
  )

  it('refuses the same in a profile, in CLINCUS_IMAGE and in tool.binary', async () => {
    const profile = await setup({ user: '[profiles.p]\nimage = "--vm"\n' })
    await expect(loadConfig(profile.locations, profile.env, profile.home)).rejects.toThrow(
      /profiles\.p\.image: expected a local image alias/,
    )
    const env = await setup({}, { CLINCUS_IMAGE: 'images:debian/12' })
    await expect(loadConfig(env.locations, env.env, env.home)).rejects.toThrow(/defaults\.image/)
    const binary = await setup({ user: '[tool]\nbinary = "--version"\n' })
    await expect(loadConfig(binary.locations, binary.env, binary.home)).rejects.toThrow(
      /tool\.binary/,
    )
    const tool = await setup({ user: '[profiles.p]\ntool = "--help"\n' })
    await expect(loadConfig(tool.locations, tool.env, tool.home)).rejects.toThrow(
      /profiles\.p\.tool/,
    )
  })

  it('accepts local aliases and fingerprints', async () => {
    for (const image of ['clincus', 'clincus-test', 'ubuntu/24.04', 'my_img.v2', 'a1b2c3d4e5f6']) {
      const { home, locations, env } = await setup({ user: `[defaults]\nimage = "${image}"\n` })
      expect((await loadConfig(locations, env, home)).config.defaults.image).toBe(image)
    }
  })
})

describe('record keys are checked (profile names, environment names)', () => {
  it.each([
    ['[profiles."-x"]\npersistent = true\n', /profiles\.-x: invalid profile name/],
    ['[profiles."a b"]\npersistent = true\n', /profiles\.a b: invalid profile name/],
    [
      '[profiles.p.environment]\n"-e" = "1"\n',
      /profiles\.p\.environment\.-e: invalid variable name/,
    ],
    ['[profiles.p.environment]\n"A=B" = "1"\n', /invalid variable name/],
  ])('refuses %j', async (text, message) => {
    const { home, locations, env } = await setup({ user: text })
    await expect(loadConfig(locations, env, home)).rejects.toThrow(message)
  })
})
