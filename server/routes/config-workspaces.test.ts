import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildTestApp, json } from '../test/helpers.ts'
import { waitUntil } from '../test/ws-client.ts'

describe('GET/PUT /api/config', () => {
  it('returns all sections with snake_case keys', async () => {
    const t = await buildTestApp()
    const res = await t.app.inject({ url: '/api/config' })
    expect(res.statusCode).toBe(200)
    const body = res.json<Record<string, Record<string, unknown>>>()
    expect(Object.keys(body).sort()).toEqual([
      'dashboard',
      'defaults',
      'git',
      'image',
      'incus',
      'limits',
      'mounts',
      'network',
      'paths',
      'pool',
      'profiles',
      'security',
      'tool',
    ])
    expect(body.dashboard).toMatchObject({ port: 3000, workspace_roots: [t.root], auth: 'token' })
    expect(body.tool).toEqual({ name: 'claude', binary: '', claude: { effort_level: '' } })
  })

  it('persists port and roots to the user file, keeping comments, atomically', async () => {
    const original = `# hand written\n[defaults]\nimage = "clincus" # keep me\n\n[dashboard]\n# roots\nworkspace_roots = ["/nowhere"]\nport = 3000 # the port\n`
    const t = await buildTestApp({ configText: original })
    const res = await t.app.inject({
      method: 'PUT',
      url: '/api/config',
      ...json({ port: 3001, workspace_roots: [t.root] }),
    })
    expect(res.statusCode).toBe(200)
    // the contract's {"status": "updated"}, plus the merged config after the save (issue 15)
    const answer = res.json<{ status: string; config: { dashboard: { port: number } } }>()
    expect(answer.status).toBe('updated')
    expect(answer.config).toEqual((await t.app.inject({ url: '/api/config' })).json())
    expect(answer.config.dashboard).toMatchObject({ port: 3001, workspace_roots: [t.root] })
    const text = await readFile(t.configFile, 'utf8')
    expect(text).toBe(
      original.replace('["/nowhere"]', `["${t.root}"]`).replace('port = 3000', 'port = 3001'),
    )
    const after = (await t.app.inject({ url: '/api/config' })).json<{
      dashboard: { port: number }
    }>()
    expect(after.dashboard.port).toBe(3001)
  })

  it('validates the body', async () => {
    const t = await buildTestApp()
    for (const body of [
      { port: 0 },
      { port: 70000 },
      { port: 'x' },
      { workspace_roots: 'x' },
      { other: 1 },
    ]) {
      const res = await t.app.inject({ method: 'PUT', url: '/api/config', ...json(body) })
      expect(res.statusCode, JSON.stringify(body)).toBe(400)
      expect(res.json<{ error: string; code: string }>().code).toBe('invalid_request')
    }
  })

  it('reports a write failure clearly without half-writing the file', async () => {
    const t = await buildTestApp()
    const before = await readFile(t.configFile, 'utf8')
    await chmod(join(t.home, '.config', 'clincus'), 0o500)
    try {
      const res = await t.app.inject({ method: 'PUT', url: '/api/config', ...json({ port: 3002 }) })
      // root ignores directory permissions; then the write simply succeeds
      if (process.getuid?.() !== 0) {
        expect(res.statusCode).toBe(500)
        expect(await readFile(t.configFile, 'utf8')).toBe(before)
      } else {
        expect(res.statusCode).toBe(200)
      }
    } finally {
      await chmod(join(t.home, '.config', 'clincus'), 0o700)
    }
  })

  it('lists the tools', async () => {
    const t = await buildTestApp()
    expect((await t.app.inject({ url: '/api/tools' })).json()).toEqual([
      'claude',
      'copilot',
      'opencode',
    ])
  })
})

