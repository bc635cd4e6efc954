// What a session gets so its tool reports to the channel: the Claude hooks merged into the user's
// settings (theirs kept), the opencode plugin, and the hook script itself, run with bash against
// a local listener: it forwards one line, caps the payload, and never blocks the tool.
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { lineListener } from '../../test/line-listener.ts'
import { waitUntil } from '../../test/ws-client.ts'
import { planToolConfig } from '../tool-config.ts'
import { TOOL_SPECS } from '../tools.ts'
import {
  agentHookInstall,
  HOOK_PAYLOAD_MAX,
  HOOK_SCRIPT,
  hookCommand,
  hookScript,
  opencodePlugin,
  withClaudeHooks,
} from './hook-files.ts'
import { parseHookLine } from './hooks.ts'

const run = promisify(execFile)
const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

describe('withClaudeHooks', () => {
  it('appends one group per event after the user’s own hooks, keeping every other key', () => {
    const user = {
      model: 'opus',
      hooks: {
        Stop: [{ hooks: [{ type: 'command', command: 'say done' }] }],
        PreToolUse: [{ matcher: 'Bash', hooks: [{ type: 'command', command: 'audit' }] }],
        Custom: 'kept',
      },
    }
    const out = withClaudeHooks(user, '/home/code')
    const hooks = out.hooks as Record<string, unknown[]>
    expect(out.model).toBe('opus')
    expect(hooks.Custom).toBe('kept')
    expect(hooks.Stop).toEqual([
      { hooks: [{ type: 'command', command: 'say done' }] },
      { hooks: [{ type: 'command', command: hookCommand('/home/code', 'Stop'), timeout: 5 }] },
    ])
    expect(hooks.PreToolUse?.[0]).toEqual(user.hooks.PreToolUse[0])
    expect(hooks.PreToolUse?.[1]).toMatchObject({ matcher: '*' })
    for (const e of [
      'SessionStart',
      'UserPromptSubmit',
      'PostToolUse',
      'Notification',
      'SessionEnd',
    ])
      expect(hooks[e]).toHaveLength(1)
    // The input is not changed.
    expect(user.hooks.Stop).toHaveLength(1)
  })

  it('leaves an event whose value is not a list as the user wrote it', () => {
    const out = withClaudeHooks({ hooks: { Stop: 'weird' } }, '/h')
    expect((out.hooks as Record<string, unknown>).Stop).toBe('weird')
  })
})

describe('tool config with the hooks', () => {
  it('claude: settings.json carries the hooks with the container paths; the script is 0755', async () => {
    const home = await mkdtemp(join(tmpdir(), 'clincus-hookcfg-'))
    cleanup.push(() => rm(home, { recursive: true, force: true }))
    await mkdir(join(home, '.claude'), { recursive: true })
    await writeFile(
      join(home, '.claude/settings.json'),
      JSON.stringify({ hooks: { Stop: [{ hooks: [{ type: 'command', command: `${home}/x` }] }] } }),
    )
    const files = await planToolConfig(TOOL_SPECS.claude, {
      hostHome: home,
      containerHome: '/home/code',
      effortLevel: '',
      hooks: agentHookInstall('claude', '/home/code'),
    })
    const settings = JSON.parse(
      files.find((f) => f.path === '.claude/settings.json')?.content.toString() ?? '{}',
    ) as { hooks: { Stop: Array<{ hooks: Array<{ command: string }> }> } }
    expect(settings.hooks.Stop.map((g) => g.hooks[0]?.command)).toEqual([
      '/home/code/x',
      'bash /home/code/.clincus/agent-hook Stop',
    ])
    const script = files.find((f) => f.path === HOOK_SCRIPT)
    expect(script?.mode).toBe(0o755)
  })

  it('opencode gets its plugin; copilot only the script (its hooks live in the repository)', () => {
    expect(agentHookInstall('opencode', '/h').files.map((f) => f.path)).toEqual([
      HOOK_SCRIPT,
      '.config/opencode/plugins/clincus-status.js',
    ])
    expect(agentHookInstall('copilot', '/h').files.map((f) => f.path)).toEqual([HOOK_SCRIPT])
    expect(opencodePlugin()).toContain("'session.idle'")
  })

  it('the opencode plugin (run by Node here, by Bun in opencode) sends what its events mean', async () => {
    const { lines, port, close } = await lineListener()
    cleanup.push(close)
    const dir = await mkdtemp(join(tmpdir(), 'clincus-plugin-'))
    cleanup.push(() => rm(dir, { recursive: true, force: true }))
    const file = join(dir, 'clincus-status.mjs')
    await writeFile(file, opencodePlugin(port))
    type Hooks = {
      event: (e: { event: { type: string; properties: unknown } }) => Promise<void>
      'tool.execute.before': () => Promise<void>
    }
    const mod = (await import(file)) as { ClincusStatus: () => Promise<Hooks> }
    const hooks = await mod.ClincusStatus()
    await hooks.event({
      event: { type: 'session.status', properties: { status: { type: 'busy' } } },
    })
    await hooks.event({ event: { type: 'permission.asked', properties: { title: 'Run rm?' } } })
    await hooks.event({ event: { type: 'session.idle', properties: {} } })
    await hooks.event({ event: { type: 'message.updated', properties: {} } })
    await hooks['tool.execute.before']()
    await waitUntil('four lines', () => lines.length === 4)
    expect(
      lines
        .map((l) => parseHookLine(l))
        .sort((a, b) => (a?.status ?? '').localeCompare(b?.status ?? '')),
    ).toEqual([
      { status: 'idle' },
      { status: 'waiting', reason: 'Run rm?', urgent: true },
      { status: 'working' },
      { status: 'working' },
    ])
  })
})

