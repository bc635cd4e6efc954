// Red-team attacks on the daemon-exec terminal (exec-terminal.ts), against a fake daemon on a unix
// socket that does what Incus 6.0 does at a command's end: it closes the control socket at once
// (instance_exec.go finisher), then keeps mirroring what is left in the PTY, but only for 1 s
// after its first read past the exit (internal/linux/poll.go execWrapper: later reads return
// EOF). A client that stops reading the terminal socket past that point loses the tail.
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { WebSocketServer, type WebSocket } from 'ws'
import { IncusRest } from '../../incus/rest.ts'
import type { PtyExit, PtyProcess } from '../pty/spawner.ts'
import { tempDir } from '../test/helpers.ts'
import { waitUntil } from '../test/ws-client.ts'
import { openExecTerminal } from './exec-terminal.ts'

const OP = 'b1b2c3d4-0000-4000-8000-000000000002'

interface Exec {
  data: WebSocket
  control: WebSocket
  finish(code: number): void
}

interface DaemonOptions {
  /**
   * Output (and the barrier, when `exits`) the command writes at once: the daemon starts it when
   * it has both sockets, which can be before the client sees its second one open. The fake sends
   * it on the terminal socket before it completes the control socket's handshake.
   */
  early?: { output: Buffer; exits: boolean }
}

