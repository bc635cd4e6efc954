// The commands run inside a session's container, as pure argv builders; and `[tool] binary`.
import { writeFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { defaultConfig } from '../config/merge.ts'
import { buildTestApp, json } from '../test/helpers.ts'
import {
  CONTAINER_WORKSPACE,
  startToolCommand,
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
    expect(cmd.argv.slice(0, 2)).toEqual(['tmux', 'start-server'])
    const at = cmd.argv.indexOf('new-session')
    expect(cmd.argv.slice(at, at + 4)).toEqual([
      'new-session',
      '-d',
      '-s',
      'clincus-clincus-0123abcd-1',
    ])
    expect(cmd.argv.slice(cmd.argv.indexOf('-c'), cmd.argv.indexOf('-c') + 2)).toEqual([
      '-c',
      CONTAINER_WORKSPACE,
    ])
    // argv after the wrapper script, never spliced into it
    expect(cmd.argv.slice(-3)).toEqual(['clincus-tool', 'claude', '--x'])
    expect(cmd.opts).toMatchObject({ user: 1000, group: 1000, cwd: CONTAINER_WORKSPACE })
    // clincus' own variables win over the profile's
    expect(cmd.opts.env).toMatchObject({
      FOO: 'bar',
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
        .filter((argv) => argv[0] === 'tmux' && argv[1] === 'start-server')
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
