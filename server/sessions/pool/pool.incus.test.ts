// Issue 16 acceptance for the warm pool on the live daemon: a create claims a frozen container
// (path "warm"), the agent answers through /ws/terminal, the workspace is mounted with the
// owner's ids, protected paths are read-only, limits apply; the pool refills; two concurrent
// creates never share a container; an image moved under its alias replaces the pool; a SIGKILLed
// server leaves no pool container behind once it is back.
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Health } from '../../../shared/schemas/health.ts'
import {
  describeIncus,
  execAsCode,
  removeInstances,
  requestJson,
  TEST_IMAGE,
  type LiveServer,
} from '../../test/incus-harness.ts'
import { liveSessions, startPoolServer, type PoolServer } from '../../test/live-sessions.ts'
import { ownByUser } from '../../test/owner.ts'
import { spawnServer, type ServerProcess } from '../../test/process-harness.ts'
import { TerminalClient, waitUntil } from '../../test/ws-client.ts'
import { isWarmName } from '../naming.ts'

const LONG = { timeoutMs: 180_000, intervalMs: 200 }

async function incus(...args: string[]): Promise<string> {
  return (await execa('incus', args, { timeout: 60_000 })).stdout
}

async function fingerprint(alias: string): Promise<string> {
  const data = JSON.parse(await incus('query', `/1.0/images/aliases/${alias}`)) as {
    target: string
  }
  return data.target
}

/** The pool containers of `prefix` (pool label set): name → the image they were made from. */
async function poolContainers(prefix: string): Promise<Map<string, string>> {
  const list = JSON.parse(await incus('query', '/1.0/instances?recursion=1')) as Array<{
    name: string
    status: string
    config: Record<string, string>
  }>
  const out = new Map<string, string>()
  for (const i of list)
    if (i.name.startsWith(prefix) && i.config['user.clincus.pool'] !== undefined)
      out.set(i.name, i.config['volatile.base_image'] ?? '')
  return out
}

