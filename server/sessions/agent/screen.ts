// Issue 17: the screen fallback's classifier. Given what a tool's tmux pane shows (and its title),
// says what the agent is doing, from the prompt patterns of each tool recorded from the real image
// (fixtures in ./fixtures/, recorded by scripts/record-agents/). Pure: no I/O, no clock.
//
// The screen is hostile input (the agent in the container writes it): only its last
// MAX_SCAN_CHARS characters, MAX_LINES lines and MAX_LINE_CHARS characters per line are read,
// every pattern runs on one such line, and no pattern has nested or adjacent overlapping
// quantifiers, so a classification costs O(screen) at most (screen.test.ts attacks it).
import type { ToolName } from '../../../shared/tools.ts'
import type { AgentStatusName } from '../../../shared/schemas/sessions.ts'
import { trimReason } from './hooks.ts'

export interface ScreenInput {
  tool: ToolName
  /** The pane's visible text, as `tmux capture-pane -p` prints it (no escapes), lines by `\n`. */
  screen: string
  /** The pane's title (`#{pane_title}`), which the tools set; '' when none. */
  title: string
}

export interface ScreenVerdict {
  status: AgentStatusName
  /** For `waiting`: the question or permission shown, trimmed to 200 characters. */
  reason?: string
}

/** How much of the screen is read: a pane is a few thousand characters; the rest is an attack. */
const MAX_SCAN_CHARS = 64 * 1024
const MAX_LINES = 200
const MAX_LINE_CHARS = 512
/** The longest `reason` (AgentStatusSchema). */
export const MAX_REASON_CHARS = 200

/** The clincus wrapper's line when the tool ends (server/sessions/tools.ts toolWrapperArgv). */
const EXIT_LINE = /^\[[A-Za-z0-9._/-]{1,64} exited with code \d{1,3}\]$/
/** Bash's default prompt (Debian's PS1: user@host:cwd$ ), with whatever was typed after it. */
const SHELL_PROMPT = /^[a-z_][a-z0-9_-]{0,31}@[A-Za-z0-9.-]{1,64}:[^\s$#]{0,256}[$#](?: |$)/
/** A horizontal rule of box drawing characters (the tools' prompt boxes and dialogs). */
const RULE = /^[─━▀▄═-]{20,}$/
/** Box sides and padding around a line of a dialog drawn in a box (stripped by a loop). */
const BOX_EDGE_CHARS = new Set([' ', '\t', '\u00a0', '│', '┃', '║', '╹', '╻', '▌', '▐'])
/** A selection cursor on a dialog's option: `❯ 1. Yes`, `❯ Yes, I accept`, `› Allow once`. */
const OPTION_CURSOR = /^[❯›>]\s?(?:\d{1,2}[.)]\s)?\S/
/** The option under the cursor, numbered. */
const NUMBERED_OPTION = /^(?:[❯›>]\s?)?\d{1,2}[.)]\s\S/
/** A question or permission line (ends with `?`, perhaps followed by a hint in parentheses). */
const QUESTION = /\?(?:\s\([^()]{0,80}\))?$/
/** Hints under a dialog saying that it waits for a choice. */
const DIALOG_HINT =
  /(?:enter to (?:select|confirm)|esc to cancel|↑\/↓ to (?:navigate|select)|to navigate ·|tab to amend)/i

interface Screen {
  /** Lines, right-trimmed, box edges kept. */
  raw: string[]
  /** Lines with box edges and surrounding blanks removed. */
  text: string[]
}

function readScreen(screen: string): Screen {
  const tail = screen.length > MAX_SCAN_CHARS ? screen.slice(-MAX_SCAN_CHARS) : screen
  let lines = tail.split('\n')
  if (lines.length > MAX_LINES) lines = lines.slice(-MAX_LINES)
  const raw = lines.map((l) =>
    (l.length > MAX_LINE_CHARS ? l.slice(0, MAX_LINE_CHARS) : l).trimEnd(),
  )
  while (raw.length > 0 && raw[raw.length - 1] === '') raw.pop()
  return { raw, text: raw.map((l) => beforeSidebar(stripBox(l))) }
}

/**
 * The line without what a wide layout draws beside it (a sidebar or scrollbar after a box
 * side: `…question?      │ Session`), so that line-end patterns hold at any width.
 */
function beforeSidebar(line: string): string {
  for (let i = 1; i < line.length; i++) {
    const c = line.charAt(i)
    if ((c === '│' || c === '┃' || c === '║') && line.charAt(i - 1) === ' ')
      return line.slice(0, i).trimEnd()
  }
  return line
}

