import type { ToolName } from '../../shared/tools.ts'

export interface ToolSpec {
  /** argv for a new session. */
  start(sessionId: string): string[]
  /** argv to pick up where the previous launch left off. */
  resume(previousSessionId: string | undefined): string[]
  /** Host files/dirs copied into the container home (relative to the host home). */
  configDir?: { dir: string; files: string[]; secretFiles: string[]; dirs: string[] }
  stateFile?: string
  /** Settings merged into the tool's settings so it runs without permission prompts. */
  sandboxSettings(effortLevel: string): Record<string, unknown>
}

const CLAUDE_FLAGS = ['--verbose', '--permission-mode', 'bypassPermissions']

// clincus-behaviour §1.3 / §1.4.
export const TOOL_SPECS: Record<ToolName, ToolSpec> = {
  claude: {
    start: (id) => ['claude', ...CLAUDE_FLAGS, '--session-id', id],
    resume: (prev) =>
      prev
        ? ['claude', ...CLAUDE_FLAGS, '--resume', prev]
        : ['claude', ...CLAUDE_FLAGS, '--continue'],
    configDir: {
      dir: '.claude',
      files: ['config.yml', 'settings.json'],
      secretFiles: ['.credentials.json'],
      dirs: ['plugins', 'hooks'],
    },
    stateFile: '.claude.json',
    sandboxSettings: (effort) => {
      const level = effort || 'medium'
      return {
        allowDangerouslySkipPermissions: true,
        bypassPermissionsModeAccepted: true,
        permissions: { defaultMode: 'bypassPermissions' },
        effortLevel: level,
        effortLevelAccepted: true,
        hasSeenEffortPrompt: true,
        effortCalloutDismissed: true,
        env: { CLAUDE_CODE_EFFORT_LEVEL: level },
      }
    },
  },
  copilot: {
    start: () => ['copilot', '--allow-all-tools'],
    resume: () => ['copilot', '--allow-all-tools', '--resume'],
    configDir: {
      dir: '.copilot',
      files: ['config.json', 'mcp-config.json'],
      secretFiles: [],
      dirs: ['agents'],
    },
    stateFile: '.copilot.json',
    sandboxSettings: () => ({}),
  },
  opencode: {
    start: () => ['opencode'],
    resume: () => ['opencode', '--continue'],
    stateFile: '.opencode.json',
    sandboxSettings: () => ({ permission: { '*': 'allow' } }),
  },
}

/** dict.update semantics of the original's merge: nested objects merge one level, others overwrite. */
export function mergeSettings(
  base: Record<string, unknown>,
  extra: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(extra)) {
    const cur = out[k]
    if (isObject(cur) && isObject(v)) out[k] = { ...cur, ...v }
    else out[k] = v
  }
  return out
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * The tmux command: the tool runs under a shell wrapper that reports its exit code and then
 * leaves an interactive shell, so the pane (and the session) outlive the tool. argv is passed as
 * positional parameters, never spliced into the script.
 */
export function toolWrapperArgv(toolArgv: readonly string[]): string[] {
  const script =
    'trap : INT; "$@"; code=$?; printf "\\r\\n[%s exited with code %d]\\r\\n" "$1" "$code"; exec bash --login'
  return ['bash', '-c', script, 'clincus-tool', ...toolArgv]
}
