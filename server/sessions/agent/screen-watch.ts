// Issue 17: the screen fallback. tmux in the container watches the tool's pane (bell, silence,
// the pane's program ending; not title changes: the agents animate their title many times a
// second, which would start a process per frame and spend the channel's rate on nothing) and on each of those runs the hook script with the
// event `ClincusScreen`, so the trigger reaches clincus through the same channel as the hooks.
// On a trigger (at most one look per session at a time, and one per `minIntervalMs`) clincus
// reads the pane with one exec (the program in the foreground, the title, the visible text) and
// decides: the pane back at its shell (the tool wrapper of tools.ts ends in `exec bash --login`, so
// the pane's process no longer carries the wrapper's `clincus-tool` argv) is `exited`; otherwise, for a tool whose hooks have not
// spoken in this launch, the screen classifier's verdict (screen.ts). Everything read is hostile:
// capped, and only ever classified, never run.
import type { ToolName } from '../../../shared/tools.ts'
import type { ContainerCommand } from '../commands.ts'
import { tmuxSessionName } from '../naming.ts'
import { HOOK_SCRIPT } from './hook-files.ts'
import type { AgentSignal } from './hooks.ts'
import { classifyScreen } from './screen.ts'

/** The hook event names tmux's hooks send (the script keeps letters only), by tmux hook. */
export const SCREEN_EVENTS = {
  'alert-bell': 'ClincusScreenBell',
  'alert-silence': 'ClincusScreenSilence',
  'pane-exited': 'ClincusScreenExit',
  'pane-died': 'ClincusScreenExit',
} as const
export type ScreenTrigger = (typeof SCREEN_EVENTS)[keyof typeof SCREEN_EVENTS]
const TRIGGERS: ReadonlySet<string> = new Set(Object.values(SCREEN_EVENTS))

/** The screen trigger a hook event names, if it is one. */
export function screenTrigger(event: string): ScreenTrigger | null {
  return TRIGGERS.has(event) ? (event as ScreenTrigger) : null
}
/** Seconds without output after which tmux reports silence. */
export const SILENCE_S = 3
/** The tmux configuration file, relative to the code user's home (read after /etc/tmux.conf). */
export const TMUX_CONF = '.tmux.conf'
/** Bytes of a pane read kept (a 200x50 pane is ~10 KB; anything beyond is the container's noise). */
const MAX_SCREEN = 64 * 1024
/**
 * Bytes of output a pane read may print at all (the container runs it: a root agent can replace
 * tmux); more kills the read, so a hostile container never has the server buffer megabytes.
 */
export const PANE_READ_MAX_BYTES = 4 * MAX_SCREEN
/** The wrapper's $0 (tools.ts toolWrapperArgv): present in the pane process's argv while the tool runs. */
const WRAPPER_MARK = 'clincus-tool'

/**
 * ~/.tmux.conf of the session: alerts on, and their hooks running the hook script in the
 * background (`run-shell -b`: tmux never waits for it).
 */
export function tmuxConf(containerHome: string): string {
  const run = (event: string): string =>
    `run-shell -b 'bash ${containerHome}/${HOOK_SCRIPT} ${event} </dev/null'`
  return [
    '# clincus agent status (issue 17): the screen fallback’s triggers.',
    'set-option -g monitor-bell on',
    'set-option -g bell-action any',
    'set-option -g visual-bell off',
    `set-option -wg monitor-silence ${SILENCE_S}`,
    'set-option -g silence-action any',
    'set-option -g visual-silence off',
    ...Object.entries(SCREEN_EVENTS).map(([hook, event]) => `set-hook -g ${hook} "${run(event)}"`),
    '',
  ].join('\n')
}

/**
 * The one exec that reads the tool's pane: a first line `<tool running 0|1>|<pane dead 0|1>|<title>`,
 * then the visible text.
 */
export function readPaneCommand(
  container: string,
  user: { uid: number; home: string },
): ContainerCommand {
  const target = tmuxSessionName(container)
  return {
    argv: [
      'bash',
      '-c',
      [
        'IFS="|" read -r pid dead < <(tmux display-message -p -t "$1" "#{pane_pid}|#{pane_dead}") || exit 1',
        `w=0; case "$(tr '\\0\\n' '  ' </proc/$pid/cmdline 2>/dev/null)" in *${WRAPPER_MARK}*) w=1 ;; esac`,
        'printf "%s|%s|" "$w" "$dead"',
        'tmux display-message -p -t "$1" "#{pane_title}"',
        'tmux capture-pane -p -t "$1"',
      ].join('\n'),
      'clincus-screen',
      `${target}:`,
    ],
    opts: { user: user.uid, group: user.uid, env: { HOME: user.home } },
  }
}

export interface PaneRead {
  /** The tool wrapper still runs in the pane (the tool has not exited to the shell). */
  toolRunning: boolean
  dead: boolean
  title: string
  screen: string
}

/** Parses readPaneCommand's output; null when it is not that shape. */
export function parsePaneRead(stdout: string): PaneRead | null {
  const text = stdout.slice(0, MAX_SCREEN)
  const nl = text.indexOf('\n')
  if (nl === -1) return null
  const head = text.slice(0, nl).split('|')
  const [running, dead] = head
  if ((running !== '0' && running !== '1') || (dead !== '0' && dead !== '1')) return null
  return {
    toolRunning: running === '1',
    dead: dead === '1',
    title: head.slice(2).join('|').slice(0, 256),
    screen: text.slice(nl + 1),
  }
}

/**
 * What a pane read says: the pane dead or back at a shell is `exited`; else the classifier's
 * verdict. When the tool's hooks speak (`hooksSeen`), they say `working` sooner than the screen,
 * so only the screen's `idle` and `waiting` count: the cross-check for what fires no hook (Claude
 * Code runs none when Esc interrupts a turn or refuses a permission, nor for its startup dialogs:
 * recorded in fixtures/, replayed by combined.test.ts).
 */
export function screenSignal(
  tool: ToolName,
  pane: PaneRead,
  hooksSeen: boolean,
): AgentSignal | null {
  if (pane.dead || !pane.toolRunning) return { status: 'exited' }
  const verdict = classifyScreen({ tool, screen: pane.screen, title: pane.title })
  if (!verdict || (hooksSeen && verdict.status === 'working')) return null
  return {
    status: verdict.status,
    ...(verdict.reason ? { reason: verdict.reason } : {}),
  }
}
