// Red-team pass on issue 12, live: a prompt-injected agent in a real session, as the code user,
// talking to the proxy through the session's one proxy device (`clincus-host`). What leaves the
// proxy is what the policy checked (the Host header is the checked authority), and a trickled
// request header cannot hold the proxy's connections.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  describeIncus,
  execAsCode,
  requestJson,
  startLiveServer,
  TEST_IMAGE,
  type LiveServer,
} from '../test/incus-harness.ts'

let server: LiveServer
let home: string
let upstream: http.Server
let up: number
const hostsSeen: string[] = []

describeIncus('egress red team on a live Incus daemon', () => {
  let id: string

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      hostsSeen.push(req.headers.host ?? '')
      res.end(`host=${req.headers.host ?? ''}\n`)
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    up = (upstream.address() as AddressInfo).port
    home = await mkdtemp(join(tmpdir(), 'clincus-net-red-'))
    server = await startLiveServer({
      home,
      egress: {
        resolver: async (name) => {
          if (name === 'upstream.test') return ['127.0.0.1']
          throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' })
        },
        limits: { headersTimeoutMs: 1000 },
      },
    })
    await writeFile(
      server.configFile,
      [
        '[defaults]',
        `image = "${TEST_IMAGE}"`,
        '[dashboard]',
        `workspace_roots = ["${server.root}"]`,
        '[network]',
        `allow = ["127.0.0.1:${up}", "upstream.test:${up}"]`,
        '',
      ].join('\n'),
    )
    await server.services.config.reload()
    const ws = await server.project('red')
    const res = await requestJson(server.url, 'POST', '/api/sessions', { workspace: ws })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    id = (res.body as { id: string }).id
  }, 180_000)

  afterAll(async () => {
    await server.close()
    upstream.closeAllConnections()
    await new Promise<void>((r) =>
      upstream.close(() => {
        r()
      }),
    )
    await rm(home, { recursive: true, force: true })
  })

  it('sends the checked authority as Host, whatever Host header the agent sets', async () => {
    const r = await execAsCode(
      id,
      `curl -sS --max-time 10 -H 'Host: evil.example' http://upstream.test:${up}/`,
    )
    expect(r.stdout, r.stderr).toBe(`host=upstream.test:${up}`)
    expect(hostsSeen).not.toContain('evil.example')
  })

  it('closes a connection whose request header trickles in a byte at a time', async () => {
    // bash's /dev/tcp to the proxy device; one header byte every 100 ms for up to 30 s.
    const r = await execAsCode(
      id,
      `trap '' PIPE; exec 3<>/dev/tcp/127.0.0.1/3128 || exit 9
printf 'GET http://upstream.test:${up}/ HTTP/1.1\\r\\nX-Slow: ' >&3
for i in $(seq 1 300); do
  printf a >&3 2>/dev/null || { echo closed; exit 0; }
  sleep 0.1
done
echo still-open`,
    )
    expect(r.stdout, r.stderr).toBe('closed')
  }, 60_000)

  it('ends an open tunnel when its host is taken out of [network] allow (hot reload)', async () => {
    const child = execa(
      'incus',
      [
        'exec',
        id,
        '--user',
        '1000',
        '--group',
        '1000',
        '--',
        'bash',
        '-c',
        `trap '' PIPE; exec 3<>/dev/tcp/127.0.0.1/3128 || exit 9
printf 'CONNECT upstream.test:${up} HTTP/1.1\\r\\n\\r\\n' >&3
read -r status <&3; read -r blank <&3
echo "established $status"
if read -r -t 20 x <&3; then echo data; elif [ $? -gt 128 ]; then echo still-open; else echo closed; fi`,
      ],
      { timeout: 60_000, reject: false },
    )
    let out = ''
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        if (out.includes('established')) resolve()
      })
      child.catch(reject).finally(() => {
        reject(new Error(`exited early: ${out}`))
      })
    })
    expect(out).toContain('established HTTP/1.1 200')
    const text = await readFile(server.configFile, 'utf8')
    await writeFile(server.configFile, text.replace(/^allow = .*$/m, 'allow = []'))
    await server.services.config.reload()
    const done = await child
    expect(done.stdout).toMatch(/closed$/)
  }, 90_000)
})
