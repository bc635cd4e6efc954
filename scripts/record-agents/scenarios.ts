// The recorded scenarios, as data: per tool, the sessions to start (argv, environment, config
// files) and the steps that drive them through tmux. Every `capture` step carries the label I
// gave the state from what the tool shows at that point of the script (never from the classifier):
// the recorder waits for the screen to reach the state, captures a few frames, and stores them
// with this label.
import type { ToolName } from '../../shared/tools.ts'
import { TOOL_SPECS } from '../../server/sessions/tools.ts'
import type { AgentStatusName } from '../../shared/schemas/sessions.ts'

/** The expected verdict of a captured frame. */
export interface Expect {
  status: AgentStatusName
  /** For `waiting`: text the classifier's reason must contain. */
  reasonIncludes?: string
}

export type Step =
  /** Literal text typed into the pane (`send-keys -l`). */
  | { text: string }
  /** tmux key names (`send-keys`), e.g. Enter, Escape, Down, C-u. */
  | { keys: string[] }
  | { pauseMs: number }
  /**
   * Waits until the screen matches (every pattern of a list, and `unless` does not); when it never does within
   * `timeoutMs`, the next `skip` steps are skipped (0: the run fails).
   */
  | {
      waitFor: RegExp | RegExp[]
      unless?: RegExp
      timeoutMs?: number
      skip?: number
      /** Keys sent every 3 s while waiting (Copilot sometimes misses Esc Esc; Ctrl+C cancels). */
      nudge?: string[]
    }
  | { capture: Expect; frames: number; everyMs: number; note: string }
  /** The number of hook events (Claude) recorded so far marks the end of a phase. */
  | { hooksExpect: AgentStatusName }

export interface SessionScript {
  /** Scenario name, part of the fixture file names. */
  name: string
  tool: ToolName
  argv: string[]
  env: Record<string, string>
  /** Files written in the code user's home before the tool starts (path relative to home). */
  files: Record<string, string>
  steps: Step[]
}

/** The mock model's port inside the recording container (loopback only). */
export const MOCK_PORT = 8765
const MOCK = `http://127.0.0.1:${MOCK_PORT}`
/** A fake key: the mock checks nothing, and it must look like nothing real. */
const FAKE_ANTHROPIC_KEY = 'sk-ant-mock-0000000000000000000000000000recording'
const FAKE_KEY = 'mock-key-not-secret'

const CLAUDE_SESSION = '11111111-2222-3333-4444-555555555555'
const CLAUDE_HOOK_EVENTS = [
  'SessionStart',
  'UserPromptSubmit',
  'PreToolUse',
  'PostToolUse',
  'PermissionRequest',
  'Notification',
  'Stop',
  'SubagentStop',
  'PreCompact',
  'SessionEnd',
]
/** Appends the hook's stdin JSON, as {t, event, payload}, one line per hook, to ~/hooks.jsonl. */
const HOOK_LOG = `#!/bin/sh
exec node -e 'let s="";process.stdin.setEncoding("utf8");process.stdin.on("data",d=>s+=d).on("end",()=>{let p;try{p=JSON.parse(s)}catch{p={unparsed:s}};require("fs").appendFileSync(process.env.HOME+"/hooks.jsonl",JSON.stringify({t:Date.now(),event:p.hook_event_name,payload:p})+"\\n")})'
`

