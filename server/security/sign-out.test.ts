// Signing out ends what the sign-in session opened, not only its next request: a terminal or an
// event stream opened with it is closed at once (a stolen session keeps no shell after the
// owner signs out).
import { request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { buildTestApp } from '../test/helpers.ts'

const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuvwxyz'

describe('signing out', () => {
  it('closes the WebSockets and event streams the session opened, and only those', async () => {
    const t = await buildTestApp({ deps: { auth: { mode: 'token', token: TOKEN } } })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const port = (t.app.server.address() as AddressInfo).port
    const host = `127.0.0.1:${port}`
    const signIn = async (): Promise<string> => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/auth/login',
        headers: { host, 'content-type': 'application/json' },
        payload: JSON.stringify({ token: TOKEN }),
      })
      expect(res.statusCode).toBe(200)
      return res.json<{ session: string }>().session
    }
    const [mine, other] = [await signIn(), await signIn()]
    const socketOf = async (session: string): Promise<WebSocket> => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/auth/ticket',
        headers: { host, authorization: `Bearer ${session}` },
      })
      const ws = new WebSocket(
        `ws://${host}/ws/events?ticket=${res.json<{ ticket: string }>().ticket}`,
      )
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => {
          resolve()
        })
        ws.once('error', reject)
      })
      return ws
    }
    const streamOf = (session: string): Promise<IncomingMessage> =>
      new Promise((resolve, reject) => {
        httpRequest(
          {
            host: '127.0.0.1',
            port,
            path: '/api/events',
            headers: { authorization: `Bearer ${session}` },
          },
          resolve,
        )
          .once('error', reject)
          .end()
      })
    const ws = await socketOf(mine)
    const keptWs = await socketOf(other)
    const stream = await streamOf(mine)
    const keptStream = await streamOf(other)
    expect([stream.statusCode, keptStream.statusCode]).toEqual([200, 200])
    stream.resume()
    keptStream.resume()

    const wsClosed = new Promise<void>((resolve) =>
      ws.once('close', () => {
        resolve()
      }),
    )
    const streamClosed = new Promise<void>((resolve) =>
      stream.once('close', () => {
        resolve()
      }),
    )
    const out = await t.app.inject({
      method: 'DELETE',
      url: '/api/auth/session',
      headers: { host, authorization: `Bearer ${mine}` },
    })
    expect(out.statusCode).toBe(204)
    await Promise.all([wsClosed, streamClosed])
    // The other sign-in session's connections are untouched.
    expect(keptWs.readyState).toBe(WebSocket.OPEN)
    expect(keptStream.destroyed).toBe(false)
    keptWs.close()
    keptStream.destroy()
  })
})
