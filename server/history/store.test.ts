import { appendFile, readFile } from 'node:fs/promises'
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
