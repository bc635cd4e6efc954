// The real node-pty: how much input its write queue holds is what terminal input backpressure
// (issue 10 row 7) is decided from. These run host processes in a PTY, no Incus needed.
import { describe, expect, it, onTestFinished } from 'vitest'
import { waitUntil } from '../test/ws-client.ts'
import { nodePtySpawner, type PtyExit, type PtyProcess } from './spawner.ts'

function spawn(script: string): { pty: PtyProcess; exited: Promise<PtyExit> } {
  const pty = nodePtySpawner.spawn('/bin/sh', ['-c', script], {
    cols: 80,
    rows: 24,
    name: 'xterm',
  })
  pty.onData(() => undefined)
  const exited = new Promise<PtyExit>((resolve) => {
    pty.onExit(resolve)
  })
  onTestFinished(async () => {
    pty.kill('SIGKILL')
    await exited
  })
  return { pty, exited }
}

const MiB = 1024 * 1024

describe('node-pty input accounting', () => {
  it('counts the input a process that never reads leaves queued', () => {
    const { pty } = spawn('stty raw -echo; exec sleep 60')
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    for (let i = 0; i < 32; i++) pty.write(chunk)
    // The kernel takes some (the PTY buffer), node-pty keeps the rest in memory.
    expect(pty.pendingInput).toBeGreaterThan(MiB)
    expect(pty.pendingInput).toBeLessThanOrEqual(2 * MiB + 32 * 64)
    let drained = false
    const cancel = pty.onInputBelow(MiB, () => (drained = true))
    expect(drained).toBe(false)
    cancel()
  })

  it('reports the drain once a reader has taken everything', async () => {
    const { pty } = spawn('stty raw -echo; exec cat > /dev/null')
    const chunk = Buffer.alloc(64 * 1024, 0x62)
    for (let i = 0; i < 64; i++) pty.write(chunk)
    await new Promise<void>((resolve) => {
      pty.onInputBelow(0, resolve)
    })
    expect(pty.pendingInput).toBe(0)
  })

  it('hands a keystroke to the kernel within write(), not through a thread-pool round trip', async () => {
    const { pty } = spawn('stty raw -echo; exec cat')
    const echoed = new Promise<Buffer>((resolve) => {
      pty.onData(resolve)
    })
    pty.write('k')
    // Taken by the kernel before write() returned: nothing of it is left queued.
    expect(pty.pendingInput).toBe(0)
    expect((await echoed).toString()).toContain('k')
    // A paste larger than the kernel takes at once: the rest queues and goes in order.
    const big = Buffer.alloc(MiB, 0x64)
    pty.write(big)
    expect(pty.pendingInput).toBeGreaterThan(0)
    await new Promise<void>((resolve) => {
      pty.onInputBelow(0, resolve)
    })
  })

  it('retries a write the kernel refuses at a paced rate, not in a busy loop', async () => {
    const { pty } = spawn('stty raw -echo; exec sleep 60')
    pty.write(Buffer.alloc(2 * MiB, 0x63))
    // Let the kernel take what it can; from then on every write attempt is refused.
    await new Promise<void>((resolve) => setImmediate(resolve))
    const before = process.cpuUsage()
    // A window of wall time is the measurement itself (node-pty 1.1 alone burns ~85 % of a core
    // here: a retry per event-loop turn).
    await new Promise((resolve) => setTimeout(resolve, 500))
    const used = process.cpuUsage(before)
    expect((used.user + used.system) / 1000).toBeLessThan(100)
    expect(pty.pendingInput).toBeGreaterThan(MiB)
  })
})

// Issue 14 row 9 at its cause: node-pty gives a PTY whose process has exited 200 ms to reach the
// end of its output, then destroys the read side; a PTY paused for flow control never reads in
// that time, and what the process wrote last (up to the kernel's buffer and the stream's own)
// was lost. The exit must come after every byte, however long the PTY stays paused.
describe('node-pty exit while paused', () => {
  it('delivers every byte before the exit, though the PTY is never resumed', async () => {
    // What a paused PTY can hold: the writer must still get to exit.
    const size = 8000
    const pty = nodePtySpawner.spawn(
      '/bin/sh',
      [
        '-c',
        `stty raw -echo; printf HEAD; read go; head -c ${size} /dev/zero | tr '\\0' a; printf TAIL`,
      ],
      { cols: 80, rows: 24, name: 'xterm' },
    )
    const chunks: Buffer[] = []
    let exitedAt = -1
    pty.onData((d) => {
      chunks.push(d)
      if (chunks.length === 1) {
        // Paused from the first byte on; the process is then told to write the rest and exit.
        pty.pause()
        pty.write('go\n')
      }
    })
    const exited = new Promise<PtyExit>((resolve) => {
      pty.onExit((e) => {
        exitedAt = chunks.length
        resolve(e)
      })
    })
    onTestFinished(async () => {
      pty.kill('SIGKILL')
      await exited
    })
    expect((await exited).exitCode).toBe(0)
    const out = Buffer.concat(chunks).toString('latin1')
    expect(exitedAt).toBe(chunks.length)
    expect(out.length).toBe(size + 8)
    expect(out.endsWith(`${'a'.repeat(10)}TAIL`)).toBe(true)
  })
})

// Red team: a process that inherited the terminal and writes forever after the one we spawned
// exited (here `yes` in the background) must neither keep the exit from being reported nor make
// the drain read without end: at most EXIT_DRAIN_LIMIT (1 MiB) after the exit is noticed.
describe('node-pty exit while an inherited writer never stops', () => {
  it('reports the exit and stops draining, paused or not', async () => {
    const pidFile = `/tmp/clincus-red-yes-${String(process.pid)}`
    const pty = nodePtySpawner.spawn(
      '/bin/sh',
      ['-c', `stty raw -echo; (trap '' HUP; exec yes) & echo $! > ${pidFile}; read go; exit 7`],
      { cols: 80, rows: 24, name: 'xterm' },
    )
    let bytes = 0
    let afterExit = 0
    let exitedFlag = false
    pty.onData((d) => {
      bytes += d.length
      if (exitedFlag) afterExit += d.length
    })
    const exited = new Promise<PtyExit>((resolve) => {
      pty.onExit((e) => {
        exitedFlag = true
        resolve(e)
      })
    })
    onTestFinished(async () => {
      const { readFile, rm } = await import('node:fs/promises')
      const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim())
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
      await rm(pidFile, { force: true })
    })
    await waitUntil('yes writing', () => bytes > 64 * 1024)
    pty.pause()
    pty.write('go\n')
    expect((await exited).exitCode).toBe(7)
    // Nothing is delivered once the exit is reported: the drain ran before it and stopped.
    const at = bytes
    await new Promise<void>((resolve) => setImmediate(resolve))
    expect(bytes - at).toBe(afterExit)
    expect(afterExit).toBe(0)
  })
})
