import { chown, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { LAUNCH_STEPS } from '../../shared/schemas/launch.ts'
import { FakeIncusDriver, type FakeMethod } from '../incus/fake-driver.ts'
import { buildTestApp, json } from '../test/helpers.ts'

async function create(t: Awaited<ReturnType<typeof buildTestApp>>, body: Record<string, unknown>) {
  return t.app.inject({ method: 'POST', url: '/api/sessions', ...json(body) })
}

describe('POST /api/sessions', () => {
  it('creates a running session with labels, workspace device and tool in tmux', async () => {
    const t = await buildTestApp()
    await chown(t.project, 1000, 1000)
    const res = await create(t, { workspace: t.project })
    expect(res.statusCode).toBe(200)
    const body = res.json<{
      id: string
      slot: number
      status: string
      tool: string
      persistent: boolean
      workspace: string
    }>()
    expect(body).toMatchObject({
      slot: 1,
      status: 'running',
      tool: 'claude',
      persistent: false,
      workspace: t.project,
    })
    expect(body.id).toMatch(/^clincus-[0-9a-f]{8}-1$/)
    const inst = t.driver.instances.get(body.id)
    expect(inst?.config['user.clincus.managed']).toBe('true')
    expect(inst?.config['user.clincus.workspace']).toBe(t.project)
    expect(inst?.devices?.workspace).toMatchObject({
      source: t.project,
      path: '/workspace',
    })
    // only the owner (uid 1000) is mapped, onto the code user; no disk is shifted
    expect(inst?.devices?.workspace?.shift).toBeUndefined()
    expect(inst?.config['raw.idmap']).toBe('uid 1000 1000\ngid 1000 1000')
    // .git is read-only as a whole; absent .vscode and .husky are made and read-only too
    expect(inst?.devices?.['protect-git']).toMatchObject({
      readonly: 'true',
      path: '/workspace/.git',
    })
    expect(inst?.devices?.['protect-vscode']).toMatchObject({
      readonly: 'true',
      path: '/workspace/.vscode',
    })
    const tmux = t.driver
      .callsOf('exec')
      .map((c) => c.args[1] as string[])
      .find((a) => a.includes('tmux'))
    expect(tmux).toContain('new-session')
    expect(tmux).toContain('claude')
    const opts = t.driver
      .callsOf('exec')
      .find((c) => (c.args[1] as string[]).includes('new-session'))?.args[2] as {
      user: number
      env: Record<string, string>
    }
    expect(opts.user).toBe(1000)
    expect(opts.env).toMatchObject({ HOME: '/home/code', TERM: 'xterm-256color' })
    const history = await readFile(join(t.home, '.clincus', 'history.jsonl'), 'utf8')
    expect(history).toContain('"type":"start"')
  })

  it("answers and ends session.launching with the launch path and each step's time (issue 16)", async () => {
    const t = await buildTestApp()
    await chown(t.project, 1000, 1000)
    const done: Array<{ path?: string; timings?: Record<string, number> }> = []
    t.services.hub.subscribe(({ event }) => {
      if (event.type === 'session.launching' && event.step === 'done') done.push(event)
    })
    const res = await create(t, { workspace: t.project })
    expect(res.statusCode).toBe(200)
    const body = res.json<{ path: string; timings: Record<string, number> }>()
    expect(body.path).toBe('cold')
    expect(Object.keys(body.timings)).toEqual([...LAUNCH_STEPS])
    for (const ms of Object.values(body.timings)) expect(Number.isInteger(ms) && ms >= 0).toBe(true)
    expect(done).toEqual([expect.objectContaining({ path: 'cold', timings: body.timings })])
  })

  it('maps a workspace owned by another uid to the code user with raw.idmap, unshifted', async () => {
    const t = await buildTestApp()
    await chown(t.project, 1234, 4321)
    const res = await create(t, { workspace: t.project })
    expect(res.statusCode).toBe(200)
    const inst = t.driver.instances.get(res.json<{ id: string }>().id)
    expect(inst?.config['raw.idmap']).toBe('uid 1234 1000\ngid 4321 1000')
    expect(inst?.devices?.workspace?.shift).toBeUndefined()
    expect((await stat(t.project)).uid).toBe(1234)
  })

  it('gives 10 concurrent creates slots 1..10 and the 11th a 409', async () => {
    const t = await buildTestApp()
    const results = await Promise.all(
      Array.from({ length: 10 }, () => create(t, { workspace: t.project })),
    )
    expect(results.map((r) => r.statusCode)).toEqual(Array(10).fill(200))
    const slots = results.map((r) => r.json<{ slot: number }>().slot).sort((a, b) => a - b)
    expect(slots).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    const eleventh = await create(t, { workspace: t.project })
    expect(eleventh.statusCode).toBe(409)
    expect(eleventh.json()).toMatchObject({ code: 'slots_exhausted' })
  })

  const steps: Array<[string, FakeMethod, ((args: unknown[]) => boolean) | undefined]> = [
    ['init', 'init', undefined],
    ['workspace device', 'deviceAdd', (a) => a[1] === 'workspace'],
    ['protect device', 'deviceAdd', (a) => String(a[1]).startsWith('protect-')],
    ['start', 'start', undefined],
    ['tool config', 'exec', (a) => (a[1] as string[])[0] === 'tar'],
    ['tmux', 'exec', (a) => (a[1] as string[]).includes('new-session')],
    ['deadline label', 'configSet', undefined],
  ]
  for (const [label, method, match] of steps) {
    it(`rolls back completely when ${label} fails`, async () => {
      const t = await buildTestApp({ configText: `[limits.runtime]\nmax_duration = "1h"\n` })
      t.driver.failOn(method, `Error: boom at ${label}`, { match, times: 100 })
      const res = await create(t, { workspace: t.project })
      expect(res.statusCode).toBeGreaterThanOrEqual(500)
      expect(res.json<{ error: string }>().error).toContain(`boom at ${label}`)
      expect(t.driver.instances.size).toBe(0)
      // the slot is free again
      t.driver.failOn(method, 'unused', { times: 0 })
      const again = await create(t, { workspace: t.project, tool: 'opencode' })
      if (method !== 'init' || match) expect(again.statusCode).toBeGreaterThanOrEqual(500)
    })
  }

  it('answers with incus own reason when the image does not exist, leaving nothing', async () => {
    const t = await buildTestApp({ configText: '[defaults]\nimage = "nope"\n' })
    const res = await create(t, { workspace: t.project })
    expect(res.statusCode).toBe(502)
    expect(res.json<{ error: string }>().error).toContain('Image not found')
    expect(t.driver.instances.size).toBe(0)
  })

  it.each([
    ['relative', 'some/dir', 'absolute'],
    ['missing', '/definitely/not/here', 'does not exist'],
    ['root', '/', 'system directory'],
    ['etc', '/etc', 'system directory'],
    ['usr subdir', '/usr/lib', 'inside the system directory'],
  ])('rejects a %s workspace with 400', async (_name, workspace, message) => {
    const t = await buildTestApp({ configText: '' })
    const res = await create(t, { workspace })
    expect(res.statusCode).toBe(400)
    expect(res.json<{ error: string }>().error).toContain(message)
    expect(t.driver.callsOf('init')).toHaveLength(0)
  })

  it('rejects the home directory, ~/.ssh and a file', async () => {
    const t = await buildTestApp({ configText: '' })
    await mkdir(join(t.home, '.ssh'))
    await writeFile(join(t.home, 'file.txt'), 'x')
    for (const ws of [t.home, join(t.home, '.ssh'), join(t.home, 'file.txt')]) {
      const res = await create(t, { workspace: ws })
      expect(res.statusCode, ws).toBe(400)
    }
  })

  it('resolves symlinks before checking workspace roots', async () => {
    const t = await buildTestApp()
    const outside = join(t.home, 'elsewhere')
    await mkdir(outside)
    await symlink(outside, join(t.root, 'sneaky'))
    const res = await create(t, { workspace: join(t.root, 'sneaky') })
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ code: 'outside_workspace_roots' })
  })

  it('refuses a symlinked protected path', async () => {
    const t = await buildTestApp()
    await mkdir(join(t.project, 'real-vscode'))
    await symlink(join(t.project, 'real-vscode'), join(t.project, '.vscode'))
    const res = await create(t, { workspace: t.project })
    expect(res.statusCode).toBe(400)
    expect(res.json<{ error: string }>().error).toContain('.vscode in the workspace is a symlink')
  })

  it('validates the body', async () => {
    const t = await buildTestApp()
    expect((await create(t, {})).statusCode).toBe(400)
    expect((await create(t, { workspace: t.project, tool: 'aider' })).statusCode).toBe(400)
    expect((await create(t, { workspace: t.project, extra: 1 })).statusCode).toBe(400)
    const unknownProfile = await create(t, { workspace: t.project, profile: 'nope' })
    expect(unknownProfile.statusCode).toBe(400)
    expect(unknownProfile.json<{ error: string }>().error).toBe("profile 'nope' not found")
  })

  it('refuses text/plain with 415 and a 2 MiB body with 413', async () => {
    const t = await buildTestApp()
    const plain = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      payload: JSON.stringify({ workspace: t.project }),
      headers: { 'content-type': 'text/plain' },
    })
    expect(plain.statusCode).toBe(415)
    expect(plain.json()).toMatchObject({ code: 'unsupported_media_type' })
    const big = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: 'x'.repeat(2 * 1024 * 1024) }),
    })
    expect(big.statusCode).toBe(413)
    expect(t.driver.callsOf('init')).toHaveLength(0)
  })

  it('applies limits to the instance and the root disk, and answers 503 while the image builds', async () => {
    const t = await buildTestApp({
      configText:
        '[limits.cpu]\ncount = "2"\n[limits.memory]\nlimit = "1GiB"\n[limits.disk]\nread = "10MiB/s"\n',
    })
    const res = await create(t, { workspace: t.project })
    expect(res.statusCode).toBe(200)
    const init = t.driver.callsOf('init')[0]?.args
    expect(init?.[2]).toMatchObject({
      'limits.cpu': '2',
      'limits.memory': '1GiB',
      'limits.memory.enforce': 'hard',
      'limits.processes': '4096',
    })
    // the machines' `dir` pool does not enforce a size: none is set (and the log says so)
    expect(init?.[3]).toEqual({ 'limits.read': '10MiB/s' })
  })

  it('gives a default session a process cap, a hard memory limit and, on btrfs, a disk size', async () => {
    const driver = new FakeIncusDriver()
    driver.poolDriver = 'btrfs'
    const t = await buildTestApp({ driver })
    const res = await create(t, { workspace: t.project })
    expect(res.statusCode).toBe(200)
    const init = t.driver.callsOf('init')[0]?.args
    expect(init?.[2]).toMatchObject({
      'limits.processes': '4096',
      'limits.memory': '50%',
      'limits.memory.enforce': 'hard',
    })
    expect(init?.[3]).toEqual({ size: '20GiB' })
  })
})