describe('workspaces', () => {
  it('discovers projects with markers and counts active sessions', async () => {
    const t = await buildTestApp()
    await mkdir(join(t.root, 'no-marker'))
    await mkdir(join(t.root, '.hidden', '.git'), { recursive: true })
    await mkdir(join(t.root, 'with-config'))
    await writeFile(join(t.root, 'with-config', '.clincus.toml'), '')
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(created.statusCode).toBe(200)
    const res = await t.app.inject({ url: '/api/workspaces' })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({
      roots: [t.root],
      expanded_roots: [t.root],
      workspaces: [
        { path: t.project, name: 'proj', root: t.root, has_config: false, active_sessions: 1 },
        {
          path: join(t.root, 'with-config'),
          name: 'with-config',
          root: t.root,
          has_config: true,
          active_sessions: 0,
        },
      ],
    })
  })

  it('adds and removes roots (persisted), with 400/409/404 for mistakes', async () => {
    const t = await buildTestApp({ configText: '# keep\n' })
    const extra = join(t.home, 'extra')
    await mkdir(extra)
    const add = await t.app.inject({
      method: 'POST',
      url: '/api/workspaces',
      ...json({ path: '~/extra' }),
    })
    expect(add.statusCode).toBe(200)
    expect(add.json()).toEqual({ roots: ['~/extra'], expanded_roots: [extra] })
    expect(await readFile(t.configFile, 'utf8')).toBe(
      '# keep\n\n[dashboard]\nworkspace_roots = ["~/extra"]\n',
    )
    expect(
      (await t.app.inject({ method: 'POST', url: '/api/workspaces', ...json({ path: extra }) }))
        .statusCode,
    ).toBe(409)
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: '/api/workspaces',
          ...json({ path: '/does/not/exist' }),
        })
      ).statusCode,
    ).toBe(400)
    const del = await t.app.inject({
      method: 'DELETE',
      url: '/api/workspaces',
      ...json({ path: extra }),
    })
    expect(del.statusCode).toBe(200)
    expect(del.json()).toEqual({ roots: [], expanded_roots: [] })
    expect(
      (await t.app.inject({ method: 'DELETE', url: '/api/workspaces', ...json({ path: extra }) }))
        .statusCode,
    ).toBe(404)
    expect(
      (
        await t.app.inject({
          method: 'DELETE',
          url: `/api/workspaces?path=${encodeURIComponent(extra)}`,
        })
      ).statusCode,
    ).toBe(404)
    expect(
      (await t.app.inject({ method: 'DELETE', url: '/api/workspaces', ...json({ nope: 1 }) }))
        .statusCode,
    ).toBe(400)
  })

  it('creates project folders with the name rule, 409 on duplicates', async () => {
    const t = await buildTestApp()
    const ok = await t.app.inject({
      method: 'POST',
      url: '/api/workspaces/folder',
      ...json({ root: t.root, name: 'my-new-project' }),
    })
    expect(ok.statusCode).toBe(201)
    expect(ok.json()).toEqual({ path: join(t.root, 'my-new-project') })
    const dup = await t.app.inject({
      method: 'POST',
      url: '/api/workspaces/folder',
      ...json({ root: t.root, name: 'my-new-project' }),
    })
    expect(dup.statusCode).toBe(409)
    for (const name of ['My-Project', 'has space', '-lead', 'trail-', 'a/b', '..', 'a--b']) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/workspaces/folder',
        ...json({ root: t.root, name }),
      })
      expect(res.statusCode, name).toBe(400)
      expect(res.json<{ error: string }>().error).toContain('invalid folder name')
    }
    const other = await t.app.inject({
      method: 'POST',
      url: '/api/workspaces/folder',
      ...json({ root: t.home, name: 'x' }),
    })
    expect(other.statusCode).toBe(400)
    expect(other.json<{ error: string }>().error).toContain('not a configured workspace root')
  })
})

describe('routing, health and OpenAPI', () => {
  it('answers unknown /api paths with JSON 404 and wrong methods with 405', async () => {
    const t = await buildTestApp()
    const missing = await t.app.inject({ url: '/api/nope' })
    expect(missing.statusCode).toBe(404)
    expect(missing.headers['content-type']).toContain('application/json')
    const wrong = await t.app.inject({ method: 'POST', url: '/api/config', ...json({}) })
    expect(wrong.statusCode).toBe(405)
    expect(wrong.headers.allow).toContain('GET')
    expect(wrong.json()).toMatchObject({ code: 'method_not_allowed' })
    expect(
      (await t.app.inject({ method: 'PATCH', url: '/api/sessions/clincus-12345678-1' })).statusCode,
    ).toBe(405)
  })

  it('serves the SPA page for client routes but never for /api, /ws or /assets', async () => {
    const t = await buildTestApp()
    for (const url of ['/', '/sessions/abc', '/settings', '/history']) {
      const res = await t.app.inject({ url })
      expect(res.statusCode, url).toBe(200)
      expect(res.headers['content-type'], url).toContain('text/html')
    }
    expect((await t.app.inject({ url: '/ws/nothing' })).statusCode).toBe(404)
    expect((await t.app.inject({ url: '/assets/missing-123.js' })).statusCode).toBe(404)
  })

  it('reports health with Incus reachability and image state', async () => {
    const t = await buildTestApp({ deps: { monitor: true } })
    type H = { status: string; version: string; incus: { reachable: boolean; error?: string } }
    const ok = await waitUntil('the monitor to connect', async () => {
      const h = (await t.app.inject({ url: '/api/health' })).json<H>()
      return h.incus.reachable ? h : undefined
    })
    expect(ok).toMatchObject({
      version: '0.0.0-test',
      incus: { reachable: true, version: '6.0.4-fake' },
    })
    t.driver.reachable = false
    t.driver.dropMonitors()
    const down = await waitUntil('health to show the outage', async () => {
      const h = (await t.app.inject({ url: '/api/health' })).json<H>()
      return h.incus.reachable ? undefined : h
    })
    expect(down.status).toBe('degraded')
    expect(down.incus.error).toContain('daemon')
  })

  it('publishes an OpenAPI document generated from the route schemas', async () => {
    const t = await buildTestApp()
    const doc = (await t.app.inject({ url: '/api/openapi.json' })).json<{
      openapi: string
      paths: Record<string, Record<string, unknown>>
    }>()
    expect(doc.openapi).toMatch(/^3\./)
    for (const [path, method] of [
      ['/api/sessions', 'post'],
      ['/api/sessions/{id}', 'delete'],
      ['/api/sessions/{id}/resume', 'post'],
      ['/api/sessions/history', 'get'],
      ['/api/workspaces/folder', 'post'],
      ['/api/config', 'put'],
      ['/api/health', 'get'],
    ] as const) {
      expect(doc.paths[path]?.[method], `${method} ${path}`).toBeDefined()
    }
    // GET and PUT /api/config declare the config's shape, section by section (issue 15)
    type Op = {
      responses: Record<string, { content: Record<string, { schema: Record<string, unknown> }> }>
    }
    const body = (method: 'get' | 'put') =>
      (doc.paths['/api/config']?.[method] as Op).responses['200']?.content['application/json']
        ?.schema as { properties: Record<string, { properties?: Record<string, unknown> }> }
    expect(Object.keys(body('get').properties)).toContain('dashboard')
    expect(Object.keys(body('get').properties.paths?.properties ?? {})).toContain('logs_dir')
    expect(Object.keys(body('put').properties).sort()).toEqual(['config', 'status'])
  })
})
