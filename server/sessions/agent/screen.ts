// Issue 17: the screen fallback's classifier. Given what a tool's tmux pane shows (and its title),
// says what the agent is doing, from the prompt patterns of each tool recorded from the real image
// (fixtures in ./fixtures/). Pure: no I/O, no clock.
import type { ToolName } from '../../../shared/tools.ts'
import type { AgentStatusName } from '../../../shared/schemas/sessions.ts'

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

/**
 * What the screen says the agent is doing; null when the screen matches no known pattern of the
 * tool (the caller keeps what the other signals say).
 */
export function classifyScreen(_input: ScreenInput): ScreenVerdict | null {
  // Replaced by the classifier built from the recorded corpus (issue 17, in progress).
  return null
}
