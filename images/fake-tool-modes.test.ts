// Issue 17: the fake tool's `ask` and `work` modes, run on the host with the hooks clincus
// installs (the Claude settings merged by hook-files.ts, the real hook script pointed at a local
// listener): every line it reports parses to the status the live tests expect.
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { HOOK_SCRIPT, hookScript, withClaudeHooks } from '../server/sessions/agent/hook-files.ts'
import { parseHookLine } from '../server/sessions/agent/hooks.ts'
import { lineListener } from '../server/test/line-listener.ts'
import { waitUntil } from '../server/test/ws-client.ts'

const fakeTool = fileURLToPath(new URL('./fake-tool.sh', import.meta.url))
const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

describe('fake-tool.sh hooks', () => {
  it('reports start, prompt, question, answer, work and exit through the installed hooks', async () => {
    const { lines, port, close } = await lineListener()
    cleanup.push(close)
    const home = await mkdtemp(join(tmpdir(), 'clincus-fake-hooks-'))
    cleanup.push(() => rm(home, { recursive: true, force: true }))
    await mkdir(join(home, '.claude'), { recursive: true })
    await mkdir(join(home, '.clincus'), { recursive: true })
    await writeFile(
      join(home, '.claude', 'settings.json'),
      JSON.stringify(withClaudeHooks({}, home), null, 2),
    )
    await writeFile(join(home, HOOK_SCRIPT), hookScript(port))
    const tool = join(home, 'claude')
    await symlink(fakeTool, tool)

    const child = execFile(tool, ['--session-id', 's1'], {
      env: { PATH: process.env.PATH, HOME: home },
    })
    let out = ''
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
    child.stdin?.end('ask Which colour?\nblue\nwork 1\nexit\n')
    await new Promise((r) => child.once('exit', r))
    expect(out).toContain('Which colour?\nblue-BACK\n')
    expect(out).toContain('worked for 1 s\nGoodbye!')
    // Each hook sends in the background: the lines arrive in any order, all of them.
    await waitUntil('every hook line', () => lines.length >= 10)
    const statuses = lines.map((l) => parseHookLine(l)?.status).sort()
    expect(statuses).toEqual(
      [
        'idle', // SessionStart
        'working', // UserPromptSubmit (ask)
        'waiting', // Notification
        'working', // UserPromptSubmit (answer)
        'idle', // Stop
        'working', // UserPromptSubmit (work)
        'working', // PreToolUse
        'working', // PostToolUse
        'idle', // Stop
        'exited', // SessionEnd
      ].sort(),
    )
    expect(lines.map((l) => parseHookLine(l)).find((s) => s?.status === 'waiting')).toEqual({
      status: 'waiting',
      reason: 'Which colour?',
    })
  })
})
