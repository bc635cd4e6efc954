import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FakeIncusDriver } from '../incus/fake-driver.ts'
import { checkTarPath, packTar, TarPathError, unpackTar } from './tar.ts'
import { copyToolConfig, planToolConfig, toTarEntries } from './tool-config.ts'
import { TOOL_SPECS, withoutSecretEnv } from './tools.ts'

let home: string

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'clincus-toolcfg-'))
})

afterEach(async () => {
  await rm(home, { recursive: true, force: true })
})

function setup(): FakeIncusDriver {
  const driver = new FakeIncusDriver()
  driver.addInstance('c1')
  return driver
}

const ctx = (driver: FakeIncusDriver): Parameters<typeof copyToolConfig>[1] => ({
  driver,
  name: 'c1',
  hostHome: home,
  containerHome: '/home/code',
  uid: 1000,
  effortLevel: '',
})

async function put(rel: string, content: string): Promise<void> {
  await mkdir(join(home, rel, '..'), { recursive: true })
  await writeFile(join(home, rel), content)
}

/** A host home as a long-used Claude Code leaves it, with secrets of other projects. */
async function claudeHome(): Promise<void> {
  await put(
    '.claude.json',
    JSON.stringify({
      oauthAccount: { accountUuid: 'acc-1', emailAddress: 'me@example.org' },
      userID: 'user-1',
      hasCompletedOnboarding: true,
      theme: 'dark',
      numStartups: 42,
      mcpServers: { global: { command: 'x', env: { GLOBAL_MCP_TOKEN: 'SECRET-GLOBAL-MCP' } } },
      projects: {
        '/home/me/other': {
          history: [{ display: 'SECRET-PROMPT-HISTORY' }],
          mcpServers: { db: { command: 'pg', env: { PGPASSWORD: 'SECRET-OTHER-PROJECT-MCP' } } },
        },
      },
    }),
  )
  await put('.claude/.credentials.json', '{"claudeAiOauth":{"accessToken":"the-login"}}')
  await put(
    '.claude/settings.json',
    JSON.stringify({
      theme: 'dark',
      env: {
        ANTHROPIC_AUTH_TOKEN: 'SECRET-SETTINGS-TOKEN',
        AWS_SECRET_ACCESS_KEY: 'SECRET-AWS',
        SOME_URL_VALUE: 'sk-ant-SECRET-BY-FORMAT',
        DISABLE_TELEMETRY: '1',
        CLAUDE_CODE_MAX_OUTPUT_TOKENS: '8000',
      },
    }),
  )
  await put('.claude/hooks/pre.sh', 'echo hook')
  await put('.claude/plugins/p/plugin.json', '{}')
  // none of these may leave the host
  await put('.claude/projects/-home-me-other/s.jsonl', 'SECRET-TRANSCRIPT')
  await put('.claude/todos/t.json', 'SECRET-TODO')
  await put('.claude/shell-snapshots/s.sh', 'export SECRET=SECRET-SNAPSHOT')
  await put('.claude/history.jsonl', 'SECRET-HISTORY')
  await put('.claude/logs/l.log', 'SECRET-LOG')
  await symlink('/etc/passwd', join(home, '.claude', 'hooks', 'link'))
}

