import { createServer, connect, type Socket } from 'node:net'
import { describe, expect, it, onTestFinished } from 'vitest'
import { addressBytes, peerUids } from './peer-uid.ts'

describe('addressBytes', () => {
  it.each([
    ['127.0.0.1', '00000000000000000000ffff7f000001'],
    ['::ffff:127.0.0.1', '00000000000000000000ffff7f000001'],
    ['::1', '00000000000000000000000000000001'],
    ['::', '00000000000000000000000000000000'],
    ['fe80::1%lo', 'fe800000000000000000000000000001'],
    ['2001:db8::8:800:200c:417a', '20010db80000000000080800200c417a'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
  ])('%s', (address, hex) => {
    expect(addressBytes(address)?.toString('hex')).toBe(hex)
  })

  it.each(['', 'localhost', '256.0.0.1', '1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', 'g::1'])(
    'refuses %j',
    (address) => {
      expect(addressBytes(address)).toBeNull()
    },
  )
})

async function loopbackPair(host: string): Promise<Socket> {
  const server = createServer()
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve))
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  const client = connect({ host, port })
  const socket = await accepted
  onTestFinished(async () => {
    client.destroy()
    socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return socket
}

describe('peerUids', () => {
  it.each(['127.0.0.1', '::1'])(
    'finds the uid of a loopback peer over %s in /proc/net/tcp',
    async (host) => {
      const socket = await loopbackPair(host)
      const uids = peerUids([socket])
      expect(uids.get(socket)).toBe(process.getuid?.())
    },
  )

  it('finds nothing for a socket without a local peer', () => {
    const fake = {
      remoteAddress: '192.0.2.1',
      remotePort: 1,
      localAddress: '127.0.0.1',
      localPort: 2,
    }
    expect(peerUids([fake]).size).toBe(0)
  })
})