describe('session ids', () => {
  it.each(['../x', '--force', 'c2', 'clincus-zzzzzzzz-1', 'clincus-12345678-11'])(
    'answers 404 for %s without calling incus',
    async (id) => {
      const t = await buildTestApp()
      t.driver.addInstance('c2', { config: { 'user.clincus.managed': 'true' } })
      const before = t.driver.calls.length
      for (const req of [
        { method: 'DELETE' as const, url: `/api/sessions/${encodeURIComponent(id)}` },
        { method: 'DELETE' as const, url: `/api/sessions/${encodeURIComponent(id)}?force=true` },
        { method: 'POST' as const, url: `/api/sessions/${encodeURIComponent(id)}/resume` },
      ]) {
        const res = await t.app.inject(req)
        expect(res.statusCode, `${req.method} ${req.url}`).toBe(404)
        expect(res.json()).toMatchObject({ code: 'session_not_found' })
      }
      expect(t.driver.calls.length).toBe(before)
    },
  )

  it('answers 404 for a well-named container without our labels', async () => {
    const t = await buildTestApp()
    t.driver.addInstance('clincus-12345678-1')
    const res = await t.app.inject({
      method: 'DELETE',
      url: '/api/sessions/clincus-12345678-1?force=true',
    })
    expect(res.statusCode).toBe(404)
    expect(t.driver.callsOf('delete')).toHaveLength(0)
  })
})

