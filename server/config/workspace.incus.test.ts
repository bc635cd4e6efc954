// Issue 10 rows 8, 9, 12 and 13 against the live server and daemon: a hostile workspace file
// (the attacker is the repository or the agent), argv injection through a config value, and an
// inherited name as a profile.
import { execFileSync } from 'node:child_process'
import { constants } from 'node:fs'
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest'
import { IncusCommandError } from '../errors.ts'
import {
  describeIncus,
  startLiveServer,
  TEST_IMAGE,
  type LiveServer,
  requestJson,
} from '../test/incus-harness.ts'

let server: LiveServer
let home: string

const api = async (method: string, path: string, body?: unknown) =>
  (await requestJson(server.url, method, path, body)) as {
    status: number
    body: Record<string, unknown>
  }

async function incusGet(id: string, key: string): Promise<string> {
  return (await execa('incus', ['config', 'get', id, key], { timeout: 30_000 })).stdout.trim()
}

describeIncus('a hostile workspace and config values on the live server', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-ws-it-'))
    const root = join(home, 'projects')
    server = await startLiveServer({
      home,
      configText: `[defaults]\nimage = "${TEST_IMAGE}"\n\n[dashboard]\nworkspace_roots = ["${root}"]\n\n[limits.runtime]\nmax_duration = "1h"\nmax_processes = 300\n`,
    })
  })

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('a FIFO .clincus.toml: four launches each answer 400 quickly, the server stays responsive', async () => {
    const ws = await server.project('fifo')
    const fifo = join(ws, '.clincus.toml')
    execFileSync('mkfifo', [fifo])
    onTestFinished(async () => {
      const w = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => null)
      await w?.close()
    })
    const started = Date.now()
    const launches = await Promise.all(
      [1, 2, 3, 4].map(() => api('POST', '/api/sessions', { workspace: ws })),
    )
    for (const res of launches) {
      expect(res.status).toBe(400)
      expect(res.body.code).toBe('invalid_workspace_config')
    }
    expect((await api('GET', '/api/health')).status).toBe(200)
    expect((await api('POST', '/api/sessions', { workspace: ws })).status).toBe(400)
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('max_duration = "" in the workspace leaves the user\'s; resume keeps the created limits', async () => {
    const ws = await server.project('loosen')
    const file = join(ws, '.clincus.toml')
    await writeFile(file, '[limits.runtime]\nmax_duration = ""\nmax_processes = 0\n')
    const res = await api('POST', '/api/sessions', { workspace: ws })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    const id = String(res.body.id)
    const deadline = Date.parse(await incusGet(id, 'user.clincus.deadline'))
    expect(deadline - Date.now()).toBeGreaterThan(50 * 60_000)
    expect(deadline - Date.now()).toBeLessThanOrEqual(60 * 60_000)
    expect(await incusGet(id, 'limits.processes')).toBe('300')

    expect((await api('DELETE', `/api/sessions/${id}`)).status).toBe(204)
    // While stopped, the agent (or a pull) rewrites the file to something looser still.
    await writeFile(file, '[limits.runtime]\nmax_duration = "9999h"\n')
    const resume = await api('POST', `/api/sessions/${id}/resume`)
    expect(resume.status, JSON.stringify(resume.body)).toBe(200)
    const again = Date.parse(await incusGet(id, 'user.clincus.deadline'))
    expect(again - Date.now()).toBeLessThanOrEqual(60 * 60_000)
    await api('DELETE', `/api/sessions/${id}?force=true`)
  })

  it('profile "__proto__" and friends are unknown profiles', async () => {
    const ws = await server.project('proto')
    for (const profile of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const res = await api('POST', '/api/sessions', { workspace: ws, profile })
      expect(res.status).toBe(400)
      expect(res.body.code).toBe('unknown_profile')
    }
  })

  it('an image that looks like a flag reaches incus init as an image name, never as a flag', async () => {
    const name = `${server.prefix}flag`
    for (const image of ['--help', '--vm']) {
      const err = await server.driver.init(image, name).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(IncusCommandError)
      expect((err as IncusCommandError).stderr).toMatch(/Image "--(help|vm)" not found/)
    }
  })
})