function claudeFiles(bypass: boolean, onboarded: boolean): Record<string, string> {
  const hooks = Object.fromEntries(
    CLAUDE_HOOK_EVENTS.map((e) => [
      e,
      [{ matcher: '', hooks: [{ type: 'command', command: '/home/code/.claude/hook-log.sh' }] }],
    ]),
  )
  // What clincus merges in (server/sessions/tools.ts sandboxSettings), plus the hooks.
  const settings = {
    ...(bypass
      ? {
          allowDangerouslySkipPermissions: true,
          bypassPermissionsModeAccepted: true,
          permissions: { defaultMode: 'bypassPermissions' },
        }
      : {}),
    effortLevel: 'medium',
    effortLevelAccepted: true,
    hasSeenEffortPrompt: true,
    effortCalloutDismissed: true,
    env: { CLAUDE_CODE_EFFORT_LEVEL: 'medium' },
    hooks,
  }
  // ~/.claude.json: onboarding done, the fake key approved, /workspace trusted.
  const state = {
    hasCompletedOnboarding: true,
    lastOnboardingVersion: '2.1.332',
    theme: 'dark',
    ...(bypass ? { bypassPermissionsModeAccepted: true } : {}),
    customApiKeyResponses: { approved: [FAKE_ANTHROPIC_KEY.slice(-20)], rejected: [] },
    projects: { '/workspace': { hasTrustDialogAccepted: true, allowedTools: [] } },
  }
  return {
    '.claude/hook-log.sh': HOOK_LOG,
    '.claude/settings.json': JSON.stringify(settings, null, 2),
    ...(onboarded ? { '.claude.json': JSON.stringify(state, null, 2) } : {}),
  }
}

const CLAUDE_ENV = {
  ANTHROPIC_BASE_URL: MOCK,
  ANTHROPIC_API_KEY: FAKE_ANTHROPIC_KEY,
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
}

const idle = { status: 'idle' } as const
const working = { status: 'working' } as const
const exited = { status: 'exited' } as const
const waiting = (reasonIncludes: string): Expect => ({ status: 'waiting', reasonIncludes })

/** Types a prompt and sends it. */
const say = (text: string): Step[] => [{ text }, { pauseMs: 400 }, { keys: ['Enter'] }]

const EXITED = /exited with code \d+\]/

// ------------------------------------------------------------------------------------- Claude
const CLAUDE_IDLE = /^❯\s*$/m
const CLAUDE_BUSY = /esc to interrupt/

const claudeMain: SessionScript = {
  name: 'main',
  tool: 'claude',
  // clincus' own argv.
  argv: TOOL_SPECS.claude.start(CLAUDE_SESSION),
  env: CLAUDE_ENV,
  files: claudeFiles(true, true),
  steps: [
    { waitFor: /Make auto mode your default/, timeoutMs: 30_000, skip: 3 },
    { capture: waiting('auto mode'), frames: 3, everyMs: 500, note: 'startup: auto mode offer' },
    { keys: ['Down'] },
    { keys: ['Enter'] },
    { waitFor: CLAUDE_IDLE, unless: /Make auto mode/ },
    { pauseMs: 1500 },
    { capture: idle, frames: 3, everyMs: 500, note: 'startup: empty prompt' },
    { hooksExpect: 'idle' },
    { text: 'a draft the user has not sent yet' },
    { pauseMs: 600 },
    { capture: idle, frames: 2, everyMs: 400, note: 'a draft in the prompt' },
    { keys: ['C-u'] },
    ...say('say hello'),
    { waitFor: /scripted model/, unless: CLAUDE_BUSY },
    { pauseMs: 800 },
    { capture: idle, frames: 3, everyMs: 500, note: 'after a text answer' },
    { hooksExpect: 'idle' },
    ...say('write something long'),
    { waitFor: CLAUDE_BUSY },
    { pauseMs: 1000 },
    { capture: working, frames: 6, everyMs: 700, note: 'streaming a long answer' },
    { hooksExpect: 'working' },
    { keys: ['Escape'] },
    { waitFor: CLAUDE_IDLE, unless: CLAUDE_BUSY },
    { pauseMs: 800 },
    { capture: idle, frames: 3, everyMs: 500, note: 'after Esc interrupted the answer' },
    ...say('run something slow'),
    { waitFor: [/setTimeout/, CLAUDE_BUSY] },
    { pauseMs: 1500 },
    { capture: working, frames: 5, everyMs: 900, note: 'a Bash tool running' },
    { hooksExpect: 'working' },
    { keys: ['Escape'] },
    { waitFor: CLAUDE_IDLE, unless: CLAUDE_BUSY },
    { pauseMs: 800 },
    { capture: idle, frames: 2, everyMs: 500, note: 'after Esc interrupted the tool' },
    { hooksExpect: 'idle' },
    ...say('ask me a question'),
    { waitFor: /Which database/ },
    { pauseMs: 800 },
    {
      capture: waiting('Which database should the project use?'),
      frames: 4,
      everyMs: 500,
      note: 'AskUserQuestion',
    },
    { hooksExpect: 'waiting' },
    { keys: ['Enter'] },
    { waitFor: /Done\. The tool finished/, unless: CLAUDE_BUSY },
    { pauseMs: 800 },
    { capture: idle, frames: 3, everyMs: 500, note: 'after the question was answered' },
    { hooksExpect: 'idle' },
    { text: '/exit' },
    { pauseMs: 800 },
    { keys: ['Enter'] },
    { waitFor: EXITED },
    { pauseMs: 800 },
    { capture: exited, frames: 2, everyMs: 500, note: 'back at the shell' },
    ...say('ls -la'),
    { pauseMs: 800 },
    { capture: exited, frames: 1, everyMs: 500, note: 'a command typed in the shell after exit' },
    { hooksExpect: 'exited' },
  ],
}

