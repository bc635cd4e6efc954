import { CLINCUS_POOL, IncusCommandError, POOL_LOOKUP_TTL_MS } from '../../incus/cli.ts'
import { projectPath, type IncusRest, type RestCallOptions } from '../../incus/rest.ts'
import type { CallOptions, InitOptions } from './driver.ts'
import {
  IncusImageAliasSchema,
  IncusImageSchema,
  IncusInstanceFullSchema,
  IncusInstanceStateSchema,
} from './rest-schemas.ts'
import {
  IncusInstanceListSchema,
  IncusInstanceSchema,
  IncusProfileSchema,
  IncusServerSchema,
  IncusStoragePoolSchema,
  type IncusInstance,
} from './schemas.ts'

/** Incus' status codes (shared/api/status_code.go). */
const STOPPED = 102
const FROZEN = 110

export type FilePushOptions = CallOptions & { uid?: number; gid?: number; mode?: string }
type Props = Record<string, string>

const enc = encodeURIComponent

/**
 * The IncusDriver calls the REST API serves simply, each the requests the `incus` CLI makes for
 * its command (cmd/incus: create, config device add/remove, config set/get, start, stop, delete,
 * pause/resume, file push, query), with the CLI's refusals where the CLI refuses before asking
 * the daemon. No fallback here: the driver (rest-driver.ts) runs the CLI when the socket is
 * unreachable. Every user value in a path is URL-encoded; the project goes as `?project=`.
 */
export class RestCalls {
  readonly project: string
  readonly #rest: IncusRest
  readonly #storagePool: (() => string) | undefined
  #clincusPool: { exists: boolean; at: number } | undefined

  constructor(opts: { rest: IncusRest; project: string; storagePool?: () => string }) {
    this.project = opts.project
    this.#rest = opts.rest
    this.#storagePool = opts.storagePool
  }

