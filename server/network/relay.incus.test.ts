// The splice relay on the live daemon (issue 12, throughput): from inside a real session as the
// code user, a download and an upload through `$HTTPS_PROXY` as a CONNECT tunnel are handed from
// Node to the relay (the Incus proxy device's unix socket on one side, the upstream on the
// other), arrive byte for byte, and are audited with their full size.
import { createHash, randomBytes } from 'node:crypto'
import { readdir, readFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildSpliceRelay } from '../../native/build.mjs'
import type { SessionNetwork } from '../../shared/schemas/network.ts'
import {
  describeIncus,
  execAsCode,
  type LiveServer,
  requestJson,
  startLiveServer,
  TEST_IMAGE,
} from '../test/incus-harness.ts'
import { waitUntil } from '../test/ws-client.ts'
import { DEFAULT_RELAY_PATH } from './proxy-tunnel.ts'

const MiB = 1024 * 1024
const BLOB = randomBytes(24 * MiB)
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

let server: LiveServer
let home: string
let upstream: http.Server
let up: number

async function parentOf(pid: number): Promise<{ comm: string; ppid: number } | null> {
  const status = await readFile(`/proc/${String(pid)}/status`, 'utf8').catch(() => '')
  const comm = /^Name:\s+(.*)$/m.exec(status)?.[1]
  const ppid = Number(/^PPid:\s+(\d+)$/m.exec(status)?.[1])
  return comm === undefined ? null : { comm, ppid }
}

/**
 * Tunnel relays of the server under test (it runs in this process): the children its relay
 * process forks per tunnel; the relay process is a child of this process.
 */
async function relayChildren(): Promise<number[]> {
  const out: number[] = []
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const me = await parentOf(Number(name))
    if (me?.comm !== 'clincus-splice-') continue
    if ((await parentOf(me.ppid))?.ppid === process.pid) out.push(Number(name))
  }
  return out
}

describeIncus('the splice relay on a live Incus daemon', () => {
  let id: string

  beforeAll(async () => {
    const built = buildSpliceRelay(DEFAULT_RELAY_PATH)
    if (built.path === null) throw new Error(`the relay did not build: ${built.error}`)
    upstream = http.createServer((req, res) => {
      if (req.method === 'PUT') {
        const h = createHash('sha256')
        req.on('data', (d: Buffer) => h.update(d))
        req.on('end', () => res.end(h.digest('hex')))
        return
      }
      res.writeHead(200, { 'content-length': String(BLOB.length) })
      res.end(BLOB)
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    up = (upstream.address() as AddressInfo).port
    home = await mkdtemp(join(tmpdir(), 'clincus-relay-it-'))
    server = await startLiveServer({ home })
    await writeFile(
      server.configFile,
      [
        '[defaults]',
        `image = "${TEST_IMAGE}"`,
        '',
        '[dashboard]',
        `workspace_roots = ["${server.root}"]`,
        '',
        '[network]',
        `allow = ["127.0.0.1:${up}"]`,
        '',
      ].join('\n'),
    )
    await server.services.config.reload()
    const ws = await server.project('relay')
    const res = await requestJson(server.url, 'POST', '/api/sessions', { workspace: ws })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    id = (res.body as { id: string }).id
  }, 180_000)

  afterAll(async () => {
    await server.close()
    await new Promise<void>((r) =>
      upstream.close(() => {
        r()
      }),
    )
    await rm(home, { recursive: true, force: true })
  })

  it('downloads 24 MiB through a relayed CONNECT tunnel byte for byte, and audits it', async () => {
    // Slow enough that the relay is seen running; `-p` makes curl tunnel plain HTTP (CONNECT).
    const download = execAsCode(
      id,
      `curl -sS --noproxy '' -x http://127.0.0.1:3128 -p --max-time 60 --limit-rate 8M http://127.0.0.1:${up}/blob | sha256sum`,
    )
    const pids = await waitUntil('a relay carrying the download', async () => {
      const found = await relayChildren()
      return found.length > 0 ? found : undefined
    })
    const r = await download
    expect(r.stderr).toBe('')
    expect(r.stdout.split(' ')[0]).toBe(sha(BLOB))
    await waitUntil('the relay exited', async () =>
      (await relayChildren()).every((p) => !pids.includes(p)),
    )
    const net = await waitUntil('the download in the audit', async () => {
      const res = await requestJson(server.url, 'GET', `/api/sessions/${id}/network`)
      const body = res.body as SessionNetwork
      return body.connections.find((c) => c.port === up && c.bytes_down > BLOB.length)
    })
    expect(net.allowed).toBe(true)
    // The 200 of the CONNECT and the response head come on top of the body.
    expect(net.bytes_down - BLOB.length).toBeLessThan(512)
  })

  it('uploads 16 MiB through a relayed tunnel byte for byte', async () => {
    const r = await execAsCode(
      id,
      [
        'head -c 16777216 /dev/urandom > /tmp/up',
        'sha256sum < /tmp/up | cut -d" " -f1',
        `curl -sS --noproxy '' -x http://127.0.0.1:3128 -p --max-time 60 -T /tmp/up http://127.0.0.1:${up}/sink`,
      ].join(' && '),
    )
    const [local, remote] = r.stdout.trim().split('\n')
    expect(remote).toBe(local)
    const net = await waitUntil('the upload in the audit', async () => {
      const res = await requestJson(server.url, 'GET', `/api/sessions/${id}/network`)
      const body = res.body as SessionNetwork
      return body.connections.find((c) => c.port === up && c.bytes_up > 16 * MiB)
    })
    expect(net.bytes_up - 16 * MiB).toBeLessThan(1024)
  })
})
