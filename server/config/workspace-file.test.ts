// Issue 10 row 9 at the HTTP level: a hostile .clincus.toml answers a 400 quickly and never stalls
// the server for other requests.
import { mkdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildTestApp, json, type TestApp } from '../test/helpers.ts'
import { fifo } from './fifo-fixture.ts'

async function launch(t: TestApp) {
  return t.app.inject({ method: 'POST', url: '/api/sessions', ...json({ workspace: t.project }) })
}

describe('a hostile workspace .clincus.toml', () => {
  it('a FIFO: four launches each answer 400 at once and the server stays responsive', async () => {
    const t = await buildTestApp()
    fifo(join(t.project, '.clincus.toml'))
    const started = Date.now()
    const launches = await Promise.all([launch(t), launch(t), launch(t), launch(t)])
    for (const res of launches) {
      expect(res.statusCode).toBe(400)
      expect(res.json<{ code: string }>().code).toBe('invalid_workspace_config')
      expect(res.json<{ error: string }>().error).toMatch(/is a FIFO, not a regular file/)
    }
    // once more after the four: nothing is stuck in the threadpool
    expect((await launch(t)).statusCode).toBe(400)
    expect((await t.app.inject({ method: 'GET', url: '/api/config' })).statusCode).toBe(200)
    expect(Date.now() - started).toBeLessThan(2000)
    expect(t.driver.callsOf('init')).toHaveLength(0)
  })

  it.each([
    ['a symlink to /dev/zero', (p: string) => symlink('/dev/zero', p), /symbolic link/],
    [
      'a symlink to a file outside the workspace',
      async (p: string) => {
        await writeFile(`${p}.outside`, '[limits.runtime]\nmax_duration = ""\n')
        await symlink(`${p}.outside`, p)
      },
      /symbolic link/,
    ],
    ['a directory', (p: string) => mkdir(p), /is a directory/],
    [
      'an oversized file',
      (p: string) => writeFile(p, `# ${'x'.repeat(70_000)}\n`),
      /larger than 64 KiB/,
    ],
  ])('%s: 400 invalid_workspace_config', async (_name, make, message) => {
    const t = await buildTestApp()
    await make(join(t.project, '.clincus.toml'))
    const res = await launch(t)
    expect(res.statusCode).toBe(400)
    expect(res.json<{ code: string; error: string }>()).toMatchObject({
      code: 'invalid_workspace_config',
    })
    expect(res.json<{ error: string }>().error).toMatch(message)
    expect(t.driver.callsOf('init')).toHaveLength(0)
  })
})