describe('the hook script', () => {
  async function listener() {
    const { lines, port, close } = await lineListener()
    cleanup.push(close)
    const dir = await mkdtemp(join(tmpdir(), 'clincus-hook-'))
    cleanup.push(() => rm(dir, { recursive: true, force: true }))
    const path = join(dir, 'agent-hook')
    await writeFile(path, hookScript(port))
    return { lines, path, port }
  }

  it('forwards the stdin JSON as one line', async () => {
    const { lines, path } = await listener()
    const input = JSON.stringify({ hook_event_name: 'Notification', message: 'Which?' }, null, 2)
    const child = execFile('bash', [path, 'Notification'])
    child.stdin?.end(input)
    await new Promise((r) => child.once('exit', r))
    await waitUntil('line', () => lines.length === 1)
    expect(lines[0]).not.toContain('\n')
    expect(parseHookLine(lines[0] ?? '')).toEqual({ status: 'waiting', reason: 'Which?' })
  })

  it('every line starts with `{` (the one socket routes by it): leading blanks go, anything else is the event name', async () => {
    const { lines, path } = await listener()
    for (const input of [
      '\n\t  {"hook_event_name":"Stop","x":1}\n',
      'GET / HTTP/1.1\r\n\r\n',
      '',
    ]) {
      const child = execFile('bash', [path, 'Stop'])
      child.stdin?.end(input)
      await new Promise((r) => child.once('exit', r))
    }
    await waitUntil('lines', () => lines.length === 3)
    expect([...lines].sort()).toEqual(
      [
        '{"hook_event_name":"Stop","x":1} ',
        '{"hook_event_name":"Stop"}',
        '{"hook_event_name":"Stop"}',
      ].sort(),
    )
  })

  it('a payload over the cap is replaced by the event name alone', async () => {
    const { lines, path } = await listener()
    const child = execFile('bash', [path, 'PostToolUse'], { maxBuffer: 1 })
    child.stdin?.on('error', () => undefined)
    child.stdin?.end(
      JSON.stringify({
        hook_event_name: 'PostToolUse',
        tool_response: 'x'.repeat(HOOK_PAYLOAD_MAX),
      }),
    )
    await new Promise((r) => child.once('exit', r))
    await waitUntil('line', () => lines.length === 1)
    expect(lines).toEqual(['{"hook_event_name":"PostToolUse"}'])
  })

  it('returns at once when nothing listens, and within its stdin bound when stdin stays open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clincus-hook-'))
    cleanup.push(() => rm(dir, { recursive: true, force: true }))
    const path = join(dir, 'agent-hook')
    // A port nothing listens on: a listener opened and closed.
    const probe = net.createServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    const port = (probe.address() as net.AddressInfo).port
    await new Promise((r) => probe.close(r))
    await writeFile(path, hookScript(port))
    const t0 = Date.now()
    const { stdout } = await run('bash', [path, 'Stop'], { timeout: 10_000 })
    expect(stdout).toBe('')
    // stdin left open by the caller: bounded by the 2 s read timeout.
    expect(Date.now() - t0).toBeLessThan(8000)
  })
})
