// The benchmark's terminal clients: watches over one output stream must not take each other's
// output away (the flood step lost a keystroke's echo when the flood's end marker arrived).
import { describe, expect, it } from 'vitest'
import { echoBeside, Endpoint, timeToMarker } from './terminal-clients.ts'

class FakeEndpoint extends Endpoint {
  readonly label = 'fake'
  readonly written: string[] = []

  push(chunk: Buffer | string): void {
    this.deliver(Buffer.from(chunk))
  }

  write(data: string): void {
    this.written.push(data)
  }

  close(): Promise<void> {
    this.markEnded()
    return Promise.resolve()
  }
}

describe('watches over one endpoint', () => {
  it('sees a keystroke echo that arrives after the end marker of the watch beside it', async () => {
    const ep = new FakeEndpoint()
    const ended = timeToMarker(ep, 'FLOOD1END', 5000)
    const echo = echoBeside(ep, 'Ш', 5000)
    ep.push('box line\nFLOOD1END\n')
    ep.push('\x1b[5;1HШ')
    await expect(ended).resolves.toBeGreaterThan(0)
    await expect(echo).resolves.toBeGreaterThan(0)
  })

  it('sees an echo split across chunks, and the marker after it', async () => {
    const ep = new FakeEndpoint()
    const ended = timeToMarker(ep, 'FLOOD2END', 5000)
    const bytes = Buffer.from('Ж')
    const echo = echoBeside(ep, 'Ж', 5000)
    ep.push(Buffer.concat([Buffer.from('x'), bytes.subarray(0, 1)]))
    ep.push(bytes.subarray(1))
    await expect(echo).resolves.toBeGreaterThan(0)
    // Keystrokes after the first still see their echo, and the marker watch still sees its end.
    const next = echoBeside(ep, 'Й', 5000)
    ep.push('FLOOD2')
    ep.push('ENDЙ')
    await expect(next).resolves.toBeGreaterThan(0)
    await expect(ended).resolves.toBeGreaterThan(0)
  })
})
