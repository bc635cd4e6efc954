// The attention view's rules (issue 17), pure so each is tested alone: which sessions wait, the
// order of the session list, what the tab title and favicon show, which agent transitions are
// announced, and how an agent's `reason` is made safe to show.
import type { AgentStatus, AgentStatusName } from '../../../../shared/schemas/sessions.ts'
import type { Session } from '../schemas.ts'

/** A running session whose agent waits for the user (a stopped session's agent status is stale). */
export function isWaiting(s: Session): boolean {
  return s.status === 'running' && s.agent?.status === 'waiting'
}

/** The agent status worth showing: a running session's only. */
export function agentOf(s: Session): AgentStatus | null {
  return s.status === 'running' && s.agent ? s.agent : null
}

export function waitingCount(list: readonly Session[]): number {
  return list.filter(isWaiting).length
}

const STATUS_ORDER: Record<string, number> = { running: 0, starting: 1, stopping: 2, frozen: 3 }

/**
 * The session list's order: sessions whose agent waits first, then by container status (running,
 * starting, stopping, paused, the rest), newest first, then by id (a total order, so the list
 * never shuffles between renders).
 */
export function sortForAttention(list: readonly Session[]): Session[] {
  return [...list].sort(
    (a, b) =>
      Number(isWaiting(b)) - Number(isWaiting(a)) ||
      (STATUS_ORDER[a.status] ?? 9) - (STATUS_ORDER[b.status] ?? 9) ||
      (b.created_at ?? '').localeCompare(a.created_at ?? '') ||
      a.id.localeCompare(b.id),
  )
}

/** `(2) Projects · clincus`: the tab title with the number of waiting sessions, when any. */
export function titleWithCount(title: string, waiting: number): string {
  return waiting > 0 ? `(${waiting}) ${title}` : title
}

/** The statuses a notification (and the optional sound) announces. */
const ANNOUNCED: ReadonlySet<AgentStatusName> = new Set(['waiting', 'exited'])

export interface AnnounceContext {
  /** The session's page is open in this tab and the document is visible. */
  viewing: boolean
}

/**
 * Whether an agent status change is announced: only a change *into* `waiting` or `exited` (a
 * repeat of the same status, e.g. a new reason while still waiting, is no transition), never for
 * the session the user is looking at. `previous` is the status this page knew (undefined: none).
 */
export function shouldAnnounce(
  previous: AgentStatusName | undefined,
  next: AgentStatusName,
  ctx: AnnounceContext,
): boolean {
  return ANNOUNCED.has(next) && previous !== next && !ctx.viewing
}

/** At most this many characters of a reason are shown (the server's limit, shared/schemas). */
export const REASON_MAX = 200

/**
 * A `reason` as plain, one-line text. It comes from the agent (a prompt-injected agent writes
 * what it likes), so besides being rendered as text (never as HTML) it loses control characters
 * (ANSI escapes, newlines) and the bidirectional overrides that could make it read as something
 * else, its whitespace collapses, and it is cut to REASON_MAX characters.
 */
export function cleanReason(reason: string | undefined): string {
  if (!reason) return ''
  const text = reason
    // eslint-disable-next-line no-control-regex -- control characters are what is removed
    .replace(/\u001b\[[0-?]*[ -/]*[@-~]/g, '')
    // eslint-disable-next-line no-control-regex -- control characters are what is removed
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ')
    .replace(/[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g, '')
    .replace(/\s+/g, ' ')
    .trim()
  const chars = Array.from(text)
  return chars.length > REASON_MAX ? `${chars.slice(0, REASON_MAX - 1).join('')}…` : text
}

/** The words each agent status reads as (the badge's text; colour is only a second cue). */
export const AGENT_LABEL: Record<AgentStatusName, string> = {
  working: 'working',
  waiting: 'waiting for you',
  idle: 'idle',
  exited: 'exited',
}

/** What each status means, for the badge's tooltip. */
export const AGENT_HINT: Record<AgentStatusName, string> = {
  working: 'The agent is busy',
  waiting: 'The agent asked a question or a permission and waits for an answer',
  idle: 'The agent finished and waits for a new prompt',
  exited: 'The agent exited: the terminal is back at the shell',
}

// The favicon (web/public/favicon.svg) drawn inline, so a badge needs no new asset.
const ICON =
  '<rect width="32" height="32" rx="7" fill="#2659d6"/>' +
  '<path d="M8 11l6 5-6 5" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/>' +
  '<path d="M16 22h8" stroke="#fff" stroke-width="2.6" stroke-linecap="round"/>'

/** The plain favicon's address (index.html's). */
export const FAVICON = '/favicon.svg'

/**
 * The favicon with a red badge counting waiting sessions ("9+" above nine), as an SVG data URL;
 * the plain icon's address when none waits.
 */
export function faviconHref(waiting: number): string {
  if (waiting <= 0) return FAVICON
  const text = waiting > 9 ? '9+' : String(waiting)
  const svg =
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">' +
    ICON +
    '<circle cx="23" cy="9" r="9" fill="#d92d20" stroke="#fff" stroke-width="1.5"/>' +
    `<text x="23" y="13" text-anchor="middle" font-family="Arial,sans-serif" font-weight="700" font-size="${text.length > 1 ? 9 : 12}" fill="#fff">${text}</text>` +
    '</svg>'
  return `data:image/svg+xml,${encodeURIComponent(svg)}`
}
