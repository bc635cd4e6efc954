// `incus exec --env KEY=VALUE` carries the profile's environment, where users put the API keys a
// session needs. A failed or timed-out exec (which an agent can cause on resume by replacing
// tmux in its container with a program that hangs) is logged with its IncusCommandError: no
// value of an --env may reach that log line, from the argv, the stderr or the cause's message.
import { writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { execa } from 'execa'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { IncusCommandError } from '../errors.ts'
import { loggerOptions } from '../security/log-redaction.ts'
import { tempDir } from '../test/helpers.ts'
import { CliIncusDriver } from './cli-driver.ts'

const SECRET = 'sk-ant-SECRET-0123456789'

function logged(err: unknown): string {
  let out = ''
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString()
      done()
    },
  })
  pino(loggerOptions('debug'), sink).warn({ err }, 'session creation failed; rolling back')
  return out
}

async function failedExec(binary: string, timeoutMs: number): Promise<IncusCommandError> {
  const driver = new CliIncusDriver({ project: 'default', binary })
  const err = await driver
    .exec('c1', ['tmux', 'new-session'], { env: { ANTHROPIC_API_KEY: SECRET }, timeoutMs })
    .catch((e: unknown) => e)
  expect(err).toBeInstanceOf(IncusCommandError)
  return err as IncusCommandError
}

describe('IncusCommandError', () => {
  it('keeps no --env value of the command line an execa error wraps', async () => {
    const argv = ['--project', 'default', 'exec', 'c1', '--env', `KEY=${SECRET}`, '--', 'tmux']
    const cause = await execa('sh', ['-c', 'exit 3', ...argv]).catch((e: unknown) => e)
    expect(String(cause)).toContain(SECRET)
    const err = new IncusCommandError({ argv, exitCode: undefined, stderr: String(cause), cause })
    expect(err.argv).toContain('KEY=[redacted]')
    expect(logged(err)).toContain('KEY=')
    expect(logged(err)).not.toContain(SECRET)
  })

  it('keeps no --env value when the exec times out', async () => {
    const bin = join(await tempDir(), 'incus')
    await writeFile(bin, `#!/bin/sh\necho "stuck running $*" >&2\nexec sleep 60\n`)
    await chmod(bin, 0o755)
    const err = await failedExec(bin, 300)
    expect(err.timedOut).toBe(true)
    // What the client reads names the subcommand, not the global option before it.
    expect(err.message).toBe('incus exec timed out')
    expect(logged(err)).not.toContain(SECRET)
  })
})
