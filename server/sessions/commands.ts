// What runs inside a session's container, as data: argv arrays and the exec options they run with.
// Pure functions (no Incus call here), so each is tested as such (commands.test.ts); the callers
// hand them to the driver, which passes every value after `--`.
import type { Config } from '../../shared/schemas/config.ts'
import type { ExecOptions } from '../incus/driver.ts'
import { tmuxSessionName } from './naming.ts'
import { TRUECOLOR_ENV, tmuxStartArgv } from './tmux.ts'
import { TOOL_EXIT_OPTION, toolWrapperArgv } from './tools.ts'

/** Where the workspace is mounted in every session. */
export const CONTAINER_WORKSPACE = '/workspace'
/** `[security] agent_sudo`: the sudoers line pushed into the session (the images grant no sudo). */
export const SUDOERS_PATH = '/etc/sudoers.d/clincus-code'
/** The readiness probe: the container runs processes. */
export const READY_PROBE: readonly string[] = ['true']

/** One command for `driver.exec`: argv and its options (user, group, cwd, env, stdin). */
export interface ContainerCommand {
  argv: string[]
  opts: Pick<ExecOptions, 'user' | 'group' | 'cwd' | 'env' | 'stdin'>
}

/**
 * Run by bash in front of a command: exports each NUL-terminated `KEY=VALUE` read from stdin,
 * then execs the command (`$@`). How secrets reach a process in the container: every argument
 * of the host's `incus exec` (an `--env KEY=VALUE` too) is in its world-readable
 * /proc/<pid>/cmdline, which any local user can read with `ps`.
 */
export const ENV_FROM_STDIN = 'while IFS= read -r -d "" kv; do export "$kv"; done; exec "$@"'

/**
 * The tool's argv with `[tool] binary` applied: a non-empty binary replaces the command (the
 * first word), the tool's own flags stay. The config schema refuses a binary starting with `-`.
 */
export function toolArgv(specArgv: readonly string[], binary: string): string[] {
  const [command, ...args] = specArgv
  return [binary === '' ? (command ?? '') : binary, ...args]
}

/** The code user's home in the container. */
export function codeHome(config: Config): string {
  return `/home/${config.incus.code_user}`
}

/**
 * How long (s) the tool has to show something in its pane before the create answers anyway.
 * Generous: a real agent draws within ~1-3 s of a cold start, and CI is 5x slower.
 */
export const TOOL_OUTPUT_DEADLINE_S = 30

/** The exit code of {@link START_AND_WAIT} when the pane was still blank at the deadline. */
export const TOOL_SILENT_EXIT = 75

/** The exit code of {@link START_AND_WAIT} when the tool's tmux session went away. */
export const TOOL_GONE_EXIT = 76

/**
 * Run by bash: starts the tool's tmux session (the tmux argv after `$1` session and `$2` deadline
 * in seconds), then polls the pane every 50 ms inside the container, in the same `incus exec` (no
 * host process per poll), until it holds a non-blank character: issue 16's readiness, "the
 * agent's pane exists and has produced output". Exits 0 then; {@link TOOL_SILENT_EXIT} at the
 * deadline; {@link TOOL_GONE_EXIT} when the session is gone; tmux's own code when it could not
 * start. Nothing of the pane is printed (it is the agent's output: hostile, and not needed).
 */
export const START_AND_WAIT = [
  'session=$1; polls=$(($2 * 20)); shift 2',
  '"$@" || exit',
  'while :; do',
  `  screen=$(tmux capture-pane -p -t "=$session:") || exit ${String(TOOL_GONE_EXIT)}`,
  '  [ -n "${screen//[[:space:]]/}" ] && exit 0',
  `  [ "$polls" -le 0 ] && exit ${String(TOOL_SILENT_EXIT)}`,
  '  polls=$((polls - 1)); sleep 0.05',
  'done',
].join('\n')

/**
 * Starts the tool's tmux session (detached) as the code user in the workspace, with the
 * profile's environment under clincus' own variables (which win), and waits (in the container,
 * {@link START_AND_WAIT}) until its pane shows output or `deadlineS` passes. The profile's values
 * (API keys) go through stdin to {@link ENV_FROM_STDIN}, never on the host's command line. Throws
 * when a value holds a NUL (no environment can).
 */
