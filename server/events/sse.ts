// Server-sent events framing (WHATWG HTML §9.2): `field: value` lines, a blank line ends an event,
// lines starting with ':' are comments that clients ignore (used as heartbeats).

function lines(field: string, value: string): string {
  // A value with line breaks becomes one field per line; the client joins them with '\n'.
  return value
    .split(/\r\n|\r|\n/)
    .map((l) => `${field}: ${l}\n`)
    .join('')
}

export function formatSseEvent(e: { id?: number; event?: string; data: string }): string {
  let out = ''
  if (e.id !== undefined) out += `id: ${e.id}\n`
  if (e.event !== undefined) out += lines('event', e.event)
  return `${out}${lines('data', e.data)}\n`
}

export function formatSseComment(text: string): string {
  return `${lines('', text)}\n`
}

export function formatSseRetry(ms: number): string {
  return `retry: ${Math.max(0, Math.trunc(ms))}\n\n`
}

/**
 * The id to replay after: the `Last-Event-ID` header (what EventSource sends on reconnect), else
 * the `last_event_id` query parameter (for curl and scripts); undefined for a fresh stream.
 */
export function lastEventId(
  header: string | undefined,
  query: number | undefined,
): number | undefined {
  if (header !== undefined && /^\d{1,16}$/.test(header.trim())) return Number(header.trim())
  return query
}
