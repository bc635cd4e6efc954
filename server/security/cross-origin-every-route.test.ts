// Red-team pass (issues 12 and 13): a malicious web page driving `POST /api/network/allow` (widen
// the agent's network) or `POST /api/images/{alias}/build` (make the host build) cross-origin.
// Rather than list routes, every mutating route of the OpenAPI document is attacked, so a route
// added later is covered too: with a foreign Origin it is refused even with a valid credential,
// and a cross-site form post (no credential, text/plain) never reaches a handler.
import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { buildTestApp } from '../test/helpers.ts'

const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuvwxyz'
const HOST = '127.0.0.1:3000'
const SESSION_ID = 'clincus-12345678-1'

describe('cross-origin requests to every mutating route', () => {
  it('refuses a foreign Origin with 403 even with a valid token, and a credential-less form post', async () => {
    const t = await buildTestApp({ deps: { auth: { mode: 'token', token: TOKEN } } })
    const before = await readFile(t.configFile, 'utf8')
    const doc = (
      await t.app.inject({
        url: '/api/openapi.json',
        headers: { authorization: `Bearer ${TOKEN}`, host: HOST },
      })
    ).json<{ paths: Record<string, Record<string, unknown>> }>()
    const checked: string[] = []
    for (const [path, ops] of Object.entries(doc.paths))
      for (const method of Object.keys(ops)) {
        if (method === 'get' || method === 'head') continue
        const url = path.replace(/\{alias\}/g, 'clincus').replace(/\{[^}]+\}/g, SESSION_ID)
        for (const origin of ['http://evil.example', 'http://127.0.0.1:4000', 'null']) {
          const res = await t.app.inject({
            method: method.toUpperCase() as 'POST',
            url,
            headers: {
              authorization: `Bearer ${TOKEN}`,
              host: HOST,
              origin,
              'content-type': 'application/json',
            },
            payload: JSON.stringify({ entry: 'evil.example', workspace: t.project }),
          })
          expect(res.statusCode, `${method} ${url} from ${origin}`).toBe(403)
        }
        // what a cross-site <form> can send: no Authorization, text/plain
        const form = await t.app.inject({
          method: method.toUpperCase() as 'POST',
          url,
          headers: { host: HOST, 'content-type': 'text/plain' },
          payload: '{"entry":"evil.example"}',
        })
        expect([401, 415], `${method} ${url} as a form`).toContain(form.statusCode)
        checked.push(`${method} ${url}`)
      }
    expect(checked).toEqual(
      expect.arrayContaining(['post /api/network/allow', 'post /api/images/clincus/build']),
    )
    expect(await readFile(t.configFile, 'utf8')).toBe(before)
    expect(t.driver.callsOf('init')).toHaveLength(0)
    await t.app.close()
    // Four requests through the whole app to every mutating route of the OpenAPI document, a
    // number that grows with each route added: 5.4 s at load 12 on two cores, past vitest's
    // default 5 s. A stated budget, as for the every-route test in security.test.ts.
  }, 60_000)
})