export function startToolCommand(
  name: string,
  config: Config,
  argv: readonly string[],
  profileEnv: Readonly<Record<string, string>> = {},
  deadlineS: number = TOOL_OUTPUT_DEADLINE_S,
): ContainerCommand {
  if (!Number.isInteger(deadlineS) || deadlineS < 0)
    throw new Error(`the tool's output deadline must be whole seconds, not ${String(deadlineS)}`)
  const uid = config.incus.code_uid
  const user = config.incus.code_user
  const env: Record<string, string> = {
    HOME: codeHome(config),
    USER: user,
    LOGNAME: user,
    TERM: 'xterm-256color',
    ...TRUECOLOR_ENV,
    IS_SANDBOX: '1',
  }
  const secret = Object.entries(profileEnv).filter(([k]) => !Object.hasOwn(env, k))
  if (secret.some(([, v]) => v.includes('\0')))
    throw new Error("a profile's environment value holds a NUL character")
  const session = tmuxSessionName(name)
  const tmux = tmuxStartArgv(session, CONTAINER_WORKSPACE, toolWrapperArgv(argv))
  const start = ['bash', '-c', START_AND_WAIT, 'clincus-start', session, String(deadlineS), ...tmux]
  const opts = { user: uid, group: uid, cwd: CONTAINER_WORKSPACE, env }
  if (secret.length === 0) return { argv: start, opts }
  return {
    argv: ['bash', '-c', ENV_FROM_STDIN, 'clincus-env', ...start],
    opts: { ...opts, stdin: secret.map(([k, v]) => `${k}=${v}\0`).join('') },
  }
}

/** Exits 0 when the tool's tmux session exists. */
export function toolRunningCommand(name: string, config: Config): ContainerCommand {
  const uid = config.incus.code_uid
  return {
    argv: ['tmux', 'has-session', '-t', `=${tmuxSessionName(name)}`],
    opts: { user: uid, group: uid, env: { HOME: codeHome(config) } },
  }
}

/**
 * Prints the tool's exit code when it has ended (the wrapper's pane option), nothing while it
 * runs; fails when its tmux session is gone.
 */
export function toolExitCommand(name: string, config: Config): ContainerCommand {
  const uid = config.incus.code_uid
  return {
    argv: [
      'tmux',
      'display-message',
      '-p',
      '-t',
      `=${tmuxSessionName(name)}:`,
      `#{${TOOL_EXIT_OPTION}}`,
    ],
    opts: { user: uid, group: uid, env: { HOME: codeHome(config) } },
  }
}

/** Ends the tool's tmux session (and the tool); exits non-zero when there was none. */
export function stopToolCommand(name: string, config: Config): ContainerCommand {
  const uid = config.incus.code_uid
  return {
    argv: ['tmux', 'kill-session', '-t', `=${tmuxSessionName(name)}`],
    opts: { user: uid, group: uid, env: { HOME: codeHome(config) } },
  }
}

/** Mounts a tmpfs of `size` (mount(8) units, e.g. "512M") on /tmp, as root. */
export function tmpfsCommand(size: string): ContainerCommand {
  return {
    argv: ['mount', '-t', 'tmpfs', '-o', `size=${size},mode=1777`, 'tmpfs', '/tmp'],
    opts: {},
  }
}

/** The sudoers file's content for `[security] agent_sudo`. */
export function sudoersLine(config: Config): string {
  return `${config.incus.code_user} ALL=(ALL:ALL) NOPASSWD: ALL\n`
}

/** `attach`: the session's tmux session (/ws/terminal); `shell`: a login shell (/ws/shell). */
export type TerminalKind = 'attach' | 'shell'

/** A terminal's process in the container, for `driver.execArgv` with a tty. */
export function terminalCommand(
  id: string,
  kind: TerminalKind,
  user: { uid: number; name: string },
): ContainerCommand {
  const home = `/home/${user.name}`
  // tmux replaces every non-ASCII character with '_' for a client it believes cannot do UTF-8:
  // `-u` and a UTF-8 locale make sure it never does (C.UTF-8 is built into Debian's libc).
  // COLORTERM: the shell tab's programs (and a tmux run by hand) may use 24-bit colour.
  const env = { TERM: 'xterm-256color', ...TRUECOLOR_ENV, HOME: home, LANG: 'C.UTF-8' }
  if (kind === 'attach') {
    return {
      argv: ['tmux', '-u', 'attach-session', '-t', `=${tmuxSessionName(id)}`],
      opts: { user: user.uid, group: user.uid, env },
    }
  }
  return {
    argv: ['bash', '--login'],
    opts: {
      user: user.uid,
      group: user.uid,
      cwd: CONTAINER_WORKSPACE,
      env: { ...env, USER: user.name, LOGNAME: user.name, SHELL: '/bin/bash' },
    },
  }
}
