import { appendFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { HistoryStore } from './store.ts'

describe('HistoryStore', () => {
  it('records launches with unique ids and ends each once, newest first', async () => {
    const dir = await tempDir()
    const file = join(dir, 'h', 'history.jsonl')
    const store = new HistoryStore(file)
    await store.recordStart({
      sessionId: 's1',
      id: 'c-1',
      workspace: '/w',
      tool: 'claude',
      persistent: false,
      time: new Date('2026-01-01T00:00:00Z'),
    })
    await store.recordStart({
      sessionId: 's2',
      id: 'c-2',
      workspace: '/w',
      tool: 'opencode',
      persistent: true,
      time: new Date('2026-01-02T00:00:00Z'),
    })
    expect(await store.recordEnd('c-1', new Date('2026-01-03T00:00:00Z'))).toBe(1)
    expect(await store.recordEnd('c-1', new Date('2026-01-04T00:00:00Z'))).toBe(0)
    await appendFile(file, '{broken json\n')
    const list = await new HistoryStore(file).list(50, 0)
    expect(list).toEqual([
      {
        session_id: 's2',
        id: 'c-2',
        workspace: '/w',
        tool: 'opencode',
        persistent: true,
        started_at: '2026-01-02T00:00:00.000Z',
        ended_at: null,
      },
      {
        session_id: 's1',
        id: 'c-1',
        workspace: '/w',
        tool: 'claude',
        persistent: false,
        started_at: '2026-01-01T00:00:00.000Z',
        ended_at: '2026-01-03T00:00:00.000Z',
      },
    ])
    expect(await store.list(1, 1)).toHaveLength(1)
    expect((await store.list(1, 1))[0]?.session_id).toBe('s1')
    // a fresh store rebuilds open sessions from the file
    expect(await new HistoryStore(file).openSessions('c-2')).toEqual(['s2'])
    expect((await readFile(file, 'utf8')).split('\n').filter(Boolean)).toHaveLength(4)
  })

  it('serialises concurrent appends into whole lines', async () => {
    const dir = await tempDir()
    const store = new HistoryStore(join(dir, 'history.jsonl'))
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.recordStart({
          sessionId: `s${i}`,
          id: `c-${i}`,
          workspace: '/w',
          tool: 'claude',
          persistent: false,
          time: new Date(),
        }),
      ),
    )
    expect(await store.list(0, 0)).toHaveLength(50)
  })
})

describe('HistoryStore with a torn last line (a crash mid-append)', () => {
  const start = (sessionId: string) => ({
    sessionId,
    id: `c-${sessionId}`,
    workspace: '/w',
    tool: 'claude',
    persistent: false,
    time: new Date('2026-02-01T00:00:00Z'),
  })
  const good = JSON.stringify({
    type: 'start',
    session_id: 's0',
    id: 'c-s0',
    workspace: '/w',
    tool: 'claude',
    persistent: false,
    time: '2026-01-01T00:00:00.000Z',
  })

  it.each([
    ['no final newline', `${good}\n{"type":"start","session_id":"torn","id":"c-t`],
    ['a NUL tail', `${good}\n${'\0'.repeat(4096)}`],
    ['a torn line then a NUL tail', `${good}\n{"type":"end","session_id":"s0"${'\0'.repeat(512)}`],
  ])('%s: the next record starts on a fresh line and the bad line is counted', async (_n, tail) => {
    const dir = await tempDir()
    const file = join(dir, 'history.jsonl')
    await writeFile(file, tail)
    const store = new HistoryStore(file)
    await store.recordStart(start('s1'))
    await store.recordStart(start('s2'))
    const fresh = new HistoryStore(file)
    const ids = (await fresh.list(0, 0)).map((e) => e.session_id).sort()
    expect(ids).toEqual(['s0', 's1', 's2'])
    expect(fresh.badLines).toBe(1)
    expect(await fresh.openSessions('c-s1')).toEqual(['s1'])
    // the file ends with a newline again, so a later crash cannot glue to a whole record
    expect((await readFile(file, 'utf8')).endsWith('}\n')).toBe(true)
  })

  it('reads a record glued to a torn one by an older version, and counts the torn part', async () => {
    const dir = await tempDir()
    const file = join(dir, 'history.jsonl')
    await writeFile(
      file,
      `{"type":"start","session_id":"torn"${'\0'.repeat(8)}${good}\n{"type":"st${good}\n`,
    )
    const store = new HistoryStore(file)
    expect((await store.list(0, 0)).map((e) => e.session_id)).toEqual(['s0'])
    expect(store.badLines).toBe(2)
  })
})
