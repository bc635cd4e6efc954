import { EventEmitter } from 'node:events'
import { posix } from 'node:path'
import { IncusCommandError } from '../errors.ts'
import { unpackTar } from '../sessions/tar.ts'
import type {
  CallOptions,
  ExecOptions,
  ExecResult,
  IncusDriver,
  InitOptions,
  LifecycleEvent,
} from './driver.ts'
import {
  isRunning,
  monitorEvents,
  stateError,
  type Failure,
  type FakeCall,
  type FakeMethod,
} from './fake-support.ts'
import type { IncusInstance } from './schemas.ts'

export type { FakeCall, FakeMethod } from './fake-support.ts'

/**
 * In-memory Incus for unit tests: instances, devices and config live in maps, every call is
 * recorded, and any call can be made to fail with incus-like stderr.
 */
export class FakeIncusDriver implements IncusDriver {
  readonly project: string
  readonly binary = 'incus'
  readonly instances = new Map<string, IncusInstance>()
  readonly images = new Set<string>(['clincus', 'clincus-test'])
  readonly calls: FakeCall[] = []
  readonly files = new Map<string, { content: string; uid?: number; gid?: number; mode?: string }>()
  readonly #failures: Failure[] = []
  readonly #events = new EventEmitter()
  /** Called for every exec; return a result to script it (default: exit 0, no output). */
  execHandler: (
    name: string,
    argv: readonly string[],
    opts: ExecOptions,
  ) => ExecResult | undefined = () => undefined
  /** Resolves before each call completes; tests use it to hold calls and observe concurrency. */
  gate:
    | ((method: FakeMethod, args: unknown[], opts: CallOptions | undefined) => Promise<void>)
    | undefined
  reachable = true
  /** Storage driver of the root disk's pool (`dir`, like the machines the live tests run on). */
  poolDriver: string | null = 'dir'

  constructor(project = 'default') {
    this.project = project
  }

