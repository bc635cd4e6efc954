// The network audit: a bounded ring per session, appended to <dir>/<id>.jsonl, reloaded with
// torn or foreign lines skipped, trimmed at its size cap, removed with the session.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { NetworkConnection } from '../../shared/schemas/network.ts'
import { NetworkAudit } from './audit.ts'

let dir: string
const log = pino({ level: 'silent' })

function rec(i: number, allowed = true): NetworkConnection {
  return {
    time: new Date(1_700_000_000_000 + i).toISOString(),
    host: `h${i}.example`,
    port: 443,
    allowed,
    reason: allowed ? 'allowed' : 'refused',
    bytes_up: i,
    bytes_down: 2 * i,
    duration_ms: 1,
  }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clincus-audit-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('network audit', () => {
  it('pages newest first, persists, and reloads skipping torn lines', async () => {
    const a = new NetworkAudit({ dir: join(dir, 'network'), log })
    for (let i = 0; i < 5; i++) a.record('ct1-abc-1', rec(i))
    await a.flush()
    expect(a.page('ct1-abc-1', 0, 2).items.map((r) => r.host)).toEqual(['h4.example', 'h3.example'])
    expect(a.page('ct1-abc-1', 0, 2).total).toBe(5)
    const file = join(dir, 'network', 'ct1-abc-1.jsonl')
    await writeFile(file, (await readFile(file, 'utf8')) + '\n{"torn": ')
    await writeFile(join(dir, 'network', 'ct9-gone-1.jsonl'), JSON.stringify(rec(1)) + '\n')
    const b = new NetworkAudit({ dir: join(dir, 'network'), log })
    await b.load(['ct1-abc-1'])
    expect(b.page('ct1-abc-1', 0, 10).items).toHaveLength(5)
    // a session that no longer exists loses its file
    await expect(stat(join(dir, 'network', 'ct9-gone-1.jsonl'))).rejects.toThrow()
    b.record('ct1-abc-1', rec(9))
    await b.flush()
    const lines = (await readFile(file, 'utf8')).trim().split('\n')
    expect(JSON.parse(lines.at(-1) ?? '')).toMatchObject({ host: 'h9.example' })
  })

  it('keeps memory and file bounded', async () => {
    const a = new NetworkAudit({ dir, log, ringSize: 10, maxFileBytes: 2000 })
    for (let i = 0; i < 100; i++) a.record('ct1-abc-1', rec(i))
    await a.flush()
    expect(a.page('ct1-abc-1', 0, 1000).items).toHaveLength(10)
    expect((await stat(join(dir, 'ct1-abc-1.jsonl'))).size).toBeLessThanOrEqual(2000 + 300)
  })

  it('forgets a session: memory and file', async () => {
    const a = new NetworkAudit({ dir, log })
    a.record('ct1-abc-1', rec(1))
    await a.forget('ct1-abc-1')
    expect(a.page('ct1-abc-1', 0, 10).total).toBe(0)
    await expect(stat(join(dir, 'ct1-abc-1.jsonl'))).rejects.toThrow()
  })

  it('never turns a strange id into a path', async () => {
    const a = new NetworkAudit({ dir, log })
    a.record('../../etc/x', rec(1))
    await a.flush()
    expect(a.page('../../etc/x', 0, 10).total).toBe(1)
  })
})
