// Red team (session 7) against the synchronous PTY write (issue 14): a keystroke that arrives
// after the PTY closed must never be written to whatever file now has the PTY's descriptor
// number; a paste of several MiB into a process that does not read never stalls the event loop.
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { nodePtySpawner, type PtyExit } from './spawner.ts'

const fds = (): Set<number> => new Set(readdirSync('/proc/self/fd').map(Number))

describe('red team: synchronous PTY writes', () => {
  it('never writes after the PTY closed, though its descriptor number belongs to a file now', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clincus-ptyfd-'))
    const before = fds()
    const pty = nodePtySpawner.spawn('/bin/sh', ['-c', 'exit 0'], {
      cols: 80,
      rows: 24,
      name: 'xterm',
    })
    const ours = [...fds()].filter((fd) => !before.has(fd))
    pty.onData(() => undefined)
    await new Promise<PtyExit>((resolve) => {
      pty.onExit(resolve)
    })
    // Take every descriptor number the PTY had, now free, with files of our own.
    const files: Array<{ fd: number; path: string }> = []
    try {
      for (let i = 0; i < 64 && !ours.every((fd) => files.some((f) => f.fd === fd)); i++) {
        const path = join(dir, `f${i}`)
        files.push({ fd: openSync(path, 'w'), path })
      }
      const reused = files.filter((f) => ours.includes(f.fd))
      expect(reused.length).toBeGreaterThan(0)
      pty.write('rm -rf ~\r')
      pty.write(Buffer.alloc(70_000, 0x61))
      for (const f of files) expect(readFileSync(f.path, 'utf8'), f.path).toBe('')
    } finally {
      for (const f of files) closeSync(f.fd)
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a 16 MiB paste into a process that never reads returns and keeps the loop turning', async () => {
    const pty = nodePtySpawner.spawn('/bin/sh', ['-c', 'stty raw -echo; exec sleep 60'], {
      cols: 80,
      rows: 24,
      name: 'xterm',
    })
    pty.onData(() => undefined)
    const exited = new Promise<PtyExit>((resolve) => {
      pty.onExit(resolve)
    })
    try {
      // A blocking write here would never return (the process never reads): the test would hang.
      for (let i = 0; i < 16; i++) pty.write(Buffer.alloc(1024 * 1024, 0x62))
      // The loop turns: timers run while the input stays queued.
      let ticks = 0
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (++ticks === 5) {
            clearInterval(t)
            resolve()
          }
        }, 1)
      })
      expect(pty.pendingInput).toBeGreaterThan(15 * 1024 * 1024)
    } finally {
      pty.kill('SIGKILL')
      await exited
    }
  })
})