const claudePerms: SessionScript = {
  name: 'perms',
  tool: 'claude',
  // Without clincus' bypass: what a user who turns the sandbox off (or a plain install) sees.
  argv: ['claude', '--verbose', '--permission-mode', 'default', '--session-id', CLAUDE_SESSION],
  env: CLAUDE_ENV,
  files: claudeFiles(false, true),
  steps: [
    { waitFor: CLAUDE_IDLE, timeoutMs: 30_000 },
    { pauseMs: 1500 },
    { capture: idle, frames: 2, everyMs: 500, note: 'startup: empty prompt (default mode)' },
    { hooksExpect: 'idle' },
    ...say('please run the command'),
    { waitFor: /Do you want to proceed/ },
    { pauseMs: 800 },
    {
      capture: waiting('Do you want to proceed?'),
      frames: 4,
      everyMs: 500,
      note: 'Bash permission',
    },
    { hooksExpect: 'waiting' },
    { keys: ['Enter'] },
    { waitFor: /Done\. The tool finished/, unless: CLAUDE_BUSY },
    { pauseMs: 800 },
    { capture: idle, frames: 2, everyMs: 500, note: 'after the permission was granted' },
    { hooksExpect: 'idle' },
    ...say('edit the notes file'),
    { waitFor: /Do you want to (create|make this edit|write)/ },
    { pauseMs: 800 },
    {
      capture: waiting('Do you want to create notes.txt?'),
      frames: 4,
      everyMs: 500,
      note: 'Write permission',
    },
    { hooksExpect: 'waiting' },
    { keys: ['Escape'] },
    { waitFor: CLAUDE_IDLE, unless: /Do you want to/ },
    { pauseMs: 800 },
    { capture: idle, frames: 2, everyMs: 500, note: 'after the edit was refused' },
    { hooksExpect: 'idle' },
    { text: '/exit' },
    { pauseMs: 800 },
    { keys: ['Enter'] },
    { waitFor: EXITED },
    { pauseMs: 800 },
    { capture: exited, frames: 2, everyMs: 500, note: 'back at the shell after /exit' },
    { hooksExpect: 'exited' },
  ],
}

const claudeFirstRun: SessionScript = {
  name: 'firstrun',
  tool: 'claude',
  // No ~/.claude.json: the bypass mode warning, then the onboarding checks api.anthropic.com,
  // which no session reaches here.
  argv: TOOL_SPECS.claude.start(CLAUDE_SESSION),
  env: CLAUDE_ENV,
  files: {},
  steps: [
    { waitFor: /Bypass Permissions mode/, timeoutMs: 30_000, skip: 4 },
    { pauseMs: 500 },
    {
      capture: waiting('Bypass Permissions mode'),
      frames: 3,
      everyMs: 500,
      note: 'startup: accept bypass mode',
    },
    { keys: ['Down'] },
    { keys: ['Enter'] },
    { waitFor: EXITED, timeoutMs: 60_000 },
    { pauseMs: 500 },
    {
      capture: exited,
      frames: 2,
      everyMs: 500,
      note: 'onboarding could not connect; back at the shell',
    },
  ],
}

