import { describe, expect, it } from 'vitest'
import type { SessionInfo } from '../../shared/schemas/sessions.ts'
import { EventHub } from './hub.ts'
import { resyncEvents, SessionStateTracker } from './resync.ts'

const s = (id: string, status: SessionInfo['status']): SessionInfo => ({
  id,
  workspace: '/w',
  tool: 'claude',
  slot: 1,
  status,
  persistent: false,
})

describe('resyncEvents', () => {
  it('publishes what changed while the monitor was down', () => {
    const known = new Map([
      ['a', true], // stopped meanwhile
      ['b', false], // started meanwhile
      ['c', true], // unchanged
      ['d', true], // deleted meanwhile
    ])
    const events = resyncEvents(known, [
      s('a', 'stopped'),
      s('b', 'running'),
      s('c', 'running'),
      s('e', 'running'), // created meanwhile
    ])
    expect(events).toEqual([
      { type: 'session.stopped', id: 'a' },
      { type: 'session.started', id: 'b' },
      { type: 'session.created', id: 'e' },
      { type: 'session.started', id: 'e' },
      { type: 'session.stopped', id: 'd' },
      { type: 'session.deleted', id: 'd' },
    ])
  })

  it('is empty when nothing changed', () => {
    expect(resyncEvents(new Map([['a', true]]), [s('a', 'running')])).toEqual([])
  })
})

describe('SessionStateTracker', () => {
  it('follows the events published on the hub', () => {
    const hub = new EventHub()
    const t = new SessionStateTracker(hub)
    t.seed([s('a', 'running')])
    hub.publish({ type: 'session.created', id: 'b' })
    hub.publish({ type: 'session.started', id: 'b' })
    hub.publish({ type: 'session.stopped', id: 'a' })
    hub.publish({ type: 'session.deleted', id: 'a' })
    expect([...t.known]).toEqual([['b', true]])
    t.dispose()
    hub.publish({ type: 'session.stopped', id: 'b' })
    expect(t.known.get('b')).toBe(true)
  })
})