async function fakeDaemon(opts: DaemonOptions = {}) {
  const dir = await tempDir()
  const socketPath = join(dir, 'unix.socket')
  const sockets = new Set<Socket>()
  const execs: Exec[] = []
  let pending: Partial<Exec> = {}
  let result: number | null = null
  /** GET /wait requests so far (the client asks once control closes and once output ended). */
  const seen = { waits: 0 }
  const waiters: Array<() => void> = []
  const answer = (res: ServerResponse, status: number, envelope: object): void => {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(envelope))
  }
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const url = req.url ?? ''
      if (req.method === 'POST') {
        answer(res, 202, {
          type: 'async',
          operation: `/1.0/operations/${OP}`,
          metadata: { id: OP, status_code: 103, metadata: { fds: { '0': 'd', control: 'c' } } },
        })
        return
      }
      if (url.startsWith(`/1.0/operations/${OP}/wait`)) {
        seen.waits++
        const reply = (): void => {
          answer(res, 200, {
            type: 'sync',
            metadata: { id: OP, status_code: 200, metadata: { return: result } },
          })
        }
        if (result !== null) reply()
        else waiters.push(reply)
        return
      }
      answer(res, 404, { type: 'error', error_code: 404, error: 'not found' })
    })
  })
  const wss = new WebSocketServer({ noServer: true })
  let heldControl: (() => void) | null = null
  server.on('upgrade', (req, socket, head) => {
    const secret = new URL(req.url ?? '', 'http://x').searchParams.get('secret')
    const early = opts.early
    const upgrade = (): void => {
      wss.handleUpgrade(req, socket, head, connected)
    }
    const connected = (ws: WebSocket): void => {
      if (early && secret === 'd') {
        pending.data = ws
        const go = heldControl
        heldControl = null
        void (async () => {
          await sent(ws, early.output)
          if (early.exits) await sent(ws, '')
          go?.()
        })()
        return
      }
      if (secret === 'd') pending.data = ws
      else pending.control = ws
      if (!pending.data || !pending.control) return
      const exec = pending as Exec
      pending = {}
      exec.finish = (code) => {
        result = code
        for (const w of waiters.splice(0)) w()
      }
      execs.push(exec)
    }
    if (early && secret === 'c' && !pending.data) heldControl = upgrade
    else upgrade()
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.listen(socketPath)
  await once(server, 'listening')
  onTestFinished(async () => {
    for (const c of wss.clients) c.terminate()
    for (const s of sockets) s.destroy()
    if (server.listening) await new Promise((resolve) => server.close(resolve))
  })
  return { rest: new IncusRest({ socketPath }), execs, seen }
}

async function open(daemon: Awaited<ReturnType<typeof fakeDaemon>>) {
  const pty: PtyProcess = await openExecTerminal(daemon.rest, 'p', 'c1', ['sh'], {
    cols: 80,
    rows: 24,
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

function sent(ws: WebSocket, m: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.send(m, (err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

describe('exec terminal (red team)', () => {
  it('keeps output that comes before the control socket is seen open (tmux redraws at once; the daemon starts the command as soon as it has both sockets)', async () => {
    const output = Buffer.from('the first screen\r\n$ ')
    const daemon = await fakeDaemon({ early: { output, exits: false } })
    const { out } = await open(daemon)
    await waitUntil('the first screen', () => Buffer.concat(out).length >= output.length)
    expect(Buffer.concat(out)).toEqual(output)
  })

  it('a command that ends before the control socket is seen open still reports its output then its exit', async () => {
    const output = Buffer.from('done\r\n')
    const daemon = await fakeDaemon({ early: { output, exits: true } })
    const { exec, out, exit } = await open(daemon)
    exec.finish(5)
    expect(await exit).toEqual({ exitCode: 5, signal: undefined })
    expect(Buffer.concat(out)).toEqual(output)
  })

  it('once the command ended (control closed), reads the rest of the output while paused, so the daemon never stalls past its 1 s post-exit read deadline; every byte then the exit after resume (issue 14 row 9)', async () => {
    const daemon = await fakeDaemon()
    const { pty, exec, out, exit } = await open(daemon)
    pty.pause()
    // The tail a program leaves in the PTY and the socket when it exits right after a large
    // write: more than a unix socket holds, so the daemon's writes block on a client that
    // stopped reading.
    const chunk = (i: number): Buffer => Buffer.alloc(32 * 1024, 97 + (i % 26))
    const count = 24
    // The command ended: the daemon closes control first, then mirrors what is left.
    exec.control.terminate()
    const sends = Array.from({ length: count }, (_, i) => sent(exec.data, chunk(i)))
    sends.push(sent(exec.data, Buffer.from('TAIL')))
    // Every write of the daemon completes while the consumer is still paused: nothing of the
    // tail waits in the daemon, whose reads would return EOF after its deadline.
    await Promise.all(sends)
    await sent(exec.data, '')
    exec.finish(0)
    expect(Buffer.concat(out).length).toBe(0)
    pty.resume()
    expect(await exit).toEqual({ exitCode: 0, signal: undefined })
    const all = Buffer.concat(out)
    expect(all.length).toBe(count * 32 * 1024 + 4)
    expect(
      all.equals(
        Buffer.concat([...Array.from({ length: count }, (_, i) => chunk(i)), Buffer.from('TAIL')]),
      ),
    ).toBe(true)
  }, 30_000)

  it('a consumer that pauses again while the held tail is delivered gets the rest only on its next resume, in order, and the exit after it', async () => {
    const daemon = await fakeDaemon()
    const { pty, exec, out, exit } = await open(daemon)
    pty.pause()
    exec.control.terminate()
    await Promise.all([1, 2, 3].map((n) => sent(exec.data, Buffer.from(String(n)))))
    await sent(exec.data, '')
    // Read through the barrier while paused: the client asks for the result after it.
    await waitUntil('the client to read the barrier', () => daemon.seen.waits >= 2)
    exec.finish(7)
    let exited = false
    void exit.then(() => (exited = true))
    // The bridge pauses from inside its data listener when its window is full.
    pty.onData(() => {
      pty.pause()
    })
    pty.resume()
    expect(Buffer.concat(out).toString()).toBe('1')
    // The exit waits for the rest of the output.
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
    expect(exited).toBe(false)
    pty.resume()
    expect(Buffer.concat(out).toString()).toBe('12')
    pty.resume()
    expect(await exit).toEqual({ exitCode: 7, signal: undefined })
    expect(Buffer.concat(out).toString()).toBe('123')
  }, 30_000)
})