// ------------------------------------------------------------------------------------ Copilot
const COPILOT_ENV = {
  COPILOT_PROVIDER_BASE_URL: `${MOCK}/v1`,
  COPILOT_PROVIDER_API_KEY: FAKE_KEY,
  COPILOT_MODEL: 'gpt-4.1',
}
const COPILOT_IDLE = /^❯\s*$/m
const COPILOT_BUSY = /esc (?:esc|again to) interrupt|Working ·|Thinking/
const COPILOT_TRUST: Step[] = [
  { waitFor: /Do you trust the files in this folder/, timeoutMs: 40_000, skip: 2 },
  { pauseMs: 500 },
  {
    capture: waiting('Do you trust the files in this folder?'),
    frames: 3,
    everyMs: 500,
    note: 'startup: folder trust',
  },
  { keys: ['Enter'] },
]

function copilotScript(name: string, argv: string[], steps: Step[]): SessionScript {
  return { name, tool: 'copilot', argv, env: COPILOT_ENV, files: {}, steps }
}

const copilotMain = copilotScript(
  'main',
  ['copilot', '--allow-all-tools'],
  [
    ...COPILOT_TRUST,
    { waitFor: COPILOT_IDLE, unless: /Do you trust/ },
    { pauseMs: 2000 },
    { capture: idle, frames: 3, everyMs: 500, note: 'startup: empty prompt' },
    { text: 'a draft the user has not sent yet' },
    { pauseMs: 600 },
    { capture: idle, frames: 2, everyMs: 400, note: 'a draft in the prompt' },
    { keys: ['C-u'] },
    ...say('say hello'),
    { waitFor: /scripted model/, unless: COPILOT_BUSY },
    { pauseMs: 1500 },
    { capture: idle, frames: 3, everyMs: 500, note: 'after a text answer' },
    ...say('write something long'),
    { waitFor: COPILOT_BUSY },
    { pauseMs: 1500 },
    { capture: working, frames: 6, everyMs: 700, note: 'streaming a long answer' },
    { keys: ['Escape', 'Escape'] },
    { waitFor: COPILOT_IDLE, unless: COPILOT_BUSY, nudge: ['C-c'] },
    { pauseMs: 1500 },
    { capture: idle, frames: 3, everyMs: 500, note: 'after Esc Esc cancelled the answer' },
    ...say('run something slow'),
    { waitFor: [/setTimeout|Build the project/, COPILOT_BUSY] },
    { pauseMs: 1500 },
    { capture: working, frames: 5, everyMs: 900, note: 'the shell tool running' },
    { keys: ['Escape', 'Escape'] },
    { waitFor: COPILOT_IDLE, unless: COPILOT_BUSY, nudge: ['C-c'] },
    { pauseMs: 1500 },
    { capture: idle, frames: 2, everyMs: 500, note: 'after Esc Esc cancelled the tool' },
    ...say('ask me a question'),
    { waitFor: [/Which database/, /PostgreSQL/] },
    { pauseMs: 800 },
    {
      capture: waiting('Which database should the project use?'),
      frames: 4,
      everyMs: 500,
      note: 'ask_user',
    },
    { keys: ['Enter'] },
    { pauseMs: 1000 },
    { keys: ['Enter'] },
    { waitFor: /Done\. The tool finished/, unless: COPILOT_BUSY },
    { pauseMs: 1500 },
    { capture: idle, frames: 3, everyMs: 500, note: 'after the question was answered' },
    { text: '/exit' },
    { pauseMs: 800 },
    { keys: ['Enter'] },
    { waitFor: EXITED },
    { pauseMs: 800 },
    { capture: exited, frames: 2, everyMs: 500, note: 'back at the shell' },
  ],
)

