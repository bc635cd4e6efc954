import type { PtyProcess } from '../pty/spawner.ts'
import type { IncusInstance } from './schemas.ts'

/** Options every driver call takes: a deadline and a way to cancel. */
export interface CallOptions {
  signal?: AbortSignal
  timeoutMs?: number
}

export interface ExecOptions extends CallOptions {
  user?: number
  group?: number
  cwd?: string
  env?: Record<string, string>
  /** Bytes for the command's stdin (e.g. a tar archive for `tar -x`); stdin is closed without. */
  stdin?: string | Uint8Array
  /**
   * Bytes of stdout (and of stderr) kept; a command printing more is killed and the call throws.
   * The container writes them: set it where a little output is expected. Default 64 MiB.
   */
  maxOutputBytes?: number
}

export interface ExecResult {
  stdout: string
  stderr: string
  exitCode: number
}

/** An interactive exec: `ExecOptions`' who, where and environment, and its terminal's size. */
export interface TerminalExecOptions extends Omit<ExecOptions, 'stdin' | 'maxOutputBytes'> {
  /** The terminal's size in cells (1-1000 each, checked by the caller). */
  cols: number
  rows: number
}

export interface InitOptions extends CallOptions {
  config?: Record<string, string>
  /** Root-disk device overrides (e.g. limits.read) applied at creation. */
  rootDisk?: Record<string, string>
}

export interface LifecycleEvent {
  action: string
  name: string
  project: string
  timestamp: string
}

/**
 * Everything clincus asks of Incus. The CLI implementation runs `incus` with argv arrays; the fake
 * keeps instances in memory for unit tests. Implementations honour the configured project.
 */
export interface IncusDriver {
  readonly project: string
  serverVersion(opts?: CallOptions): Promise<string>
  listInstances(opts?: CallOptions): Promise<IncusInstance[]>
  /** null when the instance does not exist. */
  getInstance(name: string, opts?: CallOptions): Promise<IncusInstance | null>
  imageExists(alias: string, opts?: CallOptions): Promise<boolean>
  /**
   * The storage driver (dir, btrfs, zfs, lvm, ...) of the pool that new instances' root disks use
   * (the project's default profile); null when the profile has no root disk.
   */
  rootPoolDriver(opts?: CallOptions): Promise<string | null>
  init(image: string, name: string, opts?: InitOptions): Promise<void>
  deviceAdd(
    name: string,
    device: string,
    props: Record<string, string>,
    opts?: CallOptions,
  ): Promise<void>
  deviceRemove(name: string, device: string, opts?: CallOptions): Promise<void>
  configSet(name: string, values: Record<string, string>, opts?: CallOptions): Promise<void>
  configGet(name: string, key: string, opts?: CallOptions): Promise<string>
  start(name: string, opts?: CallOptions): Promise<void>
  stop(name: string, opts?: CallOptions & { force?: boolean; timeoutS?: number }): Promise<void>
  /** Freezes a running instance (`incus pause`): its processes stop, its memory stays. */
  freeze(name: string, opts?: CallOptions): Promise<void>
  /** Thaws a frozen instance (`incus resume`); Incus refuses one that is not frozen. */
  unfreeze(name: string, opts?: CallOptions): Promise<void>
  /**
   * The memory the instance's cgroup holds now, in bytes (its state's `memory.usage`); null when
   * Incus does not say (stopped). Issue 16: what a primed (running, frozen) pool member holds.
   */
  memoryUsage(name: string, opts?: CallOptions): Promise<number | null>
  /**
   * The CPU time the instance's cgroup has used so far, in nanoseconds (its state's `cpu.usage`);
   * null when Incus does not say. Issue 16: when an agent started ahead has settled.
   */
  cpuUsage(name: string, opts?: CallOptions): Promise<number | null>
  delete(name: string, opts?: CallOptions & { force?: boolean }): Promise<void>
  exec(name: string, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>
  filePush(
    name: string,
    content: Buffer | string,
    dest: string,
    opts?: CallOptions & { uid?: number; gid?: number; mode?: string },
  ): Promise<void>
  /**
   * The running container's root as the host sees it (`/proc/<init pid>/root`), to check what is
   * mounted inside; null only for a driver with no host view of its containers (the fake).
   */
  containerRoot(name: string, opts?: CallOptions): Promise<string | null>
  /** Lifecycle events until the signal aborts; the iterator ends when the monitor process exits. */
  monitor(signal: AbortSignal): AsyncIterable<LifecycleEvent>
  /**
   * An interactive exec in a PTY the Incus daemon owns, streamed over the daemon's WebSockets
   * (issue 14): no host process and no host PTY. null when it cannot be done this way now (the
   * daemon's socket is unreachable): the caller then runs `binary` with `execArgv(…, { tty:
   * true })` in a PTY of its own. Drivers that never can (the CLI's, the fake) leave it out.
   */
  openTerminal?(
    name: string,
    argv: readonly string[],
    opts: TerminalExecOptions,
  ): Promise<PtyProcess | null>
  /** argv (after the `incus` binary) for an interactive exec, for the PTY layer. */
  execArgv(
    name: string,
    argv: readonly string[],
    opts: {
      user?: number
      group?: number
      cwd?: string
      env?: Record<string, string>
      tty: boolean
    },
  ): string[]
  readonly binary: string
}
