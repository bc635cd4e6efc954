// Red-team pass on the egress proxy (issue 12): what leaves the proxy must be exactly what the
// policy checked. A prompt-injected agent controls every byte of its request; the Host header, the
// userinfo part of an authority and odd spellings must not let it name one host to the policy and
// another to the server or to an upstream (corporate) proxy behind it.
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseEntries, type Policy } from './policy.ts'
import { EgressProxy } from './proxy.ts'

let dir: string
let origin: http.Server
let originPort: number
let corp: http.Server
let corpPort: number
/** What the origin server saw: Host header(s) and request target. */
let originSaw: Array<{ host: string | undefined; rawHosts: string[]; url: string | undefined }>
/** What the corporate proxy saw as request targets (CONNECT authority or absolute URI). */
let corpSaw: string[]
let policy: Policy
let direct: EgressProxy
let chained: EgressProxy
const log = pino({ level: 'silent' })

function setPolicy(allow: string[]): void {
  policy = {
    mode: 'allowlist',
    entries: parseEntries(allow).entries,
    ownListeners: [{ address: '127.0.0.1', port: 1 }],
  }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clincus-egress-forms-'))
  originSaw = []
  corpSaw = []
  origin = http.createServer((req, res) => {
    const rawHosts: string[] = []
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      if (req.rawHeaders[i]?.toLowerCase() === 'host') rawHosts.push(req.rawHeaders[i + 1] ?? '')
    originSaw.push({ host: req.headers.host, rawHosts, url: req.url })
    res.end('origin answered')
  })
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  originPort = (origin.address() as net.AddressInfo).port
  // A corporate proxy that records the target it was asked for and answers without going on.
  corp = http.createServer((req, res) => {
    corpSaw.push(req.url ?? '')
    res.end('corp answered')
  })
  corp.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    corpSaw.push(req.url ?? '')
    socket.end('HTTP/1.1 200 Connection Established\r\n\r\n')
  })
  await new Promise<void>((r) => corp.listen(0, '127.0.0.1', r))
  corpPort = (corp.address() as net.AddressInfo).port
  setPolicy([`127.0.0.1:${originPort}`, 'api.example', 'api.example:80'])
  direct = new EgressProxy({
    log,
    hooks: { policy: () => policy, upstream: () => null, record: () => undefined },
    resolver: async () => ['127.0.0.1'],
  })
  chained = new EgressProxy({
    log,
    hooks: {
      policy: () => policy,
      upstream: () => `http://127.0.0.1:${corpPort}`,
      record: () => undefined,
    },
  })
  await direct.open('d', join(dir, 'd.sock'))
  await chained.open('c', join(dir, 'c.sock'))
})

afterEach(async () => {
  await direct.dispose()
  await chained.dispose()
  for (const s of [origin, corp]) {
    s.closeAllConnections()
    await new Promise<void>((r) =>
      s.close(() => {
        r()
      }),
    )
  }
  await rm(dir, { recursive: true, force: true })
})

/** Sends raw bytes on a session socket; resolves with everything received until close. */
function raw(session: 'd' | 'c', text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(join(dir, `${session}.sock`))
    let out = ''
    c.on('data', (d) => (out += d.toString('latin1')))
    c.on('error', reject)
    c.on('close', () => {
      resolve(out)
    })
    c.write(text)
  })
}

describe('egress proxy: what leaves is what was checked', () => {
  it('sends the checked authority as the only Host of a plain-HTTP request, never the client’s', async () => {
    // A shared front end (a CDN) routes by Host: `Host: evil` to an allowed address would reach
    // a site the allowlist never named (domain fronting over plain HTTP). RFC 9112 §3.2.2: a
    // proxy replaces the Host with the request target's authority.
    const out = await raw(
      'd',
      `GET http://127.0.0.1:${originPort}/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n`,
    )
    expect(out).toMatch(/^HTTP\/1.1 200[^]*origin answered/)
    expect(originSaw).toEqual([
      { host: `127.0.0.1:${originPort}`, rawHosts: [`127.0.0.1:${originPort}`], url: '/x' },
    ])
  })

  it('checks every request of a keep-alive connection: a pipelined second request for another host is refused', async () => {
    const out = await raw(
      'd',
      `GET http://127.0.0.1:${originPort}/one HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\n\r\n` +
        `GET http://evil.example/two HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n`,
    )
    // proxy-chain answers a refusal straight on the socket and closes it, so the first answer
    // may be cut; what matters is that the second request never left.
    expect(out).toMatch(/HTTP\/1.1 403[^]*evil\.example:80 is not in this session/)
    expect(originSaw.map((s) => s.url)).not.toContain('/two')
  })

  it('asks an upstream proxy for exactly the host it checked, whatever userinfo or backslash the agent adds', async () => {
    // The policy reads `evil.example:443@api.example:443` as api.example (WHATWG URL): forwarding
    // the raw text lets a proxy that parses authorities differently connect to evil.example.
    const attempts: Array<[string, string]> = [
      ['CONNECT evil.example:443@api.example:443 HTTP/1.1\r\n\r\n', 'api.example:443'],
      ['CONNECT API.Example.:443 HTTP/1.1\r\n\r\n', 'api.example:443'],
      [
        'GET http://evil.example@api.example/p?q=1 HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n',
        'http://api.example/p?q=1',
      ],
      [
        'GET http://api.example\\@evil.example/ HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n',
        'http://api.example/@evil.example/',
      ],
    ]
    for (const [request, expected] of attempts) {
      corpSaw = []
      const out = await raw('c', request)
      // Either refused outright, or forwarded with the checked authority and nothing else.
      if (/^HTTP\/1.1 4/.test(out)) expect(corpSaw).toEqual([])
      else expect(corpSaw, request).toEqual([expected])
    }
  })

  it('never forwards a fragment or a second Host to the origin', async () => {
    const out = await raw(
      'd',
      `GET http://127.0.0.1:${originPort}/a HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\nhost: evil.example\r\nConnection: close\r\n\r\n`,
    )
    // Node refuses two Host headers itself (400); if it ever let them through, only ours leaves.
    if (/^HTTP\/1.1 200/.test(out))
      expect(originSaw[0]?.rawHosts).toEqual([`127.0.0.1:${originPort}`])
    else expect(out).toMatch(/^HTTP\/1.1 400/)
  })
})
