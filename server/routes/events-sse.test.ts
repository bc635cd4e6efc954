import type { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { buildTestApp } from '../test/helpers.ts'
import { SseParser, waitUntil } from '../test/ws-client.ts'

/** Reads an SSE stream into events (and counts comments). */
function reader(stream: Readable) {
  const p = new SseParser()
  let ended = false
  stream.on('data', (chunk: Buffer) => {
    p.push(chunk.toString())
  })
  stream.on('end', () => (ended = true))
  return {
    events: p.events,
    get comments() {
      return p.comments
    },
    get ended() {
      return ended
    },
  }
}

async function open(
  t: Awaited<ReturnType<typeof buildTestApp>>,
  opts: { url?: string; headers?: Record<string, string> } = {},
) {
  const res = await t.app.inject({
    method: 'GET',
    url: opts.url ?? '/api/events',
    headers: opts.headers,
    payloadAsStream: true,
  })
  return { res, r: reader(res.stream()) }
}

describe('GET /api/events', () => {
  it('streams hub events with increasing ids as text/event-stream', async () => {
    const t = await buildTestApp()
    const { res, r } = await open(t)
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    expect(res.headers['cache-control']).toBe('no-cache, no-transform')
    const a = t.services.hub.publish({ type: 'session.started', id: 'clincus-0123abcd-1' })
    const b = t.services.hub.publish({ type: 'session.stopped', id: 'clincus-0123abcd-1' })
    await waitUntil('two events', () => r.events.length === 2)
    expect(r.events).toEqual([
      { id: a.id, data: '{"type":"session.started","id":"clincus-0123abcd-1"}' },
      { id: b.id, data: '{"type":"session.stopped","id":"clincus-0123abcd-1"}' },
    ])
    expect(b.id).toBeGreaterThan(a.id)
  })

  it('replays exactly the events after Last-Event-ID, then goes live', async () => {
    const t = await buildTestApp()
    const hub = t.services.hub
    const sent = [1, 2, 3, 4, 5].map((n) =>
      hub.publish({ type: 'session.created', id: `clincus-0123abcd-${n}` }),
    )
    const seen = sent[1]?.id ?? 0
    const { r } = await open(t, { headers: { 'last-event-id': String(seen) } })
    await waitUntil('the replay', () => r.events.length === 3)
    expect(r.events.map((e) => e.id)).toEqual(sent.slice(2).map((e) => e.id))
    const live = hub.publish({ type: 'session.deleted', id: 'clincus-0123abcd-5' })
    await waitUntil('the live event', () => r.events.length === 4)
    expect(r.events[3]?.id).toBe(live.id)

    const q = await open(t, { url: `/api/events?last_event_id=${sent[3]?.id ?? 0}` })
    await waitUntil('the replay by query', () => q.r.events.length === 2)
    expect(q.r.events.map((e) => e.id)).toEqual([sent[4]?.id, live.id])
  })

  it('says so (event: reset) when the ring no longer reaches back to Last-Event-ID', async () => {
    const t = await buildTestApp()
    t.services.hub.publish({ type: 'session.created', id: 'clincus-0123abcd-1' })
    const { r } = await open(t, { headers: { 'last-event-id': '5' } })
    await waitUntil('the reset', () => r.events.length >= 1)
    expect(r.events[0]?.event).toBe('reset')
    expect(JSON.parse(r.events[0]?.data ?? '{}')).toMatchObject({ type: 'stream.reset' })
  })

  it('refuses a Last-Event-ID that is not a number', async () => {
    const t = await buildTestApp()
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/events',
      headers: { 'last-event-id': 'abc' },
    })
    expect(res.statusCode).toBe(400)
  })

  it('sends heartbeat comments', async () => {
    const t = await buildTestApp({ deps: { realtime: { sse: { heartbeatMs: 20 } } } })
    const { r } = await open(t)
    await waitUntil('two heartbeats', () => r.comments >= 3)
  })

  it('ends the stream cleanly when the app closes', async () => {
    const t = await buildTestApp()
    const { r } = await open(t)
    await t.app.close()
    await waitUntil('the end of the stream', () => r.ended)
  })

  it('is in the OpenAPI document as text/event-stream', async () => {
    const t = await buildTestApp()
    const doc = (await t.app.inject({ method: 'GET', url: '/api/openapi.json' })).json<{
      paths: Record<string, { get?: { responses?: Record<string, { content?: object }> } }>
    }>()
    const ok = doc.paths['/api/events']?.get?.responses?.['200']
    expect(Object.keys(ok?.content ?? {})).toEqual(['text/event-stream'])
  })
})
