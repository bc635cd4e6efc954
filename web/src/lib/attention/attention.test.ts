import { describe, expect, it } from 'vitest'
import type { AgentStatusName } from '../../../../shared/schemas/sessions.ts'
import type { Session } from '../schemas.ts'
import {
  cleanReason,
  FAVICON,
  faviconHref,
  REASON_MAX,
  shouldAnnounce,
  sortForAttention,
  titleWithCount,
  waitingCount,
} from './attention.ts'

function s(id: string, over: Partial<Session> = {}, agent?: AgentStatusName): Session {
  return {
    id,
    workspace: `/p/${id}`,
    tool: 'claude',
    slot: 1,
    status: 'running',
    persistent: false,
    ...(agent ? { agent: { status: agent, since: '2026-11-30T05:00:00Z' } } : {}),
    ...over,
  }
}

describe('sortForAttention', () => {
  it('puts waiting sessions first, then keeps the existing order (status, newest, id)', () => {
    const list = [
      s('stopped-old', { status: 'stopped', created_at: '2026-11-01T00:00:00Z' }),
      s('run-old', { created_at: '2026-11-02T00:00:00Z' }, 'working'),
      s('wait-old', { created_at: '2026-11-03T00:00:00Z' }, 'waiting'),
      s('paused', { status: 'frozen', created_at: '2026-11-10T00:00:00Z' }),
      s('run-new', { created_at: '2026-11-20T00:00:00Z' }, 'idle'),
      s('wait-new', { created_at: '2026-11-21T00:00:00Z' }, 'waiting'),
      s('b-same', { created_at: '2026-11-05T00:00:00Z' }),
      s('a-same', { created_at: '2026-11-05T00:00:00Z' }, 'exited'),
    ]
    expect(sortForAttention(list).map((x) => x.id)).toEqual([
      'wait-new',
      'wait-old',
      'run-new',
      'a-same',
      'b-same',
      'run-old',
      'paused',
      'stopped-old',
    ])
    // The input is not reordered in place (it is the store's list).
    expect(list[0]?.id).toBe('stopped-old')
  })

  it('does not count a stopped session whose last agent status was waiting', () => {
    const list = [
      s('a', { created_at: '2026-11-02T00:00:00Z' }),
      s('stale', { status: 'stopped', created_at: '2026-11-03T00:00:00Z' }, 'waiting'),
    ]
    expect(sortForAttention(list).map((x) => x.id)).toEqual(['a', 'stale'])
    expect(waitingCount(list)).toBe(0)
  })
})

describe('the tab title and favicon', () => {
  it('counts the waiting running sessions', () => {
    const list = [s('a', {}, 'waiting'), s('b', {}, 'working'), s('c', {}, 'waiting'), s('d')]
    expect(waitingCount(list)).toBe(2)
    expect(waitingCount([])).toBe(0)
  })

  it('prefixes the title with the count only when something waits', () => {
    expect(titleWithCount('clincus', 1)).toBe('(1) clincus')
    expect(titleWithCount('Projects · clincus', 12)).toBe('(12) Projects · clincus')
    expect(titleWithCount('clincus', 0)).toBe('clincus')
  })

  it('draws a badge with the count into an inline SVG icon, and the plain icon for none', () => {
    expect(faviconHref(0)).toBe(FAVICON)
    const one = decodeURIComponent(faviconHref(1))
    expect(one.startsWith('data:image/svg+xml,<svg')).toBe(true)
    expect(one).toContain('>1</text>')
    expect(decodeURIComponent(faviconHref(9))).toContain('>9</text>')
    expect(decodeURIComponent(faviconHref(10))).toContain('>9+</text>')
    // Well-formed SVG.
    const doc = new DOMParser().parseFromString(
      one.slice('data:image/svg+xml,'.length),
      'image/svg+xml',
    )
    expect(doc.querySelector('parsererror')).toBeNull()
    expect(doc.querySelector('circle')).not.toBeNull()
  })
})

describe('shouldAnnounce', () => {
  const away = { viewing: false }

  it('announces a change into waiting or exited, from anything else', () => {
    for (const prev of [undefined, 'working', 'idle'] as const) {
      expect(shouldAnnounce(prev, 'waiting', away)).toBe(true)
      expect(shouldAnnounce(prev, 'exited', away)).toBe(true)
    }
    expect(shouldAnnounce('waiting', 'exited', away)).toBe(true)
    expect(shouldAnnounce('exited', 'waiting', away)).toBe(true)
  })

  it('never announces working or idle', () => {
    for (const prev of [undefined, 'working', 'idle', 'waiting', 'exited'] as const) {
      expect(shouldAnnounce(prev, 'working', away)).toBe(false)
      expect(shouldAnnounce(prev, 'idle', away)).toBe(false)
    }
  })

  it('does not repeat: the same status again is no transition', () => {
    expect(shouldAnnounce('waiting', 'waiting', away)).toBe(false)
    expect(shouldAnnounce('exited', 'exited', away)).toBe(false)
  })

  it('stays quiet for the session the user is looking at', () => {
    expect(shouldAnnounce('working', 'waiting', { viewing: true })).toBe(false)
    expect(shouldAnnounce('working', 'exited', { viewing: true })).toBe(false)
  })
})

describe('cleanReason (the agent writes it: hostile)', () => {
  it('keeps the words, on one line', () => {
    expect(cleanReason('  Allow   Bash(rm -rf build)?\n\n  [y/n] ')).toBe(
      'Allow Bash(rm -rf build)? [y/n]',
    )
    expect(cleanReason(undefined)).toBe('')
    expect(cleanReason(' \n\t ')).toBe('')
  })

  it('drops terminal escapes, control characters and bidirectional overrides', () => {
    expect(cleanReason('\u001b[31mDelete\u001b[0m all?\u0007\u0000')).toBe('Delete all?')
    expect(cleanReason('approve \u202eexe.txt\u202c now\u200b')).toBe('approve exe.txt now')
  })

  it('leaves markup as text (the view never renders it as HTML) and caps the length', () => {
    expect(cleanReason('<img src=x onerror=alert(1)>')).toBe('<img src=x onerror=alert(1)>')
    const long = cleanReason('é'.repeat(5000))
    expect(Array.from(long)).toHaveLength(REASON_MAX)
    expect(long.endsWith('…')).toBe(true)
  })
})
