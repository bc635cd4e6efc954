// Issue 12 acceptance on the live daemon, from inside real sessions as the code user: loopback
// works, `lo` is the only interface, and the only way out is the clincus proxy, which applies
// the policy (refusals answered 403 with a reason, listed in the API and sent as events), hot
// reloads it, and cannot be widened by the workspace. Needs an image with curl and the new
// init: CLINCUS_IT_IMAGE names a build of it while the shared clincus-test is older.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { SessionNetwork } from '../../shared/schemas/network.ts'
import {
  describeIncus,
  execAsCode,
  type LiveServer,
  requestJson,
  startLiveServer,
  TEST_IMAGE,
} from '../test/incus-harness.ts'
import { EventsClient, waitUntil } from '../test/ws-client.ts'

let server: LiveServer
let home: string
let upstream: http.Server
let up: number
/** Requests the upstream answered. */
let hits = 0
let events: EventsClient
const resolved: string[] = []

function config(extra: { allow?: string[]; mode?: string } = {}): string {
  const allow = [`127.0.0.1:${up}`, `upstream.test:${up}`, 'rebind.test:9', ...(extra.allow ?? [])]
  return [
    '# egress test config: this comment must survive the Allow button',
    '[defaults]',
    `image = "${TEST_IMAGE}"`,
    '',
    '[dashboard]',
    `workspace_roots = ["${server.root}"]`,
    '',
    '[network]',
    ...(extra.mode ? [`mode = "${extra.mode}"`] : []),
    `allow = [${allow.map((a) => JSON.stringify(a)).join(', ')}]`,
    '',
    '[profiles.offline]',
    'network = { mode = "none" }',
    '',
    '# the shared test image as it was before issue 12: no ip, an init that leaves lo down',
    '[profiles.legacy]',
    'image = "clincus-test"',
    '',
  ].join('\n')
}

async function launch(name: string, body: Record<string, unknown> = {}): Promise<string> {
  const ws = await server.project(name)
  const res = await requestJson(server.url, 'POST', '/api/sessions', { workspace: ws, ...body })
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  return (res.body as { id: string }).id
}

async function network(id: string): Promise<SessionNetwork> {
  const res = await requestJson(server.url, 'GET', `/api/sessions/${id}/network?limit=1000`)
  expect(res.status).toBe(200)
  return res.body as SessionNetwork
}

/** The instance's proxy devices (expanded: a profile's count too), by name. */
async function proxyDevices(id: string): Promise<Record<string, Record<string, string>>> {
  const out = await execa('incus', ['query', `/1.0/instances/${id}`], { timeout: 30_000 })
  const inst = JSON.parse(out.stdout) as {
    expanded_devices: Record<string, Record<string, string>>
  }
  return Object.fromEntries(
    Object.entries(inst.expanded_devices).filter(([, d]) => d.type === 'proxy'),
  )
}