const copilotPerms = copilotScript(
  'perms',
  ['copilot'],
  [
    ...COPILOT_TRUST,
    { waitFor: COPILOT_IDLE, unless: /Do you trust/ },
    { pauseMs: 2000 },
    { capture: idle, frames: 2, everyMs: 500, note: 'startup: empty prompt (manual approval)' },
    ...say('please run the command'),
    { waitFor: /Do you want to run this command|Allow|approve/i, timeoutMs: 30_000 },
    { pauseMs: 800 },
    {
      capture: waiting('Do you want to run this command?'),
      frames: 4,
      everyMs: 500,
      note: 'shell permission',
    },
    { keys: ['Enter'] },
    { waitFor: /Done\. The tool finished/, unless: COPILOT_BUSY },
    { pauseMs: 1500 },
    { capture: idle, frames: 2, everyMs: 500, note: 'after the permission was granted' },
    ...say('edit the notes file'),
    { waitFor: /Do you want to (create|edit|make)/i, timeoutMs: 30_000, skip: 4 },
    { pauseMs: 800 },
    { capture: waiting('Do you want to'), frames: 4, everyMs: 500, note: 'file permission' },
    { keys: ['Escape'] },
    { waitFor: COPILOT_IDLE, unless: /esc esc interrupt|Working ·|Thinking|Do you want to/ },
    { pauseMs: 1500 },
    { capture: idle, frames: 2, everyMs: 500, note: 'after the edit was refused' },
    { keys: ['C-c'] },
    { pauseMs: 400 },
    { keys: ['C-c'] },
    { waitFor: EXITED, timeoutMs: 15_000, skip: 2 },
    { pauseMs: 800 },
    { capture: exited, frames: 2, everyMs: 500, note: 'back at the shell after Ctrl+C twice' },
  ],
)

/** Without BYOK and without a GitHub sign-in: what a session without credentials shows. */
const copilotSignedOut: SessionScript = {
  name: 'signedout',
  tool: 'copilot',
  argv: ['copilot', '--allow-all-tools'],
  env: {},
  files: {},
  steps: [
    ...COPILOT_TRUST,
    { waitFor: /\/login/, timeoutMs: 40_000 },
    { pauseMs: 1500 },
    { capture: waiting('/login'), frames: 2, everyMs: 500, note: 'not signed in: asks for /login' },
    ...say('say hello'),
    { pauseMs: 2500 },
    { capture: waiting('/login'), frames: 2, everyMs: 500, note: 'a prompt refused: must log in' },
  ],
}

// ----------------------------------------------------------------------------------- opencode
function opencodeConfig(permission: unknown): string {
  return JSON.stringify(
    {
      model: 'mock/mock-model',
      small_model: 'mock/mock-model',
      autoupdate: false,
      share: 'disabled',
      permission,
      provider: {
        mock: {
          npm: '@ai-sdk/openai-compatible',
          name: 'Mock',
          options: { baseURL: `${MOCK}/v1`, apiKey: FAKE_KEY },
          models: { 'mock-model': { name: 'Mock Model', tool_call: true } },
        },
      },
    },
    null,
    2,
  )
}
const OPENCODE_READY = /Build · Mock Model/
const OPENCODE_BUSY = /esc interrupt|esc again/i

