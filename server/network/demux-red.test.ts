// Red team (session 7) against the one socket per session (issue 16): requests that try to be
// both a hook line and HTTP, and mode none spelled every way a client can. The upstream counts
// every request it sees: none may reach it unless the policy allows it.
import http from 'node:http'
import net from 'node:net'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { HookChannel } from '../sessions/agent/channel.ts'
import { waitUntil } from '../test/ws-client.ts'
import { parseEntries, type Policy } from './policy.ts'
import { testSessionSockets } from './session-sockets.test-support.ts'

const log = pino({ level: 'silent' })
const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

async function upstream(): Promise<{ port: number; seen: () => number }> {
  let seen = 0
  const server = http.createServer((_req, res) => {
    seen++
    res.end('upstream saw it')
  })
  server.on('connect', (_req, socket: net.Socket) => {
    seen++
    socket.destroy()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanup.push(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })
  return { port: (server.address() as net.AddressInfo).port, seen: () => seen }
}

async function setup(mode: Policy['mode'], allow: string[]) {
  const lines: string[] = []
  const channel = new HookChannel({ log, onLine: (_s, l) => lines.push(l) })
  const policy: Policy = { mode, entries: parseEntries(allow).entries, ownListeners: [] }
  const sockets = await testSessionSockets({
    log,
    policy,
    hooks: (s, socket, head) => {
      channel.accept(s, socket, head)
    },
  })
  cleanup.push(async () => {
    await sockets.dispose()
    await channel.dispose()
  })
  await sockets.open('a')
  return { lines, path: sockets.path('a') }
}

/** Sends `bytes` (the write side kept open), resolves with all it got once the server closed. */
function exchange(path: string, bytes: string, endAfterWrite = false): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(path)
    let out = ''
    s.on('data', (d) => (out += d.toString('latin1')))
    s.on('error', () => undefined)
    s.once('close', () => {
      resolve(out)
    })
    if (endAfterWrite) s.end(bytes)
    else s.write(bytes)
  })
}

describe('red team: one socket, two channels', () => {
  it('mode none refuses HTTP/1.0, pipelined, Upgrade, origin-form and OPTIONS * requests; none is forwarded', async () => {
    const up = await upstream()
    const t = await setup('none', [`127.0.0.1:${up.port}`])
    const target = `127.0.0.1:${up.port}`
    const requests = [
      `GET http://${target}/ HTTP/1.0\r\n\r\n`,
      `GET http://${target}/a HTTP/1.1\r\nHost: ${target}\r\n\r\nGET http://${target}/b HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`,
      `GET http://${target}/ HTTP/1.1\r\nHost: ${target}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
      `GET / HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`,
      `OPTIONS * HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`,
      `CONNECT ${target} HTTP/1.0\r\n\r\n`,
      `POST http://${target}/ HTTP/1.1\r\nHost: ${target}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`,
    ]
    for (const req of requests) {
      const answer = await exchange(t.path, req)
      expect(answer, req).toMatch(/^HTTP\/1\.[01] (403|400)/)
      expect(answer, req).not.toContain('upstream saw')
    }
    expect(up.seen()).toBe(0)
  })

  it('a `{` before an HTTP request, or HTTP after a hook line, is the hook channel only: never forwarded', async () => {
    const up = await upstream()
    const target = `127.0.0.1:${up.port}`
    const t = await setup('allowlist', [target])
    const smuggled = [
      `{GET http://${target}/ HTTP/1.1\r\nHost: ${target}\r\n\r\n`,
      `{"hook_event_name":"Stop"}\nGET http://${target}/ HTTP/1.1\r\nHost: ${target}\r\n\r\n`,
      `{"hook_event_name":"Stop"}\nCONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`,
    ]
    for (const bytes of smuggled) {
      const answer = await exchange(t.path, bytes, true)
      expect(answer, bytes).toBe('')
    }
    await waitUntil('the hook lines', () => t.lines.length >= 5)
    expect(up.seen()).toBe(0)
    // The control: the same request without the `{` is allowed, and forwarded.
    const plain = await exchange(
      t.path,
      `GET http://${target}/ HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`,
    )
    expect(plain).toMatch(/^HTTP\/1\.1 200/)
    expect(up.seen()).toBe(1)
  })
})
