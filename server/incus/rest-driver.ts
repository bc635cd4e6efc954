import { IncusRest, IncusUnreachableError } from '../../incus/rest.ts'
import type { PtyProcess } from '../pty/spawner.ts'
import { CliIncusDriver, type CliDriverOptions } from './cli-driver.ts'
import type {
  CallOptions,
  ExecOptions,
  ExecResult,
  IncusDriver,
  InitOptions,
  LifecycleEvent,
  TerminalExecOptions,
} from './driver.ts'
import { openExecTerminal } from './exec-terminal.ts'
import { RestCalls, type FilePushOptions } from './rest-calls.ts'
import type { IncusInstance } from './schemas.ts'

export interface RestDriverOptions extends CliDriverOptions {
  /** The daemon's unix socket (incus/rest.ts findIncusSocket). */
  socketPath: string
  /** The cap on one answer's size (bytes); incus/rest.ts' default when absent. */
  maxBodyBytes?: number
}

type Props = Record<string, string>

/**
 * IncusDriver over the REST API on the daemon's unix socket (rest-calls.ts): the requests the
 * `incus` CLI makes for each command, minus a process start per call (issue 16). `exec` and
 * `monitor` stay on the CLI; terminals use the daemon's WebSockets (`openTerminal`).
 *
 * The CLI is the fallback, decided per call: when the socket cannot be reached (ENOENT, EACCES,
 * ECONNREFUSED before anything was sent, so nothing can happen twice) that call runs through the
 * CLI. Per call rather than once at start: a daemon that is restarting, or started after
 * clincus, gets the CLI's behaviour and error messages meanwhile and the REST path back by
 * itself, with no state to keep.
 */
export class RestIncusDriver implements IncusDriver {
  readonly project: string
  readonly binary: string
  /** The CLI driver behind this one (exec, monitor, fallback). */
  readonly cli: CliIncusDriver
  readonly #calls: RestCalls
  readonly #rest: IncusRest

  constructor(opts: RestDriverOptions) {
    this.project = opts.project
    this.cli = new CliIncusDriver(opts)
    this.binary = this.cli.binary
    const rest = new IncusRest({
      socketPath: opts.socketPath,
      ...(opts.maxBodyBytes === undefined ? {} : { maxBodyBytes: opts.maxBodyBytes }),
    })
    this.#rest = rest
    this.#calls = new RestCalls({
      rest,
      project: opts.project,
      ...(opts.storagePool ? { storagePool: opts.storagePool } : {}),
    })
  }

  /** The call over REST; through the CLI when the socket was unreachable (nothing was sent). */
  async #either<T>(call: (c: RestCalls | CliIncusDriver) => Promise<T>): Promise<T> {
    try {
      return await call(this.#calls)
    } catch (err) {
      if (err instanceof IncusUnreachableError) return call(this.cli)
      throw err
    }
  }

  serverVersion(opts?: CallOptions): Promise<string> {
    return this.#either((c) => c.serverVersion(opts))
  }

  listInstances(opts?: CallOptions): Promise<IncusInstance[]> {
    return this.#either((c) => c.listInstances(opts))
  }

  getInstance(name: string, opts?: CallOptions): Promise<IncusInstance | null> {
    return this.#either((c) => c.getInstance(name, opts))
  }

  imageExists(alias: string, opts?: CallOptions): Promise<boolean> {
    return this.#either((c) => c.imageExists(alias, opts))
  }

  rootPoolDriver(opts?: CallOptions): Promise<string | null> {
    return this.#either((c) => c.rootPoolDriver(opts))
  }

  init(image: string, name: string, opts?: InitOptions): Promise<void> {
    return this.#either((c) => c.init(image, name, opts))
  }

  deviceAdd(name: string, device: string, props: Props, opts?: CallOptions): Promise<void> {
    return this.#either((c) => c.deviceAdd(name, device, props, opts))
  }

  deviceRemove(name: string, device: string, opts?: CallOptions): Promise<void> {
    return this.#either((c) => c.deviceRemove(name, device, opts))
  }

  configSet(name: string, values: Props, opts?: CallOptions): Promise<void> {
    return this.#either((c) => c.configSet(name, values, opts))
  }

  configGet(name: string, key: string, opts?: CallOptions): Promise<string> {
    return this.#either((c) => c.configGet(name, key, opts))
  }

  start(name: string, opts?: CallOptions): Promise<void> {
    return this.#either((c) => c.start(name, opts))
  }

  stop(name: string, opts?: CallOptions & { force?: boolean; timeoutS?: number }) {
    return this.#either((c) => c.stop(name, opts))
  }

  /** Pauses every process of the running instance (`incus pause`). */
  freeze(name: string, opts?: CallOptions): Promise<void> {
    return this.#either((c) => c.freeze(name, opts))
  }

  /** Thaws a frozen instance (`incus resume`). */
  unfreeze(name: string, opts?: CallOptions): Promise<void> {
    return this.#either((c) => c.unfreeze(name, opts))
  }

  delete(name: string, opts?: CallOptions & { force?: boolean }): Promise<void> {
    return this.#either((c) => c.delete(name, opts))
  }

  filePush(name: string, content: Buffer | string, dest: string, opts?: FilePushOptions) {
    return this.#either((c) => c.filePush(name, content, dest, opts))
  }

  containerRoot(name: string, opts?: CallOptions): Promise<string | null> {
    return this.#either((c) => c.containerRoot(name, opts))
  }

  memoryUsage(name: string, opts?: CallOptions): Promise<number | null> {
    return this.#either((c) => c.memoryUsage(name, opts))
  }

  cpuUsage(name: string, opts?: CallOptions): Promise<number | null> {
    return this.#either((c) => c.cpuUsage(name, opts))
  }

  exec(name: string, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return this.cli.exec(name, argv, opts)
  }

  /** The exec over the daemon's WebSockets (exec-terminal.ts); null when its socket is unreachable. */
  async openTerminal(
    name: string,
    argv: readonly string[],
    opts: TerminalExecOptions,
  ): Promise<PtyProcess | null> {
    try {
      return await openExecTerminal(this.#rest, this.project, name, argv, opts)
    } catch (err) {
      if (err instanceof IncusUnreachableError) return null
      throw err
    }
  }

  execArgv(name: string, argv: readonly string[], opts: Parameters<IncusDriver['execArgv']>[2]) {
    return this.cli.execArgv(name, argv, opts)
  }

  monitor(signal: AbortSignal): AsyncIterable<LifecycleEvent> {
    return this.cli.monitor(signal)
  }
}