const opencodeMain: SessionScript = {
  name: 'main',
  tool: 'opencode',
  argv: ['opencode'],
  env: {},
  // clincus' sandbox settings (permission '*': 'allow') in the user's config file.
  files: { '.config/opencode/opencode.json': opencodeConfig({ '*': 'allow' }) },
  steps: [
    { waitFor: OPENCODE_READY, timeoutMs: 60_000 },
    { pauseMs: 1500 },
    { capture: idle, frames: 3, everyMs: 500, note: 'startup: empty prompt' },
    { text: 'a draft the user has not sent yet' },
    { pauseMs: 600 },
    { capture: idle, frames: 2, everyMs: 400, note: 'a draft in the prompt' },
    { keys: ['C-u'] },
    ...say('say hello'),
    { waitFor: /scripted model/, unless: OPENCODE_BUSY, timeoutMs: 60_000 },
    { pauseMs: 1500 },
    { capture: idle, frames: 3, everyMs: 500, note: 'after a text answer' },
    ...say('write something long'),
    { waitFor: OPENCODE_BUSY },
    { pauseMs: 1500 },
    { capture: working, frames: 6, everyMs: 700, note: 'streaming a long answer' },
    { keys: ['Escape'] },
    { pauseMs: 300 },
    { keys: ['Escape'] },
    { waitFor: OPENCODE_READY, unless: OPENCODE_BUSY },
    { pauseMs: 1500 },
    { capture: idle, frames: 3, everyMs: 500, note: 'after Esc interrupted the answer' },
    ...say('run something slow'),
    { waitFor: [/setTimeout|Build the project/, OPENCODE_BUSY] },
    { pauseMs: 1500 },
    { capture: working, frames: 5, everyMs: 900, note: 'the bash tool running' },
    { keys: ['Escape'] },
    { pauseMs: 300 },
    { keys: ['Escape'] },
    { waitFor: OPENCODE_READY, unless: OPENCODE_BUSY },
    { pauseMs: 1500 },
    { capture: idle, frames: 2, everyMs: 500, note: 'after Esc interrupted the tool' },
    ...say('ask me a question'),
    { waitFor: /Which database/ },
    { pauseMs: 800 },
    {
      capture: waiting('Which database should the project use?'),
      frames: 4,
      everyMs: 500,
      note: 'question tool',
    },
    { keys: ['Enter'] },
    { pauseMs: 1000 },
    { waitFor: /Done\. The tool finished/, unless: OPENCODE_BUSY, timeoutMs: 20_000, skip: 2 },
    { pauseMs: 1500 },
    { capture: idle, frames: 3, everyMs: 500, note: 'after the question was answered' },
    { text: '/exit' },
    { pauseMs: 800 },
    { keys: ['Enter'] },
    { waitFor: EXITED },
    { pauseMs: 800 },
    { capture: exited, frames: 2, everyMs: 500, note: 'back at the shell' },
  ],
}

const opencodePerms: SessionScript = {
  name: 'perms',
  tool: 'opencode',
  argv: ['opencode'],
  env: {},
  files: { '.config/opencode/opencode.json': opencodeConfig({ '*': 'ask' }) },
  steps: [
    { waitFor: OPENCODE_READY, timeoutMs: 60_000 },
    { pauseMs: 1500 },
    { capture: idle, frames: 2, everyMs: 500, note: 'startup: empty prompt (permission ask)' },
    ...say('please run the command'),
    { waitFor: /Permission required/, timeoutMs: 30_000 },
    { pauseMs: 800 },
    {
      capture: waiting('Permission required'),
      frames: 4,
      everyMs: 500,
      note: 'bash permission',
    },
    { keys: ['Enter'] },
    { waitFor: /Done\. The tool finished/, unless: OPENCODE_BUSY, timeoutMs: 20_000, skip: 2 },
    { pauseMs: 1500 },
    { capture: idle, frames: 2, everyMs: 500, note: 'after the permission was granted' },
    ...say('edit the notes file'),
    { waitFor: /Permission required/, timeoutMs: 30_000, skip: 6 },
    { pauseMs: 800 },
    { capture: waiting('Permission required'), frames: 4, everyMs: 500, note: 'write permission' },
    { keys: ['Escape'] },
    { waitFor: OPENCODE_READY, unless: /Permission required|esc interrupt/, timeoutMs: 20_000 },
    { pauseMs: 1500 },
    { capture: idle, frames: 2, everyMs: 500, note: 'after the edit was refused' },
    { keys: ['C-c'] },
    { waitFor: EXITED, timeoutMs: 15_000, skip: 2 },
    { pauseMs: 800 },
    { capture: exited, frames: 2, everyMs: 500, note: 'back at the shell after Ctrl+C' },
  ],
}

export const SCRIPTS: readonly SessionScript[] = [
  claudeMain,
  claudePerms,
  claudeFirstRun,
  copilotMain,
  copilotPerms,
  copilotSignedOut,
  opencodeMain,
  opencodePerms,
]

/** The two pane sizes: the narrow one is studied for the rules, the wide one held out. */
export const SIZES = [
  { cols: 80, rows: 24, heldOut: false },
  { cols: 132, rows: 40, heldOut: true },
] as const