describeIncus('network egress on a live Incus daemon', () => {
  let main: string

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      hits++
      res.end(`upstream answered ${req.method} ${req.url}\n`)
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    up = (upstream.address() as AddressInfo).port
    home = await mkdtemp(join(tmpdir(), 'clincus-net-it-'))
    server = await startLiveServer({
      home,
      egress: {
        resolver: async (name) => {
          resolved.push(name)
          if (['upstream.test', 'rebind.test', 'late.test'].includes(name)) return ['127.0.0.1']
          throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' })
        },
      },
    })
    await writeFile(server.configFile, config())
    await server.services.config.reload()
    events = new EventsClient(`${server.wsUrl}/ws/events`)
    await events.opened
    main = await launch('main')
  }, 180_000)

  afterAll(async () => {
    await events.close()
    await server.close()
    await new Promise<void>((r) =>
      upstream.close(() => {
        r()
      }),
    )
    await rm(home, { recursive: true, force: true })
  })

  it('has lo up, no other interface, and a server on 127.0.0.1 inside answers a client inside', async () => {
    const flags = await execAsCode(main, 'cat /sys/class/net/lo/flags')
    expect(Number(flags.stdout) & 1).toBe(1)
    expect((await execAsCode(main, 'ls /sys/class/net')).stdout.split(/\s+/)).toEqual(['lo'])
    // perl (Essential in Debian) listens, forks the server and exits once listening: no race.
    const serve = (addr: string, port: number): string =>
      `perl -MIO::Socket::IP -e '$s = IO::Socket::IP->new(LocalHost => "${addr}", LocalPort => ${port}, Listen => 1, ReuseAddr => 1) or die "listen: $@"; exit 0 if fork; $c = $s->accept; <$c>; print $c "HTTP/1.0 200 OK\\r\\n\\r\\nhello from inside\\n"; close $c'`
    const v4 = await execAsCode(
      main,
      `${serve('127.0.0.1', 8099)} && curl -sS --max-time 5 http://127.0.0.1:8099/`,
    )
    expect(v4.stdout, v4.stderr).toBe('hello from inside')
    const v6 = await execAsCode(
      main,
      `${serve('::1', 8098)} && curl -sS --max-time 5 -g 'http://[::1]:8098/'`,
    )
    expect(v6.stdout, v6.stderr).toBe('hello from inside')
  })

  it('gives every process the proxy variables: exec, login shells, su -l and the tool in tmux', async () => {
    const env = await execAsCode(main, 'printenv HTTPS_PROXY http_proxy NO_PROXY')
    expect(env.stdout.split('\n')).toEqual([
      'http://127.0.0.1:3128',
      'http://127.0.0.1:3128',
      'localhost,127.0.0.1,::1',
    ])
    expect((await execAsCode(main, "bash --login -c 'printenv HTTPS_PROXY'")).stdout).toBe(
      'http://127.0.0.1:3128',
    )
    expect((await execAsCode(main, `tmux show-environment -g HTTPS_PROXY`)).stdout).toBe(
      'HTTPS_PROXY=http://127.0.0.1:3128',
    )
    const apt = await execa('incus', [
      'exec',
      main,
      '--',
      'cat',
      '/etc/apt/apt.conf.d/90clincus-proxy',
    ])
    expect(apt.stdout).toContain('Acquire::http::Proxy "http://127.0.0.1:3128/"')
    // su -l resets the environment; /etc/profile.d gives it back
    const su = await execa('incus', [
      'exec',
      main,
      '--',
      'su',
      '-l',
      'code',
      '-c',
      'printenv HTTPS_PROXY',
    ])
    expect(su.stdout).toBe('http://127.0.0.1:3128')
    // Exactly one proxy device (issue 16: each costs Incus ~1 s at start), egress and hooks.
    expect(Object.keys(await proxyDevices(main))).toEqual(['clincus-host'])
    expect((await proxyDevices(main))['clincus-host']?.listen).toBe('tcp:127.0.0.1:3128')
  })

  it('reaches the allowed upstream through $HTTPS_PROXY, plain HTTP and CONNECT', async () => {
    const plain = await execAsCode(
      main,
      `curl -sS --fail --max-time 10 http://upstream.test:${up}/plain`,
    )
    expect(plain.stdout, plain.stderr).toBe('upstream answered GET /plain')
    const tunnel = await execAsCode(
      main,
      `curl -sS --fail --max-time 10 -p http://upstream.test:${up}/tunnel`,
    )
    expect(tunnel.stdout, tunnel.stderr).toBe('upstream answered GET /tunnel')
    // by ip:port, through the proxy named explicitly (NO_PROXY sends 127.0.0.1 direct)
    const byIp = await execAsCode(
      main,
      `curl -sS --fail --max-time 10 --noproxy '' -x "$HTTPS_PROXY" -p http://127.0.0.1:${up}/ip`,
    )
    expect(byIp.stdout, byIp.stderr).toBe('upstream answered GET /ip')
    const net = await network(main)
    expect(net.mode).toBe('allowlist')
    expect(net.allow).toEqual(expect.arrayContaining([`127.0.0.1:${up}`, 'api.anthropic.com']))
    const tunnelRecord = net.connections.find((c) => c.host === 'upstream.test' && c.bytes_down > 0)
    expect(tunnelRecord).toMatchObject({ port: up, allowed: true })
  })

  it('refuses a name not in the allowlist with 403 and a reason, lists it and sends an event', async () => {
    const from = events.events.length
    const looked = resolved.length
    const res = await execAsCode(
      main,
      `curl -sS --max-time 10 -w '\\n%{http_code}' http://refused.example/x`,
    )
    expect(res.stdout).toContain('refused.example:80 is not in this session')
    expect(res.stdout.trim().endsWith('403')).toBe(true)
    const https = await execAsCode(main, 'curl -sS --max-time 10 https://refused.example/')
    expect(https.exitCode).not.toBe(0)
    expect(https.stderr).toMatch(/403/)
    expect(resolved.slice(looked)).not.toContain('refused.example')
    const { event } = await events.next(
      (e) => e.type === 'session.network' && e.host === 'refused.example',
      { from },
    )
    expect(event).toMatchObject({ id: main, port: 80, allowed: false })
    const net = await network(main)
    expect(net.connections.find((c) => c.host === 'refused.example')).toMatchObject({
      allowed: false,
    })
    const list = await requestJson(server.url, 'GET', '/api/sessions')
    const me = (
      list.body as Array<{ id: string; network?: { last_refused_at: string | null } }>
    ).find((s) => s.id === main)
    expect(me?.network?.last_refused_at).toMatch(/^\d{4}-/)
  })

  it('refuses the dashboard, cloud metadata, [::1] and a name that resolves to loopback', async () => {
    const via = `--noproxy '' -x "$HTTPS_PROXY"`
    for (const url of [
      `http://127.0.0.1:${server.port}/api/health`,
      'http://169.254.169.254/latest/meta-data/',
      `http://[::1]:${up}/`,
      'http://rebind.test:9/',
    ]) {
      const res = await execAsCode(
        main,
        `curl -sS -g --max-time 10 ${via} -w '\\n%{http_code}' '${url}'`,
      )
      expect(res.stdout.trim().endsWith('403'), `${url}: ${res.stdout} ${res.stderr}`).toBe(true)
    }
    const tunnel = await execAsCode(
      main,
      `curl -sS --max-time 10 ${via} -p http://127.0.0.1:${server.port}/`,
    )
    expect(tunnel.stderr).toMatch(/403/)
  })

  it('mode none (a profile): the one device carries only the hook channel; every request is refused (403, never forwarded)', async () => {
    const id = await launch('offline', { profile: 'offline' })
    expect(Object.keys(await proxyDevices(id))).toEqual(['clincus-host'])
    const from = hits
    const plain = await execAsCode(
      id,
      `curl -sS --max-time 20 -w '\\n%{http_code}' http://upstream.test:${up}/`,
    )
    expect(plain.stdout.trim().endsWith('403'), plain.stdout).toBe(true)
    expect(plain.stdout).toContain('mode = "none"')
    const tunnel = await execAsCode(
      id,
      `curl -sS --max-time 20 --noproxy '' -x http://127.0.0.1:3128 -p http://127.0.0.1:${up}/ 2>&1; true`,
    )
    expect(tunnel.stdout).toMatch(/403/)
    expect(hits).toBe(from)
    expect((await network(id)).mode).toBe('none')
    // The hook channel still speaks for the session.
    await execAsCode(
      id,
      `printf '{"hook_event_name":"Notification","notification_type":"permission_prompt","message":"offline hook"}\\n' >/dev/tcp/127.0.0.1/3128`,
    )
    await waitUntil('the hook line', async () => {
      const res = await requestJson(server.url, 'GET', '/api/sessions')
      const s = (res.body as Array<{ id: string; agent?: { reason?: string } }>).find(
        (x) => x.id === id,
      )
      return s?.agent?.reason === 'offline hook'
    })
  })

  it('a workspace .clincus.toml with mode = "open" does not widen the policy', async () => {
    const ws = await server.project('widen')
    await writeFile(
      join(ws, '.clincus.toml'),
      '[network]\nmode = "open"\nallow = ["evil.example"]\n',
    )
    const res = await requestJson(server.url, 'POST', '/api/sessions', { workspace: ws })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    const id = (res.body as { id: string }).id
    const net = await network(id)
    expect(net.mode).toBe('allowlist')
    expect(net.allow).not.toContain('evil.example')
    const curl = await execAsCode(
      id,
      `curl -sS --max-time 10 -w '\\n%{http_code}' http://evil.example/`,
    )
    expect(curl.stdout.trim().endsWith('403')).toBe(true)
  })

  it('applies a policy edit in the config file to a running session within 1 s', async () => {
    const before = await execAsCode(
      main,
      `curl -sS --max-time 10 -w '\\n%{http_code}' http://late.test:${up}/`,
    )
    expect(before.stdout.trim().endsWith('403')).toBe(true)
    const from = events.events.length
    await writeFile(server.configFile, config({ allow: [`late.test:${up}`] }))
    await events.next((e) => e.type === 'config.reloaded', { from, timeoutMs: 1000 })
    const after = await execAsCode(
      main,
      `curl -sS --fail --max-time 10 http://late.test:${up}/late`,
    )
    expect(after.stdout, after.stderr).toBe('upstream answered GET /late')

    // mode none refuses live (the device stays: it carries the hook channel); allowlist again
    await writeFile(server.configFile, config({ mode: 'none' }))
    await waitUntil('mode none', async () => (await network(main)).mode === 'none')
    const refused = await execAsCode(
      main,
      `curl -sS --max-time 10 -w '\\n%{http_code}' http://upstream.test:${up}/none`,
    )
    expect(refused.stdout.trim().endsWith('403'), refused.stdout).toBe(true)
    expect(Object.keys(await proxyDevices(main))).toEqual(['clincus-host'])
    await writeFile(server.configFile, config())
    await waitUntil('mode allowlist', async () => (await network(main)).mode === 'allowlist')
    const back = await execAsCode(
      main,
      `curl -sS --fail --max-time 10 http://upstream.test:${up}/back`,
    )
    expect(back.stdout, back.stderr).toBe('upstream answered GET /back')
  })

  it('Allow adds an entry to the user file, keeps comments, is idempotent, refuses bad entries', async () => {
    const add = await requestJson(server.url, 'POST', '/api/network/allow', {
      entry: 'New.Example.',
    })
    expect(add.status).toBe(200)
    expect((add.body as { allow: string[] }).allow).toContain('new.example')
    const again = await requestJson(server.url, 'POST', '/api/network/allow', {
      entry: 'new.example',
    })
    expect(
      (again.body as { allow: string[] }).allow.filter((e) => e === 'new.example'),
    ).toHaveLength(1)
    const text = await readFile(server.configFile, 'utf8')
    expect(text).toContain('# egress test config: this comment must survive the Allow button')
    expect(text).toContain('"new.example"')
    const bad = await requestJson(server.url, 'POST', '/api/network/allow', { entry: 'http://x/y' })
    expect(bad.status).toBe(400)
    expect(bad.body).toMatchObject({ code: 'invalid_network_entry' })
    await waitUntil('the session to see it', async () =>
      (await network(main)).allow.includes('new.example'),
    )
  })

  it('a session made before issue 12 gets lo, the proxy environment and the device on resume', async () => {
    const id = await launch('legacy', { profile: 'legacy' })
    // what such a session looks like: no device, no environment
    await execa('incus', ['config', 'device', 'remove', id, 'clincus-host'], { timeout: 30_000 })
    for (const key of ['environment.HTTPS_PROXY', 'environment.http_proxy'])
      await execa('incus', ['config', 'unset', id, key], { timeout: 30_000 })
    expect((await requestJson(server.url, 'DELETE', `/api/sessions/${id}`)).status).toBe(204)
    const res = await requestJson(server.url, 'POST', `/api/sessions/${id}/resume`)
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(Number((await execAsCode(id, 'cat /sys/class/net/lo/flags')).stdout) & 1).toBe(1)
    expect(await proxyDevices(id)).toEqual({
      'clincus-host': expect.objectContaining({ listen: 'tcp:127.0.0.1:3128' }) as unknown,
    })
    expect((await execAsCode(id, 'printenv HTTPS_PROXY')).stdout).toBe('http://127.0.0.1:3128')
    // that image has no curl: bash speaks to the proxy itself
    const viaBash = await execAsCode(
      id,
      `exec 3<>/dev/tcp/127.0.0.1/3128 && printf 'GET http://upstream.test:${up}/again HTTP/1.0\\r\\nHost: upstream.test\\r\\n\\r\\n' >&3 && cat <&3`,
    )
    expect(viaBash.stdout, viaBash.stderr).toContain('upstream answered GET /again')
  })

  it('removes the audit with the session', async () => {
    const id = await launch('gone')
    await execAsCode(id, 'curl -s --max-time 10 http://refused.example/ >/dev/null')
    // `<paths.sessions_dir>/network/`, default `~/.clincus/sessions` (issue 15)
    const file = join(home, '.clincus', 'sessions', 'network', `${id}.jsonl`)
    await waitUntil('the audit file', () =>
      readFile(file, 'utf8').then(
        (t) => t.includes('refused.example'),
        (err: unknown) => {
          process.stderr.write(`audit read: ${String(err)}\n`)
          return false
        },
      ),
    )
    expect((await requestJson(server.url, 'DELETE', `/api/sessions/${id}?force=true`)).status).toBe(
      204,
    )
    await expect(readFile(file, 'utf8')).rejects.toThrow()
  })
})
