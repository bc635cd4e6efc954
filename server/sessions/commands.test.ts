// The commands run inside a session's container, as pure argv builders; and `[tool] binary`.
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { describe, expect, it } from 'vitest'
import { defaultConfig } from '../config/merge.ts'
import { CliIncusDriver } from '../incus/cli-driver.ts'
import { buildTestApp, json, tempDir } from '../test/helpers.ts'
import {
  CONTAINER_WORKSPACE,
  ENV_FROM_STDIN,
  START_AND_WAIT,
  startToolCommand,
  TOOL_GONE_EXIT,
  TOOL_OUTPUT_DEADLINE_S,
  TOOL_SILENT_EXIT,
  terminalCommand,
  tmpfsCommand,
  toolArgv,
  toolRunningCommand,
} from './commands.ts'
import { TOOL_SPECS } from './tools.ts'

const config = defaultConfig()

describe('toolArgv', () => {
  it("keeps the tool's command when [tool] binary is empty", () => {
    expect(toolArgv(TOOL_SPECS.claude.start('s1'), '')).toEqual(TOOL_SPECS.claude.start('s1'))
  })

  it('replaces only the command with [tool] binary; the flags stay', () => {
    expect(toolArgv(['copilot', '--allow-all-tools', '--resume'], '/opt/bin/copilot-beta')).toEqual(
      ['/opt/bin/copilot-beta', '--allow-all-tools', '--resume'],
    )
  })
})

describe('container commands', () => {
  it('starts the tool in tmux as the code user, in the workspace, under the wrapper', () => {
    const cmd = startToolCommand('clincus-0123abcd-1', config, ['claude', '--x'], {
      FOO: 'bar',
      HOME: '/evil',
    })
    // the profile's environment is read from stdin by a wrapper in front of the readiness
    // script, which starts tmux and waits for the pane's first output (30 s at most)
    expect(cmd.argv.slice(0, 4)).toEqual(['bash', '-c', ENV_FROM_STDIN, 'clincus-env'])
    expect(cmd.argv.slice(4, 10)).toEqual([
      'bash',
      '-c',
      START_AND_WAIT,
      'clincus-start',
      'clincus-clincus-0123abcd-1',
      String(TOOL_OUTPUT_DEADLINE_S),
    ])
    expect(cmd.argv.slice(10, 12)).toEqual(['tmux', 'start-server'])
    expect(cmd.opts.stdin).toBe('FOO=bar\0')
    expect(startToolCommand('clincus-0123abcd-1', config, ['claude']).argv.slice(0, 3)).toEqual([
      'bash',
      '-c',
      START_AND_WAIT,
    ])
    const at = cmd.argv.indexOf('new-session')
    expect(cmd.argv.slice(at, at + 4)).toEqual([
      'new-session',
      '-d',
      '-s',
      'clincus-clincus-0123abcd-1',
    ])
    expect(cmd.argv.slice(cmd.argv.indexOf('-c', at), cmd.argv.indexOf('-c', at) + 2)).toEqual([
      '-c',
      CONTAINER_WORKSPACE,
    ])
    // argv after the wrapper script, never spliced into it
    expect(cmd.argv.slice(-3)).toEqual(['clincus-tool', 'claude', '--x'])
    expect(cmd.opts).toMatchObject({ user: 1000, group: 1000, cwd: CONTAINER_WORKSPACE })
    // clincus' own variables win over the profile's
    expect(cmd.opts.env).toMatchObject({
      HOME: '/home/code',
      USER: 'code',
      IS_SANDBOX: '1',
    })
  })

  it('asks tmux for exactly the session (= prefix), as the code user', () => {
    expect(toolRunningCommand('clincus-0123abcd-1', config)).toEqual({
      argv: ['tmux', 'has-session', '-t', '=clincus-clincus-0123abcd-1'],
      opts: { user: 1000, group: 1000, env: { HOME: '/home/code' } },
    })
  })

  it('mounts tmpfs on /tmp with the size and mode 1777', () => {
    expect(tmpfsCommand('512M').argv).toEqual([
      'mount',
      '-t',
      'tmpfs',
      '-o',
      'size=512M,mode=1777',
      'tmpfs',
      '/tmp',
    ])
  })

  it('attaches a terminal with UTF-8 forced, or opens a login shell in the workspace', () => {
    const user = { uid: 1000, name: 'code' }
    const attach = terminalCommand('clincus-0123abcd-1', 'attach', user)
    expect(attach.argv).toEqual([
      'tmux',
      '-u',
      'attach-session',
      '-t',
      '=clincus-clincus-0123abcd-1',
    ])
    expect(attach.opts.env).toMatchObject({ LANG: 'C.UTF-8', HOME: '/home/code' })
    const shell = terminalCommand('clincus-0123abcd-1', 'shell', user)
    expect(shell.argv).toEqual(['bash', '--login'])
    expect(shell.opts).toMatchObject({ cwd: CONTAINER_WORKSPACE, env: { SHELL: '/bin/bash' } })
  })
})

