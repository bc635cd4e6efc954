// What runs inside a session's container, as data: argv arrays and the exec options they run with.
// Pure functions (no Incus call here), so each is tested as such (commands.test.ts); the callers
// hand them to the driver, which passes every value after `--`.
import type { Config } from '../../shared/schemas/config.ts'
import type { ExecOptions } from '../incus/driver.ts'
import { tmuxSessionName } from './naming.ts'
import { TRUECOLOR_ENV, tmuxStartArgv } from './tmux.ts'
import { toolWrapperArgv } from './tools.ts'

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
 * Starts the tool's tmux session (detached) as the code user in the workspace, with the
 * profile's environment under clincus' own variables (which win). The profile's values (API
 * keys) go through stdin to {@link ENV_FROM_STDIN}, never on the host's command line. Throws
 * when a value holds a NUL (no environment can).
 */
export function startToolCommand(
  name: string,
  config: Config,
  argv: readonly string[],
  profileEnv: Readonly<Record<string, string>> = {},
): ContainerCommand {
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
  const tmux = tmuxStartArgv(tmuxSessionName(name), CONTAINER_WORKSPACE, toolWrapperArgv(argv))
  const opts = { user: uid, group: uid, cwd: CONTAINER_WORKSPACE, env }
  if (secret.length === 0) return { argv: tmux, opts }
  return {
    argv: ['bash', '-c', ENV_FROM_STDIN, 'clincus-env', ...tmux],
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
