// Issue 17: what one line on a session's hook channel says about its agent. A line is the JSON a
// tool hands its hooks on stdin, forwarded unchanged by the hook script (hook-files.ts):
//   - Claude Code (docs: code.claude.com/docs/en/hooks, "Hook input"): every event carries
//     `hook_event_name` with `session_id`, `transcript_path`, `cwd`; Notification adds `message`
//     and `notification_type` (permission_prompt, idle_prompt, auth_success, elicitation_dialog);
//     PermissionRequest / PreToolUse add `tool_name`.
//   - Copilot CLI's hook events (docs.github.com .../cli-hooks-reference) use camelCase names
//     (userPromptSubmitted, preToolUse, agentStop, sessionEnd, notification); accepted under
//     `hook_event_name` or `event` so the same parser reads them if they are ever installed.
//   - clincus's opencode plugin (hook-files.ts) sends Claude's vocabulary.
// Everything here comes from the container: parsed with TypeBox, unknown events ignored, the
// reason trimmed to 200 characters of printable text. Pure: no I/O, no clock.
import { Type, type Static } from 'typebox'
import { Value } from 'typebox/value'
import type { AgentStatusName } from '../../../shared/schemas/sessions.ts'

/** What a signal says: the status, the reason for `waiting`, and whether it is urgent. */
export interface AgentSignal {
  status: AgentStatusName
  /** For `waiting`: the question or permission asked (≤ 200 characters). */
  reason?: string
  /** A permission prompt: announced at once, without the waiting grace. */
  urgent?: boolean
}

const Name = Type.String({ minLength: 1, maxLength: 64 })
const Text = Type.String({ maxLength: 65_536 })

/** The fields read; any other field is allowed and ignored (the tools add fields over time). */
export const HookPayloadSchema = Type.Union([
  Type.Object({
    hook_event_name: Name,
    message: Type.Optional(Text),
    notification_type: Type.Optional(Name),
    tool_name: Type.Optional(Name),
  }),
  Type.Object({
    event: Name,
    message: Type.Optional(Text),
    notification_type: Type.Optional(Name),
    tool_name: Type.Optional(Name),
  }),
])
export type HookPayload = Static<typeof HookPayloadSchema>

export const REASON_MAX = 200

/**
 * `text` as one line of printable characters, at most REASON_MAX of them: control characters
 * become spaces, and the invisible formatting characters that could make it read as something
 * else (bidirectional overrides and isolates, zero-width characters) go, as in the browser's
 * cleanReason (web/src/lib/attention/attention.ts).
 */
export function trimReason(text: string): string {
  const flat = text
    // eslint-disable-next-line no-control-regex -- control characters are what is removed
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
    .replace(/[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g, '')
    .replace(/\s+/g, ' ')
    .trim()
  const chars = Array.from(flat)
  return chars.length <= REASON_MAX ? flat : `${chars.slice(0, REASON_MAX - 1).join('')}…`
}

const WORKING = new Set([
  'UserPromptSubmit',
  'PreToolUse',
  'PostToolUse',
  'PostToolUseFailure',
  'PreCompact',
  'userPromptSubmitted',
  'preToolUse',
  'postToolUse',
])
const IDLE = new Set(['Stop', 'SessionStart', 'agentStop', 'sessionStart'])
const EXITED = new Set(['SessionEnd', 'sessionEnd'])

function waiting(reason: string | undefined, urgent: boolean): AgentSignal {
  const r = reason === undefined ? '' : trimReason(reason)
  return { status: 'waiting', ...(r ? { reason: r } : {}), ...(urgent ? { urgent: true } : {}) }
}

/** The signal of a Notification: permission prompts are urgent, idle prompts say idle. */
function notification(p: HookPayload): AgentSignal | null {
  const type = p.notification_type
  const message = p.message ?? ''
  if (type === 'auth_success' || type === 'elicitation_complete') return null
  if (type === 'idle_prompt') return { status: 'idle' }
  if (type === 'permission_prompt') return waiting(message || 'permission requested', true)
  if (type === undefined) {
    // Claude before notification_type: its two messages, told apart by their text.
    if (/waiting for your input/i.test(message)) return { status: 'idle' }
    if (/permission/i.test(message)) return waiting(message, true)
  }
  return waiting(message, false)
}

/** The signal a parsed payload gives, or null (an event that says nothing about the status). */
export function signalOf(p: HookPayload): AgentSignal | null {
  const event = eventOf(p)
  if (WORKING.has(event)) return { status: 'working' }
  if (IDLE.has(event)) return { status: 'idle' }
  if (EXITED.has(event)) return { status: 'exited' }
  if (event === 'PermissionRequest')
    return waiting(p.tool_name ? `Permission to use ${p.tool_name}` : 'permission requested', true)
  if (event === 'Notification' || event === 'notification') return notification(p)
  return null
}

/** The event name of a parsed payload. */
export function eventOf(p: HookPayload): string {
  return 'hook_event_name' in p ? p.hook_event_name : p.event
}

/** One line from the channel (without its newline), parsed; null when it is not a payload. */
export function parseHookPayload(line: string): HookPayload | null {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return null
  }
  return Value.Check(HookPayloadSchema, value) ? value : null
}

/** One line from the channel (without its newline): its signal, or null for anything else. */
export function parseHookLine(line: string): AgentSignal | null {
  const p = parseHookPayload(line)
  return p ? signalOf(p) : null
}