function stripBox(line: string): string {
  let a = 0
  let b = line.length
  while (a < b && BOX_EDGE_CHARS.has(line.charAt(a))) a++
  while (b > a && BOX_EDGE_CHARS.has(line.charAt(b - 1))) b--
  return line.slice(a, b)
}

/**
 * One line of printable text, trimmed to MAX_REASON_CHARS (an ellipsis marks a cut): the pane
 * read is the container's output, cleaned like the hook channel's reasons.
 */
function clip(text: string): string {
  return trimReason(text)
}

/** The tool has ended: the wrapper's exit line or a shell prompt is the last thing shown. */
function atShell(s: Screen): boolean {
  const last = s.raw[s.raw.length - 1] ?? ''
  if (SHELL_PROMPT.test(last) || EXIT_LINE.test(last)) return true
  // The exit line with only the shell's own output after it (a command typed at the prompt).
  for (let i = s.raw.length - 1; i >= 0 && i >= s.raw.length - 40; i--) {
    if (EXIT_LINE.test(s.raw[i] ?? '')) return s.raw.slice(i + 1).some((l) => SHELL_PROMPT.test(l))
  }
  return false
}

const isRule = (line: string | undefined) => line !== undefined && RULE.test(line.trim())

/**
 * The prompt box where the user types: a `❯` line right under a rule (Claude Code, Copilot CLI).
 * Returns its line index or -1.
 */
function promptBoxLine(s: Screen): number {
  for (let i = s.raw.length - 1; i > 0 && i >= s.raw.length - 30; i--) {
    if (/^[❯>]/.test(s.raw[i] ?? '') && isRule(s.raw[i - 1])) return i
  }
  return -1
}

/**
 * A dialog waiting for a choice: an option under a selection cursor, below any prompt box (the
 * tools hide the prompt box while a dialog is open; the transcript above it echoes past prompts
 * after the same `❯`), confirmed by a hint under it (`Enter to select`, `Esc to cancel`) or by a
 * sibling option right under it. Returns the reason (the question, else the dialog's heading),
 * or null.
 */
function dialogReason(s: Screen, promptLine: number): string | null {
  const start = Math.max(0, promptLine + 1, s.text.length - 60)
  for (let i = s.text.length - 1; i >= start; i--) {
    const line = s.text[i] ?? ''
    if (!OPTION_CURSOR.test(line)) continue
    const hint = s.text.slice(i + 1, i + 12).some((l) => DIALOG_HINT.test(l))
    if (!hint && !siblingOption(s, i)) continue
    return questionAbove(s, i) ?? titleAbove(s, i) ?? 'a choice is waiting'
  }
  return null
}

/** The line under the cursor's line `i` is another option: numbered, or aligned with its text. */
function siblingOption(s: Screen, i: number): boolean {
  const cursor = s.text[i] ?? ''
  const next = s.text[i + 1] ?? ''
  if (NUMBERED_OPTION.test(cursor)) return /^\d{1,2}[.)]\s\S/.test(next)
  const raw = s.raw[i] ?? ''
  const rawNext = s.raw[i + 1] ?? ''
  const textColumn = raw.length - raw.trimStart().length + 2
  const indent = rawNext.length - rawNext.trimStart().length
  return textColumn > 2 && indent === textColumn && /^[A-Za-z0-9]/.test(rawNext.trimStart())
}

/**
 * The nearest question line above line `i` (within the dialog: `span` lines, no rule), with the
 * paragraph above it as context when `context` (a permission's command, a question's header).
 */
function questionAbove(s: Screen, i: number, span = 14, context = true): string | null {
  for (let j = i - 1; j >= 0 && j >= i - span; j--) {
    const line = s.text[j] ?? ''
    if (isRule(line)) break
    if (QUESTION.test(line)) return context ? withContext(s, j) : clip(line)
  }
  return null
}

/** The question line `j` and the paragraph right above it, inside the dialog (≤ 4 lines). */
function withContext(s: Screen, j: number): string {
  const question = s.text[j] ?? ''
  const context: string[] = []
  for (let k = j - 1; k >= 0 && k >= j - 8 && context.length < 4; k--) {
    const line = s.text[k] ?? ''
    // A box (Copilot) or dashed rules (Claude Code) right above the question hold what is asked
    // about: the command.
    if ((/^[╰└]/.test(line) || /^╌{20,}$/.test(line)) && context.length === 0) continue
    if (/^╌{20,}$/.test(line)) break
    if (isRule(line) || /^[╭╰┌└]/.test(line)) break
    if (line !== '') context.unshift(line)
    else if (context.length > 0) break
  }
  return clip(context.length > 0 ? `${question} — ${context.join(' ')}` : question)
}

