// TerminalManager with a driver that opens terminals as execs of the Incus daemon (issue 14):
// what it asks the driver for, the CLI fallback when the driver cannot, a failed open, and an
// app close while an open is still under way.
import { describe, expect, it } from 'vitest'
import { CloseCode } from '../../shared/ws/terminal.ts'
import type { TerminalExecOptions } from '../incus/driver.ts'
import { FakeIncusDriver } from '../incus/fake-driver.ts'
import type { PtyProcess } from '../pty/spawner.ts'
import { FakePty, FakeSpawner } from '../test/fake-pty.ts'
import { buildTestApp } from '../test/helpers.ts'
import { TerminalClient, waitUntil } from '../test/ws-client.ts'

const ID = 'clincus-0123abcd-1'

interface OpenCall {
  name: string
  argv: readonly string[]
  opts: TerminalExecOptions
}

/** A fake driver whose terminals are "execs of the daemon": `answer` decides each open. */
class ExecDriver extends FakeIncusDriver {
  readonly opens: OpenCall[] = []
  answer: (call: OpenCall) => Promise<PtyProcess | null> = (call) =>
    Promise.resolve(new FakePty('(daemon)', call.argv, { cols: 0, rows: 0, name: '' }))

  openTerminal(
    name: string,
    argv: readonly string[],
    opts: TerminalExecOptions,
  ): Promise<PtyProcess | null> {
    const call = { name, argv, opts }
    this.opens.push(call)
    return this.answer(call)
  }
}

async function setup() {
  const driver = new ExecDriver()
  const spawner = new FakeSpawner()
  const t = await buildTestApp({ driver, deps: { pty: spawner } })
  driver.addInstance(ID, {
    status: 'Running',
    config: { 'user.clincus.managed': 'true', 'user.clincus.workspace': t.project },
  })
  const address = await t.app.listen({ port: 0, host: '127.0.0.1' })
  const url = (path: string): string => `${address.replace('http', 'ws')}${path}`
  return { ...t, driver, spawner, url }
}

describe('terminals opened as execs of the Incus daemon', () => {
  it('asks the driver for the exec (tmux attach as the code user, the size asked for) and spawns nothing on the host', async () => {
    const t = await setup()
    let pty: FakePty | undefined
    t.driver.answer = (call) => {
      pty = new FakePty('(daemon)', call.argv, { cols: 0, rows: 0, name: '' })
      return Promise.resolve(pty)
    }
    const c = new TerminalClient(t.url(`/ws/terminal/${ID}?cols=132&rows=43`), { protocol: 'raw' })
    await c.opened
    await waitUntil('the exec', () => pty !== undefined)
    const call = t.driver.opens[0]
    expect(call?.name).toBe(ID)
    expect(call?.argv.slice(0, 3)).toEqual(['tmux', '-u', 'attach-session'])
    expect(call?.opts).toMatchObject({ user: 1000, group: 1000, cols: 132, rows: 43 })
    expect(call?.opts.env).toMatchObject({ TERM: 'xterm-256color', LANG: 'C.UTF-8' })
    expect(t.spawner.spawned).toEqual([])
    pty?.emit('hello')
    await c.waitFor('hello')
    c.send('x')
    await waitUntil('the input', () => pty?.input === 'x')
    pty?.exit(3)
    expect((await c.closed).code).toBe(CloseCode.EXITED)
  })

  it('falls back to `incus exec` in a host PTY when the driver cannot (its socket is unreachable)', async () => {
    const t = await setup()
    t.driver.answer = () => Promise.resolve(null)
    const c = new TerminalClient(t.url(`/ws/shell/${ID}`), { protocol: 'raw' })
    await waitUntil('the host PTY', () => t.spawner.spawned.length === 1)
    expect(t.spawner.last.file).toBe('incus')
    expect(t.spawner.last.args).toEqual(expect.arrayContaining(['exec', ID, '--', 'bash']))
    t.spawner.last.exit(0)
    expect((await c.closed).code).toBe(CloseCode.EXITED)
  })

  it('a refused exec closes the terminal with 1011 and a reason, and frees its place under the cap', async () => {
    const t = await setup()
    t.driver.answer = () => Promise.reject(new Error('Error: Instance is not running'))
    const c = new TerminalClient(t.url(`/ws/terminal/${ID}`), { protocol: 'raw' })
    expect(await c.closed).toEqual({
      code: CloseCode.INTERNAL,
      reason: 'terminal failed to start',
    })
    await waitUntil('no terminal counted', () => t.terminals.count(ID) === 0)
  })

  it('app close waits for an exec still being opened, and ends it once it is there', async () => {
    const t = await setup()
    let resolveOpen: (p: PtyProcess) => void = () => undefined
    t.driver.answer = () =>
      new Promise((resolve) => {
        resolveOpen = resolve
      })
    const c = new TerminalClient(t.url(`/ws/terminal/${ID}`), { protocol: 'raw' })
    await waitUntil('the open under way', () => t.driver.opens.length === 1)
    let closed = false
    const closing = t.app.close().then(() => {
      closed = true
    })
    expect((await c.closed).code).toBe(CloseCode.GOING_AWAY)
    expect(closed).toBe(false)
    const late = new FakePty('(daemon)', [], { cols: 0, rows: 0, name: '' })
    resolveOpen(late)
    await closing
    // attach saw the closed socket and hung the exec up; close waited for its exit.
    expect(late.signals).toContain('SIGHUP')
    expect(late.exited).toBe(true)
  })
})
