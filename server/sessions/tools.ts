import type { ToolName } from '../../shared/tools.ts'

/** A host file copied into the container home (path relative to both homes). */
export interface CopiedFile {
  path: string
  /** Holds credentials or account data: 0600 in the container. */
  secret: boolean
  /**
   * JSON files: the object actually copied (keys the tool needs, without other projects' data or
   * secrets). Without it the file is copied as it is.
   */
  select?: (host: Record<string, unknown>) => Record<string, unknown>
  /** Merge the tool's sandbox settings in, creating the file when the host has none. */
  sandbox?: boolean
}

export interface ToolSpec {
  /** argv for a new session. */
  start(sessionId: string): string[]
  /** argv to pick up where the previous launch left off. */
  resume(previousSessionId: string | undefined): string[]
  /** What is copied from the host home (README "What a session gets of your tool config"). */
  copy: {
    files: CopiedFile[]
    /** Directories copied whole (regular files only, no links), relative to the home. */
    dirs: string[]
  }
  /** Settings merged into the tool's settings so it runs without permission prompts. */
  sandboxSettings(effortLevel: string): Record<string, unknown>
}

const CLAUDE_FLAGS = ['--verbose', '--permission-mode', 'bypassPermissions']

/**
 * The keys of ~/.claude.json a session needs to start signed in, past onboarding, with the
 * user's look: the account (oauthAccount, userID), an API key login (primaryApiKey,
 * customApiKeyResponses), the onboarding flags (without hasCompletedOnboarding the TUI shows the
 * login picker even with valid credentials: anthropics/claude-code#8938) and display preferences.
 * Everything else stays on the host: `projects` (every other project's history, trust and MCP
 * servers), top-level `mcpServers` (their env holds secrets), caches and counters.
 */
export const CLAUDE_STATE_KEYS = [
  'oauthAccount',
  'userID',
  'primaryApiKey',
  'customApiKeyResponses',
  'hasAvailableSubscription',
  'hasCompletedOnboarding',
  'lastOnboardingVersion',
  'bypassPermissionsModeAccepted',
  'hasAcknowledgedCostThreshold',
  'theme',
  'editorMode',
  'verbose',
  'autoCompactEnabled',
  'preferredNotifChannel',
  'autoUpdates',
  'installMethod',
] as const

// An env entry whose name says it is a credential; values that look like well-known token formats.
const SECRET_NAME =
  /(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|AUTH|PAT)(_|$)/i
const SECRET_VALUE = /^(sk-|ghp_|gho_|ghu_|ghs_|github_pat_|xox[abp]-|AKIA|glpat-|AIza)/

function pick(obj: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const k of keys) if (Object.hasOwn(obj, k)) out[k] = obj[k]
  return out
}

function omit(obj: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...obj }
  for (const k of keys) Reflect.deleteProperty(out, k)
  return out
}

/**
 * settings.json without secrets in `env`: entries named like credentials (…_API_KEY, …_TOKEN,
 * …_SECRET, …) or holding a well-known token format are dropped. A session that needs such a
 * variable gets it from a `[profiles.<name>] environment`, which the user sets for that purpose.
 */
export function withoutSecretEnv(settings: Record<string, unknown>): Record<string, unknown> {
  const env = settings.env
  if (!isObject(env)) return settings
  const kept: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(env)) {
    if (SECRET_NAME.test(k)) continue
    if (typeof v === 'string' && SECRET_VALUE.test(v.trim())) continue
    kept[k] = v
  }
  return { ...settings, env: kept }
}

// clincus-behaviour §1.3 / §1.4, narrowed by issue 10 row 10.
export const TOOL_SPECS: Record<ToolName, ToolSpec> = {
  claude: {
    start: (id) => ['claude', ...CLAUDE_FLAGS, '--session-id', id],
    resume: (prev) =>
      prev
        ? ['claude', ...CLAUDE_FLAGS, '--resume', prev]
        : ['claude', ...CLAUDE_FLAGS, '--continue'],
    copy: {
      files: [
        { path: '.claude/.credentials.json', secret: true },
        { path: '.claude/settings.json', secret: false, select: withoutSecretEnv, sandbox: true },
        { path: '.claude/config.yml', secret: false },
        {
          path: '.claude.json',
          secret: true,
          select: (v) => pick(v, CLAUDE_STATE_KEYS),
          sandbox: true,
        },
      ],
      dirs: ['.claude/plugins', '.claude/hooks'],
    },
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
    copy: {
      files: [
        // Holds the sign-in (the token itself where no keychain exists, as on a server); the
        // trusted folders are the host paths of other projects.
        {
          path: '.copilot/config.json',
          secret: true,
          select: (v) => omit(v, ['trusted_folders', 'trustedFolders']),
        },
        { path: '.copilot.json', secret: true, select: (v) => omit(v, ['mcpServers']) },
      ],
      // Not mcp-config.json: MCP server definitions carry their secrets in env.
      dirs: ['.copilot/agents'],
    },
    sandboxSettings: () => ({}),
  },
  opencode: {
    start: () => ['opencode'],
    resume: () => ['opencode', '--continue'],
    copy: {
      files: [
        {
          path: '.opencode.json',
          secret: true,
          select: (v) => omit(v, ['mcpServers', 'mcp']),
          sandbox: true,
        },
        { path: '.config/opencode/opencode.json', secret: true, select: (v) => omit(v, ['mcp']) },
        { path: '.local/share/opencode/auth.json', secret: true },
      ],
      dirs: [],
    },
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

/** The pane option the tool's wrapper sets to the tool's exit code when it ends. */
export const TOOL_EXIT_OPTION = '@clincus_exit'

/**
 * The tmux command: the tool runs under a shell wrapper that reports its exit code (on screen,
 * and in the pane option {@link TOOL_EXIT_OPTION}) and then leaves an interactive shell, so the
 * pane (and the session) outlive the tool. argv is passed as positional parameters, never
 * spliced into the script.
 */
export function toolWrapperArgv(toolArgv: readonly string[]): string[] {
  const script =
    'trap : INT; "$@"; code=$?; ' +
    `tmux set-option -p ${TOOL_EXIT_OPTION} "$code" 2>/dev/null; ` +
    'printf "\\r\\n[%s exited with code %d]\\r\\n" "$1" "$code"; exec bash --login'
  return ['bash', '-c', script, 'clincus-tool', ...toolArgv]
}
