// The original dashboard's JSON framing (shared/ws/terminal.ts, JsonClientMessageSchema): one
// client message per frame, parsed against the schema; anything else is not such a message.
import { Value } from 'typebox/value'
import { JsonClientMessageSchema, type JsonClientMessage } from '../../shared/ws/terminal.ts'

const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * The message in one frame (text or binary: the original server read both), or null when the
 * frame is not valid UTF-8, not JSON, or not an input/resize message. Never throws.
 */
export function parseJsonClientMessage(frame: Uint8Array): JsonClientMessage | null {
  // A JSON message starts with `{` (after white space); anything else is not worth decoding.
  let i = 0
  while (
    i < frame.length &&
    (frame[i] === 0x20 || frame[i] === 0x0a || frame[i] === 0x0d || frame[i] === 0x09)
  )
    i++
  if (frame[i] !== 0x7b) return null
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(frame))
  } catch {
    return null
  }
  return Value.Check(JsonClientMessageSchema, value) ? value : null
}