/** The first text line of the dialog holding line `i` (its heading), for dialogs with no `?`. */
function titleAbove(s: Screen, i: number): string | null {
  let title: string | null = null
  for (let j = i - 1; j >= 0 && j >= i - 16; j--) {
    const line = s.text[j] ?? ''
    if (isRule(line) || /^[╭╰┌└]/.test(line)) break
    if (line !== '') title = line
  }
  return title === null ? null : clip(title)
}

// ------------------------------------------------------------------------------- per tool

/** Claude Code: the footer says `esc to interrupt` while it works; `❯` under a rule is idle. */
function claude(s: Screen): ScreenVerdict | null {
  const prompt = promptBoxLine(s)
  const reason = dialogReason(s, prompt)
  if (reason !== null) return { status: 'waiting', reason }
  const footer = s.text.slice(-4)
  if (footer.some((l) => /esc to interrupt/i.test(l))) return { status: 'working' }
  if (prompt >= 0) return { status: 'idle' }
  return null
}

/** Copilot CLI: `esc esc interrupt` / `Working` in the status line while busy. */
function copilot(s: Screen): ScreenVerdict | null {
  const prompt = promptBoxLine(s)
  const reason = dialogReason(s, prompt)
  if (reason !== null) return { status: 'waiting', reason }
  const footer = s.text.slice(-3)
  if (footer.some((l) => /esc esc interrupt|^\S\s?Working\b/i.test(l))) return { status: 'working' }
  const login = s.text.slice(-12).find((l) => /(?:use|run) \/login\b|must be logged in/i.test(l))
  if (login !== undefined) return { status: 'waiting', reason: clip(login) }
  if (prompt >= 0) return { status: 'idle' }
  return null
}

/**
 * opencode: a permission (`△ Permission required` over `Allow once  Allow always  Reject`) or a
 * question (`enter submit  esc dismiss` under it) waits; `esc interrupt` in the status bar while
 * busy; the prompt box's `Build · <model>` line when idle.
 */
function opencode(s: Screen): ScreenVerdict | null {
  const from = Math.max(0, s.text.length - 40)
  for (let i = s.text.length - 1; i >= from; i--) {
    const line = s.text[i] ?? ''
    if (/^\S?\s?Permission required\b/.test(line)) {
      const below = s.text.slice(i + 1, i + 16)
      const end = below.findIndex((l) => /Allow once|Reject/.test(l))
      if (end < 0) continue
      // What is asked: the panel's first lines (`# Shell command`, `$ touch …`, `→ Edit x`).
      const detail = below
        .slice(0, end)
        .filter((l) => l !== '')
        .slice(0, 3)
      return { status: 'waiting', reason: clip(`Permission required: ${detail.join(' ')}`) }
    }
    if (/enter submit|esc dismiss/.test(line)) {
      const q = questionAbove(s, i, 24, false)
      return { status: 'waiting', reason: q ?? 'a question is waiting' }
    }
  }
  const footer = s.text.slice(-6)
  if (footer.some((l) => /esc (?:again to )?interrupt/i.test(l))) return { status: 'working' }
  // The prompt box sits at the bottom, or mid-screen on the start page (centred: any height).
  if (s.text.slice(-60).some((l) => /^(?:Build|Plan)\s·\s\S/.test(l))) return { status: 'idle' }
  return null
}

const RULES: Record<ToolName, (s: Screen) => ScreenVerdict | null> = { claude, copilot, opencode }

/**
 * What the screen says the agent is doing; null when the screen matches no known pattern of the
 * tool (the caller keeps what the other signals say). Never throws. The title is not used: in the
 * corpus it told no states apart (Claude Code keeps `✳ Claude Code`, Copilot CLI and opencode show
 * the session's first prompt, and after the exit it is empty or the host name).
 */
export function classifyScreen(input: ScreenInput): ScreenVerdict | null {
  try {
    if (typeof input.screen !== 'string') return null
    const s = readScreen(input.screen)
    if (s.raw.length === 0) return null
    if (atShell(s)) return { status: 'exited' }
    const rule = Object.hasOwn(RULES, input.tool) ? RULES[input.tool] : undefined
    return rule ? rule(s) : null
  } catch {
    return null
  }
}
