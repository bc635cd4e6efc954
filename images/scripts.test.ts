// The two shell scripts baked into the images, run on the host: the fake tool's protocol is what
// the end-to-end tests rely on, and init must exit on the signal Incus stops containers with.
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises'
import { constants, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import { describe, expect, it, onTestFinished, vi } from 'vitest'

const fakeTool = fileURLToPath(new URL('./fake-tool.sh', import.meta.url))
const init = fileURLToPath(new URL('./init.sh', import.meta.url))

async function toolAs(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'clincus-fake-'))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, name)
  await symlink(fakeTool, path)
  return path
}

describe('fake-tool.sh', () => {
  it('answers --version and exits 0', async () => {
    const result = await execa(await toolAs('claude'), ['--version'], { timeout: 5000 })
    expect(result.stdout).toBe('claude 0.0.0 (clincus fake tool)')
  })

  it('runs a session: banner, session id, echo, Goodbye on exit', async () => {
    const tool = await toolAs('claude')
    const result = await execa(
      tool,
      ['--verbose', '--permission-mode', 'bypassPermissions', '--session-id', 'abc-123'],
      { input: 'hello\r\nwith spaces\nexit\nnever read\n', timeout: 5000 },
    )
    expect(result.stdout.split('\n')).toEqual([
      'clincus fake tool (claude) ready',
      'Session: abc-123',
      'hello-BACK',
      'with spaces-BACK',
      'Goodbye!',
    ])
    expect(result.exitCode).toBe(0)
  })

  it('announces a resume, with or without an id, and ignores unknown flags', async () => {
    const copilot = await toolAs('copilot')
    const plain = await execa(copilot, ['--allow-all-tools', '--resume'], {
      input: 'quit\n',
      timeout: 5000,
    })
    expect(plain.stdout.split('\n')).toEqual([
      'clincus fake tool (copilot) ready',
      'Resuming session',
      'Goodbye!',
    ])
    const withId = await execa(copilot, ['--resume', 'xyz', '--session-id', 's1'], {
      input: '',
      timeout: 5000,
    })
    expect(withId.stdout).toContain('Resuming session xyz\nSession: s1')
  })
})

describe('init.sh', () => {
  for (const signal of ['SIGPWR', 'SIGTERM'] as const) {
    it(`exits 0 promptly on ${signal}`, async () => {
      const child = execa('bash', [init], { timeout: 5000, reject: false, stdio: 'ignore' })
      const pid = child.pid
      if (pid === undefined) throw new Error('bash did not start')
      // Signal only once bash has installed its trap (SigCgt lists caught signals as a bit mask).
      await vi.waitFor(async () => {
        const status = await readFile(`/proc/${pid}/status`, 'utf8')
        const caught = BigInt(`0x${/^SigCgt:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`)
        expect(caught & (1n << BigInt(constants.signals[signal] - 1))).not.toBe(0n)
      })
      const sent = performance.now()
      child.kill(signal)
      const result = await child
      expect(result.exitCode).toBe(0)
      expect(performance.now() - sent).toBeLessThan(2000)
    })
  }
})
