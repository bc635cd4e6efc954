import { request } from 'node:http'
import { describe, expect, it, onTestFinished } from 'vitest'
import Fastify from 'fastify'
import { Listener } from './listener.ts'
import { parseArgs, UsageError } from './cli-args.ts'

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => {
        resolve(body)
      })
    })
    req.on('error', reject)
    req.end()
  })
}

describe('Listener', () => {
  it('moves to a new port and releases the old one', async () => {
    const app = Fastify()
    app.get('/', async () => 'hi')
    await app.ready()
    const listener = new Listener(app.server)
    onTestFinished(async () => {
      await listener.close()
      await app.close()
      listener.destroySockets()
    })
    const first = await listener.listen(0, '127.0.0.1')
    expect(await get(first)).toBe('hi')
    const probe = new Listener(app.server)
    const free = await probe.listen(0, '127.0.0.1')
    await probe.close()
    const second = await listener.move(free)
    expect(second).toBe(free)
    expect(await get(second)).toBe('hi')
    await expect(get(first)).rejects.toThrow(/ECONNREFUSED/)
  })
})

describe('parseArgs', () => {
  it('parses serve options', () => {
    expect(parseArgs([])).toEqual({ kind: 'serve', host: '127.0.0.1', open: false, build: true })
    expect(parseArgs(['serve', '--port', '4000', '--host=::1', '--open', '--no-build'])).toEqual({
      kind: 'serve',
      port: 4000,
      host: '::1',
      open: true,
      build: false,
    })
    expect(parseArgs(['build', '--test'])).toEqual({ kind: 'build', image: 'clincus-test' })
  })

  it.each([['serve', '--port', 'x'], ['serve', '--port', '70000'], ['serve', '--bogus'], ['nope']])(
    'rejects %j',
    (...args) => {
      expect(() => parseArgs(args)).toThrow(UsageError)
    },
  )
})
