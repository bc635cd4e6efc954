// A prompt-injected agent that is root in its container (`agent_sudo = true`) could tell
// /dev/incus its instance is "Ready" (PATCH /1.0), which makes Incus report the running container
// as READY. Sessions have no guest API; should one have it anyway, Stop still stops the container
// and max_duration still ends it.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  describeIncus,
  startLiveServer,
  TEST_IMAGE,
  type LiveServer,
} from '../test/incus-harness.ts'
import { waitUntil } from '../test/ws-client.ts'

let server: LiveServer
let home: string

// The guest API answers container root only.
const MARK_READY = `use IO::Socket::UNIX;
my $s = IO::Socket::UNIX->new(Peer => "/dev/incus/sock") or die "no /dev/incus: $!";
my $b = '{"state":"Ready"}';
print $s "PATCH /1.0 HTTP/1.0\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\nContent-Length: " . length($b) . "\\r\\n\\r\\n$b";
local $/; my $r = <$s>; print((split /\\r\\n/, $r)[0]);`

async function launch(name: string): Promise<string> {
  const res = await fetch(`${server.url}/api/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ workspace: await server.project(name) }),
  })
  const body = (await res.json()) as { id: string }
  expect(res.status, JSON.stringify(body)).toBe(200)
  return body.id
}

async function status(id: string): Promise<string> {
  const { stdout } = await execa('incus', ['list', id, '--format=csv', '--columns=s'], {
    timeout: 30_000,
  })
  return stdout.trim()
}

async function markReady(id: string): Promise<void> {
  // Sessions have no guest API (security.guestapi=false), so first the attack is impossible:
  const closed = await execa('incus', ['exec', id, '--', 'perl', '-e', MARK_READY], {
    timeout: 60_000,
    reject: false,
  })
  expect(closed.exitCode).not.toBe(0)
  expect(closed.stderr).toMatch(/no \/dev\/incus/)
  // The second line of defence, with the guest API turned on behind clincus's back: as
  // container root (what `agent_sudo = true` gives the agent).
  await execa('incus', ['config', 'set', id, 'security.guestapi=true'], { timeout: 30_000 })
  const r = await execa('incus', ['exec', id, '--', 'perl', '-e', MARK_READY], {
    timeout: 60_000,
    reject: false,
  })
  expect(r.stdout, r.stderr).toMatch(/^HTTP\/1\.0 200/)
  expect(await status(id)).toBe('READY')
}

describeIncus('an agent that marks its instance Ready (live)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-it-'))
    server = await startLiveServer({
      home,
      configText: `[defaults]\nimage = "${TEST_IMAGE}"\n\n[limits.runtime]\nmax_duration = "40s"\nstop_graceful = false\n\n[dashboard]\nworkspace_roots = ["${join(home, 'projects')}"]\n`,
    })
  })

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('is still stopped by Stop, and by max_duration', async () => {
    const [stopped, expiring] = await Promise.all([launch('ready-stop'), launch('ready-expire')])
    await markReady(stopped)
    await markReady(expiring)

    const res = await fetch(`${server.url}/api/sessions/${stopped}`, { method: 'DELETE' })
    expect(res.status).toBe(204)
    expect(await status(stopped)).toBe('STOPPED')

    await waitUntil(
      'max_duration to stop the other one',
      async () => (await status(expiring)) === 'STOPPED',
      {
        timeoutMs: 90_000,
        intervalMs: 1000,
      },
    )
  }, 240_000)
})
