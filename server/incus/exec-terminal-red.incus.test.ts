// Red-team, live: daemon exec terminals opened together, whose viewer is paused when the command
// exits right after a large write. Two losses on main, both found here:
// - the tail: Incus mirrors a dead command's PTY for only 1 s after its first read past the exit
//   (internal/linux/poll.go execWrapper), so a client that stopped reading the terminal socket
//   past that lost the end (206 000 bytes run alone lost 1.2 KiB, TAIL included: the tail must
//   overflow the socket's buffer while fitting in the PTY's, so the sizes sweep that edge);
// - the start: the daemon starts the command once it has both sockets, before this side may have
//   seen both open; output in between had no listener (~60 KiB lost of 198 000 with 12 opening).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { PtyExit, PtyProcess } from '../pty/spawner.ts'
import { describeIncus, startLiveServer, type LiveServer } from '../test/incus-harness.ts'

let server: LiveServer
let home: string
let id: string

/** How long the viewer does not read (a slow browser): well past the daemon's 1 s deadline. */
const VIEWER_STALL_MS = 3_000

async function run(size: number): Promise<{ out: Buffer; exit: PtyExit }> {
  const script = `stty raw -echo; head -c ${String(size)} /dev/zero | tr '\\0' a; printf TAIL; exit 3`
  const pty: PtyProcess | null | undefined = await server.driver.openTerminal(
    id,
    ['bash', '-c', script],
    { cols: 80, rows: 24, timeoutMs: 30_000 },
  )
  if (!pty) throw new Error('the daemon socket was not reachable')
  pty.pause()
  const out: Buffer[] = []
  pty.onData((d) => out.push(d))
  const exit = new Promise<PtyExit>((resolve) => {
    pty.onExit(resolve)
  })
  // The attack input: a viewer that reads nothing for a while (not a wait for a condition).
  await new Promise((resolve) => setTimeout(resolve, VIEWER_STALL_MS))
  pty.resume()
  return { exit: await exit, out: Buffer.concat(out) }
}

describeIncus('exec terminal: a paused viewer and a command that exits (red team)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-red-exec-'))
    server = await startLiveServer({ home })
    id = await server.launch('redexec')
  }, 180_000)

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  }, 120_000)

  it(
    'every byte of a write that ends while the viewer is paused, then the exit code (issue 14 row 9)',
    {
      timeout: 120_000,
    },
    async () => {
      const sizes = Array.from({ length: 12 }, (_, i) => 196_000 + i * 2_000)
      const results = await Promise.all(sizes.map((s) => run(s)))
      for (const [i, r] of results.entries()) {
        const size = sizes[i] ?? 0
        expect({ size, bytes: r.out.length, tail: r.out.subarray(-4).toString() }).toEqual({
          size,
          bytes: size + 4,
          tail: 'TAIL',
        })
        expect(r.exit).toEqual({ exitCode: 3, signal: undefined })
      }
    },
  )
})
