// Terminals as execs of the Incus daemon, streamed over its WebSockets (exec-terminal.ts), against
// a fake daemon on a unix socket that speaks Incus 6.0's exec protocol: the request, the two
// sockets, output until the barrier, the exit code from the operation, flow control, input,
// resize and signals over control, and every way the daemon can fail.
import { once } from 'node:events'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { IncusCommandError } from '../../incus/cli.ts'
import { IncusRest, IncusUnreachableError } from '../../incus/rest.ts'
import type { PtyExit } from '../pty/spawner.ts'
import { tempDir } from '../test/helpers.ts'
import { waitUntil } from '../test/ws-client.ts'
import { fakeDaemon, open, SECRET_CONTROL, SECRET_DATA, sent } from './exec-daemon.test-support.ts'
import { EXEC_LOST_EXIT_CODE, openExecTerminal } from './exec-terminal.ts'
import { RestIncusDriver } from './rest-driver.ts'

describe('openExecTerminal', () => {
  it('asks Incus for an interactive exec with the terminal size, user, cwd and environment, then connects both sockets', async () => {
    const daemon = await fakeDaemon()
    const { pty, exec } = await open(daemon, {
      user: 1000,
      group: 1000,
      cwd: '/workspace',
      env: { TERM: 'xterm-256color', HOME: '/home/code' },
      cols: 120,
      rows: 40,
    })
    expect(exec.url).toBe('/1.0/instances/c1/exec?project=proj')
    expect(exec.body).toEqual({
      command: ['tmux', 'attach'],
      'wait-for-websocket': true,
      interactive: true,
      'record-output': false,
      environment: { TERM: 'xterm-256color', HOME: '/home/code' },
      width: 120,
      height: 40,
      user: 1000,
      group: 1000,
      cwd: '/workspace',
    })
    // No host process stands for it.
    expect(pty.pid).toBeUndefined()
  })

  it('delivers output in order, and reports the exit code after the last byte once the barrier came', async () => {
    const daemon = await fakeDaemon()
    const { exec, out, exit } = await open(daemon)
    const events: string[] = []
    void exit.then((e) => events.push(`exit ${String(e.exitCode)}`))
    exec.data.send(Buffer.from('hello '))
    exec.data.send(Buffer.from('world'))
    exec.data.send('') // the barrier: no more output
    // The daemon ends the operation once the client closed its side of the terminal socket.
    await exec.dataClosedByClient
    expect(events).toEqual([])
    exec.finish(3)
    expect(await exit).toEqual({ exitCode: 3, signal: undefined })
    expect(Buffer.concat(out).toString()).toBe('hello world')
  })

  it('takes only an exit status (0-255) from the operation', async () => {
    for (const code of [-1, 256, 1.5, 2 ** 31]) {
      const daemon = await fakeDaemon()
      const { exec, exit } = await open(daemon)
      exec.data.send('')
      exec.finish(code)
      expect(await exit).toEqual({ exitCode: EXEC_LOST_EXIT_CODE, signal: undefined })
      await daemon.stop()
    }
  })

  it('paused, holds the output in the socket and reports the exit only after resume delivered every byte (issue 14 row 9)', async () => {
    const daemon = await fakeDaemon()
    const { pty, exec, out, exit } = await open(daemon)
    pty.pause()
    const chunk = Buffer.alloc(4096, 'a')
    // 64 KiB, well within a unix socket's buffer: every send completes while the client is paused.
    const sends = Array.from({ length: 16 }, () => sent(exec.data, chunk))
    sends.push(sent(exec.data, Buffer.from('TAIL')), sent(exec.data, ''))
    await Promise.all(sends)
    exec.finish(0)
    let exited = false
    void exit.then(() => (exited = true))
    // A unix socket's write lands in the reader's queue at once: after the sends completed and
    // two more turns of the event loop (each polls the sockets), an unpaused reader has read them.
    for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve))
    expect(exited).toBe(false)
    expect(Buffer.concat(out).length).toBe(0)
    pty.resume()
    expect(await exit).toEqual({ exitCode: 0, signal: undefined })
    const all = Buffer.concat(out)
    expect(all.length).toBe(16 * 4096 + 4)
    expect(all.subarray(-4).toString()).toBe('TAIL')
  })

  it('a paused terminal that is killed still reaches its exit (the client left while it was paused)', async () => {
    const daemon = await fakeDaemon()
    const { pty, exec, exit } = await open(daemon)
    pty.pause()
    for (let i = 0; i < 64; i++) exec.data.send(Buffer.alloc(4096, 'b'))
    exec.data.send('')
    exec.finish(129)
    pty.kill('SIGHUP')
    expect(await exit).toEqual({ exitCode: 129, signal: undefined })
  })

  it('sends input as binary messages only (a text message would end the command input), counting what the kernel has not taken', async () => {
    const daemon = await fakeDaemon()
    const { pty, exec } = await open(daemon)
    pty.write('ls\r')
    pty.write(Buffer.from([0x1b, 0x5b, 0x41]))
    pty.write('')
    expect(pty.pendingInput).toBeGreaterThan(0)
    const drained = new Promise<void>((resolve) => pty.onInputBelow(0, resolve))
    await drained
    expect(pty.pendingInput).toBe(0)
    await waitUntil('both writes at the daemon', () => exec.input.length === 2)
    expect(exec.input.map((m) => m.binary)).toEqual([true, true])
    expect(Buffer.concat(exec.input.map((m) => m.bytes))).toEqual(
      Buffer.from('ls\r\x1b[A', 'latin1'),
    )
  })

  it('sends resizes and signals over the control socket, as the incus client does', async () => {
    const daemon = await fakeDaemon()
    const { pty, exec } = await open(daemon)
    pty.resize(132, 43)
    pty.kill('SIGHUP')
    pty.kill('SIGINT')
    await waitUntil('three control messages', () => exec.controlMessages.length === 3)
    expect(exec.controlMessages).toEqual([
      { command: 'window-resize', args: { width: '132', height: '43' } },
      { command: 'signal', signal: 1 },
      { command: 'signal', signal: 2 },
    ])
  })

  it('SIGKILL also closes control (the daemon then kills the command) and drops the sockets if the daemon does nothing', async () => {
    const daemon = await fakeDaemon()
    const { pty, exec, exit } = await open(daemon)
    const controlClosed = once(exec.control, 'close')
    pty.kill('SIGKILL')
    await controlClosed
    expect(exec.controlMessages).toEqual([{ command: 'signal', signal: 9 }])
    // This daemon never ends the operation: the terminal still ends.
    exec.fail('the daemon lost track of it')
    expect(await exit).toEqual({ exitCode: EXEC_LOST_EXIT_CODE, signal: undefined })
  })

  it('SIGKILL ends the terminal even when the daemon answers nothing at all (a hung daemon)', async () => {
    const daemon = await fakeDaemon()
    const pty = await openExecTerminal(
      daemon.rest,
      'proj',
      'c1',
      ['bash'],
      { cols: 80, rows: 24 },
      { killWaitMs: 50, resultTimeoutMs: 100 },
    )
    const exit = new Promise<PtyExit>((resolve) => {
      pty.onExit(resolve)
    })
    pty.kill('SIGKILL')
    expect(await exit).toEqual({ exitCode: EXEC_LOST_EXIT_CODE, signal: undefined })
  })

  it('reports an exit when the daemon goes away mid-stream (no barrier, no operation)', async () => {
    const daemon = await fakeDaemon()
    const { exec, out, exit } = await open(daemon)
    exec.data.send(Buffer.from('partial'))
    await waitUntil('the output to arrive', () => out.length > 0)
    await daemon.stop()
    expect(await exit).toEqual({ exitCode: EXEC_LOST_EXIT_CODE, signal: undefined })
    expect(Buffer.concat(out).toString()).toBe('partial')
  })

  it('ends at once when the exec failed to start: control closes, the operation failed, no barrier will come', async () => {
    const daemon = await fakeDaemon()
    const { exec, exit } = await open(daemon)
    exec.fail('Failed to start the command')
    exec.control.close()
    expect(await exit).toEqual({ exitCode: EXEC_LOST_EXIT_CODE, signal: undefined })
  })

  it("keeps Incus' own message when it refuses the exec", async () => {
    const daemon = await fakeDaemon({
      refuse: { code: 400, error: 'Instance is not running' },
    })
    const err = await openExecTerminal(daemon.rest, 'proj', 'c1', ['bash'], {
      cols: 80,
      rows: 24,
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(IncusCommandError)
    expect((err as Error).message).toContain('Instance is not running')
  })

  it('a cancelled open drops both sockets mid-handshake without an unhandled error', async () => {
    const daemon = await fakeDaemon({ holdUpgrades: true })
    const abort = new AbortController()
    const opening = openExecTerminal(daemon.rest, 'proj', 'c1', ['bash'], {
      cols: 80,
      rows: 24,
      signal: abort.signal,
    })
    await waitUntil('both handshakes under way', () => daemon.upgrades() === 2)
    abort.abort()
    await expect(opening).rejects.toThrow('incus exec was cancelled')
  })

  it('never puts a WebSocket secret into an error', async () => {
    const daemon = await fakeDaemon({ upgradeStatus: 403 })
    const err = await openExecTerminal(daemon.rest, 'proj', 'c1', ['bash'], {
      cols: 80,
      rows: 24,
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Error)
    const text = `${(err as Error).message} ${String((err as Error).stack)} ${JSON.stringify(err)}`
    expect(text).not.toContain(SECRET_DATA)
    expect(text).not.toContain(SECRET_CONTROL)
    expect(text).not.toContain('secret=')
  })

  it('an unreachable socket is IncusUnreachableError, so the REST driver answers null and the caller uses the CLI', async () => {
    const dir = await tempDir()
    const socketPath = join(dir, 'unix.socket')
    const err = await openExecTerminal(new IncusRest({ socketPath }), 'proj', 'c1', ['bash'], {
      cols: 80,
      rows: 24,
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(IncusUnreachableError)
    const driver = new RestIncusDriver({ project: 'proj', socketPath })
    expect(await driver.openTerminal('c1', ['bash'], { cols: 80, rows: 24 })).toBeNull()
  })
})
