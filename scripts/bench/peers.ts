// Peer web terminals measured in the same run as clincus (issue 14): the same container, the
// same command, the same file and the same kind of client. Each peer lives in
// bench/peers/ (its own package.json and lock, installed with `npm ci` on first use),
// never in clincus' dependencies.
//
// - wetty 3.2.0 (npm): run as its users run it on one machine — the server process with
//   `--command`, spawning that command in a PTY per browser connection (as root on 127.0.0.1 it
//   skips ssh and runs `/usr/bin/env -S <command>`), and its socket.io protocol: `data` (text)
//   out, `input` and `resize` in, `commit` every 256 KiB as its browser client does.
// - ttyd: not packaged by Debian 12 nor bookworm-backports (it is from Debian 13 on); gotty
//   neither. Checked with `apt-cache policy ttyd gotty` after `apt-get update`.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { execa } from 'execa'
import { sleep, waitFor } from './stats.ts'
import { Endpoint } from './terminal-clients.ts'

export const TTYD_NOTE =
  'ttyd and gotty: not packaged for Debian 12 (bookworm, bookworm-backports); not measured'

function peersDir(repoRoot: string): string {
  return join(repoRoot, 'bench', 'peers')
}

/** Installs the peers (npm ci against the lock) unless they are there; returns their folder. */
export async function ensurePeers(repoRoot: string): Promise<string> {
  const dir = peersDir(repoRoot)
  if (!existsSync(join(dir, 'node_modules', 'wetty', 'build', 'main.js'))) {
    await execa('npm', ['ci', '--no-audit', '--no-fund', '--loglevel', 'error'], {
      cwd: dir,
      timeout: 600_000,
    })
  }
  return dir
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address()
      s.close(() => {
        if (addr && typeof addr === 'object') resolve(addr.port)
        else reject(new Error('no port'))
      })
    })
  })
}

/** One argv as a string `env -S` splits back into the same words. */
export function envSplitString(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, '')}'`))
    .join(' ')
}

/** A wetty server process on 127.0.0.1 running `argv` for each connection. */
export class WettyServer {
  readonly url: string
  readonly #child: ChildProcess
  readonly dir: string

  private constructor(dir: string, child: ChildProcess, url: string) {
    this.dir = dir
    this.#child = child
    this.url = url
  }

  get pid(): number {
    return this.#child.pid ?? -1
  }

  static async start(repoRoot: string, argv: readonly string[]): Promise<WettyServer> {
    const dir = await ensurePeers(repoRoot)
    const port = await freePort()
    const child = spawn(
      process.execPath,
      [
        join(dir, 'node_modules', 'wetty', 'build', 'main.js'),
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--base',
        '/wetty',
        '--log-level',
        'error',
        '--command',
        envSplitString(argv),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE_ENV: 'production' } },
    )
    const url = `http://127.0.0.1:${port}`
    await waitFor(
      'wetty to listen',
      async () => {
        if (child.exitCode !== null) throw new Error(`wetty exited with ${child.exitCode}`)
        return fetch(`${url}/wetty/`).then(
          (r) => r.ok,
          () => false,
        )
      },
      30_000,
      100,
    )
    return new WettyServer(dir, child, url)
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return
    const exited = new Promise<void>((resolve) => {
      this.#child.once('exit', () => {
        resolve()
      })
    })
    this.#child.kill('SIGTERM')
    const done = await Promise.race([exited.then(() => true), sleep(3000).then(() => false)])
    if (!done) {
      this.#child.kill('SIGKILL')
      await exited
    }
  }
}

/** The part of socket.io-client's Socket the endpoint uses. */
interface IoSocket {
  on(event: string, fn: (...args: unknown[]) => void): IoSocket
  once(event: string, fn: (...args: unknown[]) => void): IoSocket
  emit(event: string, ...args: unknown[]): IoSocket
  disconnect(): IoSocket
  connected: boolean
}
type IoFactory = (url: string, opts: Record<string, unknown>) => IoSocket

/** wetty's own client protocol (socket.io over WebSocket), minus the rendering. */
export class WettyEndpoint extends Endpoint {
  readonly label = 'wetty'
  readonly opened: Promise<void>
  #socket: IoSocket | null = null
  #uncommitted = 0
  #disconnected = false

  constructor(server: WettyServer, cols: number, rows: number) {
    super()
    this.opened = this.#open(server, cols, rows)
  }

  async #open(server: WettyServer, cols: number, rows: number): Promise<void> {
    const mod = (await import(
      pathToFileURL(
        join(server.dir, 'node_modules', 'socket.io-client', 'build', 'esm-debug', 'index.js'),
      ).href
    ).catch(
      () =>
        import(
          pathToFileURL(
            join(server.dir, 'node_modules', 'socket.io-client', 'build', 'esm', 'index.js'),
          ).href
        ),
    )) as { io: IoFactory }
    const socket = mod.io(server.url, {
      path: '/wetty/socket.io',
      transports: ['websocket'],
      reconnection: false,
      extraHeaders: { referer: `${server.url}/wetty/` },
    })
    this.#socket = socket
    socket.on('data', (data: unknown) => {
      const text = typeof data === 'string' ? data : String(data)
      this.deliver(Buffer.from(text, 'utf8'))
      // wetty's browser client commits every 256 Ki characters it has written to xterm.
      this.#uncommitted += text.length
      if (this.#uncommitted >= 262_144) {
        socket.emit('commit', 262_144)
        this.#uncommitted -= 262_144
      }
    })
    socket.on('disconnect', () => {
      this.#disconnected = true
      this.markEnded()
    })
    socket.on('logout', () => {
      socket.disconnect()
    })
    await new Promise<void>((resolve, reject) => {
      socket.once('login', () => {
        socket.emit('resize', { cols, rows })
        resolve()
      })
      socket.once('connect_error', (err: unknown) => {
        reject(err instanceof Error ? err : new Error(String(err)))
      })
    })
  }

  write(data: string): void {
    this.#socket?.emit('input', data)
  }

  async close(): Promise<void> {
    if (this.#disconnected || !this.#socket) return
    this.#socket.disconnect()
    await Promise.race([this.ended, sleep(3000)])
  }
}