  #path(path: string): string {
    return projectPath(path, this.project)
  }

  #inst(name: string, tail = ''): string {
    return this.#path(`/1.0/instances/${enc(name)}${tail}`)
  }

  #o(verb: string, opts: CallOptions | undefined, extra: Partial<RestCallOptions> = {}) {
    return {
      verb,
      ...(opts?.signal ? { signal: opts.signal } : {}),
      ...(opts?.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...extra,
    } satisfies RestCallOptions
  }

  async #notFoundAs<T>(p: Promise<T>, value: T): Promise<T> {
    try {
      return await p
    } catch (err) {
      if (err instanceof IncusCommandError && err.isNotFound) return value
      throw err
    }
  }

  async serverVersion(opts?: CallOptions): Promise<string> {
    const { value } = await this.#rest.get(IncusServerSchema, 'server', '/1.0', {
      ...this.#o('query', opts),
      timeoutMs: opts?.timeoutMs ?? 5000,
    })
    return value.environment?.server_version ?? 'unknown'
  }

  async listInstances(opts?: CallOptions): Promise<IncusInstance[]> {
    return (
      await this.#rest.get(
        IncusInstanceListSchema,
        'instance list',
        this.#path('/1.0/instances?recursion=1'),
        this.#o('query', opts),
      )
    ).value
  }

  async getInstance(name: string, opts?: CallOptions): Promise<IncusInstance | null> {
    return this.#notFoundAs(
      this.#rest
        .get(IncusInstanceSchema, 'instance', this.#inst(name), this.#o('query', opts))
        .then((r) => r.value),
      null,
    )
  }

  async imageExists(alias: string, opts?: CallOptions): Promise<boolean> {
    return this.#notFoundAs(
      this.#rest
        .call(this.#path(`/1.0/images/aliases/${enc(alias)}`), this.#o('query', opts))
        .then(() => true),
      false,
    )
  }

  /** The pool new sessions' root disks go on (the CLI driver's rule, looked up over REST). */
  async #sessionPool(opts?: CallOptions): Promise<string | undefined> {
    if (!this.#storagePool) return undefined
    const configured = this.#storagePool()
    if (configured !== '') return configured
    const now = Date.now()
    if (!this.#clincusPool || now - this.#clincusPool.at > POOL_LOOKUP_TTL_MS) {
      const path = this.#path(`/1.0/storage-pools/${CLINCUS_POOL}`)
      const exists = await this.#notFoundAs(
        this.#rest.call(path, { ...this.#o('query', opts), timeoutMs: 5000 }).then(() => true),
        false,
      )
      this.#clincusPool = { exists, at: now }
    }
    return this.#clincusPool.exists ? CLINCUS_POOL : undefined
  }

  async #defaultProfileDevices(opts?: CallOptions): Promise<Record<string, Props>> {
    const { value } = await this.#rest.get(
      IncusProfileSchema,
      'profile',
      this.#path('/1.0/profiles/default'),
      this.#o('query', opts),
    )
    return value.devices ?? {}
  }

  async rootPoolDriver(opts?: CallOptions): Promise<string | null> {
    let pool = await this.#sessionPool(opts)
    if (pool === undefined) {
      const root = Object.values(await this.#defaultProfileDevices(opts)).find(
        (d) => d.type === 'disk' && d.path === '/' && d.pool,
      )
      if (!root?.pool) return null
      pool = root.pool
    }
    const path = this.#path(`/1.0/storage-pools/${enc(pool)}`)
    const { value } = await this.#rest.get(
      IncusStoragePoolSchema,
      'storage pool',
      path,
      this.#o('query', opts),
    )
    return value.driver
  }

  async init(image: string, name: string, opts: InitOptions = {}): Promise<void> {
    // What `incus init` sends (cmd/incus/create.go): the image's source and type, the config,
    // and `--device root,K=V` as the default profile's root device with the overrides applied.
    const call = { ...this.#o('init', opts), timeoutMs: opts.timeoutMs ?? 180_000 }
    const alias = await this.#notFoundAs(
      this.#rest
        .get(
          IncusImageAliasSchema,
          'image alias',
          this.#path(`/1.0/images/aliases/${enc(image)}`),
          call,
        )
        .then((r) => r.value),
      null,
    )
    const fingerprint = alias
      ? null
      : await this.#notFoundAs(
          this.#rest
            .get(IncusImageSchema, 'image', this.#path(`/1.0/images/${enc(image)}`), call)
            .then((r) => r.value),
          null,
        )
    if (!alias && !fingerprint)
      throw new IncusCommandError({
        argv: ['init', 'GET', `/1.0/images/aliases/${image}`],
        exitCode: undefined,
        stderr: `Error: Image "${image}" not found`,
        httpStatus: 404,
      })
    const pool = opts.rootDisk?.pool === undefined ? await this.#sessionPool(opts) : undefined
    const overrides = { ...(pool === undefined ? {} : { pool }), ...(opts.rootDisk ?? {}) }
    const devices: Record<string, Props> = {}
    if (Object.keys(overrides).length > 0) {
      const root = (await this.#defaultProfileDevices(opts)).root
      if (!root)
        throw new IncusCommandError({
          argv: ['init', 'GET', '/1.0/profiles/default'],
          exitCode: undefined,
          stderr:
            'Error: Cannot override config for device "root": Device not found in profile devices',
        })
      devices.root = { ...root, ...overrides }
    }
    await this.#rest.call(this.#path('/1.0/instances'), {
      ...call,
      method: 'POST',
      body: {
        name,
        type: (alias ?? fingerprint)?.type ?? 'container',
        source: alias
          ? { type: 'image', alias: image }
          : { type: 'image', fingerprint: fingerprint?.fingerprint },
        config: opts.config ?? {},
        devices,
      },
    })
  }

  /** The instance (with its ETag) for a read-modify-write. */
  async #full(name: string, verb: string, opts?: CallOptions) {
    const { value, etag } = await this.#rest.get(
      IncusInstanceFullSchema,
      'instance',
      this.#inst(name),
      this.#o(verb, opts),
    )
    return { inst: value, etag }
  }

  #ifMatch(etag: string | undefined): Record<string, string> {
    return etag ? { 'If-Match': etag } : {}
  }

  async deviceAdd(name: string, device: string, props: Props, opts?: CallOptions): Promise<void> {
    // `incus config device add` refuses a name in use; PATCH would replace it silently.
    const { inst, etag } = await this.#full(name, 'config', opts)
    if (Object.hasOwn(inst.devices, device))
      throw new IncusCommandError({
        argv: ['config', 'PATCH', this.#inst(name)],
        exitCode: undefined,
        stderr: 'Error: The device already exists',
      })
    // PATCH merges `devices` by name (cmd/incusd/instance_patch.go): only this one changes;
    // the ETag refuses the write when the instance changed since the read.
    await this.#rest.call(this.#inst(name), {
      ...this.#o('config', opts),
      method: 'PATCH',
      headers: this.#ifMatch(etag),
      body: { devices: { [device]: { type: 'disk', ...props } } },
    })
  }

  async deviceRemove(name: string, device: string, opts?: CallOptions): Promise<void> {
    // PATCH cannot remove a device (a missing name keeps its device): the instance goes
    // back whole with PUT, as `incus config device remove` does, guarded by its ETag.
    const { inst, etag } = await this.#full(name, 'config', opts)
    if (!Object.hasOwn(inst.devices, device))
      throw new IncusCommandError({
        argv: ['config', 'PUT', this.#inst(name)],
        exitCode: undefined,
        stderr: Object.hasOwn(inst.expanded_devices ?? {}, device)
          ? 'Error: Device from profile(s) cannot be removed from individual instance. Override device or modify profile instead'
          : "Error: Device doesn't exist",
      })
    const devices = Object.fromEntries(Object.entries(inst.devices).filter(([k]) => k !== device))
    await this.#rest.call(this.#inst(name), {
      ...this.#o('config', opts),
      method: 'PUT',
      headers: this.#ifMatch(etag),
      body: { ...inst, devices },
    })
  }

  async configSet(name: string, values: Props, opts?: CallOptions): Promise<void> {
    if (Object.keys(values).length === 0) return
    // PATCH merges `config` by key; "" removes a key, as `incus config set k=` does.
    await this.#rest.call(this.#inst(name), {
      ...this.#o('config', opts),
      method: 'PATCH',
      body: { config: values },
    })
  }

  async configGet(name: string, key: string, opts?: CallOptions): Promise<string> {
    return (await this.#full(name, 'config', opts)).inst.config[key] ?? ''
  }

  async #state(name: string, verb: string, opts?: CallOptions) {
    const { value } = await this.#rest.get(
      IncusInstanceStateSchema,
      'instance state',
      this.#inst(name, '/state'),
      this.#o(verb, opts),
    )
    return value
  }

  async #action(
    name: string,
    verb: string,
    body: { action: string; timeout: number; force?: boolean },
    opts: CallOptions | undefined,
    timeoutMs: number,
  ): Promise<void> {
    await this.#rest.call(this.#inst(name, '/state'), {
      ...this.#o(verb, opts),
      timeoutMs: opts?.timeoutMs ?? timeoutMs,
      method: 'PUT',
      body,
    })
  }

  async start(name: string, opts?: CallOptions): Promise<void> {
    // `incus start` of a frozen instance unfreezes it (cmd/incus/action.go).
    const frozen = (await this.#state(name, 'start', opts)).status_code === FROZEN
    const action = frozen ? 'unfreeze' : 'start'
    await this.#action(name, 'start', { action, timeout: -1 }, opts, 60_000)
  }

  async stop(name: string, opts: CallOptions & { force?: boolean; timeoutS?: number } = {}) {
    const timeoutS = opts.timeoutS ?? 30
    return this.#action(
      name,
      'stop',
      // A graceful stop never hangs the request: Incus kills the instance after `timeout`.
      opts.force
        ? { action: 'stop', timeout: -1, force: true }
        : { action: 'stop', timeout: timeoutS },
      opts,
      (timeoutS + 30) * 1000,
    )
  }

  /** Pauses every process of the instance (`incus pause`). */
  async freeze(name: string, opts?: CallOptions): Promise<void> {
    return this.#action(name, 'pause', { action: 'freeze', timeout: -1 }, opts, 30_000)
  }

  /** Thaws a frozen instance (`incus resume`). */
  async unfreeze(name: string, opts?: CallOptions): Promise<void> {
    return this.#action(name, 'resume', { action: 'unfreeze', timeout: -1 }, opts, 30_000)
  }

  async delete(name: string, opts: CallOptions & { force?: boolean } = {}): Promise<void> {
    // What `incus delete [--force]` does (cmd/incus/delete.go): a running (or frozen)
    // instance is refused, or with force stopped first; then the delete.
    const { inst } = await this.#full(name, 'delete', opts)
    if (inst.status_code !== undefined && inst.status_code !== STOPPED && inst.status_code !== 0) {
      if (!opts.force)
        throw new IncusCommandError({
          argv: ['delete', 'DELETE', this.#inst(name)],
          exitCode: undefined,
          stderr: 'Error: The instance is currently running, stop it first or pass --force',
        })
      await this.#action(name, 'delete', { action: 'stop', timeout: -1, force: true }, opts, 60_000)
      if (inst.ephemeral) return
    }
    await this.#rest.call(this.#inst(name), {
      ...this.#o('delete', opts),
      timeoutMs: opts.timeoutMs ?? 60_000,
      method: 'DELETE',
    })
  }

  async filePush(name: string, content: Buffer | string, dest: string, opts: FilePushOptions = {}) {
    if (opts.mode !== undefined && !/^[0-7]{3,4}$/.test(opts.mode))
      throw new Error(`file mode must be octal digits, not ${opts.mode}`)
    // The CLI pushes our 0600 temporary file as root: the same defaults when none is given.
    await this.#rest.call(this.#inst(name, `/files?path=${enc(dest)}`), {
      ...this.#o('file', opts),
      method: 'POST',
      headers: {
        'X-Incus-type': 'file',
        'X-Incus-write': 'overwrite',
        'X-Incus-uid': String(opts.uid ?? 0),
        'X-Incus-gid': String(opts.gid ?? 0),
        'X-Incus-mode': (opts.mode ?? '0600').padStart(4, '0'),
      },
      body: typeof content === 'string' ? Buffer.from(content) : content,
    })
  }

  async memoryUsage(name: string, opts?: CallOptions): Promise<number | null> {
    const usage = (await this.#state(name, 'query', opts)).memory?.usage
    return usage !== undefined && Number.isFinite(usage) && usage >= 0 ? usage : null
  }

  async cpuUsage(name: string, opts?: CallOptions): Promise<number | null> {
    const usage = (await this.#state(name, 'query', opts)).cpu?.usage
    return usage !== undefined && Number.isFinite(usage) && usage >= 0 ? usage : null
  }

  async containerRoot(name: string, opts?: CallOptions): Promise<string | null> {
    const { pid } = await this.#state(name, 'query', opts)
    if (pid === undefined || !Number.isInteger(pid) || pid <= 0)
      throw new IncusCommandError({
        argv: ['query', 'GET', this.#inst(name, '/state')],
        exitCode: 0,
        stderr: `instance ${name} has no init process`,
      })
    return `/proc/${String(pid)}/root`
  }
}
