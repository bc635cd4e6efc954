// Terminals as execs of the Incus daemon, streamed over its WebSockets (exec-terminal.ts), against
// a fake daemon on a unix socket that speaks Incus 6.0's exec protocol: the request, the two
// sockets, output until the barrier, the exit code from the operation, flow control, input,
// resize and signals over control, and every way the daemon can fail.
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { IncusCommandError } from '../../incus/cli.ts'
import { IncusRest, IncusUnreachableError } from '../../incus/rest.ts'
import type { PtyExit, PtyProcess } from '../pty/spawner.ts'
import { tempDir } from '../test/helpers.ts'
import { waitUntil } from '../test/ws-client.ts'
import { EXEC_LOST_EXIT_CODE, openExecTerminal } from './exec-terminal.ts'
import { RestIncusDriver } from './rest-driver.ts'

const SECRET_DATA = 'data-secret-4f1c'
const SECRET_CONTROL = 'control-secret-9a2e'
const OP = 'a1b2c3d4-0000-4000-8000-000000000001'

interface Message {
  bytes: Buffer
  binary: boolean
}

/** One exec as the fake daemon sees it: its sockets, what came on them, and its end. */
interface FakeExec {
  body: unknown
  url: string
  data: WebSocket
  control: WebSocket
  input: Message[]
  controlMessages: unknown[]
  /** Resolves when the client closed its side of the terminal socket. */
  dataClosedByClient: Promise<void>
  /** Makes the operation finish with this exit code (what `/wait` answers from then on). */
  finish(code: number): void
  /** Makes the operation fail as a refused exec does (no PTY was ever mirrored). */
  fail(err: string): void
}

interface DaemonOptions {
  /** Answer to the exec POST instead of an operation. */
  refuse?: { code: number; error: string }
  /** Refuse WebSocket upgrades with this HTTP status. */
  upgradeStatus?: number
  /** Never answer a WebSocket upgrade (the handshake hangs). */
  holdUpgrades?: boolean
}

async function fakeDaemon(opts: DaemonOptions = {}) {
  const dir = await tempDir()
  const socketPath = join(dir, 'unix.socket')
  const sockets = new Set<Socket>()
  const execs: FakeExec[] = []
  let pending: Partial<FakeExec> & { body?: unknown; url?: string } = {}
  let result: { status_code: number; status: string; err?: string; metadata: unknown } | null = null
  const waiters: Array<() => void> = []
  const answer = (res: ServerResponse, status: number, envelope: object): void => {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(envelope))
  }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const url = req.url ?? ''
      if (req.method === 'POST' && url.startsWith('/1.0/instances/')) {
        if (opts.refuse) {
          answer(res, opts.refuse.code, {
            type: 'error',
            error_code: opts.refuse.code,
            error: opts.refuse.error,
          })
          return
        }
        pending = { body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown, url }
        answer(res, 202, {
          type: 'async',
          status_code: 100,
          operation: `/1.0/operations/${OP}`,
          metadata: {
            id: OP,
            status: 'Running',
            status_code: 103,
            metadata: { fds: { '0': SECRET_DATA, control: SECRET_CONTROL } },
          },
        })
        return
      }
      if (req.method === 'GET' && url.startsWith(`/1.0/operations/${OP}/wait`)) {
        const reply = (): void => {
          answer(res, 200, { type: 'sync', metadata: { id: OP, ...result } })
        }
        if (result) reply()
        else waiters.push(reply)
        return
      }
      answer(res, 404, { type: 'error', error_code: 404, error: 'not found' })
    })
  })
  const wss = new WebSocketServer({ noServer: true })
  let upgrades = 0
  server.on('upgrade', (req, socket, head) => {
    upgrades++
    if (opts.holdUpgrades) return
    if (opts.upgradeStatus) {
      socket.end(`HTTP/1.1 ${String(opts.upgradeStatus)} Forbidden\r\n\r\n`)
      return
    }
    const secret = new URL(req.url ?? '', 'http://x').searchParams.get('secret')
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (secret === SECRET_DATA) pending.data = ws
      else if (secret === SECRET_CONTROL) pending.control = ws
      else ws.close(1008)
      if (!pending.data || !pending.control) return
      const exec = pending as FakeExec
      pending = {}
      exec.input = []
      exec.controlMessages = []
      exec.dataClosedByClient = new Promise((resolve) => {
        exec.data.once('close', () => {
          resolve()
        })
      })
      exec.data.on('message', (m: RawData, binary: boolean) => {
        exec.input.push({ bytes: Buffer.from(m as Buffer), binary })
      })
      exec.control.on('message', (m: RawData) => {
        exec.controlMessages.push(JSON.parse(Buffer.from(m as Buffer).toString('utf8')) as unknown)
      })
      const settle = (r: NonNullable<typeof result>): void => {
        result = r
        for (const w of waiters.splice(0)) w()
      }
      exec.finish = (code) => {
        settle({ status: 'Success', status_code: 200, metadata: { return: code } })
      }
      exec.fail = (err) => {
        settle({ status: 'Failure', status_code: 400, err, metadata: null })
      }
      execs.push(exec)
    })
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.listen(socketPath)
  await once(server, 'listening')
  const rest = new IncusRest({ socketPath })
  const stop = async (): Promise<void> => {
    for (const c of wss.clients) c.terminate()
    for (const s of sockets) s.destroy()
    if (server.listening) await new Promise((resolve) => server.close(resolve))
  }
  onTestFinished(stop)
  return { socketPath, rest, execs, stop, upgrades: () => upgrades }
}

type Daemon = Awaited<ReturnType<typeof fakeDaemon>>

async function open(
  daemon: Daemon,
  opts: Partial<Parameters<typeof openExecTerminal>[4]> = {},
): Promise<{ pty: PtyProcess; exec: FakeExec; out: Buffer[]; exit: Promise<PtyExit> }> {
  const pty = await openExecTerminal(daemon.rest, 'proj', 'c1', ['tmux', 'attach'], {
    cols: 80,
    rows: 24,
    ...opts,
  })
  onTestFinished(() => {
    pty.kill('SIGKILL')
  })
  await waitUntil('the daemon to see both sockets', () => daemon.execs.length === 1)
  const exec = daemon.execs[0]
  if (!exec) throw new Error('no exec')
  const out: Buffer[] = []
  pty.onData((d) => out.push(d))
  const exit = new Promise<PtyExit>((resolve) => {
    pty.onExit(resolve)
  })
  return { pty, exec, out, exit }
}

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
    const sent = (m: Buffer | string): Promise<void> =>
      new Promise((resolve, reject) => {
        exec.data.send(m, (err) => {
          if (err) reject(err)
          else resolve()
        })
      })
    // 64 KiB, well within a unix socket's buffer: every send completes while the client is paused.
    const sends = Array.from({ length: 16 }, () => sent(chunk))
    sends.push(sent(Buffer.from('TAIL')), sent(''))
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
