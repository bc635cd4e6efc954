// Issue 17: what a session's container gets so its tool reports to the hook channel, as pure
// builders (no I/O): the hook script, the Claude Code hooks merged into its settings (the user's
// own hooks kept), and an opencode plugin. Copilot CLI reads hooks only from the repository
// (`.github/hooks/*.json` in the workspace, docs.github.com .../cli-hooks-reference), which
// clincus never writes into: its status comes from the screen fallback.
import type { ToolName } from '../../../shared/tools.ts'
import { PROXY_HOST, PROXY_PORT } from '../../network/container.ts'

/**
 * Where the channel listens inside the container (plain bash `/dev/tcp` reaches it): the
 * session's one proxy device, shared with the egress proxy (issue 16), which routes a connection
 * here when its first byte is `{` (so every line sent starts with one).
 */
export const AGENT_HOST = PROXY_HOST
export const AGENT_PORT = PROXY_PORT
export const AGENT_LISTEN = `${AGENT_HOST}:${AGENT_PORT}`
/** The hook script, relative to the code user's home. */
export const HOOK_SCRIPT = '.clincus/agent-hook'
/** Bytes of one payload the script forwards; a bigger one is replaced by its event name alone. */
export const HOOK_PAYLOAD_MAX = 65_536

/**
 * The hook script (bash): reads the hook's stdin JSON (at most 2 s, HOOK_PAYLOAD_MAX bytes),
 * forwards it as one line starting with `{` (leading blanks removed; anything else is replaced by
 * the event name alone), and returns at once: the send runs in the background, bounded by 2 s.
 * `$1` is the event name, used alone when the payload is too big or empty. `port`: tests only.
 */
export function hookScript(port: number = AGENT_PORT): string {
  return `#!/bin/bash
# clincus agent status hook (issue 17): forwards the JSON a tool gives its hooks on stdin, as one
# line, to clincus through ${AGENT_LISTEN} (the Incus proxy device to this session's socket, where
# a connection starting with "{" goes to the hook channel, anything else to the egress proxy).
# Never blocks the tool: stdin is read for at most 2 s, the line is sent in the background.
export LC_ALL=C
event=\${1//[^A-Za-z]/}
payload=$(timeout 2 head -c ${HOOK_PAYLOAD_MAX + 1} 2>/dev/null | tr '\\r\\n\\t' '   ')
payload=\${payload#"\${payload%%[! ]*}"}
if [ \${#payload} -gt ${HOOK_PAYLOAD_MAX} ] || [ "\${payload:0:1}" != "{" ]; then
  payload="{\\"hook_event_name\\":\\"$event\\"}"
fi
timeout 2 bash -c 'printf "%s\\n" "$1" >/dev/tcp/${AGENT_HOST}/${port}' clincus-hook "$payload" \\
  </dev/null >/dev/null 2>&1 &
exit 0
`
}

/** Claude Code events hooked, and whether they take a tool matcher. */
const CLAUDE_EVENTS: ReadonlyArray<{ event: string; tools: boolean }> = [
  { event: 'SessionStart', tools: false },
  { event: 'UserPromptSubmit', tools: false },
  { event: 'PreToolUse', tools: true },
  { event: 'PostToolUse', tools: true },
  { event: 'Notification', tools: false },
  { event: 'Stop', tools: false },
  { event: 'SessionEnd', tools: false },
]

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The command a Claude hook runs for `event`. */
export function hookCommand(containerHome: string, event: string): string {
  return `bash ${containerHome}/${HOOK_SCRIPT} ${event}`
}

/**
 * `settings` (Claude's settings.json) with clincus's hooks added: for each event, one matcher
 * group appended after the user's own. A user's event whose value is not an array is left as it
 * is (that event then does not report; the screen fallback covers it).
 */
export function withClaudeHooks(
  settings: Record<string, unknown>,
  containerHome: string,
): Record<string, unknown> {
  const hooks: Record<string, unknown> = isObject(settings.hooks) ? { ...settings.hooks } : {}
  for (const { event, tools } of CLAUDE_EVENTS) {
    const group = {
      ...(tools ? { matcher: '*' } : {}),
      hooks: [{ type: 'command', command: hookCommand(containerHome, event), timeout: 5 }],
    }
    const mine = hooks[event]
    if (mine === undefined) hooks[event] = [group]
    else if (Array.isArray(mine)) hooks[event] = [...(mine as unknown[]), group]
  }
  return { ...settings, hooks }
}

/**
 * The opencode plugin (loaded from ~/.config/opencode/plugins/ at start): its events sent in
 * Claude's vocabulary (hooks.ts) to the channel over node:net, never awaited by opencode.
 * `port`: tests only.
 */
export function opencodePlugin(port: number = AGENT_PORT): string {
  return `// clincus agent status (issue 17): opencode's events, sent to clincus's hook channel.
import net from 'node:net'

function send(payload) {
  try {
    const s = net.connect({ host: '${AGENT_HOST}', port: ${port} })
    s.on('error', () => {})
    s.setTimeout(2000, () => s.destroy())
    s.end(JSON.stringify(payload) + '\\n')
  } catch {}
}

function text(v) {
  return typeof v === 'string' ? v.slice(0, 1000) : 'permission requested'
}

export const ClincusStatus = async () => ({
  event: async ({ event }) => {
    const p = event.properties ?? {}
    switch (event.type) {
      case 'session.idle':
        send({ hook_event_name: 'Stop' })
        break
      case 'session.status':
        if (p.status?.type === 'busy' || p.status?.type === 'retry')
          send({ hook_event_name: 'UserPromptSubmit' })
        else if (p.status?.type === 'idle') send({ hook_event_name: 'Stop' })
        break
      case 'permission.asked':
      case 'permission.updated':
        send({ hook_event_name: 'Notification', notification_type: 'permission_prompt', message: text(p.title ?? p.permission) })
        break
      case 'question.asked':
        send({ hook_event_name: 'Notification', message: text(p.questions?.[0]?.question ?? p.question) })
        break
    }
  },
  'tool.execute.before': async () => {
    send({ hook_event_name: 'PreToolUse' })
  },
})
`
}

/** A file the tool-config copy adds (path relative to the home). */
export interface HookFile {
  path: string
  content: Buffer
  mode: number
}

/** What a tool-config copy adds for `tool`: extra files, and a change to one JSON file. */
export interface AgentHookInstall {
  files: HookFile[]
  /** The JSON file `path` (relative to the home) as it will be written; others unchanged. */
  transform(path: string, value: Record<string, unknown>): Record<string, unknown>
}

/** The hook installation of `tool` in a container whose code user's home is `containerHome`. */
export function agentHookInstall(tool: ToolName, containerHome: string): AgentHookInstall {
  const script: HookFile = { path: HOOK_SCRIPT, content: Buffer.from(hookScript()), mode: 0o755 }
  switch (tool) {
    case 'claude':
      return {
        files: [script],
        transform: (path, value) =>
          path === '.claude/settings.json' ? withClaudeHooks(value, containerHome) : value,
      }
    case 'opencode':
      return {
        files: [
          script,
          {
            path: '.config/opencode/plugins/clincus-status.js',
            content: Buffer.from(opencodePlugin()),
            mode: 0o644,
          },
        ],
        transform: (_path, value) => value,
      }
    case 'copilot':
      return { files: [script], transform: (_path, value) => value }
  }
}