describe('stop, delete, resume, history', () => {
  it('stops, resumes and deletes a session, recording history', async () => {
    const t = await buildTestApp()
    const { id } = (await create(t, { workspace: t.project })).json<{ id: string }>()
    const stop = await t.app.inject({ method: 'DELETE', url: `/api/sessions/${id}` })
    expect(stop.statusCode).toBe(204)
    expect(t.driver.instances.get(id)?.status).toBe('Stopped')
    let list = (await t.app.inject({ url: '/api/sessions' })).json<
      Array<{ id: string; status: string }>
    >()
    expect(list).toEqual([expect.objectContaining({ id, status: 'stopped' })])

    t.driver.execHandler = (_n, argv) =>
      argv[1] === 'has-session' ? { stdout: '', stderr: 'no session', exitCode: 1 } : undefined
    const resume = await t.app.inject({ method: 'POST', url: `/api/sessions/${id}/resume` })
    expect(resume.statusCode).toBe(200)
    expect(resume.json()).toEqual({ id, status: 'running' })
    const tmuxCalls = t.driver
      .callsOf('exec')
      .filter(
        (c) =>
          (c.args[1] as string[]).includes('tmux') &&
          (c.args[1] as string[]).includes('new-session'),
      )
    expect(tmuxCalls).toHaveLength(2)
    expect(tmuxCalls[1]?.args[1]).toContain('--resume')
    expect((tmuxCalls[1]?.args[2] as { user: number }).user).toBe(1000)

    // already running with the tool in tmux → 200 without starting anything
    t.driver.execHandler = () => undefined
    const again = await t.app.inject({ method: 'POST', url: `/api/sessions/${id}/resume` })
    expect(again.statusCode).toBe(200)
    expect(t.driver.callsOf('start')).toHaveLength(2)

    const del = await t.app.inject({ method: 'DELETE', url: `/api/sessions/${id}?force=true` })
    expect(del.statusCode).toBe(204)
    list = (await t.app.inject({ url: '/api/sessions' })).json()
    expect(list).toEqual([])

    const history = (await t.app.inject({ url: '/api/sessions/history' })).json<
      Array<{ session_id: string; ended_at: string | null; workspace: string; tool: string }>
    >()
    expect(history).toHaveLength(2)
    expect(new Set(history.map((h) => h.session_id)).size).toBe(2)
    expect(
      history.every((h) => h.ended_at !== null && h.workspace === t.project && h.tool === 'claude'),
    ).toBe(true)
  })

  it('validates history paging', async () => {
    const t = await buildTestApp()
    for (const q of ['limit=-1', 'offset=-3', 'limit=abc', 'offset=1.5']) {
      const res = await t.app.inject({ url: `/api/sessions/history?${q}` })
      expect(res.statusCode, q).toBe(400)
    }
    expect((await t.app.inject({ url: '/api/sessions/history?limit=5&offset=0' })).json()).toEqual(
      [],
    )
  })
})

