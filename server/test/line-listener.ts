// A TCP listener on a random loopback port that collects the lines its clients send (each
// connection's text, split at newlines once the client ends). For tests of what reports lines:
// the agent hook script, the fake tool's hooks.
import net from 'node:net'

export interface LineListener {
  /** The lines received so far, in the order their connections ended. */
  lines: string[]
  port: number
  close: () => Promise<void>
}

export async function lineListener(): Promise<LineListener> {
  const lines: string[] = []
  const server = net.createServer((s) => {
    let buf = ''
    s.on('data', (d: Buffer) => (buf += d.toString()))
    s.on('end', () => lines.push(...buf.split('\n').filter((l) => l !== '')))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    lines,
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => {
          r()
        })
      }),
  }
}
