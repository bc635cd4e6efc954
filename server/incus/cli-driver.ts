import { randomUUID } from 'node:crypto'
import { rm, writeFile, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { execa } from 'execa'
import { Value } from 'typebox/value'
import {
  CLINCUS_POOL,
  IncusCli,
  IncusCommandError,
  POOL_LOOKUP_TTL_MS,
  withProject,
} from '../../incus/cli.ts'
import type {
  CallOptions,
  ExecOptions,
  ExecResult,
  IncusDriver,
  InitOptions,
  LifecycleEvent,
} from './driver.ts'
import {
  IncusInstanceListSchema,
  IncusInstanceSchema,
  IncusLifecycleEventSchema,
  IncusProfileSchema,
  IncusServerSchema,
  IncusStoragePoolSchema,
  type IncusInstance,
} from './schemas.ts'

export interface CliDriverOptions {
  project: string
  /** The incus executable (tests point this at a stub that records its argv). */
  binary?: string
  env?: Record<string, string>
  /**
   * `[incus] storage_pool`, read at each use (hot reload): the pool sessions' root disks go on.
   * Empty: the pool named `clincus` when it exists (setup adds it as a copy-on-write pool), else
   * the default profile's. Without this option the driver always uses the default profile's pool.
   */
  storagePool?: () => string
}

function kv(values: Record<string, string>): string[] {
  return Object.entries(values).map(([k, v]) => `${k}=${v}`)
}

/** IncusDriver over the `incus` CLI: argv arrays only, a timeout and a signal on every call. */
export class CliIncusDriver implements IncusDriver {
  readonly project: string
  readonly binary: string
  readonly #cli: IncusCli
  readonly #storagePool: (() => string) | undefined
  #clincusPool: { exists: boolean; at: number } | undefined

  constructor(opts: CliDriverOptions) {
    this.project = opts.project
    this.#cli = new IncusCli({ binary: opts.binary, env: opts.env })
    this.binary = this.#cli.binary
    this.#storagePool = opts.storagePool
  }

  /** The pool new sessions' root disks go on; undefined: the default profile's (see options). */
  async sessionPool(opts?: CallOptions): Promise<string | undefined> {
    if (!this.#storagePool) return undefined
    const configured = this.#storagePool()
    if (configured !== '') return configured
    const now = Date.now()
    if (!this.#clincusPool || now - this.#clincusPool.at > POOL_LOOKUP_TTL_MS) {
      const argv = ['query', `/1.0/storage-pools/${CLINCUS_POOL}`]
      let exists = true
      try {
        await this.#run(argv, { timeoutMs: 5000, ...opts })
      } catch (err) {
        if (!(err instanceof IncusCommandError && err.isNotFound)) throw err
        exists = false
      }
      this.#clincusPool = { exists, at: now }
    }
    return this.#clincusPool.exists ? CLINCUS_POOL : undefined
  }

  #run(args: readonly string[], opts: CallOptions & { input?: string } = {}): Promise<string> {
    return this.#cli.run(args, opts)
  }

  #api(path: string): string {
    return withProject(path, this.project)
  }

  #p(): string[] {
    return ['--project', this.project]
  }

  async serverVersion(opts?: CallOptions): Promise<string> {
    const server = await this.#cli.queryAs(IncusServerSchema, 'server', '/1.0', {
      timeoutMs: 5000,
      ...opts,
    })
    return server.environment?.server_version ?? 'unknown'
  }

  async listInstances(opts?: CallOptions): Promise<IncusInstance[]> {
    // `incus query` with recursion=1 costs ~10 ms where `incus list --format json` costs ~200 ms
    // (it fetches every instance's state): machine-facts.md.
    return this.#cli.queryAs(
      IncusInstanceListSchema,
      'instance list',
      this.#api('/1.0/instances?recursion=1'),
      opts,
    )
  }

  async containerRoot(name: string, opts?: CallOptions): Promise<string | null> {
    const path = this.#api(`/1.0/instances/${encodeURIComponent(name)}/state`)
    const data = await this.#cli.query(path, opts)
    const pid = (data as { pid?: unknown } | null)?.pid
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0)
      throw new IncusCommandError({
        argv: ['query', path],
        exitCode: 0,
        stderr: `instance ${name} has no init process`,
      })
    return `/proc/${pid}/root`
  }

  async getInstance(name: string, opts?: CallOptions): Promise<IncusInstance | null> {
    const path = this.#api(`/1.0/instances/${encodeURIComponent(name)}`)
    try {
      return await this.#cli.queryAs(IncusInstanceSchema, 'instance', path, opts)
    } catch (err) {
      if (err instanceof IncusCommandError && err.isNotFound) return null
      throw err
    }
  }

  async imageExists(alias: string, opts?: CallOptions): Promise<boolean> {
    try {
      await this.#run(
        ['query', this.#api(`/1.0/images/aliases/${encodeURIComponent(alias)}`)],
        opts,
      )
      return true
    } catch (err) {
      if (err instanceof IncusCommandError && err.isNotFound) return false
      throw err
    }
  }

  async rootPoolDriver(opts?: CallOptions): Promise<string | null> {
    const chosen = await this.sessionPool(opts)
    if (chosen !== undefined) return this.#poolDriver(chosen, opts)
    const profile = await this.#cli.queryAs(
      IncusProfileSchema,
      'profile',
      this.#api('/1.0/profiles/default'),
      opts,
    )
    const root = Object.values(profile.devices ?? {}).find(
      (d) => d.type === 'disk' && d.path === '/' && d.pool,
    )
    if (!root?.pool) return null
    return this.#poolDriver(root.pool, opts)
  }

  async #poolDriver(name: string, opts?: CallOptions): Promise<string> {
    const pool = await this.#cli.queryAs(
      IncusStoragePoolSchema,
      'storage pool',
      this.#api(`/1.0/storage-pools/${encodeURIComponent(name)}`),
      opts,
    )
    return pool.driver
  }

  async init(image: string, name: string, opts: InitOptions = {}): Promise<void> {
    const argv = [...this.#p(), 'init']
    for (const entry of kv(opts.config ?? {})) argv.push('--config', entry)
    const pool = opts.rootDisk?.pool === undefined ? await this.sessionPool(opts) : undefined
    // One `--device root,KEY=VALUE` per key: the CLI reads everything after the first `=` as the
    // value, so `root,a=1,b=2` would set a to "1,b=2" (a pool "clincus,size=20GiB": not found).
    for (const entry of kv({ ...(pool === undefined ? {} : { pool }), ...(opts.rootDisk ?? {}) }))
      argv.push('--device', `root,${entry}`)
    // `--` ends the options: an image from the config ("--vm", "--help") is never a flag.
    argv.push('--', image, name)
    // init unpacks the image on a dir pool: seconds, not milliseconds (machine-facts.md).
    await this.#run(argv, { timeoutMs: 180_000, ...opts })
  }

  async deviceAdd(
    name: string,
    device: string,
    props: Record<string, string>,
    opts?: CallOptions,
  ): Promise<void> {
    const type = props.type ?? 'disk'
    const rest = Object.fromEntries(Object.entries(props).filter(([k]) => k !== 'type'))
    await this.#run(
      [...this.#p(), 'config', 'device', 'add', '--', name, device, type, ...kv(rest)],
      opts,
    )
  }

  async deviceRemove(name: string, device: string, opts?: CallOptions): Promise<void> {
    await this.#run([...this.#p(), 'config', 'device', 'remove', '--', name, device], opts)
  }

  async configSet(name: string, values: Record<string, string>, opts?: CallOptions): Promise<void> {
    if (Object.keys(values).length === 0) return
    await this.#run([...this.#p(), 'config', 'set', '--', name, ...kv(values)], opts)
  }

  async configGet(name: string, key: string, opts?: CallOptions): Promise<string> {
    return (await this.#run([...this.#p(), 'config', 'get', '--', name, key], opts)).trim()
  }

  async start(name: string, opts?: CallOptions): Promise<void> {
    await this.#run([...this.#p(), 'start', '--', name], { timeoutMs: 60_000, ...opts })
  }

  async stop(
    name: string,
    opts: CallOptions & { force?: boolean; timeoutS?: number } = {},
  ): Promise<void> {
    const argv = [...this.#p(), 'stop']
    if (opts.force) argv.push('--force')
    // A graceful stop never hangs the request: Incus kills the instance after --timeout.
    else argv.push('--timeout', String(opts.timeoutS ?? 30))
    argv.push('--', name)
    await this.#run(argv, { timeoutMs: ((opts.timeoutS ?? 30) + 30) * 1000, ...opts })
  }

  /** Pauses every process of the running instance (cgroup freezer): `incus pause`. */
  async freeze(name: string, opts?: CallOptions): Promise<void> {
    await this.#run([...this.#p(), 'pause', '--', name], { timeoutMs: 30_000, ...opts })
  }

  /** Thaws a frozen instance: `incus resume`. */
  async unfreeze(name: string, opts?: CallOptions): Promise<void> {
    await this.#run([...this.#p(), 'resume', '--', name], { timeoutMs: 30_000, ...opts })
  }

  async memoryUsage(name: string, opts?: CallOptions): Promise<number | null> {
    return this.#usage(name, 'memory', opts)
  }

  async cpuUsage(name: string, opts?: CallOptions): Promise<number | null> {
    return this.#usage(name, 'cpu', opts)
  }

  /** `<what>.usage` of the instance's state: a finite number ≥ 0, else null. */
  async #usage(name: string, what: 'memory' | 'cpu', opts?: CallOptions): Promise<number | null> {
    const data = await this.#cli.query(
      this.#api(`/1.0/instances/${encodeURIComponent(name)}/state`),
      opts,
    )
    const part = (data as Record<string, { usage?: unknown } | undefined> | null)?.[what]
    const usage = part?.usage
    return typeof usage === 'number' && Number.isFinite(usage) && usage >= 0 ? usage : null
  }

  async delete(name: string, opts: CallOptions & { force?: boolean } = {}): Promise<void> {
    const argv = [...this.#p(), 'delete']
    if (opts.force) argv.push('--force')
    argv.push('--', name)
    await this.#run(argv, { timeoutMs: 60_000, ...opts })
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
    const out = [
      ...this.#p(),
      'exec',
      name,
      opts.tty ? '--force-interactive' : '--force-noninteractive',
    ]
    if (opts.user !== undefined) out.push('--user', String(opts.user))
    if (opts.group !== undefined) out.push('--group', String(opts.group))
    if (opts.cwd !== undefined) out.push('--cwd', opts.cwd)
    for (const entry of kv(opts.env ?? {})) out.push('--env', entry)
    out.push('--', ...argv)
    return out
  }

  async exec(name: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    // The program's exit code is the answer, not a failure; only a timeout or abort throws.
    return this.#cli.runResult(this.execArgv(name, argv, { ...opts, tty: false }), {
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
      input: opts.stdin,
      stripFinalNewline: true,
      ...(opts.maxOutputBytes === undefined ? {} : { maxBuffer: opts.maxOutputBytes }),
    })
  }

  async filePush(
    name: string,
    content: Buffer | string,
    dest: string,
    opts: CallOptions & { uid?: number; gid?: number; mode?: string } = {},
  ): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'clincus-push-'))
    const file = join(dir, randomUUID())
    try {
      await writeFile(file, content, { mode: 0o600 })
      const argv = [...this.#p(), 'file', 'push']
      if (opts.uid !== undefined) argv.push('--uid', String(opts.uid))
      if (opts.gid !== undefined) argv.push('--gid', String(opts.gid))
      if (opts.mode !== undefined) argv.push('--mode', opts.mode)
      argv.push('--', file, `${name}${dest}`)
      await this.#run(argv, opts)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }

  async *monitor(signal: AbortSignal): AsyncIterable<LifecycleEvent> {
    // A stream, not a call: the one process the layer's run() does not cover.
    const child = execa(
      this.binary,
      [...this.#p(), 'monitor', '--type=lifecycle', '--format=json'],
      {
        cancelSignal: signal,
        forceKillAfterDelay: 1000,
        ...(this.#cli.env ? { env: this.#cli.env } : {}),
        stdin: 'ignore',
        buffer: false,
        reject: false,
      },
    )
    const lines = createInterface({ input: child.stdout })
    try {
      for await (const line of lines) {
        const text = line.trim()
        if (text === '') continue
        let data: unknown
        try {
          data = JSON.parse(text)
        } catch {
          continue
        }
        if (!Value.Check(IncusLifecycleEventSchema, data)) continue
        const meta = data.metadata
        const name = meta.name ?? meta.source?.split('/').pop()?.split('?')[0] ?? ''
        if (!name) continue
        yield {
          action: meta.action,
          name,
          project: data.project ?? this.project,
          timestamp: data.timestamp ?? new Date().toISOString(),
        }
      }
    } finally {
      lines.close()
      if (child.exitCode === null) child.kill()
      await child
    }
  }
}
