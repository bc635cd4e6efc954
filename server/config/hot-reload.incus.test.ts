// Issue 4: a port change saved to the config moves the real server's listener (server/main.ts as
// a child process, so the whole path runs: file watcher → reload → config.reloaded → Listener).
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CloseCode } from '../../shared/ws/terminal.ts'
import { describeIncus, removeInstances } from '../test/incus-harness.ts'
import { EventsClient, waitUntil } from '../test/ws-client.ts'

const repoRoot = join(import.meta.dirname, '..', '..')
let home: string
const prefix = `ch${randomBytes(3).toString('hex')}-`

async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const addr = srv.address()
  await new Promise<void>((resolve) => {
    srv.close(() => {
      resolve()
    })
  })
  if (typeof addr !== 'object' || !addr) throw new Error('no port')
  return addr.port
}

async function answers(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/api/health`)).ok
  } catch {
    return false
  }
}

describeIncus('config hot reload in the real server', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-reload-'))
  })

  afterAll(async () => {
    await removeInstances(prefix)
    await rm(home, { recursive: true, force: true })
  })

  it('a port saved to the config moves the listener; open connections stay', async () => {
    const [p1, p2] = [await freePort(), await freePort()]
    const dir = join(home, '.config', 'clincus')
    const file = join(dir, 'config.toml')
    await mkdir(dir, { recursive: true })
    const config = (port: number): string =>
      `[defaults]\nimage = "clincus-test"\n\n[dashboard]\nport = ${port}\nauth = "none"\n`
    await writeFile(file, config(p1))
    // No --port: a port given on the command line pins it (main.ts), the config must not.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'server/main.ts', 'serve', '--no-build'],
      {
        cwd: repoRoot,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: home,
          CLINCUS_CONTAINER_PREFIX: prefix,
          CLINCUS_SYSTEM_CONFIG: join(home, 'etc-clincus.toml'),
          LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let out = ''
    child.stdout.on('data', (c: Buffer) => (out += c.toString()))
    child.stderr.on('data', (c: Buffer) => (out += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    try {
      await waitUntil('the server on the first port', () => out.includes(`127.0.0.1:${p1}`), {
        timeoutMs: 30_000,
      })
      const events = new EventsClient(`ws://127.0.0.1:${p1}/ws/events`)
      await events.opened

      const tmp = join(dir, '.config.toml.new')
      await writeFile(tmp, config(p2))
      await rename(tmp, file)
      await events.next((e) => e.type === 'config.reloaded')
      await waitUntil('the second port to answer', () => answers(p2))
      expect(await answers(p1)).toBe(false)
      // The socket opened on the old port is still served.
      expect(events.ws.readyState).toBe(events.ws.OPEN)

      child.kill('SIGTERM')
      expect((await events.closed).code).toBe(CloseCode.GOING_AWAY)
      expect(await exited).toBe(0)
    } catch (err) {
      throw new Error(`${String(err)}\n--- server output ---\n${out}`, { cause: err })
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })
})