describe('tool configuration', () => {
  it('copies only existing files, owned by the code user, credentials 0600, settings merged', async () => {
    const t = await buildTestApp()
    await mkdir(join(t.home, '.claude', 'hooks'), { recursive: true })
    await writeFile(join(t.home, '.claude', '.credentials.json'), '{"token":"secret"}')
    await writeFile(
      join(t.home, '.claude', 'settings.json'),
      JSON.stringify({ theme: 'dark', statusLine: `${t.home}/bin/x` }),
    )
    await writeFile(join(t.home, '.claude', 'hooks', 'pre.sh'), 'echo hi')
    const res = await create(t, { workspace: t.project })
    expect(res.statusCode).toBe(200)
    const id = res.json<{ id: string }>().id
    const cred = t.driver.files.get(`${id}:/home/code/.claude/.credentials.json`)
    expect(cred).toMatchObject({
      uid: 1000,
      gid: 1000,
      mode: '0600',
      content: '{"token":"secret"}',
    })
    const settings = t.driver.files.get(`${id}:/home/code/.claude/settings.json`)
    expect(settings?.uid).toBe(1000)
    const parsed = JSON.parse(settings?.content ?? '{}') as Record<string, unknown>
    expect(parsed).toMatchObject({
      theme: 'dark',
      statusLine: '/home/code/bin/x',
      permissions: { defaultMode: 'bypassPermissions' },
    })
    expect(t.driver.files.get(`${id}:/home/code/.claude/hooks/pre.sh`)).toMatchObject({
      uid: 1000,
      content: 'echo hi',
    })
    // files that do not exist on the host are not invented (config.yml), the state file is private
    expect(t.driver.files.has(`${id}:/home/code/.claude/config.yml`)).toBe(false)
    expect(t.driver.files.get(`${id}:/home/code/.claude.json`)?.mode).toBe('0600')
  })
})