describeIncus('the warm pool on a live Incus daemon', () => {
  let server: LiveServer
  let live: PoolServer
  // The test's own alias of the test image: moved to another image to "rebuild" it.
  const alias = `clincus-pooltest-${randomBytes(3).toString('hex')}`

  const health = async (): Promise<NonNullable<Health['pool']>> => {
    const res = await requestJson(server.url, 'GET', '/api/health')
    const pool = (res.body as Health).pool
    if (!pool) throw new Error('no pool in /api/health')
    return pool
  }
  const poolReady = (n: number): Promise<unknown> =>
    waitUntil(`${n} ready pool container(s)`, async () => (await health()).ready === n, LONG)
  const { create } = liveSessions(() => server)

  beforeAll(async () => {
    await incus('image', 'alias', 'create', alias, await fingerprint(TEST_IMAGE))
    live = await startPoolServer(
      'pool',
      [
        `[pool]\nsize = 1\nprimed = 0`,
        `[limits.memory]\nlimit = "768MiB"`,
        `[limits.runtime]\nmax_processes = 1234`,
      ],
      alias,
    )
    server = live.server
    // The pool fills for the owner of the root's folders: one exists before the server looks.
    await server.project('first')
  }, 240_000)

  afterAll(async () => {
    // Shutdown deleted the pool (close() also removes anything of the prefix left).
    await live.close()
    await execa('incus', ['image', 'alias', 'delete', alias], { reject: false, timeout: 30_000 })
  })

  it('a create with a pool of 1 is warm: agent answers, workspace, protection, limits', async ({
    annotate,
  }) => {
    await poolReady(1)
    const [member] = (await poolContainers(server.prefix)).keys()
    // Made from the image and stopped, and no session: not listed.
    expect(member && (await incus('list', member, '--format=csv', '--columns=s'))).toBe('STOPPED')
    expect((await requestJson(server.url, 'GET', '/api/sessions')).body).toEqual([])

    const ws = await server.project('warm')
    await writeFile(join(ws, 'from-host.txt'), 'hello from the host\n')
    await ownByUser(ws)
    const t0 = performance.now()
    const s = await create(ws)
    const ms = performance.now() - t0
    expect(s.path).toBe('warm')
    expect(s.id).toBe(member)
    expect(isWarmName(server.prefix, s.id)).toBe(true)
    expect(s.slot).toBe(1)
    expect(s.cold_reason).toBeUndefined()
    await annotate(`warm POST /api/sessions ${ms.toFixed(0)} ms: ${JSON.stringify(s.timings)}`)

    // The agent takes keys through /ws/terminal.
    const term = new TerminalClient(`${server.wsUrl}/ws/terminal/${s.id}?cols=100&rows=30`)
    await term.opened
    await term.waitFor('ready', LONG.timeoutMs)
    term.send('hello\r')
    await term.waitFor('hello-BACK', LONG.timeoutMs)
    await term.close()

    // The workspace with the owner's ids: host uid 1000 is the code user inside, both ways.
    const inside = await execAsCode(s.id, 'stat -c %u /workspace/from-host.txt; id -u')
    expect(inside.stdout.trim().split('\n')).toEqual(['1000', '1000'])
    expect((await execAsCode(s.id, 'echo made > /workspace/from-agent.txt')).exitCode).toBe(0)
    expect((await stat(join(ws, 'from-agent.txt'))).uid).toBe(1000)
    // Protected paths are read-only (the .git folder).
    const write = await execAsCode(s.id, 'touch /workspace/.git/planted')
    expect(write.exitCode).not.toBe(0)
    expect(write.stderr).toMatch(/Read-only file system/)
    // Limits applied to the running container.
    expect(await incus('config', 'get', s.id, 'limits.memory')).toBe('768MiB')
    expect(await incus('config', 'get', s.id, 'limits.processes')).toBe('1234')
    expect(await incus('config', 'get', s.id, 'user.clincus.pool')).toBe('')
    // Exactly one proxy device (issue 16: each costs Incus ~1 s at start): egress and hooks.
    const inst = JSON.parse(await incus('query', `/1.0/instances/${s.id}`)) as {
      expanded_devices: Record<string, { type: string }>
    }
    const proxies = Object.entries(inst.expanded_devices).filter(([, d]) => d.type === 'proxy')
    expect(proxies.map(([name]) => name)).toEqual(['clincus-host'])
    const listed = (await requestJson(server.url, 'GET', '/api/sessions')).body as Array<{
      id: string
    }>
    expect(listed.map((x) => x.id)).toEqual([s.id])
  })

  it('refills, and two concurrent creates never get the same container', async ({ annotate }) => {
    await poolReady(1)
    const ws = await server.project('pair')
    const [a, b] = await Promise.all([create(ws), create(ws)])
    expect(a.id).not.toBe(b.id)
    expect([a.path, b.path]).toContain('warm')
    expect([a.slot, b.slot].sort()).toEqual([1, 2])
    const cold = a.path === 'cold' ? a : b
    await annotate(
      `cold POST /api/sessions (${cold.cold_reason ?? ''}): ${JSON.stringify(cold.timings)}`,
    )
    await poolReady(1)
  })

  it('an image moved under its alias replaces the pool', async () => {
    await poolReady(1)
    const before = await poolContainers(server.prefix)
    const old = await fingerprint(alias)
    expect([...before.values()]).toEqual([old])
    // "Rebuilt": the alias now names another image (the real one).
    const next = await fingerprint('clincus')
    await incus(
      'query',
      '-X',
      'PATCH',
      `/1.0/images/aliases/${alias}`,
      '-d',
      `{"target":"${next}"}`,
    )
    await waitUntil(
      'a pool container of the new image',
      async () => {
        const now = await poolContainers(server.prefix)
        return (
          (await health()).ready === 1 &&
          now.size === 1 &&
          [...now.values()][0] === next &&
          ![...now.keys()].some((n) => before.has(n))
        )
      },
      LONG,
    )
  })
})

describeIncus('the warm pool after SIGKILL', () => {
  let home: string
  const prefix = `cp${randomBytes(3).toString('hex')}-`
  const servers: ServerProcess[] = []

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-poolkill-'))
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

  it('leaves no pool container orphaned or listed after a restart', async () => {
    const poolOf = async (s: ServerProcess): Promise<NonNullable<Health['pool']> | undefined> =>
      ((await requestJson(s.url, 'GET', '/api/health')).body as Health).pool
    const first = await spawnServer({ home, prefix, poolSize: 1 })
    servers.push(first)
    await waitUntil('the pool to fill', async () => (await poolOf(first))?.ready === 1, LONG)
    const leftover = [...(await poolContainers(prefix)).keys()]
    expect(leftover).toHaveLength(1)
    first.child.kill('SIGKILL')
    await first.exited
    // Still there: nobody deleted it.
    expect([...(await poolContainers(prefix)).keys()]).toEqual(leftover)

    const second = await spawnServer({ home, prefix, poolSize: 1 })
    servers.push(second)
    await waitUntil(
      'the leftover gone and a new pool container ready',
      async () => {
        const now = [...(await poolContainers(prefix)).keys()]
        return (
          (await poolOf(second))?.ready === 1 &&
          now.length === 1 &&
          !now.includes(leftover[0] ?? '')
        )
      },
      LONG,
    )
    const listed = await fetch(`${second.url}/api/sessions`, { headers: second.headers })
    expect(listed.status).toBe(200)
    expect(await listed.json()).toEqual([])
    // A graceful shutdown deletes the pool.
    second.child.kill('SIGTERM')
    await second.exited
    expect((await poolContainers(prefix)).size).toBe(0)
  })
})
