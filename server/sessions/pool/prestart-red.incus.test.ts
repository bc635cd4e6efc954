// Red team, issue 16 `[pool] prestart`, on the live daemon: a claim whose view changed since the
// agent started ahead must give the session what a fresh start gives it. The agent started ahead
// ran whatever the old view made it run at its start (a project hook, a plugin: here the tool's
// start script in the workspace, which spawns a process only while `.claude/evil` exists), and
// the tool config copied at the prime holds what the host home had then (a login). The user then
// removes both before the click: the session must hold neither that process nor that login.
// A member whose agent runs is left behind neither by a shutdown nor by a SIGKILL.
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { CreatedSession } from '../../../shared/schemas/sessions.ts'
import {
  describeIncus,
  execAsCode,
  removeInstances,
  TEST_IMAGE,
  type LiveServer,
} from '../../test/incus-harness.ts'
import { prepareHome, spawnServer, type ServerProcess } from '../../test/process-harness.ts'
import { ownByUser } from '../../test/owner.ts'
import { liveSessions, startPoolServer, type PoolServer } from '../../test/live-sessions.ts'
import { TerminalClient, waitUntil } from '../../test/ws-client.ts'

const LONG = { timeoutMs: 180_000, intervalMs: 200 }

// What the agent runs at its start from the workspace (a stand-in for a project hook or plugin):
// while `.claude/evil` exists, it leaves a process behind that outlives the tool.
const START = `#!/bin/bash
if [ -e /workspace/.claude/evil ]; then
  setsid bash -c 'exec -a clincus-red-daemon sleep 100000' </dev/null >/dev/null 2>&1 &
fi
exec claude "$@"
`

describeIncus('[pool] prestart red team on a live Incus daemon', () => {
  let server: LiveServer
  let home: string
  let live: PoolServer

  const { create, remove, primedReady } = liveSessions(() => server)

  beforeAll(async () => {
    live = await startPoolServer('prestart-red', [
      `[pool]\nsize = 0\nprimed = 1\nprestart = true`,
      `[tool]\nbinary = "/workspace/start.sh"`,
    ])
    server = live.server
    home = live.home
  }, 240_000)

  afterAll(async () => {
    await live.close()
  })

  it('a view changed since the agent started ahead: the session holds nothing that agent left, nor a login removed from the host', async () => {
    const ws = await server.project('prestart-red')
    await writeFile(join(ws, 'start.sh'), START)
    await chmod(join(ws, 'start.sh'), 0o755)
    await mkdir(join(ws, '.claude'), { recursive: true })
    await writeFile(join(ws, '.claude', 'evil'), 'x\n')
    await ownByUser(ws)
    const creds = join(home, '.claude', '.credentials.json')
    await mkdir(join(home, '.claude'), { recursive: true })
    await writeFile(creds, '{"token":"old-login"}\n')

    const first = await create(ws)
    await remove(first.id)
    await primedReady()

    // The user cleans up before the click: the workspace's start-up code and the host login.
    await rm(join(ws, '.claude', 'evil'))
    await rm(creds)

    const s = await create(ws)
    expect(s.agent_start).not.toBe('prestarted')
    const term = new TerminalClient(`${server.wsUrl}/ws/terminal/${s.id}?cols=100&rows=30`)
    await term.opened
    await term.waitFor('ready', LONG.timeoutMs)
    term.send('hello\r')
    await term.waitFor('hello-BACK', LONG.timeoutMs)
    await term.close()

    const daemon = await execAsCode(s.id, "pgrep -f 'clincus-red-[d]aemon' || true")
    const login = await execAsCode(s.id, 'cat ~/.claude/.credentials.json 2>/dev/null || true')
    await remove(s.id)
    expect.soft(daemon.stdout, 'a process the agent started ahead left').toBe('')
    expect(login.stdout, 'a login removed from the host').not.toContain('old-login')
  })
})

/** The run's instances whose pool label marks a primed member: name → status. */
async function primedMembers(prefix: string): Promise<Map<string, string>> {
  const { stdout } = await execa('incus', ['query', '/1.0/instances?recursion=1'], {
    timeout: 30_000,
  })
  const list = JSON.parse(stdout) as Array<{
    name: string
    status: string
    config: Record<string, string>
  }>
  const out = new Map<string, string>()
  for (const i of list)
    if (i.name.startsWith(prefix) && i.config['user.clincus.pool']?.startsWith('primed:'))
      out.set(i.name, i.status)
  return out
}

describeIncus('pre-started agents after a shutdown and a SIGKILL', () => {
  let home: string
  let app: string
  const prefix = `cr${randomBytes(3).toString('hex')}-`
  const servers: ServerProcess[] = []

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-prestartkill-'))
    app = await prepareHome(home)
    await writeFile(
      join(home, '.config', 'clincus', 'config.toml'),
      `[defaults]\nimage = "${TEST_IMAGE}"\n[dashboard]\nworkspace_roots = ["${join(home, 'projects')}"]\n` +
        `[pool]\nprimed = 1\nprestart = true\n`,
    )
  })

  afterAll(async () => {
    for (const s of servers) if (s.child.exitCode === null) s.child.kill('SIGKILL')
    await removeInstances(prefix)
    await rm(home, { recursive: true, force: true })
  })

  const createAndPrime = async (s: ServerProcess): Promise<void> => {
    const res = await fetch(`${s.url}/api/sessions`, {
      method: 'POST',
      headers: { ...s.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ workspace: app }),
    })
    expect(res.status).toBe(200)
    const made = (await res.json()) as CreatedSession
    const del = await fetch(`${s.url}/api/sessions/${made.id}?force=true`, {
      method: 'DELETE',
      headers: s.headers,
    })
    expect(del.status).toBe(204)
    await waitUntil(
      'a primed member with its agent',
      async () => [...(await primedMembers(prefix)).values()].includes('Frozen'),
      LONG,
    )
  }

  it('leaves no member whose agent runs, after SIGTERM nor after SIGKILL and a restart', async () => {
    const first = await spawnServer({ home, prefix, poolSize: 0 })
    servers.push(first)
    await createAndPrime(first)
    first.child.kill('SIGTERM')
    await first.exited
    expect((await primedMembers(prefix)).size, 'left by a shutdown').toBe(0)

    const second = await spawnServer({ home, prefix, poolSize: 0 })
    servers.push(second)
    await createAndPrime(second)
    second.child.kill('SIGKILL')
    await second.exited
    expect((await primedMembers(prefix)).size).toBe(1)

    const third = await spawnServer({ home, prefix, poolSize: 0 })
    servers.push(third)
    await waitUntil(
      'the leftover member gone',
      async () => (await primedMembers(prefix)).size === 0,
      LONG,
    )
    third.child.kill('SIGTERM')
    await third.exited
  })
})
