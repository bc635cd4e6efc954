// The real node-pty: how much input its write queue holds is what terminal input backpressure
// (issue 10 row 7) is decided from. These run host processes in a PTY, no Incus needed.
import { describe, expect, it, onTestFinished } from 'vitest'
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
