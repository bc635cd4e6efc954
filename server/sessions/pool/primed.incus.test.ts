// Issue 16, primed members on the live daemon: with `[pool] primed = 1` a create primes its request
// (a container started with the workspace and protection mounted, then frozen); the next create of
// it claims the member (`path: "warm"`, `warm: "primed"`): the agent answers through /ws/terminal,
// the workspace has the owner's ids, protected paths are read-only, limits apply. A `.git` replaced
// between the prime and the claim is not claimed (cold, with the reason), the stale member goes and
// no folder of the workspace does. A SIGKILLed server leaves no primed member after its restart.
import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Health } from '../../../shared/schemas/health.ts'
import type { CreatedSession } from '../../../shared/schemas/sessions.ts'
import {
  describeIncus,
  execAsCode,
  removeInstances,
  requestJson,
  TEST_IMAGE,
  type LiveServer,
} from '../../test/incus-harness.ts'
import { ownByUser } from '../../test/owner.ts'
import { spawnServer, type ServerProcess } from '../../test/process-harness.ts'
import { liveSessions, startPoolServer, type PoolServer } from '../../test/live-sessions.ts'
import { TerminalClient, waitUntil } from '../../test/ws-client.ts'

const LONG = { timeoutMs: 180_000, intervalMs: 200 }

async function incus(...args: string[]): Promise<string> {
  return (await execa('incus', args, { timeout: 60_000 })).stdout
}

/** The primed members of `prefix` (of `workspace` when given): name → status. */
async function primedMembers(prefix: string, workspace?: string): Promise<Map<string, string>> {
  const list = JSON.parse(await incus('query', '/1.0/instances?recursion=1')) as Array<{
    name: string
    status: string
    config: Record<string, string>
  }>
  const out = new Map<string, string>()
  for (const i of list)
    if (
      i.name.startsWith(prefix) &&
      i.config['user.clincus.pool']?.startsWith('primed:') &&
      (workspace === undefined || i.config['user.clincus.primed_workspace'] === workspace)
    )
      out.set(i.name, i.status)
  return out
}

describeIncus('primed members on a live Incus daemon', () => {
  let server: LiveServer
  let live: PoolServer

  const pool = async (): Promise<NonNullable<Health['pool']>> => {
    const body = (await requestJson(server.url, 'GET', '/api/health')).body as Health
    if (!body.pool) throw new Error('no pool in /api/health')
    return body.pool
  }
  const { create, remove, primedReady } = liveSessions(() => server)

  beforeAll(async () => {
    live = await startPoolServer('primed', [
      `[pool]\nsize = 0\nprimed = 1`,
      `[limits.memory]\nlimit = "768MiB"`,
      `[limits.runtime]\nmax_processes = 1234`,
    ])
    server = live.server
  }, 240_000)

  afterAll(async () => {
    await live.close()
  })

  it('the next create of a request claims its primed member: agent, ownership, protection, limits', async ({
    annotate,
  }) => {
    const ws = await server.project('primed')
    await writeFile(join(ws, 'from-host.txt'), 'hello from the host\n')
    await ownByUser(ws)
    const first = await create(ws)
    expect(first).toMatchObject({ path: 'cold', cold_reason: 'pool disabled' })
    await remove(first.id)
    await primedReady()
    const [member, status] = [...(await primedMembers(server.prefix))][0] ?? []
    expect(status).toBe('Frozen')
    // Not a session while primed.
    expect((await requestJson(server.url, 'GET', '/api/sessions')).body).toEqual([])
    const memory = (await pool()).memory_bytes
    expect(memory).toBeGreaterThan(0)

    const t0 = performance.now()
    const s = await create(ws)
    const ms = performance.now() - t0
    expect(s).toMatchObject({ id: member, path: 'warm', warm: 'primed', slot: 1 })
    expect(s.cold_reason).toBeUndefined()
    await annotate(
      `primed POST /api/sessions ${ms.toFixed(0)} ms: ${JSON.stringify(s.timings)}; member memory ${memory} B`,
    )

    const term = new TerminalClient(`${server.wsUrl}/ws/terminal/${s.id}?cols=100&rows=30`)
    await term.opened
    await term.waitFor('ready', LONG.timeoutMs)
    term.send('hello\r')
    await term.waitFor('hello-BACK', LONG.timeoutMs)
    await term.close()

    const inside = await execAsCode(s.id, 'stat -c %u /workspace/from-host.txt; id -u')
    expect(inside.stdout.trim().split('\n')).toEqual(['1000', '1000'])
    expect((await execAsCode(s.id, 'echo made > /workspace/from-agent.txt')).exitCode).toBe(0)
    expect((await stat(join(ws, 'from-agent.txt'))).uid).toBe(1000)
    const write = await execAsCode(s.id, 'touch /workspace/.git/planted')
    expect(write.exitCode).not.toBe(0)
    expect(write.stderr).toMatch(/Read-only file system/)
    expect(await incus('config', 'get', s.id, 'limits.memory')).toBe('768MiB')
    expect(await incus('config', 'get', s.id, 'limits.processes')).toBe('1234')
    expect(await incus('config', 'get', s.id, 'user.clincus.pool')).toBe('')
    const listed = (await requestJson(server.url, 'GET', '/api/sessions')).body as Array<{
      id: string
    }>
    expect(listed.map((x) => x.id)).toEqual([s.id])
    await remove(s.id)
  })

  it('a .git replaced between the prime and the claim: not claimed, member gone, no folder removed', async () => {
    const ws = await server.project('swap')
    await ownByUser(ws)
    const first = await create(ws)
    await remove(first.id)
    await waitUntil(
      'the member primed for this workspace',
      async () =>
        (await pool()).primed?.ready === 1 &&
        [...(await primedMembers(server.prefix, ws)).values()].includes('Frozen'),
      LONG,
    )
    const [stale] = [...(await primedMembers(server.prefix)).keys()]
    await rename(join(ws, '.git'), join(ws, 'git-before'))
    await mkdir(join(ws, '.git'))
    await ownByUser(join(ws, '.git'))
    const before = (await readdir(ws)).sort()
    const s = await create(ws)
    expect(s.path).toBe('cold')
    expect(s.cold_reason).toMatch(/primed container stale: .*\.git replaced/)
    await waitUntil(
      'the stale member deleted',
      async () => !(await primedMembers(server.prefix)).has(stale ?? ''),
      LONG,
    )
    expect((await readdir(ws)).sort()).toEqual(before)
    await remove(s.id)
  })
})

