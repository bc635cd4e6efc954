// Real Incus, opt-in (CLINCUS_IT_INCUS=1, after `tsx scripts/setup.ts --for test`): the clincus-test image
// does what the end-to-end tests will rely on.
import { chown, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { run } from '../provision/command.ts'
import { TEST_IMAGE_ALIAS } from './build.ts'

const enabled = process.env.CLINCUS_IT_INCUS === '1'
if (!enabled)
  process.stdout.write(
    'test-image.incus.test.ts skipped: run it through npm test (CLINCUS_IT_INCUS=1)\n',
  )

let counter = 0
async function launch(): Promise<string> {
  const name = `clincus-it-${process.pid}-${++counter}`
  onTestFinished(async () => {
    await run('incus', ['delete', '--force', name], { timeoutMs: 60_000 })
  })
  await run('incus', ['launch', TEST_IMAGE_ALIAS, name, '--quiet'], { timeoutMs: 120_000 })
  return name
}

function asCode(name: string, argv: string[], input?: string): Promise<string> {
  return run(
    'incus',
    ['exec', name, '--user', '1000', '--group', '1000', '--env', 'HOME=/home/code', '--', ...argv],
    { timeoutMs: 30_000, ...(input === undefined ? {} : { input }) },
  )
}

describe.skipIf(!enabled)('clincus-test image', () => {
  it('runs the fake tools as code, with sudo and tmux, and stops promptly', async () => {
    const name = await launch()
    expect(await asCode(name, ['claude', '--version'])).toBe('claude 0.0.0 (clincus fake tool)')
    expect(await asCode(name, ['opencode', '--session-id', 'x'], 'hello\nexit\n')).toContain(
      'hello-BACK\nGoodbye!',
    )
    expect(await asCode(name, ['sudo', '-n', 'id', '-u'])).toBe('0')
    await asCode(name, ['tmux', 'new-session', '-d', '-s', 'it', 'copilot --session-id s1'])
    await expect
      .poll(() => asCode(name, ['tmux', 'capture-pane', '-p', '-t', 'it']), { timeout: 5000 })
      .toContain('Session: s1')
    const started = performance.now()
    await run('incus', ['stop', name], { timeoutMs: 60_000 })
    // init exits on SIGPWR; without that Incus waits for its stop timeout before killing.
    expect(performance.now() - started).toBeLessThan(10_000)
  }, 120_000)

  it('maps uid 1000 through a shift=true workspace to uid 1000 on the host', async () => {
    const name = await launch()
    const dir = await mkdtemp(join(tmpdir(), 'clincus-ws-'))
    onTestFinished(() => rm(dir, { recursive: true, force: true }))
    await chown(dir, 1000, 1000)
    await writeFile(join(dir, 'from-host'), 'host\n')
    const device = ['workspace', 'disk', `source=${dir}`, 'path=/workspace', 'shift=true']
    await run('incus', ['config', 'device', 'add', name, ...device], { timeoutMs: 60_000 })
    expect(await asCode(name, ['cat', '/workspace/from-host'])).toBe('host')
    await asCode(name, ['sh', '-c', 'echo inside > /workspace/from-container'])
    const info = await stat(join(dir, 'from-container'))
    expect([info.uid, info.gid]).toEqual([1000, 1000])
    expect(await readFile(join(dir, 'from-container'), 'utf8')).toBe('inside\n')
  }, 120_000)
})
