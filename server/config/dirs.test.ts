// [paths] (issue 15): each documented directory holds what the README says, shown by a file
// landing (or being read) there.
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { buildTestApp, tempDir } from '../test/helpers.ts'
import { dataDirs, openServerLog, SERVER_LOG_ROTATE_BYTES } from './dirs.ts'

describe('paths.sessions_dir', () => {
  it("holds each session's network audit (<sessions_dir>/network/<session>.jsonl)", async () => {
    const data = await tempDir()
    const t = await buildTestApp({
      configText: `[paths]\nsessions_dir = "${data}/sessions"\n`,
    })
    expect(dataDirs(t.services.config.current).network).toBe(join(data, 'sessions', 'network'))
    const dir = join(data, 'sessions', 'network')
    await mkdir(dir, { recursive: true })
    const record = {
      time: '2026-01-01T00:00:00.000Z',
      host: 'example.com',
      port: 443,
      allowed: false,
      reason: 'not in the allow list',
      bytes_up: 0,
      bytes_down: 0,
      duration_ms: 0,
    }
    await writeFile(join(dir, 'clincus-0123abcd-1.jsonl'), `${JSON.stringify(record)}\n`)
    await writeFile(join(dir, 'clincus-0123abcd-2.jsonl'), `${JSON.stringify(record)}\n`)
    // the audit of the sessions that exist is read from the configured directory…
    await t.services.egress.loadAudit(['clincus-0123abcd-1'])
    expect(t.services.egress.network('clincus-0123abcd-1', 0, 10).connections).toEqual([record])
    // …and a file of a session that is gone is dropped there
    expect(await readdir(dir)).toEqual(['clincus-0123abcd-1.jsonl'])
    // nothing went to the old place
    await expect(stat(join(t.home, '.clincus', 'network'))).rejects.toThrow()
  })

  it('defaults to ~/.clincus/sessions, ~ expanded; CLINCUS_SESSIONS_DIR sets it too', async () => {
    const t = await buildTestApp({ env: { CLINCUS_SESSIONS_DIR: '~/elsewhere' } })
    expect(dataDirs(t.services.config.current).network).toBe(join(t.home, 'elsewhere', 'network'))
    const d = await buildTestApp()
    expect(dataDirs(d.services.config.current).sessions).toBe(join(d.home, '.clincus', 'sessions'))
  })
})

describe('paths.logs_dir', () => {
  it('holds the server log, <logs_dir>/server.log (0600 in a 0700 directory)', async () => {
    const data = await tempDir()
    const t = await buildTestApp({ configText: `[paths]\nlogs_dir = "${data}/logs"\n` })
    const dirs = dataDirs(t.services.config.current)
    expect(dirs.serverLog).toBe(join(data, 'logs', 'server.log'))
    const dest = await openServerLog(dirs)
    pino(dest).info({ marker: 'issue-15' }, 'hello')
    dest.end()
    expect(await readFile(dirs.serverLog, 'utf8')).toContain('"marker":"issue-15"')
    expect((await stat(dirs.serverLog)).mode & 0o777).toBe(0o600)
    expect((await stat(dirs.logs)).mode & 0o777).toBe(0o700)
  })

  it('moves a log over the size bound aside at open (one old generation)', async () => {
    const data = await tempDir()
    const dirs = { sessions: data, network: data, logs: data, serverLog: join(data, 'server.log') }
    await writeFile(dirs.serverLog, Buffer.alloc(SERVER_LOG_ROTATE_BYTES + 1, 0x61))
    const dest = await openServerLog(dirs)
    dest.end()
    expect((await stat(`${dirs.serverLog}.1`)).size).toBe(SERVER_LOG_ROTATE_BYTES + 1)
    expect((await stat(dirs.serverLog)).size).toBe(0)
  })
})
