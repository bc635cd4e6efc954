// Issue 3 acceptance on the live daemon, through clincus's own HTTP API.
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describeIncus, startLiveServer, type LiveServer } from '../test/incus-harness.ts'
import { workspaceHash } from './naming.ts'

interface Session {
  id: string
  workspace: string
  tool: string
  slot: number
  status: string
  persistent: boolean
}

let server: LiveServer
let home: string

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the body it expects
async function api<T>(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T }
}

async function incus(...args: string[]): Promise<string> {
  return (await execa('incus', args, { timeout: 60_000 })).stdout
}

async function asCode(
  id: string,
  ...argv: string[]
): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await execa(
    'incus',
    ['exec', id, '--user', '1000', '--group', '1000', '--env', 'HOME=/home/code', '--', ...argv],
    { timeout: 30_000, reject: false },
  )
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? -1 }
}

async function tmuxPane(id: string): Promise<string> {
  return (await asCode(id, 'tmux', 'capture-pane', '-p', '-t', `clincus-${id}`)).stdout
}

describeIncus('sessions on a live Incus daemon', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-it-'))
    server = await startLiveServer({ home })
  })

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('creates a running session with labels, the workspace mounted and the tool in tmux as uid 1000', async () => {
    const ws = await server.project('alpha')
    await writeFile(join(ws, 'from-host.txt'), 'hello from the host\n')
    const res = await api<Session>('POST', '/api/sessions', { workspace: ws })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    const s = res.body
    expect(s).toMatchObject({
      workspace: ws,
      tool: 'claude',
      slot: 1,
      status: 'running',
      persistent: false,
    })
    const info = JSON.parse(await incus('query', `/1.0/instances/${s.id}`)) as {
      status: string
      config: Record<string, string>
      expanded_devices: Record<string, Record<string, string>>
    }
    expect(info.status).toBe('Running')
    // Issue 16: the root disk is on setup's copy-on-write pool when there is one (setup adds it
    // wherever the kernel has btrfs: every machine the suite runs on so far).
    const cow = await incus('query', '/1.0/storage-pools/clincus').then(
      () => true,
      () => false,
    )
    expect(info.expanded_devices.root?.pool).toBe(cow ? 'clincus' : 'default')
    expect(info.config).toMatchObject({
      'user.clincus.managed': 'true',
      'user.clincus.workspace': ws,
      'user.clincus.tool': 'claude',
      'user.clincus.persistent': 'false',
    })
    expect(info.config['user.clincus.created']).toMatch(/^\d{4}-/)

    // the host file is visible inside; a file written inside by the tool user comes out as ours
    expect((await asCode(s.id, 'cat', '/workspace/from-host.txt')).stdout).toBe(
      'hello from the host',
    )
    expect(
      (await asCode(s.id, 'sh', '-c', 'echo from-inside > /workspace/from-inside.txt')).exitCode,
    ).toBe(0)
    const owner = await stat(join(ws, 'from-inside.txt'))
    const wsOwner = await stat(ws)
    expect([owner.uid, owner.gid]).toEqual([wsOwner.uid, wsOwner.gid])
    expect(await readFile(join(ws, 'from-inside.txt'), 'utf8')).toBe('from-inside\n')

    // protected paths are read-only inside
    for (const path of ['/workspace/.git/hooks/pre-commit', '/workspace/.git/config']) {
      const w = await asCode(s.id, 'sh', '-c', `echo x >> ${path}`)
      expect(w.exitCode, path).not.toBe(0)
      expect(w.stderr).toMatch(/Read-only file system/)
    }

    // the fake tool runs in tmux, as uid 1000 with HOME set
    await expect
      .poll(() => tmuxPane(s.id), { timeout: 10_000 })
      .toContain('clincus fake tool (claude) ready')
    const ps = await asCode(s.id, 'sh', '-c', 'ps -eo uid=,args=; tmux show-environment -g HOME')
    // the tmux server and the tool under it run as the code user
    expect(ps.stdout).toMatch(/^\s*1000 tmux/m)
    expect(ps.stdout).toMatch(/^\s*1000 .*\/usr\/local\/bin\/claude --verbose/m)
    expect(ps.stdout).not.toMatch(/^\s*0 .*\/usr\/local\/bin\/claude/m)
    expect(ps.stdout).toContain('HOME=/home/code')
    await asCode(s.id, 'tmux', 'send-keys', '-t', `clincus-${s.id}`, 'ping', 'Enter')
    await expect.poll(() => tmuxPane(s.id), { timeout: 10_000 }).toContain('ping-BACK')
  })

  it('lists, stops (kept), resumes with the tool back, force-deletes, and records history', async () => {
    const ws = await server.project('beta')
    const { body: s } = await api<Session>('POST', '/api/sessions', {
      workspace: ws,
      tool: 'opencode',
    })
    expect((await api<Session[]>('GET', '/api/sessions')).body).toContainEqual(
      expect.objectContaining({ id: s.id, status: 'running', tool: 'opencode' }),
    )

    expect((await api('DELETE', `/api/sessions/${s.id}`)).status).toBe(204)
    await expect
      .poll(
        async () =>
          (await api<Session[]>('GET', '/api/sessions')).body.find((x) => x.id === s.id)?.status,
        { timeout: 10_000 },
      )
      .toBe('stopped')
    expect(JSON.parse(await incus('query', `/1.0/instances/${s.id}`))).toMatchObject({
      status: 'Stopped',
    })

    const resumed = await api<{ id: string; status: string }>(
      'POST',
      `/api/sessions/${s.id}/resume`,
    )
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200)
    expect(resumed.body).toEqual({ id: s.id, status: 'running' })
    await expect
      .poll(() => tmuxPane(s.id), { timeout: 10_000 })
      .toContain('clincus fake tool (opencode) ready')
    const procs = (await asCode(s.id, 'ps', '-eo', 'uid=,args=')).stdout
    expect(procs).toMatch(/^\s*1000 .*\/usr\/local\/bin\/opencode --continue/m)
    // resuming a running session is fine
    expect((await api('POST', `/api/sessions/${s.id}/resume`)).status).toBe(200)

    expect((await api('DELETE', `/api/sessions/${s.id}?force=true`)).status).toBe(204)
    expect(
      (await api<Session[]>('GET', '/api/sessions')).body.find((x) => x.id === s.id),
    ).toBeUndefined()
    await expect(incus('query', `/1.0/instances/${s.id}`)).rejects.toThrow(/not found/i)

    const history = (
      await api<
        Array<{ id: string; session_id: string; started_at: string; ended_at: string | null }>
      >('GET', '/api/sessions/history')
    ).body.filter((h) => h.id === s.id)
    expect(history).toHaveLength(2)
    expect(history.every((h) => h.ended_at !== null)).toBe(true)
  })

  it('gives two concurrent creates on one workspace slots 1 and 2, both running', async () => {
    const ws = await server.project('gamma')
    const [a, b] = await Promise.all([
      api<Session>('POST', '/api/sessions', { workspace: ws }),
      api<Session>('POST', '/api/sessions', { workspace: ws }),
    ])
    expect([a.status, b.status]).toEqual([200, 200])
    expect([a.body.slot, b.body.slot].sort()).toEqual([1, 2])
    for (const s of [a.body, b.body])
      expect(JSON.parse(await incus('query', `/1.0/instances/${s.id}`))).toMatchObject({
        status: 'Running',
      })
  })

  it('fails cleanly with incus reason for a missing image or an invalid limit', async () => {
    const ws = await server.project('delta')
    // Images come only from the user's files (issue 10 row 8): a workspace naming one is a 400.
    await writeFile(join(ws, '.clincus.toml'), '[defaults]\nimage = "no-such-image"\n')
    const refused = await api<{ error: string }>('POST', '/api/sessions', { workspace: ws })
    expect(refused.status).toBe(400)
    expect(refused.body.error).toContain('defaults.image')
    await rm(join(ws, '.clincus.toml'))
    await appendFile(server.configFile, '\n[profiles.missing]\nimage = "no-such-image"\n')
    expect(await server.services.config.reload()).toBe(true)
    const bad = await api<{ error: string }>('POST', '/api/sessions', {
      workspace: ws,
      profile: 'missing',
    })
    expect(bad.status).toBe(502)
    expect(bad.body.error).toMatch(/not found/i)

    // valid for clincus, refused by incus at init
    await writeFile(join(ws, '.clincus.toml'), '[limits.memory]\nlimit = "0MiB"\n')
    const limit = await api<{ error: string }>('POST', '/api/sessions', { workspace: ws })
    expect(limit.status, JSON.stringify(limit.body)).toBe(502)
    expect(limit.body.error).toContain("Memory limit can't be 0")
    // accepted at init, refused by incus at start: the container must be rolled back
    await writeFile(join(ws, '.clincus.toml'), '[limits.cpu]\nallowance = "0ms/0ms"\n')
    const atStart = await api<{ error: string }>('POST', '/api/sessions', { workspace: ws })
    expect(atStart.status, JSON.stringify(atStart.body)).toBe(502)
    expect(atStart.body.error).toMatch(/^starting the container failed: /)
    // invalid for clincus: 400 naming the file and key, before anything reaches incus
    await writeFile(join(ws, '.clincus.toml'), '[limits.memory]\nlimit = "lots"\n')
    const invalid = await api<{ error: string }>('POST', '/api/sessions', { workspace: ws })
    expect(invalid.status).toBe(400)
    expect(invalid.body.error).toContain('limits.memory.limit')
    const hash = workspaceHash(ws)
    const names = (
      JSON.parse(await incus('list', '--format=json', '--columns=n')) as Array<{ name: string }>
    ).map((i) => i.name)
    expect(names.filter((n) => n.startsWith(`${server.prefix}${hash}-`))).toEqual([])
    expect(
      (await api<Session[]>('GET', '/api/sessions')).body.filter((x) => x.workspace === ws),
    ).toEqual([])
  })

  it('applies limits from config and stops the container at max_duration', async () => {
    const ws = await server.project('epsilon')
    await writeFile(
      join(ws, '.clincus.toml'),
      '[limits.cpu]\ncount = "1"\n[limits.memory]\nlimit = "512MiB"\n[limits.runtime]\nmax_duration = "5s"\n',
    )
    const { status, body: s } = await api<Session>('POST', '/api/sessions', { workspace: ws })
    expect(status, JSON.stringify(s)).toBe(200)
    const info = JSON.parse(await incus('query', `/1.0/instances/${s.id}`)) as {
      config: Record<string, string>
    }
    expect(info.config).toMatchObject({ 'limits.cpu': '1', 'limits.memory': '512MiB' })
    await expect
      .poll(
        async () =>
          (JSON.parse(await incus('query', `/1.0/instances/${s.id}`)) as { status: string }).status,
        { timeout: 30_000, interval: 250 },
      )
      .toBe('Stopped')
  })
})