describe('[tool] binary', () => {
  it('is the command tmux runs on create and on resume', async () => {
    const t = await buildTestApp()
    await writeFile(
      t.configFile,
      `[dashboard]\nworkspace_roots = ["${t.root}"]\n[tool]\nbinary = "/opt/claude-nightly"\n`,
    )
    expect(await t.services.config.reload()).toBe(true)
    const tmuxRuns = (): string[][] =>
      t.driver
        .callsOf('exec')
        .map((c) => c.args[1] as string[])
        .filter((argv) => argv.includes('start-server') && argv.includes('new-session'))
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode).toBe(200)
    const id = res.json<{ id: string }>().id
    const created = tmuxRuns()[0] ?? []
    expect(
      created.slice(created.indexOf('clincus-tool') + 1, created.indexOf('clincus-tool') + 3),
    ).toEqual(['/opt/claude-nightly', '--verbose'])
    expect(created).not.toContain('claude')

    await t.app.inject({ method: 'DELETE', url: `/api/sessions/${id}` })
    expect(
      (await t.app.inject({ method: 'POST', url: `/api/sessions/${id}/resume` })).statusCode,
    ).toBe(200)
    const resumed = tmuxRuns()[1] ?? []
    expect(resumed[resumed.indexOf('clincus-tool') + 1]).toBe('/opt/claude-nightly')
    expect(resumed).toContain('--resume')
  })
})

// Red team (another local user): /proc/<pid>/cmdline is world-readable, so every argument of the
// host's `incus exec` is visible to `ps`. The profile's environment (API keys) used to ride on it
// as `--env KEY=VALUE` for as long as the tool's start took.
describe("the profile's environment never is on a host command line", () => {
  const SECRET = 'sk-ant-SECRET 0123=\n456'
  const profileEnv = { ANTHROPIC_API_KEY: SECRET, HOME: '/evil' }

  it('is absent from the incus argv the driver runs', () => {
    const cmd = startToolCommand('clincus-0123abcd-1', config, ['claude'], profileEnv)
    const host = new CliIncusDriver({ project: 'default' }).execArgv(
      'clincus-0123abcd-1',
      cmd.argv,
      { ...cmd.opts, tty: false },
    )
    expect(host.join(' ')).not.toContain('sk-ant-SECRET')
    expect(JSON.stringify(cmd.opts.env)).not.toContain('sk-ant-SECRET')
  })

  it('reaches the program exactly, under clincus variables that still win', async () => {
    const cmd = startToolCommand('clincus-0123abcd-1', config, ['claude'], profileEnv)
    // The wrapper in front of the readiness script, run here with a program that prints what it got.
    const at = cmd.argv.indexOf('clincus-env') + 1
    expect(at).toBeGreaterThan(0)
    const head = cmd.argv.slice(0, at)
    const file = head[0] ?? 'bash'
    const args = [...head.slice(1), 'sh', '-c', 'printf "%s|%s" "$ANTHROPIC_API_KEY" "$HOME"']
    const input = cmd.opts.stdin
    expect(input).toBeDefined()
    const res = await execa(file, args, {
      env: cmd.opts.env,
      extendEnv: false,
      ...(input === undefined ? {} : { input }),
    })
    expect(res.stdout).toBe(`${SECRET}|/home/code`)
  })
})

