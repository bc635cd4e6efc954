// Red-team attacks on the daemon-exec terminal (exec-terminal.ts), against a fake daemon on a unix
// socket that does what Incus 6.0 does at a command's end: it closes the control socket at once
// (instance_exec.go finisher), then keeps mirroring what is left in the PTY, but only for 1 s
// after its first read past the exit (internal/linux/poll.go execWrapper: later reads return
// EOF). A client that stops reading the terminal socket past that point loses the tail.
import { describe, expect, it } from 'vitest'
import { waitUntil } from '../test/ws-client.ts'
import { fakeDaemon, open, sent } from './exec-daemon.test-support.ts'

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
