// A WebSocket ticket rides on a URL, so it must open a WebSocket and nothing else: not a REST
// request that merely carries an `Upgrade` header (Node routes it as a plain request), and not
// the mint of another ticket (which would turn one 30-second ticket into a lasting credential).
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { buildTestApp } from '../test/helpers.ts'
import { rawRequest, upgradeHeaders } from '../test/raw-http.ts'
import { loggerOptions } from './log-redaction.ts'

const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuvwxyz'

async function serve(): Promise<{ port: number; ticket: () => Promise<string> }> {
  const t = await buildTestApp({ deps: { auth: { mode: 'token', token: TOKEN } } })
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  const port = (t.app.server.address() as AddressInfo).port
  const app = t.app
  const ticket = async (): Promise<string> => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/ticket',
      headers: { authorization: `Bearer ${TOKEN}`, host: `127.0.0.1:${port}` },
    })
    expect(res.statusCode).toBe(200)
    return res.json<{ ticket: string }>().ticket
  }
  return { port, ticket }
}

describe('WebSocket tickets', () => {
  it('are no REST credential, whatever Upgrade and Connection headers come with them', async () => {
    const { port, ticket } = await serve()
    const attempts: { method: string; path: string; headers: Record<string, string> }[] = [
      // `Upgrade` without `Connection: upgrade`: Node hands it to the router as a plain request.
      { method: 'GET', path: '/api/config', headers: { upgrade: 'websocket' } },
      { method: 'GET', path: '/api/sessions', headers: { upgrade: 'WebSocket' } },
      { method: 'POST', path: '/api/auth/ticket', headers: { upgrade: 'websocket' } },
      // A real upgrade to a route that is no WebSocket.
      { method: 'GET', path: '/api/config', headers: upgradeHeaders() },
      { method: 'GET', path: '/api/auth/session', headers: upgradeHeaders() },
    ]
    for (const a of attempts) {
      const res = await rawRequest(port, `${a.path}?ticket=${await ticket()}`, {
        method: a.method,
        headers: a.headers,
      })
      // 401 (no credential) or 400 (an upgrade to a route that is no WebSocket): refused.
      expect({ ...a, refused: [400, 401].includes(res.status) }).toEqual({ ...a, refused: true })
    }
    // The same tickets still open the WebSockets they are for.
    const ok = await rawRequest(port, `/ws/events?ticket=${await ticket()}`, {
      headers: upgradeHeaders(),
    })
    expect(ok.status).toBe(101)
  })
})

describe('WebSocket upgrades to routes that are no WebSocket', () => {
  it('are refused before any handler, so no library logs their URL unredacted', async () => {
    let out = ''
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        out += chunk.toString()
        done()
      },
    })
    const t = await buildTestApp({
      deps: {
        auth: { mode: 'token', token: TOKEN },
        log: pino(loggerOptions('debug'), sink),
      },
    })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const port = (t.app.server.address() as AddressInfo).port
    for (const target of ['/api/health?ticket=SECRET-T1', '/api/config?code=SECRET-C1']) {
      const res = await rawRequest(port, target, {
        headers: upgradeHeaders({ authorization: `Bearer ${TOKEN}` }),
      })
      expect({ target, status: res.status }).toEqual({ target, status: 400 })
    }
    expect(out).toContain('/api/health?ticket=[redacted]')
    expect(out).not.toContain('SECRET-')
  })
})
