// The one Incus layer (incus/cli.ts) against a stub `incus` that records its argv and answers from
// a script: how each kind of failure becomes an IncusCommandError, and how the server answers it.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import Type from 'typebox'
import { describe, expect, it } from 'vitest'
import { toErrorReply } from '../server/errors.ts'
import { REDACTED as LOG_REDACTED } from '../server/security/log-redaction.ts'
import { tempDir } from '../server/test/helpers.ts'
import { IncusCli, IncusCommandError, REDACTED, withProject } from './cli.ts'

const STUB = join(import.meta.dirname, '..', 'server', 'test', 'fixtures', 'bin', 'incus')

interface Reply {
  match: string
  stdout?: string
  stderr?: string
  code?: number
  sleepMs?: number
}

async function stub(replies: Reply[] = []): Promise<{
  cli: IncusCli
  argvs: () => Promise<string[][]>
}> {
  const dir = await tempDir()
  const log = join(dir, 'argv.log')
  const file = join(dir, 'replies.json')
  await writeFile(file, JSON.stringify(replies))
  const cli = new IncusCli({
    binary: STUB,
    env: { INCUS_STUB_LOG: log, INCUS_STUB_REPLIES: file },
  })
  const argvs = async (): Promise<string[][]> =>
    (await readFile(log, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string[])
  return { cli, argvs }
}

async function failure(p: Promise<unknown>): Promise<IncusCommandError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(IncusCommandError)
  return err as IncusCommandError
}

describe('IncusCli.run', () => {
  it('passes the argv as given and returns stdout with its final newline', async () => {
    const { cli, argvs } = await stub([{ match: 'list', stdout: 'a\n' }])
    expect(await cli.run(['list', '--', 'a b; rm -rf /'])).toBe('a\n')
    expect(await cli.run(['list'], { stripFinalNewline: true })).toBe('a')
    expect((await argvs())[0]).toEqual(['list', '--', 'a b; rm -rf /'])
  })

  it("keeps Incus' own reason as the message, the whole stderr and the exit code on the error", async () => {
    const { cli } = await stub([
      {
        match: 'start',
        stderr: 'Error: Failed to run: detail one\nError: Instance is busy running a "stop"\n',
        code: 1,
      },
    ])
    const err = await failure(cli.run(['--project', 'p', 'start', '--', 'c1']))
    expect(err.message).toBe('Instance is busy running a "stop"')
    expect(err.stderr).toContain('detail one')
    expect(err.exitCode).toBe(1)
    expect(err.argv).toEqual(['--project', 'p', 'start', '--', 'c1'])
    expect(err.code).toBe('incus_error')
    expect(err.timedOut).toBe(false)
    expect(err.isBusy).toBe(true)
    expect(err.isNotFound).toBe(false)
  })

  it('names the subcommand and exit code when Incus printed nothing', async () => {
    const { cli } = await stub([{ match: 'delete', code: 3 }])
    const err = await failure(cli.run(['--project', 'p', 'delete', '--', 'c1']))
    expect(err.message).toBe('incus delete failed with exit code 3')
  })

  it('times out with code incus_timeout, and an abort says it was cancelled', async () => {
    const { cli } = await stub([{ match: 'start', sleepMs: 10_000 }])
    const timed = await failure(cli.run(['start', '--', 'c1'], { timeoutMs: 200 }))
    expect(timed.timedOut).toBe(true)
    expect(timed.code).toBe('incus_timeout')
    expect(timed.message).toBe('incus start timed out')
    const ctl = new AbortController()
    const pending = failure(cli.run(['start', '--', 'c1'], { signal: ctl.signal }))
    ctl.abort()
    const aborted = await pending
    expect(aborted.message).toBe('incus start was cancelled')
    expect(aborted.timedOut).toBe(false)
  })

  it('reports a missing incus binary as an IncusCommandError, not a crash', async () => {
    const cli = new IncusCli({ binary: '/nonexistent/incus' })
    const err = await failure(cli.run(['list']))
    expect(err.exitCode).toBeUndefined()
    expect(err.message).toMatch(/ENOENT|not found|no such file/i)
  })
})

describe('IncusCli.runResult', () => {
  it("returns a non-zero exit (an exec'd program's) without throwing", async () => {
    const { cli } = await stub([{ match: 'exec', stdout: 'out', stderr: 'err', code: 7 }])
    expect(await cli.runResult(['exec', 'c1', '--', 'false'])).toEqual({
      stdout: 'out',
      stderr: 'err',
      exitCode: 7,
    })
  })
})

describe('IncusCli.query', () => {
  it('sends method and JSON data, and reads an empty answer as null', async () => {
    const { cli, argvs } = await stub([{ match: 'query', stdout: '' }])
    expect(await cli.query('/1.0/images/aliases', { method: 'POST', data: { name: 'a' } })).toBe(
      null,
    )
    expect((await argvs())[0]).toEqual([
      'query',
      '--request',
      'POST',
      '--data',
      '{"name":"a"}',
      '/1.0/images/aliases',
    ])
  })

  it('refuses output that is not JSON', async () => {
    const { cli } = await stub([{ match: 'query', stdout: '<html>' }])
    const err = await failure(cli.query('/1.0'))
    expect(err.message).toContain('unparsable JSON from incus')
  })

  it('checks the answer against a schema and names what it expected', async () => {
    const { cli } = await stub([{ match: 'query', stdout: JSON.stringify({ nom: 'x' }) }])
    const schema = Type.Object({ name: Type.String() })
    const err = await failure(cli.queryAs(schema, 'profile', '/1.0/profiles/default'))
    expect(err.message).toBe('unexpected profile shape from incus')
    const ok = await stub([{ match: 'query', stdout: JSON.stringify({ name: 'x', extra: 1 }) }])
    expect(await ok.cli.queryAs(schema, 'profile', '/1.0/profiles/default')).toEqual({
      name: 'x',
      extra: 1,
    })
  })

  it('adds the project to a path, with or without a query string', () => {
    expect(withProject('/1.0/instances', 'a b')).toBe('/1.0/instances?project=a%20b')
    expect(withProject('/1.0/instances?recursion=1', 'p')).toBe(
      '/1.0/instances?recursion=1&project=p',
    )
  })
})

describe('IncusCommandError over HTTP', () => {
  it("answers 502 with Incus' reason and a stable code", () => {
    const err = new IncusCommandError({
      argv: ['start', '--', 'c1'],
      exitCode: 1,
      stderr: 'Error: Instance not found\n',
    })
    expect(toErrorReply(err)).toEqual({
      status: 502,
      body: { error: 'Instance not found', code: 'incus_error' },
      headers: {},
    })
    const timed = new IncusCommandError({
      argv: ['stop'],
      exitCode: undefined,
      stderr: '',
      timedOut: true,
    })
    expect(toErrorReply(timed).body).toEqual({
      error: 'incus stop timed out',
      code: 'incus_timeout',
    })
  })

  it('redacts --env values with the same marker as the log', () => {
    expect(REDACTED).toBe(LOG_REDACTED)
    const err = new IncusCommandError({
      argv: ['exec', 'c1', '--env', 'KEY=s3cret', '--', 'sh'],
      exitCode: 1,
      stderr: 'Error: bad s3cret',
    })
    expect(err.argv).toEqual(['exec', 'c1', '--env', `KEY=${REDACTED}`, '--', 'sh'])
    expect(JSON.stringify({ m: err.message, s: err.stderr })).not.toContain('s3cret')
  })
})