  /** Make the next `times` calls of `method` (matching `match`) fail with `stderr`. */
  failOn(
    method: FakeMethod,
    stderr = `Error: injected failure in ${method}`,
    opts: { times?: number; match?: (args: unknown[]) => boolean } = {},
  ): void {
    this.#failures.push({
      method,
      stderr,
      remaining: opts.times ?? 1,
      match: opts.match ?? (() => true),
    })
  }

  callsOf(method: FakeMethod): FakeCall[] {
    return this.calls.filter((c) => c.method === method)
  }

  emit(event: Omit<LifecycleEvent, 'project' | 'timestamp'> & Partial<LifecycleEvent>): void {
    this.#events.emit('event', {
      project: this.project,
      timestamp: new Date().toISOString(),
      ...event,
    })
  }

  addInstance(name: string, init: Partial<IncusInstance> = {}): IncusInstance {
    const inst: IncusInstance = {
      name,
      status: 'Running',
      config: {},
      devices: {},
      created_at: new Date().toISOString(),
      ...init,
    }
    this.instances.set(name, inst)
    return inst
  }

  async #enter(method: FakeMethod, args: unknown[], opts?: CallOptions): Promise<void> {
    this.calls.push({ method, args })
    if (this.gate) await this.gate(method, args, opts)
    opts?.signal?.throwIfAborted()
    if (!this.reachable) {
      throw new IncusCommandError({
        argv: [method],
        exitCode: 1,
        stderr: "Error: The incus daemon doesn't appear to be started",
      })
    }
    const failure = this.#failures.find(
      (f) => f.method === method && f.remaining > 0 && f.match(args),
    )
    if (failure) {
      failure.remaining -= 1
      throw new IncusCommandError({
        argv: [method, ...args.map(String)],
        exitCode: 1,
        stderr: failure.stderr,
      })
    }
  }

  #need(name: string, method: FakeMethod): IncusInstance {
    const inst = this.instances.get(name)
    if (!inst)
      throw new IncusCommandError({
        argv: [method, name],
        exitCode: 1,
        stderr: 'Error: Instance not found',
      })
    return inst
  }

  async serverVersion(opts?: CallOptions): Promise<string> {
    await this.#enter('getInstance', ['/1.0'], opts)
    return '6.0.4-fake'
  }

  async listInstances(opts?: CallOptions): Promise<IncusInstance[]> {
    await this.#enter('listInstances', [], opts)
    return [...this.instances.values()].map((i) => structuredClone(i))
  }

  async getInstance(name: string, opts?: CallOptions): Promise<IncusInstance | null> {
    await this.#enter('getInstance', [name], opts)
    const inst = this.instances.get(name)
    return inst ? structuredClone(inst) : null
  }

  async imageExists(alias: string, opts?: CallOptions): Promise<boolean> {
    await this.#enter('imageExists', [alias], opts)
    return this.images.has(alias)
  }

  async rootPoolDriver(opts?: CallOptions): Promise<string | null> {
    await this.#enter('rootPoolDriver', [], opts)
    return this.poolDriver
  }

  async init(image: string, name: string, opts: InitOptions = {}): Promise<void> {
    await this.#enter('init', [image, name, opts.config ?? {}, opts.rootDisk ?? {}], opts)
    if (this.instances.has(name)) {
      throw new IncusCommandError({
        argv: ['init', name],
        exitCode: 1,
        stderr: 'Error: Failed creating instance record: Instance "' + name + '" already exists',
      })
    }
    if (!this.images.has(image)) {
      throw new IncusCommandError({
        argv: ['init', image, name],
        exitCode: 1,
        stderr: 'Error: Failed fetching image: Image not found',
      })
    }
    const devices: Record<string, Record<string, string>> = {}
    if (opts.rootDisk && Object.keys(opts.rootDisk).length > 0)
      devices.root = { type: 'disk', path: '/', pool: 'default', ...opts.rootDisk }
    this.instances.set(name, {
      name,
      status: 'Stopped',
      config: { ...(opts.config ?? {}) },
      devices,
      created_at: new Date().toISOString(),
    })
    this.emit({ action: 'instance-created', name })
  }

  async deviceAdd(
    name: string,
    device: string,
    props: Record<string, string>,
    opts?: CallOptions,
  ): Promise<void> {
    await this.#enter('deviceAdd', [name, device, props], opts)
    const inst = this.#need(name, 'deviceAdd')
    inst.devices ??= {}
    if (inst.devices[device])
      throw new IncusCommandError({
        argv: ['config', 'device', 'add'],
        exitCode: 1,
        stderr: 'Error: The device already exists',
      })
    inst.devices[device] = { type: 'disk', ...props }
  }

  async deviceRemove(name: string, device: string, opts?: CallOptions): Promise<void> {
    await this.#enter('deviceRemove', [name, device], opts)
    const inst = this.#need(name, 'deviceRemove')
    if (inst.devices) Reflect.deleteProperty(inst.devices, device)
  }

  async configSet(name: string, values: Record<string, string>, opts?: CallOptions): Promise<void> {
    await this.#enter('configSet', [name, values], opts)
    const inst = this.#need(name, 'configSet')
    // Like `incus config set k=`: an empty value removes the key.
    for (const [k, v] of Object.entries(values))
      if (v === '') Reflect.deleteProperty(inst.config, k)
      else inst.config[k] = v
  }

  async configGet(name: string, key: string, opts?: CallOptions): Promise<string> {
    await this.#enter('configGet', [name, key], opts)
    return this.#need(name, 'configGet').config[key] ?? ''
  }

  async start(name: string, opts?: CallOptions): Promise<void> {
    await this.#enter('start', [name], opts)
    const inst = this.#need(name, 'start')
    if (isRunning(inst.status))
      throw new IncusCommandError({
        argv: ['start', name],
        exitCode: 1,
        stderr: 'Error: The instance is already running',
      })
    inst.status = 'Running'
    this.emit({ action: 'instance-started', name })
  }

  async stop(
    name: string,
    opts: CallOptions & { force?: boolean; timeoutS?: number } = {},
  ): Promise<void> {
    await this.#enter('stop', [name, { force: opts.force ?? false }], opts)
    const inst = this.#need(name, 'stop')
    if (!isRunning(inst.status))
      throw new IncusCommandError({
        argv: ['stop', name],
        exitCode: 1,
        stderr: 'Error: The instance is already stopped',
      })
    inst.status = 'Stopped'
    this.emit({ action: 'instance-stopped', name })
  }

  async freeze(name: string, opts?: CallOptions): Promise<void> {
    await this.#enter('freeze', [name], opts)
    const inst = this.#need(name, 'freeze')
    if (!isRunning(inst.status)) throw stateError('pause', name, "The instance isn't running")
    inst.status = 'Frozen'
    this.emit({ action: 'instance-paused', name })
  }

  async unfreeze(name: string, opts?: CallOptions): Promise<void> {
    await this.#enter('unfreeze', [name], opts)
    const inst = this.#need(name, 'unfreeze')
    if (inst.status !== 'Frozen') throw stateError('resume', name, "The instance isn't frozen")
    inst.status = 'Running'
    this.emit({ action: 'instance-resumed', name })
  }

  /** What the fake's running or frozen instances hold (bytes). */
  memoryBytes = 6_000_000

  async memoryUsage(name: string, opts?: CallOptions): Promise<number | null> {
    await this.#enter('getInstance', [name], opts)
    const status = this.#need(name, 'getInstance').status
    return isRunning(status) || status === 'Frozen' ? this.memoryBytes : null
  }

  /** CPU time (ns) the fake reports for an instance; each read adds `cpuStepNs` (busy, or not). */
  cpuNs = 0
  cpuStepNs = 0

  async cpuUsage(name: string, opts?: CallOptions): Promise<number | null> {
    await this.#enter('getInstance', [name], opts)
    this.#need(name, 'getInstance')
    this.cpuNs += this.cpuStepNs
    return this.cpuNs
  }

  async delete(name: string, opts: CallOptions & { force?: boolean } = {}): Promise<void> {
    await this.#enter('delete', [name, { force: opts.force ?? false }], opts)
    const inst = this.#need(name, 'delete')
    if ((isRunning(inst.status) || inst.status === 'Frozen') && !opts.force)
      throw new IncusCommandError({
        argv: ['delete', name],
        exitCode: 1,
        stderr: 'Error: The instance is currently running, stop it first or pass --force',
      })
    this.instances.delete(name)
    if (isRunning(inst.status)) this.emit({ action: 'instance-stopped', name })
    this.emit({ action: 'instance-deleted', name })
  }

  async exec(name: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    await this.#enter(
      'exec',
      [name, [...argv], { user: opts.user, cwd: opts.cwd, env: opts.env, stdin: opts.stdin }],
      opts,
    )
    const inst = this.#need(name, 'exec')
    if (!isRunning(inst.status))
      throw new IncusCommandError({
        argv: ['exec', name],
        exitCode: 1,
        stderr: 'Error: Instance is not running',
      })
    const scripted = this.execHandler(name, argv, opts)
    if (scripted) return scripted
    if (argv[0] === 'tar' && argv.includes('-x') && opts.stdin !== undefined)
      this.#extract(name, argv, opts)
    return { stdout: '', stderr: '', exitCode: 0 }
  }

  /** `tar -x -C <dir>` of an archive on stdin, as the exec's user: files land in `files`. */
  #extract(name: string, argv: readonly string[], opts: ExecOptions): void {
    const dir = argv[argv.indexOf('-C') + 1] ?? '/'
    const data = typeof opts.stdin === 'string' ? Buffer.from(opts.stdin) : (opts.stdin ?? [])
    for (const e of unpackTar(Uint8Array.from(data))) {
      if (e.typeflag !== '0') continue
      this.files.set(`${name}:${posix.join(dir, e.path)}`, {
        content: e.content.toString(),
        uid: opts.user,
        gid: opts.group,
        mode: `0${e.mode.toString(8)}`,
      })
    }
  }

  /** The fake has no container filesystem: nothing to inspect (see IncusDriver.containerRoot). */
  async containerRoot(name: string, opts?: CallOptions): Promise<string | null> {
    await this.#enter('containerRoot', [name], opts)
    this.#need(name, 'containerRoot')
    return null
  }

  async filePush(
    name: string,
    content: Buffer | string,
    dest: string,
    opts: CallOptions & { uid?: number; gid?: number; mode?: string } = {},
  ): Promise<void> {
    await this.#enter(
      'filePush',
      [name, dest, { uid: opts.uid, gid: opts.gid, mode: opts.mode }],
      opts,
    )
    this.#need(name, 'filePush')
    this.files.set(`${name}:${dest}`, {
      content: content.toString(),
      uid: opts.uid,
      gid: opts.gid,
      mode: opts.mode,
    })
  }

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
  ): string[] {
    const out = ['--project', this.project, 'exec', name]
    if (opts.user !== undefined) out.push('--user', String(opts.user))
    if (opts.cwd !== undefined) out.push('--cwd', opts.cwd)
    for (const [k, v] of Object.entries(opts.env ?? {})) out.push('--env', `${k}=${v}`)
    return [...out, '--', ...argv]
  }

  /** Ends every running monitor stream with an error, as a daemon restart does. */
  dropMonitors(): void {
    this.#events.emit('drop')
  }

  monitor(signal: AbortSignal): AsyncIterable<LifecycleEvent> {
    return monitorEvents(this.#events, signal, this.reachable)
  }
}
