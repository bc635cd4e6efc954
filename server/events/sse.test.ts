import { describe, expect, it } from 'vitest'
import { formatSseComment, formatSseEvent, formatSseRetry, lastEventId } from './sse.ts'

describe('SSE framing', () => {
  it('formats an event with id and data', () => {
    expect(formatSseEvent({ id: 7, data: '{"type":"session.started","id":"c"}' })).toBe(
      'id: 7\ndata: {"type":"session.started","id":"c"}\n\n',
    )
  })

  it('splits multi-line values into one field per line (no event injection)', () => {
    expect(formatSseEvent({ event: 'reset', data: 'a\nid: 99\r\nb' })).toBe(
      'event: reset\ndata: a\ndata: id: 99\ndata: b\n\n',
    )
  })

  it('formats comments and retry', () => {
    expect(formatSseComment('heartbeat')).toBe(': heartbeat\n\n')
    expect(formatSseRetry(2000.7)).toBe('retry: 2000\n\n')
  })
})

describe('lastEventId', () => {
  it('prefers the header, falls back to the query', () => {
    expect(lastEventId(' 42 ', 7)).toBe(42)
    expect(lastEventId(undefined, 7)).toBe(7)
    expect(lastEventId(undefined, undefined)).toBeUndefined()
    expect(lastEventId('nope', 7)).toBe(7)
  })
})