describeIncus('primed members after SIGKILL', () => {
  let home: string
  const prefix = `cq${randomBytes(3).toString('hex')}-`
  const servers: ServerProcess[] = []

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-primedkill-'))
    const root = join(home, 'projects')
    await mkdir(join(root, 'app', '.git'), { recursive: true })
    await ownByUser(join(root, 'app'))
    await mkdir(join(home, '.config', 'clincus'), { recursive: true })
    await writeFile(
      join(home, '.config', 'clincus', 'config.toml'),
      `[defaults]\nimage = "${TEST_IMAGE}"\n[dashboard]\nworkspace_roots = ["${root}"]\n`,
    )
  })

  afterAll(async () => {
    for (const s of servers) if (s.child.exitCode === null) s.child.kill('SIGKILL')
    await removeInstances(prefix)
    await rm(home, { recursive: true, force: true })
  })

  it('leaves no primed member after a restart', async () => {
    const first = await spawnServer({ home, prefix, poolSize: 0 })
    servers.push(first)
    const ws = join(home, 'projects', 'app')
    const res = await fetch(`${first.url}/api/sessions`, {
      method: 'POST',
      headers: { ...first.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ workspace: ws }),
    })
    expect(res.status).toBe(200)
    const session = (await res.json()) as CreatedSession
    await waitUntil(
      'a primed member',
      async () => [...(await primedMembers(prefix)).values()].includes('Frozen'),
      LONG,
    )
    first.child.kill('SIGKILL')
    await first.exited
    expect((await primedMembers(prefix)).size).toBe(1)
    const before = (await readdir(ws)).sort()

    const second = await spawnServer({ home, prefix, poolSize: 0 })
    servers.push(second)
    await waitUntil(
      'the leftover member gone',
      async () => (await primedMembers(prefix)).size === 0,
      LONG,
    )
    const listed = await fetch(`${second.url}/api/sessions`, { headers: second.headers })
    expect(((await listed.json()) as Array<{ id: string }>).map((s) => s.id)).toEqual([session.id])
    // The workspace's folders are all still there.
    expect((await readdir(ws)).sort()).toEqual(before)
    second.child.kill('SIGTERM')
    await second.exited
  })
})
