// Keys the browser terminal maps itself, apart from xterm's defaults: Shift+Enter, and the phone
// key bar (its keys and its PgUp/PgDn). Pure, so they are tested without a browser.

/**
 * What Shift+Enter sends: ESC CR, i.e. Meta+Enter. xterm.js sends a plain CR for Shift+Enter, so
 * the agents submitted the prompt. ESC CR inserts a newline in all three agents without setup:
 * it is what Claude Code's /terminal-setup makes Shift+Enter send (Option/Alt+Enter is its
 * documented newline key), opencode's default `input_newline` includes alt+return, and Copilot
 * CLI accepts it too (github/copilot-cli#897: "\u001b\r ... work[s] properly in both tools").
 * It passes through tmux 3.3a unchanged (as M-Enter) whatever the pane asked for, where
 * CSI 13;2u only survives tmux when the program turned extended keys on (tmux sends a plain CR
 * to one that did not, and that submits). In bash, ESC CR is unbound: the line is not run.
 * Ctrl+J (LF) is the other newline key the agents take, but a shell runs the line on it.
 */
export const SHIFT_ENTER_SEQUENCE = '\x1b\r'

type KeyLike = Pick<
  KeyboardEvent,
  'key' | 'shiftKey' | 'ctrlKey' | 'altKey' | 'metaKey' | 'isComposing'
>

/** Shift+Enter with no other modifier, outside an IME composition. */
export function isShiftEnter(e: KeyLike): boolean {
  return e.key === 'Enter' && e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !e.isComposing
}

/** A key on the phone key bar: bytes to send, or a page of scrolling. */
export type KeyBarAction = { kind: 'keys'; seq: string } | { kind: 'page'; direction: -1 | 1 }

export interface KeyBarKey {
  label: string
  /** The accessible name. */
  name: string
  action: KeyBarAction
}

export const KEY_BAR: readonly KeyBarKey[] = [
  { label: 'Esc', name: 'Escape', action: { kind: 'keys', seq: '\x1b' } },
  { label: 'Tab', name: 'Tab', action: { kind: 'keys', seq: '\t' } },
  { label: '^C', name: 'Control C', action: { kind: 'keys', seq: '\x03' } },
  { label: '↑', name: 'Arrow up', action: { kind: 'keys', seq: '\x1b[A' } },
  { label: '↓', name: 'Arrow down', action: { kind: 'keys', seq: '\x1b[B' } },
  { label: '←', name: 'Arrow left', action: { kind: 'keys', seq: '\x1b[D' } },
  { label: '→', name: 'Arrow right', action: { kind: 'keys', seq: '\x1b[C' } },
  { label: 'PgUp', name: 'Page up', action: { kind: 'page', direction: -1 } },
  { label: 'PgDn', name: 'Page down', action: { kind: 'page', direction: 1 } },
  { label: '⏎', name: 'Enter', action: { kind: 'keys', seq: '\r' } },
]

/** What a terminal shows, as far as paging is concerned. */
export interface PageContext {
  /** xterm's `modes.mouseTrackingMode`: anything but none/x10 reports the wheel. */
  mouseTracking: 'none' | 'x10' | 'vt200' | 'drag' | 'any'
  /** The active buffer: the normal one has the browser's scrollback. */
  buffer: 'normal' | 'alternate'
  rows: number
}

/**
 * tmux's copy mode scrolls this many lines per wheel report (its default WheelUpPane and
 * WheelDownPane bindings: `send-keys -X -N 5 scroll-up`).
 */
export const TMUX_WHEEL_LINES = 5

/**
 * How PgUp/PgDn on the key bar page: through the application's mouse wheel when it reports the
 * wheel (tmux in the agent tab: copy mode, about a page of wheel ticks), through the browser's
 * scrollback in the normal buffer (a shell), and as the PgUp/PgDn keys in a full-screen program
 * without mouse reporting (less, vim), which page themselves.
 */
export function pageAction(
  ctx: PageContext,
  direction: -1 | 1,
):
  | { kind: 'wheel'; ticks: number; direction: -1 | 1 }
  | { kind: 'scroll'; pages: -1 | 1 }
  | { kind: 'keys'; seq: string } {
  if (ctx.mouseTracking !== 'none' && ctx.mouseTracking !== 'x10') {
    const ticks = Math.max(1, Math.round((ctx.rows - 1) / TMUX_WHEEL_LINES))
    return { kind: 'wheel', ticks, direction }
  }
  if (ctx.buffer === 'normal') return { kind: 'scroll', pages: direction }
  return { kind: 'keys', seq: direction < 0 ? '\x1b[5~' : '\x1b[6~' }
}