// Issue 16 scope 3: the create answers once the tool's pane has shown output. The readiness
// script runs here under bash with a stub `tmux` whose pane stays blank for a number of polls.
describe("the readiness script (the tool's first output)", () => {
  async function run(opts: {
    blankPolls: number
    deadlineS: number
    startCode?: number
    gone?: boolean
  }) {
    const dir = await tempDir()
    const count = join(dir, 'polls')
    await writeFile(count, '0')
    // capture-pane: blank lines (spaces, tabs) for `blankPolls` polls, then a line of output
    await writeFile(
      join(dir, 'tmux'),
      [
        '#!/bin/bash',
        `if [ "$1" != capture-pane ]; then echo "$*" > ${dir}/started; exit ${String(opts.startCode ?? 0)}; fi`,
        opts.gone ? 'echo "can\'t find session" >&2; exit 1' : '',
        `n=$(cat ${count}); echo $((n + 1)) > ${count}`,
        `if [ "$n" -lt ${String(opts.blankPolls)} ]; then printf ' \\n\\t\\n\\n'; else echo 'clincus fake tool ready'; fi`,
      ].join('\n'),
    )
    await chmod(join(dir, 'tmux'), 0o755)
    const cmd = startToolCommand('clincus-0123abcd-1', config, ['claude'], {}, opts.deadlineS)
    const res = await execa(cmd.argv[0] ?? 'bash', cmd.argv.slice(1), {
      env: { PATH: `${dir}:/usr/bin:/bin` },
      extendEnv: false,
      reject: false,
    })
    const polls = Number(await readFile(count, 'utf8'))
    const started = await readFile(join(dir, 'started'), 'utf8').catch(() => '')
    return { code: res.exitCode, polls, started }
  }

  it('starts tmux, then answers once the pane shows output', async () => {
    const r = await run({ blankPolls: 3, deadlineS: 30 })
    expect(r.code).toBe(0)
    // blank polls (whitespace only is no output), then the one that saw the line
    expect(r.polls).toBe(4)
    expect(r.started).toContain('start-server')
    expect(r.started).toContain('new-session -d -s clincus-clincus-0123abcd-1')
  })

  it('gives up at the deadline with its own exit code (the caller answers with a warning)', async () => {
    expect(await run({ blankPolls: 1_000_000, deadlineS: 0 })).toMatchObject({
      code: TOOL_SILENT_EXIT,
      polls: 1,
    })
    // one second is 20 polls 50 ms apart, plus the first
    expect(await run({ blankPolls: 1_000_000, deadlineS: 1 })).toMatchObject({
      code: TOOL_SILENT_EXIT,
      polls: 21,
    })
  }, 30_000)

  it("says when tmux could not start or the tool's session went away", async () => {
    expect(await run({ blankPolls: 0, deadlineS: 5, startCode: 3 })).toMatchObject({
      code: 3,
      polls: 0,
    })
    expect((await run({ blankPolls: 0, deadlineS: 5, gone: true })).code).toBe(TOOL_GONE_EXIT)
  })

  it('refuses a deadline that is not whole seconds (it goes into the script)', () => {
    expect(() => startToolCommand('c', config, ['claude'], {}, 1.5)).toThrow('whole seconds')
    expect(() => startToolCommand('c', config, ['claude'], {}, -1)).toThrow('whole seconds')
  })
})