describe('copyToolConfig', () => {
  it('copies what Claude Code needs, none of the other projects or settings secrets, in one exec', async () => {
    await claudeHome()
    const driver = setup()
    const copied = await copyToolConfig(TOOL_SPECS.claude, ctx(driver))
    // one process for the whole copy, no per-file push
    expect(driver.callsOf('filePush')).toHaveLength(0)
    const execs = driver.callsOf('exec')
    expect(execs).toHaveLength(1)
    expect(execs[0]?.args[1]).toEqual([
      'tar',
      '-x',
      '-p',
      '--no-same-owner',
      '--no-overwrite-dir',
      '-C',
      '/home/code',
      '-f',
      '-',
    ])
    expect(execs[0]?.args[2]).toMatchObject({ user: 1000 })

    const files = new Map([...driver.files].map(([k, v]) => [k.replace('c1:/home/code/', ''), v]))
    expect([...files.keys()].sort()).toEqual([
      '.claude.json',
      '.claude/.credentials.json',
      '.claude/hooks/pre.sh',
      '.claude/plugins/p/plugin.json',
      '.claude/settings.json',
    ])
    expect(copied).toBe(5)
    const all = [...files.values()].map((f) => f.content).join('\n')
    expect(all).not.toMatch(/SECRET/)

    const state = JSON.parse(files.get('.claude.json')?.content ?? '') as Record<string, unknown>
    expect(state).toMatchObject({
      oauthAccount: { accountUuid: 'acc-1' },
      userID: 'user-1',
      hasCompletedOnboarding: true,
      theme: 'dark',
    })
    expect(state).not.toHaveProperty('projects')
    expect(state).not.toHaveProperty('mcpServers')
    expect(state).not.toHaveProperty('numStartups')
    const settings = JSON.parse(files.get('.claude/settings.json')?.content ?? '') as {
      env: Record<string, string>
    }
    expect(settings.env).toEqual({
      DISABLE_TELEMETRY: '1',
      CLAUDE_CODE_MAX_OUTPUT_TOKENS: '8000',
      CLAUDE_CODE_EFFORT_LEVEL: 'medium',
    })
    // secret-bearing files are private to the code user
    expect(files.get('.claude.json')).toMatchObject({ mode: '0600', uid: 1000, gid: 1000 })
    expect(files.get('.claude/.credentials.json')).toMatchObject({ mode: '0600', uid: 1000 })
    expect(files.get('.claude/settings.json')?.mode).toBe('0644')

    // the archive itself holds only directories and regular files below the home
    const stdin = (execs[0]?.args[2] as { stdin: Uint8Array }).stdin
    const entries = unpackTar(stdin)
    expect(new Set(entries.map((e) => e.typeflag))).toEqual(new Set(['0', '5']))
    for (const e of entries)
      expect(() => {
        checkTarPath(e.path)
      }).not.toThrow()
    expect(entries.find((e) => e.path === '.claude')).toMatchObject({ typeflag: '5', mode: 0o700 })
  })

  it('is one archive GNU tar extracts with the modes given, however many files', async () => {
    for (let i = 0; i < 42; i++) await put(`.claude/plugins/p/f${i}`, `${i}`)
    await put('.claude/.credentials.json', '{}')
    const files = await planToolConfig(TOOL_SPECS.claude, {
      hostHome: home,
      containerHome: '/home/code',
      effortLevel: '',
    })
    const out = join(home, 'out')
    await mkdir(out)
    execFileSync('tar', ['-x', '-p', '--no-same-owner', '-C', out, '-f', '-'], {
      input: packTar(toTarEntries(files)),
    })
    const ls = execFileSync('find', [out, '-printf', '%P %m %y\n'], { encoding: 'utf8' })
    expect(ls).toContain('.claude/.credentials.json 600 f')
    expect(ls).toContain('.claude/plugins/p/f41 644 f')
    expect(ls).toContain('.claude.json 600 f')
  })

  it('drops the other tools secrets: copilot trusted folders and MCP config, opencode MCP', async () => {
    await put(
      '.copilot/config.json',
      JSON.stringify({ logged_in_users: [{ login: 'me' }], trusted_folders: ['/home/me/SECRET'] }),
    )
    await put('.copilot/mcp-config.json', '{"mcpServers":{"x":{"env":{"T":"SECRET-MCP"}}}}')
    await put('.copilot/agents/a.md', 'agent')
    await put('.copilot/session-state/s.json', 'SECRET-SESSION')
    const copilot = setup()
    await copyToolConfig(TOOL_SPECS.copilot, ctx(copilot))
    const cp = [...copilot.files]
    expect(cp.map(([k]) => k).sort()).toEqual([
      'c1:/home/code/.copilot/agents/a.md',
      'c1:/home/code/.copilot/config.json',
    ])
    expect(cp.map(([, v]) => v.content).join()).not.toMatch(/SECRET/)
    expect(copilot.files.get('c1:/home/code/.copilot/config.json')?.mode).toBe('0600')

    await put(
      '.config/opencode/opencode.json',
      JSON.stringify({ theme: 'x', mcp: { s: { environment: { K: 'SECRET-OC-MCP' } } } }),
    )
    await put('.local/share/opencode/auth.json', '{"anthropic":{"key":"the-login"}}')
    const oc = setup()
    await copyToolConfig(TOOL_SPECS.opencode, ctx(oc))
    const ocFiles = [...oc.files]
    expect(ocFiles.map(([, v]) => v.content).join()).not.toMatch(/SECRET/)
    expect(oc.files.get('c1:/home/code/.local/share/opencode/auth.json')?.mode).toBe('0600')
    expect(oc.files.get('c1:/home/code/.opencode.json')?.content).toContain('"*": "allow"')
  })

  it('passes the abort signal and a timeout to the extraction, and fails on its error', async () => {
    await put('.claude/.credentials.json', '{}')
    const driver = setup()
    const ac = new AbortController()
    let seen: { signal?: AbortSignal; timeoutMs?: number } = {}
    driver.execHandler = (_n, _argv, opts) => {
      seen = opts
      return { stdout: '', stderr: 'tar: disk full', exitCode: 2 }
    }
    await expect(
      copyToolConfig(TOOL_SPECS.claude, { ...ctx(driver), signal: ac.signal }),
    ).rejects.toThrow('disk full')
    expect(seen.signal).toBe(ac.signal)
    expect(seen.timeoutMs).toBeGreaterThan(0)
  })

  it('skips a FIFO or a device in place of a config file without hanging', async () => {
    await mkdir(join(home, '.claude'))
    execFileSync('mkfifo', [join(home, '.claude', '.credentials.json')])
    await symlink('/dev/zero', join(home, '.claude', 'config.yml'))
    const files = await planToolConfig(TOOL_SPECS.claude, {
      hostHome: home,
      containerHome: '/home/code',
      effortLevel: '',
    })
    expect(files.map((f) => f.path).sort()).toEqual(['.claude.json', '.claude/settings.json'])
  })
})

