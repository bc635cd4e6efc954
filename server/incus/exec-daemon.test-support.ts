// A fake Incus daemon on a unix socket that speaks 6.0's interactive exec protocol (the request,
// an operation with two WebSocket secrets, output until an empty text message, the exit code
// from `/wait`), for the exec terminal's tests (exec-terminal.test.ts and the red team's).
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { onTestFinished } from 'vitest'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { IncusRest } from '../../incus/rest.ts'
import type { PtyExit, PtyProcess } from '../pty/spawner.ts'
import { tempDir } from '../test/helpers.ts'
import { waitUntil } from '../test/ws-client.ts'
import { openExecTerminal } from './exec-terminal.ts'

export const SECRET_DATA = 'data-secret-4f1c'
export const SECRET_CONTROL = 'control-secret-9a2e'
const OP = 'a1b2c3d4-0000-4000-8000-000000000001'

interface Message {
  bytes: Buffer
  binary: boolean
}

/** One exec as the fake daemon sees it: its sockets, what came on them, and its end. */
export interface FakeExec {
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
  /**
   * Output (and the barrier, when `exits`) the command writes at once: Incus starts it when it
   * has both sockets, which can be before the client sees its second one open. The fake sends it
   * on the terminal socket before it completes the control socket's handshake.
   */
  early?: { output: Buffer; exits: boolean }
}

export async function fakeDaemon(opts: DaemonOptions = {}) {
  const dir = await tempDir()
  const socketPath = join(dir, 'unix.socket')
  const sockets = new Set<Socket>()
  const execs: FakeExec[] = []
  let pending: Partial<FakeExec> & { body?: unknown; url?: string } = {}
  let result: { status_code: number; status: string; err?: string; metadata: unknown } | null = null
  const waiters: Array<() => void> = []
  /** GET /wait requests so far (the client asks once control closes and once output ended). */
  const seen = { waits: 0 }
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
        seen.waits++
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
  let heldControl: (() => void) | null = null
  let upgrades = 0
  server.on('upgrade', (req, socket, head) => {
    upgrades++
    if (opts.holdUpgrades) return
    if (opts.upgradeStatus) {
      socket.end(`HTTP/1.1 ${String(opts.upgradeStatus)} Forbidden\r\n\r\n`)
      return
    }
    const secret = new URL(req.url ?? '', 'http://x').searchParams.get('secret')
    const early = opts.early
    const upgrade = (): void => {
      wss.handleUpgrade(req, socket, head, connected)
    }
    const connected = (ws: WebSocket): void => {
      if (secret === SECRET_DATA) pending.data = ws
      else if (secret === SECRET_CONTROL) pending.control = ws
      else ws.close(1008)
      if (early && secret === SECRET_DATA) {
        // The command runs and writes before the control handshake completes.
        const go = heldControl
        heldControl = null
        void (async () => {
          await sent(ws, early.output)
          if (early.exits) await sent(ws, '')
          go?.()
        })()
      }
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
    }
    if (early && secret === SECRET_CONTROL && !pending.data) heldControl = upgrade
    else upgrade()
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
  return { socketPath, rest, execs, stop, seen, upgrades: () => upgrades }
}

export type Daemon = Awaited<ReturnType<typeof fakeDaemon>>

export async function open(
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

/** Sends `m` on `ws`; resolves once it is written to the socket. */
export function sent(ws: WebSocket, m: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.send(m, (err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}
