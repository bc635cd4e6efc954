// Real Incus, opt-in (CLINCUS_IT_INCUS=1, after `tsx scripts/setup.ts --for test`): the clincus-test image
// does what the end-to-end tests will rely on.
import { chown, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { incus, type IncusCallOptions } from '../incus/cli.ts'
import { TEST_IMAGE_ALIAS } from './build.ts'

const enabled = process.env.CLINCUS_IT_INCUS === '1'
if (!enabled)
  process.stdout.write(
    'test-image.incus.test.ts skipped: run it through npm test (CLINCUS_IT_INCUS=1)\n',
  )

/** `incus <args>` through the one Incus layer, its output without the final newline. */
function run(args: readonly string[], opts: IncusCallOptions): Promise<string> {
  return incus.run(args, { stripFinalNewline: true, ...opts })
}

let counter = 0
async function launch(): Promise<string> {
  const name = `clincus-it-${process.pid}-${++counter}`
  onTestFinished(async () => {
    await run(['delete', '--force', name], { timeoutMs: 60_000 })
  })
  await run(['launch', TEST_IMAGE_ALIAS, name, '--quiet'], { timeoutMs: 120_000 })
  return name
}

function asCode(name: string, argv: string[], input?: string): Promise<string> {
  return run(
    ['exec', name, '--user', '1000', '--group', '1000', '--env', 'HOME=/home/code', '--', ...argv],
    { timeoutMs: 30_000, ...(input === undefined ? {} : { input }) },
  )
}

describe.skipIf(!enabled)('clincus-test image', () => {
  it('runs the fake tools as code, with tmux, no sudo and no extra group, and stops promptly', async () => {
    const name = await launch()
    expect(await asCode(name, ['claude', '--version'])).toBe('claude 0.0.0 (clincus fake tool)')
    expect(await asCode(name, ['opencode', '--session-id', 'x'], 'hello\nexit\n')).toContain(
      'hello-BACK\nGoodbye!',
    )
    // Root in a session is opt-in ([security] agent_sudo): the image grants none.
    await expect(asCode(name, ['sudo', '-n', 'id', '-u'])).rejects.toThrow(
      /password is required|not allowed|sudoers/,
    )
    expect(await asCode(name, ['id', '-G'])).toBe('1000')
    await asCode(name, ['tmux', 'new-session', '-d', '-s', 'it', 'copilot --session-id s1'])
    await expect
      .poll(() => asCode(name, ['tmux', 'capture-pane', '-p', '-t', 'it']), { timeout: 5000 })
      .toContain('Session: s1')
    const started = performance.now()
    await run(['stop', name], { timeoutMs: 60_000 })
    // init exits on SIGPWR; without that Incus waits for its stop timeout before killing.
    expect(performance.now() - started).toBeLessThan(10_000)
  }, 120_000)

  it('maps the host owner onto the code user with raw.idmap, container root unprivileged', async () => {
    const name = `clincus-it-${process.pid}-${++counter}`
    onTestFinished(async () => {
      await run(['delete', '--force', name], { timeoutMs: 60_000 })
    })
    await run(['init', TEST_IMAGE_ALIAS, name, '--quiet', '--config', 'raw.idmap=both 1000 1000'], {
      timeoutMs: 120_000,
    })
    const dir = await mkdtemp(join(tmpdir(), 'clincus-ws-'))
    onTestFinished(() => rm(dir, { recursive: true, force: true }))
    await chown(dir, 1000, 1000)
    await writeFile(join(dir, 'from-host'), 'host\n')
    const device = ['workspace', 'disk', `source=${dir}`, 'path=/workspace']
    await run(['config', 'device', 'add', name, ...device], { timeoutMs: 60_000 })
    await run(['start', name], { timeoutMs: 60_000 })
    expect(await asCode(name, ['cat', '/workspace/from-host'])).toBe('host')
    await asCode(name, ['sh', '-c', 'echo inside > /workspace/from-container'])
    const info = await stat(join(dir, 'from-container'))
    expect([info.uid, info.gid]).toEqual([1000, 1000])
    expect(await readFile(join(dir, 'from-container'), 'utf8')).toBe('inside\n')
    // container root is not host root: what it makes belongs to an unprivileged host id
    await run(['exec', name, '--', 'sh', '-c', 'echo root > /workspace/by-root'], {
      timeoutMs: 30_000,
    })
    expect((await stat(join(dir, 'by-root'))).uid).toBeGreaterThanOrEqual(1_000_000)
  }, 120_000)
})