describe('tar archive', () => {
  it.each([
    '',
    '/etc/passwd',
    '../escape',
    'a/../../b',
    'a/./b',
    'a//b',
    'a/',
    '.',
    'a\u0000b',
    'a\nb',
    'a\\b',
    'x'.repeat(101),
  ])('refuses the path %j', (path) => {
    expect(() => packTar([{ path, type: 'file', mode: 0o644, content: Buffer.from('x') }])).toThrow(
      TarPathError,
    )
  })

  it('round-trips long nested names through the ustar prefix', () => {
    const path = `${'d'.repeat(90)}/${'e'.repeat(90)}/file.json`
    const [e] = unpackTar(
      packTar([{ path, type: 'file', mode: 0o600, content: Buffer.from('{}') }]),
    )
    expect(e).toMatchObject({ path, mode: 0o600, typeflag: '0' })
    expect(e?.content.toString()).toBe('{}')
  })
})

describe('withoutSecretEnv', () => {
  it('keeps settings without env untouched and drops credential-named or token-shaped values', () => {
    expect(withoutSecretEnv({ theme: 'x' })).toEqual({ theme: 'x' })
    expect(
      withoutSecretEnv({
        env: {
          OPENAI_API_KEY: 'a',
          GH_TOKEN: 'b',
          DB_PASSWORD: 'c',
          MY_SECRET: 'd',
          X: 'ghp_abc',
          HTTPS_PROXY: 'http://proxy:3128',
          MAX_TOKENS: '5',
        },
      }),
    ).toEqual({ env: { HTTPS_PROXY: 'http://proxy:3128', MAX_TOKENS: '5' } })
  })
})
