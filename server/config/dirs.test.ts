// [paths] (issue 15): each documented directory holds what the README says, shown by a file
// landing (or being read) there.
import { chmod, chown, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { buildTestApp, tempDir } from '../test/helpers.ts'
import { dataDirs, openServerLog, prepareDataDirs, SERVER_LOG_ROTATE_BYTES } from './dirs.ts'

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

// Red team (another local user; an agent has no path here): the data directories may be set to a
// shared place (`/tmp/clincus-logs`, a group folder). Whoever can write there must not choose
// where clincus writes: a planted server.log link made it append to any file it may write (as
// root: any file), a directory the other user made let them read every line.
describe('paths.logs_dir and sessions_dir are ours alone', () => {
  it('never follows a server.log link planted in the directory', async () => {
    const data = await tempDir()
    const victim = join(data, 'victim')
    await writeFile(victim, 'untouched\n')
    const logs = join(data, 'logs')
    await mkdir(logs, { mode: 0o700 })
    await symlink(victim, join(logs, 'server.log'))
    const dirs = { sessions: data, network: data, logs, serverLog: join(logs, 'server.log') }
    await expect(openServerLog(dirs)).rejects.toThrow(/server\.log/)
    expect(await readFile(victim, 'utf8')).toBe('untouched\n')
  })

  it('refuses a logs_dir that is a link, or that another user owns', async () => {
    const data = await tempDir()
    const elsewhere = join(data, 'elsewhere')
    await mkdir(elsewhere, { mode: 0o700 })
    await symlink(elsewhere, join(data, 'logs'))
    const linked = { sessions: data, network: data, logs: join(data, 'logs'), serverLog: '' }
    linked.serverLog = join(linked.logs, 'server.log')
    await expect(openServerLog(linked)).rejects.toThrow()
    await expect(stat(join(elsewhere, 'server.log'))).rejects.toThrow()

    const theirs = join(data, 'theirs')
    await mkdir(theirs, { mode: 0o777 })
    await chown(theirs, 1000, 1000)
    await chmod(theirs, 0o777)
    const owned = {
      sessions: data,
      network: data,
      logs: theirs,
      serverLog: join(theirs, 'server.log'),
    }
    await expect(openServerLog(owned)).rejects.toThrow()
    await expect(stat(owned.serverLog)).rejects.toThrow()
  })

  it('makes an existing log directory and file of ours private again (0700, 0600)', async () => {
    const data = await tempDir()
    const logs = join(data, 'logs')
    await mkdir(logs)
    await chmod(logs, 0o777)
    await writeFile(join(logs, 'server.log'), '')
    await chmod(join(logs, 'server.log'), 0o666)
    const dirs = { sessions: data, network: data, logs, serverLog: join(logs, 'server.log') }
    const dest = await openServerLog(dirs)
    dest.end()
    expect((await stat(logs)).mode & 0o777).toBe(0o700)
    expect((await stat(dirs.serverLog)).mode & 0o777).toBe(0o600)
  })

  it('prepares sessions_dir and its network folder the same way (a planted link is refused)', async () => {
    const data = await tempDir()
    const elsewhere = join(data, 'elsewhere')
    await mkdir(join(data, 'sessions'), { mode: 0o700 })
    await mkdir(elsewhere, { mode: 0o700 })
    await symlink(elsewhere, join(data, 'sessions', 'network'))
    const dirs = dataDirs(
      (await buildTestApp({ configText: `[paths]\nsessions_dir = "${data}/sessions"\n` })).services
        .config.current,
    )
    await expect(prepareDataDirs(dirs)).rejects.toThrow()
    const fresh = await tempDir()
    const ok = {
      sessions: join(fresh, 's'),
      network: join(fresh, 's', 'network'),
      logs: '',
      serverLog: '',
    }
    await prepareDataDirs(ok)
    expect((await stat(ok.network)).mode & 0o777).toBe(0o700)
  })
})
