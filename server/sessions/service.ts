import { randomUUID } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { Value } from 'typebox/value'
import { LimitsSchema, type Config, type Limits } from '../../shared/schemas/config.ts'
import type { ImageState } from '../../shared/schemas/health.ts'
import type { CreateSessionBody, SessionInfo } from '../../shared/schemas/sessions.ts'
import { isToolName } from '../../shared/tools.ts'
import { configForWorkspace, findProfile, readWorkspaceLayer } from '../config/load.ts'
import { ConfigError } from '../config/merge.ts'
import { expandPath } from '../config/paths.ts'
import type { ConfigStore } from '../config/store.ts'
import {
  AppError,
  BadRequestError,
  ConflictError,
  IncusCommandError,
  incusReason,
  NotFoundError,
  UnavailableError,
} from '../errors.ts'
import type { EventHub } from '../events/hub.ts'
import type { HistoryStore } from '../history/store.ts'
import type { IncusDriver, LifecycleEvent } from '../incus/driver.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import type { EgressService } from '../network/egress.ts'
import { DeadlineScheduler, type DeadlineAction } from './deadlines.ts'
import { chooseIdMapping, rawIdmapHint, refuseRootOwner } from './id-mapping.ts'
import { instanceLimitConfig, parseDuration, rootDiskLimits, tmpfsSize } from './limits.ts'
import { planMounts } from './mounts.ts'
import {
  containerName,
  MAX_SLOTS,
  parseContainerName,
  tmuxSessionName,
  workspaceHash,
} from './naming.ts'
import {
  parseProtectLabel,
  planProtection,
  protectLabel,
  removeCreatedDirs,
  verifyMounted,
  type ProtectionPlan,
} from './protect.ts'
import { LABEL, type SessionRegistry } from './registry.ts'
import { copyToolConfig } from './tool-config.ts'
import { TRUECOLOR_ENV, tmuxStartArgv } from './tmux.ts'
import { TOOL_SPECS, toolWrapperArgv } from './tools.ts'
import { resolveWorkspace } from './workspace-check.ts'

export const CONTAINER_WORKSPACE = '/workspace'
/** The session's limits at creation (JSON), applied again on resume. */
export const CREATED_LIMITS = 'user.clincus.limits'
/** What the protection checked (identities, created directories), verified again on resume. */
export const PROTECTION = 'user.clincus.protection'
/** `[security] agent_sudo`: the sudoers line pushed into the session (the images grant no sudo). */
const SUDOERS_PATH = '/etc/sudoers.d/clincus-code'
const STOP_TIMEOUT_S = 30
/** How long the root pool's storage driver is trusted before it is asked again. */
const POOL_DRIVER_TTL_MS = 60_000

/** The client of a creation went away before the answer: the work is undone, nothing is sent. */
export class CreationCancelledError extends AppError {
  constructor() {
    super(499, 'client_closed', 'the client closed the connection; the session was rolled back')
  }
}

export interface SessionServiceDeps {
  driver: IncusDriver
  registry: SessionRegistry
  config: ConfigStore
  history: HistoryStore
  hub: EventHub
  log: Logger
  prefix: string
  /** The host user's home: tool config is copied from here. */
  home: string
  /** The state of an image being built, if it is (creating then answers 503). */
  imageState?: (alias: string) => ImageState | null
  readyTimeoutMs?: number
  /** Network egress (issue 12): the proxy device, environment, policy and `lo`. */
  egress?: EgressService
}

/** Serialises work per key (slot allocation per workspace). */
class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>()

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => undefined)
    this.#tails.set(key, tail)
    try {
      return await run
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    }
  }
}

type Step =
  'init' | 'workspace' | 'mounts' | 'protect' | 'start' | 'ready' | 'tmpfs' | 'tool-config' | 'tool'

const STEP_LABEL: Record<Step, string> = {
  init: 'creating the container',
  workspace: 'mounting the workspace',
  mounts: 'adding config mounts',
  protect: 'protecting paths read-only',
  start: 'starting the container',
  ready: 'waiting for the container',
  tmpfs: 'mounting tmpfs on /tmp',
  'tool-config': 'copying tool configuration',
  tool: 'starting the tool in tmux',
}

const STEP_ORDER: Step[] = [
  'init',
  'workspace',
  'mounts',
  'protect',
  'start',
  'ready',
  'tmpfs',
  'tool-config',
  'tool',
]

export class SessionService {
  readonly #d: SessionServiceDeps
  readonly #locks = new KeyedMutex()
  readonly #eventChains = new KeyedMutex()
  readonly #reserved = new Map<string, Set<number>>()
  readonly #deadlines: DeadlineScheduler
  readonly #abort = new AbortController()
  readonly #inFlight = new Set<Promise<unknown>>()
  /** Names being created by this process right now. */
  readonly #creating = new Set<string>()
  /** Half-created containers whose rollback failed. */
  readonly #orphans = new Set<string>()
  readonly #startedAt = Date.now()
  #pool: { driver: string | null; at: number } | null = null
  #poolWarned = false

  constructor(deps: SessionServiceDeps) {
    this.#d = deps
    this.#deadlines = new DeadlineScheduler(
      (id, action) => this.#expire(id, action),
      deps.log.child({ component: 'deadlines' }),
    )
  }

  get deadlines(): DeadlineScheduler {
    return this.#deadlines
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p)
    void p.finally(() => this.#inFlight.delete(p)).catch(() => undefined)
    return p
  }

  /** Cancels in-flight work (rolling it back) and drops timers. */
  async dispose(): Promise<void> {
    this.#abort.abort()
    this.#deadlines.dispose()
    await Promise.allSettled([...this.#inFlight])
  }

  /**
   * Effective config for sessions of `workspace`: the user's files, the profile, and the
   * workspace's .clincus.toml, which can only make limits stricter (config/tighten.ts). A resume
   * passes `created`: the workspace file is not read again and the limits are the ones the session
   * was created with (the CREATED_LIMITS label), so an agent cannot loosen them in between.
   */
  async configFor(
    workspace: string,
    profile: string | undefined,
    created?: { limits: string | undefined },
  ): Promise<Config> {
    const store = this.#d.config
    const file = join(workspace, '.clincus.toml')
    let config: Config | null
    try {
      const layer = created ? null : await readWorkspaceLayer(file)
      config = configForWorkspace(store.loaded, file, layer, store.home, store.locations, {
        profile,
      })
    } catch (err) {
      if (err instanceof ConfigError)
        throw new BadRequestError(
          err.message,
          err.file.startsWith('profile ') ? 'invalid_profile' : 'invalid_workspace_config',
        )
      throw err
    }
    if (!config)
      throw new BadRequestError(`profile '${profile ?? ''}' not found`, 'unknown_profile')
    const limits = created ? createdLimits(created.limits) : null
    return limits ? { ...config, limits } : config
  }

  async #reserveSlot(hash: string, signal: AbortSignal): Promise<number> {
    return this.#locks.run(hash, async () => {
      signal.throwIfAborted()
      const used = new Set(this.#reserved.get(hash) ?? [])
      // Any instance with the name holds the slot, ours or not, running or stopped.
      for (const inst of await this.#d.driver.listInstances({ timeoutMs: 10_000, signal })) {
        const parsed = parseContainerName(this.#d.prefix, inst.name)
        if (parsed?.hash === hash) used.add(parsed.slot)
      }
      for (let slot = 1; slot <= MAX_SLOTS; slot++) {
        if (!used.has(slot)) {
          const set = this.#reserved.get(hash) ?? new Set<number>()
          set.add(slot)
          this.#reserved.set(hash, set)
          return slot
        }
      }
      throw new ConflictError(
        `all ${MAX_SLOTS} slots are in use for this workspace; stop or delete a session first`,
        'slots_exhausted',
      )
    })
  }

  #releaseSlot(hash: string, slot: number): void {
    const set = this.#reserved.get(hash)
    set?.delete(slot)
    if (set?.size === 0) this.#reserved.delete(hash)
  }

  /**
   * Creates a session. `signal` is the client's: when it aborts before the answer (the client
   * went away), the creation stops at the next step and is rolled back like a failure.
   */
  async create(body: CreateSessionBody, signal?: AbortSignal): Promise<SessionInfo> {
    return this.#track(this.#create(body, signal))
  }

  /** The storage driver of the root disk's pool, cached; null when Incus cannot tell. */
  async #rootPoolDriver(signal: AbortSignal): Promise<string | null> {
    const now = Date.now()
    if (this.#pool && now - this.#pool.at < POOL_DRIVER_TTL_MS) return this.#pool.driver
    let driver: string | null
    try {
      driver = await this.#d.driver.rootPoolDriver({ timeoutMs: 10_000, signal })
    } catch (err) {
      if (signal.aborted) throw err
      this.#d.log.warn({ err }, 'could not read the storage pool of the root disk')
      driver = null
    }
    this.#pool = { driver, at: now }
    return driver
  }

  async #create(body: CreateSessionBody, clientSignal?: AbortSignal): Promise<SessionInfo> {
    const d = this.#d
    // Cancelled by the client going away or by the server shutting down.
    const signal = clientSignal
      ? AbortSignal.any([this.#abort.signal, clientSignal])
      : this.#abort.signal
    const cancelled = (): boolean => clientSignal?.aborted === true
    signal.throwIfAborted()
    const global = d.config.current
    const roots = global.dashboard.workspace_roots.map((r) => expandPath(r, d.config.home))
    const workspace = await resolveWorkspace(body.workspace, { home: d.config.home, roots })
    const config = await this.configFor(workspace, body.profile)
    const toolName = body.tool ?? config.tool.name
    const spec = TOOL_SPECS[toolName]
    const persistent = body.persistent ?? config.defaults.persistent
    const image = config.defaults.image
    const building = d.imageState?.(image)
    if (building?.state === 'building') {
      const pct = Math.round((building.progress ?? 0) * 100)
      throw new UnavailableError(
        `the image '${image}' is being built (${building.step ?? 'starting'}, ${pct}%); try again when it is ready`,
        'image_building',
        { 'Retry-After': '30' },
      )
    }
    const ctrWorkspace = CONTAINER_WORKSPACE
    const wsStat = await stat(workspace)
    const owner = { uid: wsStat.uid, gid: wsStat.gid }
    refuseRootOwner('the workspace', workspace, owner)
    const mounts = await planMounts(config.mounts.default, d.config.home, ctrWorkspace)
    const maxDurationMs = parseDuration(config.limits.runtime.max_duration)
    const mapping = chooseIdMapping(owner, config.incus.code_uid)
    const poolDriver = await this.#rootPoolDriver(signal)
    const rootDisk = rootDiskLimits(config.limits, poolDriver)
    if (rootDisk.sizeSkipped && !this.#poolWarned) {
      this.#poolWarned = true
      d.log.warn(
        { size: config.limits.disk.size, reason: rootDisk.sizeSkipped },
        'root-disk size not applied: sessions can fill the storage pool',
      )
    }
    signal.throwIfAborted()
    // Last before the container: it may create directories, removed again on any failure.
    const protection: ProtectionPlan | null = config.security.disable_protection
      ? null
      : await planProtection(workspace, ctrWorkspace, {
          paths: [
            ...config.security.protected_paths,
            ...config.security.additional_protected_paths,
          ],
          owner,
          writableHooks: config.git.writable_hooks,
        })

    const hash = workspaceHash(workspace)
    let slot: number
    try {
      slot = await this.#reserveSlot(hash, signal)
    } catch (err) {
      if (protection) await removeCreatedDirs(workspace, protection.created).catch(() => undefined)
      throw err
    }
    const name = containerName(d.prefix, hash, slot)
    this.#creating.add(name)
    const sessionId = randomUUID()
    const created = new Date()
    const log = d.log.child({ session: name })
    let step: Step = 'init'
    let initDone = false
    let historyStarted = false
    const progress = (s: Step): void => {
      step = s
      d.hub.publish({
        type: 'session.launching',
        id: name,
        step: s,
        progress: STEP_ORDER.indexOf(s) / STEP_ORDER.length,
      })
    }
    try {
      progress('init')
      const labels: Record<string, string> = {
        [LABEL.managed]: 'true',
        [LABEL.workspace]: workspace,
        [LABEL.tool]: toolName,
        [LABEL.persistent]: String(persistent),
        [LABEL.created]: created.toISOString(),
        [LABEL.started]: created.toISOString(),
        [LABEL.sessionId]: sessionId,
        // What resume applies again, without re-reading the workspace's file.
        [CREATED_LIMITS]: JSON.stringify(config.limits),
      }
      if (body.profile) labels[LABEL.profile] = body.profile
      const network = (await d.egress?.prepareCreate(name, workspace, body.profile, toolName)) ?? {}
      // Labels go on at creation, so a half-created container is already recognisably ours.
      // The client's signal does not reach init: killing `incus init` does not stop the daemon's
      // creation, which would leave a container behind after the rollback. It ends (bounded by
      // its timeout), then the cancellation is noticed and the container deleted.
      await d.driver.init(image, name, {
        // boot.autostart=false: after a host or daemon restart a session comes back stopped (and
        // resumable), never running without its agent.
        config: {
          ...labels,
          [LABEL.idMapping]: mapping.method,
          ...(protection ? { [PROTECTION]: protectLabel(protection) } : {}),
          'boot.autostart': 'false',
          // /dev/incus would tell the agent the host path of its workspace and our labels.
          'security.guestapi': 'false',
          // Its own range of host ids: container root (and every id but the code user) of one
          // session is no id of another session's container.
          'security.idmap.isolated': 'true',
          ...instanceLimitConfig(config.limits),
          ...mapping.config,
          ...network,
        },
        rootDisk: rootDisk.device,
        signal: this.#abort.signal,
      })
      initDone = true
      signal.throwIfAborted()

      // No disk is shifted: container ids other than the code user never meet host ids.
      const disks: Array<{ step: Step; device: string; props: Record<string, string> }> = [
        {
          step: 'workspace',
          device: 'workspace',
          props: { type: 'disk', source: workspace, path: ctrWorkspace },
        },
        ...mounts.map((m) => ({
          step: 'mounts' as const,
          device: m.device,
          props: { type: 'disk', source: m.source, path: m.path },
        })),
        ...(protection?.devices ?? []).map((p) => ({
          step: 'protect' as const,
          device: p.device,
          props: {
            type: 'disk',
            source: p.source,
            path: p.path,
            ...(p.readonly ? { readonly: 'true' } : {}),
          },
        })),
      ]
      for (const group of ['workspace', 'mounts', 'protect'] as const) {
        progress(group)
        for (const disk of disks.filter((x) => x.step === group))
          await d.driver.deviceAdd(name, disk.device, disk.props, { signal })
      }
      await d.egress?.addDevice(name, signal)

      progress('start')
      try {
        await d.driver.start(name, { signal })
      } catch (err) {
        // A refused raw.idmap fails deep in LXC ("forkstart ... exit status 1"): name the cause.
        if (!(err instanceof IncusCommandError)) throw err
        const hint = await rawIdmapHint(owner)
        if (!hint) throw err
        throw new IncusCommandError({
          argv: err.argv,
          exitCode: err.exitCode,
          // incus' reason is its last "Error:" line: the hint goes on a new one.
          stderr: `${err.stderr.trimEnd()}\nError: ${incusReason(err.stderr)}${hint}`,
          cause: err,
        })
      }
      // What Incus mounted is what was checked, or the session does not start.
      if (protection) await this.#verifyProtection(name, protection, signal)

      progress('ready')
      await this.#waitReady(name, signal)
      await d.egress?.afterStart(name, signal)

      progress('tmpfs')
      await this.#mountTmpfs(name, config, signal)

      if (config.security.agent_sudo) {
        await d.driver.filePush(
          name,
          `${config.incus.code_user} ALL=(ALL:ALL) NOPASSWD: ALL\n`,
          SUDOERS_PATH,
          {
            uid: 0,
            gid: 0,
            mode: '0440',
            signal,
          },
        )
      }

      progress('tool-config')
      const uid = config.incus.code_uid
      const containerHome = `/home/${config.incus.code_user}`
      const copied = await copyToolConfig(spec, {
        driver: d.driver,
        name,
        hostHome: d.home,
        containerHome,
        uid,
        effortLevel: config.tool.claude.effort_level,
        signal,
      })
      log.debug({ copied }, 'tool config copied')

      progress('tool')
      await this.#startTool(name, config, spec.start(sessionId), body.profile, signal)

      const finish: Record<string, string> = { [LABEL.ready]: 'true' }
      let deadline: { at: Date; action: DeadlineAction } | null = null
      if (maxDurationMs) {
        deadline = {
          at: new Date(Date.now() + maxDurationMs),
          action: this.#deadlineAction(config),
        }
        finish[LABEL.deadline] = deadline.at.toISOString()
        finish[LABEL.deadlineAction] = deadline.action
      }
      await d.driver.configSet(name, finish, { signal })
      if (deadline) this.#deadlines.schedule(name, deadline.at, deadline.action)
      const inst = await d.driver.getInstance(name, { signal })
      signal.throwIfAborted()
      historyStarted = true
      await d.history.recordStart({
        sessionId,
        id: name,
        workspace,
        tool: toolName,
        persistent,
        time: created,
      })
      // The last point of no return: a client gone by now gets its session rolled back too.
      signal.throwIfAborted()
      const session = inst ? d.registry.upsert(inst) : null
      log.info({ workspace, tool: toolName, slot }, 'session created')
      d.hub.publish({ type: 'session.launching', id: name, step: 'done', progress: 1 })
      return (
        session ?? {
          id: name,
          workspace,
          tool: toolName,
          slot,
          status: 'running',
          persistent,
          created_at: created.toISOString(),
        }
      )
    } catch (err) {
      const byClient = cancelled() && !this.#abort.signal.aborted
      if (byClient) log.info({ step }, 'session creation cancelled by the client; rolling back')
      else log.warn({ err, step }, 'session creation failed; rolling back')
      this.#deadlines.cancel(name)
      if (!initDone) {
        // A failed (or interrupted) init may still have left the instance behind.
        this.#orphans.add(name)
      } else if (!(await this.#rollback(name))) {
        // Incus may be down; the leftover is deleted when it is reachable again (restore).
        this.#orphans.add(name)
        log.error('rollback could not delete the container; will retry')
      }
      d.registry.remove(name)
      await d.egress?.forget(name).catch(() => undefined)
      await this.#removeCreated(workspace, protection, name)
      if (historyStarted) await d.history.recordEnd(name, new Date()).catch(() => undefined)
      const failure = byClient ? new CreationCancelledError() : this.#stepError(step, err)
      d.hub.publish({
        type: 'session.launching',
        id: name,
        step: 'failed',
        progress: 1,
        error: failure instanceof Error ? failure.message : String(failure),
      })
      throw failure
    } finally {
      this.#creating.delete(name)
      this.#releaseSlot(hash, slot)
    }
  }

  /**
   * Deletes a half-made container. An operation still running on it (a start whose client was
   * killed by the cancellation) can make Incus refuse for a moment, so a few tries.
   */
  /**
   * Deletes a half-made container. A delete while the daemon still runs an operation on it (the
   * `incus start` of a cancelled launch goes on in the daemon) is refused as busy: that is waited
   * out for up to 60 s; other failures get 4 attempts. False when it is still there.
   */
  async #rollback(name: string): Promise<boolean> {
    const until = Date.now() + 60_000
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#d.driver.delete(name, { force: true, timeoutMs: 60_000 })
        return true
      } catch (err) {
        if (err instanceof IncusCommandError && err.isNotFound) return true
        this.#d.log.warn({ err, session: name, attempt }, 'rollback delete failed')
        const busy = err instanceof IncusCommandError && err.isBusy
        if ((!busy && attempt >= 3) || Date.now() > until) return false
        await sleep(Math.min(100 * 2 ** attempt, 1000))
      }
    }
  }

  #stepError(step: Step, err: unknown): unknown {
    if (err instanceof IncusCommandError) {
      return new AppError(
        502,
        step === 'init' ? 'container_create_failed' : 'session_setup_failed',
        `${STEP_LABEL[step]} failed: ${err.message}`,
        { cause: err, expose: true },
      )
    }
    if (err instanceof AppError) return err
    return new AppError(
      500,
      'session_setup_failed',
      `${STEP_LABEL[step]} failed: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err, expose: true },
    )
  }

  #deadlineAction(config: Config): DeadlineAction {
    if (!config.limits.runtime.auto_stop) return 'none'
    // stop_graceful=true means a graceful stop: the original had these inverted.
    return config.limits.runtime.stop_graceful ? 'graceful' : 'force'
  }

  async #waitReady(name: string, signal: AbortSignal): Promise<void> {
    const timeout = this.#d.readyTimeoutMs ?? 30_000
    const until = Date.now() + timeout
    let delay = 50
    let last: string
    for (;;) {
      signal.throwIfAborted()
      try {
        const res = await this.#d.driver.exec(name, ['true'], { timeoutMs: 5000, signal })
        if (res.exitCode === 0) return
        last = res.stderr.trim()
      } catch (err) {
        if (signal.aborted) throw err
        last = err instanceof Error ? err.message : String(err)
      }
      if (Date.now() > until)
        throw new AppError(
          504,
          'container_not_ready',
          `the container did not become ready within ${timeout / 1000} s${last ? `: ${last}` : ''}`,
          { expose: true },
        )
      await sleep(delay, undefined, { signal })
      delay = Math.min(delay * 2, 500)
    }
  }

  /**
   * Removes the empty directories a session's protection made, unless another session of the
   * workspace exists or is being created (it may have them mounted, or be about to).
   */
  async #removeCreated(
    workspace: string,
    plan: ProtectionPlan | null,
    self: string,
  ): Promise<void> {
    if (!plan || plan.created.length === 0) return
    const hash = workspaceHash(workspace)
    try {
      const creating = [...this.#creating].some(
        (n) => n !== self && parseContainerName(this.#d.prefix, n)?.hash === hash,
      )
      const existing = (await this.#d.registry.list()).some(
        (s) => s.id !== self && s.workspace === workspace,
      )
      if (!creating && !existing) await removeCreatedDirs(workspace, plan.created)
    } catch (err) {
      this.#d.log.warn({ err, workspace }, 'could not remove the directories made for protection')
    }
  }

  async #verifyProtection(name: string, plan: ProtectionPlan, signal: AbortSignal): Promise<void> {
    const root = await this.#d.driver.containerRoot(name, { signal })
    if (root !== null) await verifyMounted(root, CONTAINER_WORKSPACE, plan)
  }

  async #mountTmpfs(name: string, config: Config, signal: AbortSignal): Promise<void> {
    const size = config.limits.disk.tmpfs_size
    if (!size) return
    // After start (the original ran this before start, so it never applied).
    const res = await this.#d.driver.exec(
      name,
      ['mount', '-t', 'tmpfs', '-o', `size=${tmpfsSize(size)},mode=1777`, 'tmpfs', '/tmp'],
      { signal },
    )
    if (res.exitCode !== 0) throw new Error(`mount tmpfs failed: ${res.stderr.trim()}`)
  }

  async #startTool(
    name: string,
    config: Config,
    toolArgv: string[],
    profile: string | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const uid = config.incus.code_uid
    const home = `/home/${config.incus.code_user}`
    const env: Record<string, string> = {
      ...(profile ? (findProfile(config, profile)?.environment ?? {}) : {}),
      HOME: home,
      USER: config.incus.code_user,
      LOGNAME: config.incus.code_user,
      TERM: 'xterm-256color',
      ...TRUECOLOR_ENV,
      IS_SANDBOX: '1',
    }
    const argv = tmuxStartArgv(
      tmuxSessionName(name),
      CONTAINER_WORKSPACE,
      toolWrapperArgv(toolArgv),
    )
    const res = await this.#d.driver.exec(name, argv, {
      user: uid,
      group: uid,
      cwd: CONTAINER_WORKSPACE,
      env,
      signal,
    })
    if (res.exitCode !== 0)
      throw new Error(`tmux exited with ${res.exitCode}: ${res.stderr.trim()}`)
  }

  async #toolRunning(name: string, config: Config): Promise<boolean> {
    const uid = config.incus.code_uid
    const res = await this.#d.driver.exec(
      name,
      ['tmux', 'has-session', '-t', `=${tmuxSessionName(name)}`],
      {
        user: uid,
        group: uid,
        env: { HOME: `/home/${config.incus.code_user}` },
        timeoutMs: 10_000,
      },
    )
    return res.exitCode === 0
  }

  /** Looks a session up for an action; anything not ours is 404 without reaching incus. */
  async #need(id: string): Promise<{
    session: SessionInfo
    config: Record<string, string>
    devices: Record<string, Record<string, string>>
    instance: IncusInstance
  }> {
    if (!parseContainerName(this.#d.prefix, id))
      throw new NotFoundError('session not found', 'session_not_found')
    const found = await this.#d.registry.fetch(id)
    if (!found) throw new NotFoundError('session not found', 'session_not_found')
    return {
      session: found.session,
      config: found.instance.config,
      devices: found.instance.devices ?? {},
      instance: found.instance,
    }
  }

  async stop(id: string, force: boolean): Promise<void> {
    const { session, config: labels } = await this.#need(id)
    this.#deadlines.cancel(id)
    if (force) {
      await this.#d.driver.delete(id, { force: true, signal: this.#abort.signal })
      this.#d.registry.remove(id)
      await this.#d.egress?.forget(id)
      await this.#removeCreated(session.workspace, parseProtectLabel(labels[PROTECTION]), id)
    } else if (session.status !== 'stopped' && session.status !== 'stopping') {
      // Also a status we do not know: better an error from incus than a silent 204 while the
      // container runs on.
      await this.#d.driver.stop(id, { timeoutS: STOP_TIMEOUT_S, signal: this.#abort.signal })
      this.#d.registry.setStatus(id, 'stopped')
    }
    await this.#d.history.recordEnd(id, new Date())
  }

  async #expire(id: string, action: DeadlineAction): Promise<void> {
    if (action === 'none') return
    const found = await this.#d.registry.fetch(id)
    if (!found || found.session.status === 'stopped' || found.session.status === 'stopping') return
    await this.#d.driver.stop(
      id,
      action === 'force' ? { force: true } : { timeoutS: STOP_TIMEOUT_S },
    )
    this.#d.registry.setStatus(id, 'stopped')
    await this.#d.history.recordEnd(id, new Date())
  }

  async resume(id: string): Promise<{ id: string; status: 'running' }> {
    return this.#track(this.#resume(id))
  }

  async #resume(id: string): Promise<{ id: string; status: 'running' }> {
    const { session, config: labels, devices, instance } = await this.#need(id)
    // Made before issue 11: shifted disks map container root to host root, and its image granted
    // sudo. It is not started again; a new session gets the current containment.
    if (Object.values(devices).some((dev) => dev.shift === 'true'))
      throw new ConflictError(
        `session ${id} was created with shifted mounts, which let container root act as host root; ` +
          'delete it and launch a new session',
        'legacy_session',
      )
    const toolName = labels[LABEL.tool] ?? 'claude'
    if (!isToolName(toolName))
      throw new ConflictError(`unknown tool '${toolName}' on session ${id}`, 'unknown_tool')
    const profile = labels[LABEL.profile]
    const config = await this.configFor(
      session.workspace,
      profile && hasProfile(this.#d.config.current, profile) ? profile : undefined,
      { limits: labels[CREATED_LIMITS] },
    )
    const signal = this.#abort.signal
    const wasRunning = session.status === 'running'
    if (wasRunning && (await this.#toolRunning(id, config))) return { id, status: 'running' }
    await this.#d.egress?.attach(instance, { fix: true, signal })
    if (!wasRunning) {
      await this.#d.driver.start(id, { signal })
      // Incus resolved the device sources again: they must still be what creation checked.
      const protection = parseProtectLabel(labels[PROTECTION])
      if (protection) {
        try {
          await this.#verifyProtection(id, protection, signal)
        } catch (err) {
          await this.#d.driver.stop(id, { force: true }).catch(() => undefined)
          this.#d.registry.setStatus(id, 'stopped')
          throw err
        }
      }
      await this.#waitReady(id, signal)
      await this.#d.egress?.afterStart(id, signal)
      await this.#mountTmpfs(id, config, signal)
    }
    const sessionId = randomUUID()
    const previous = labels[LABEL.sessionId]
    await this.#startTool(id, config, TOOL_SPECS[toolName].resume(previous), profile, signal)
    const patch: Record<string, string> = {
      [LABEL.sessionId]: sessionId,
      [LABEL.started]: new Date().toISOString(),
    }
    const maxMs = parseDuration(config.limits.runtime.max_duration)
    if (maxMs && !wasRunning) {
      const action = this.#deadlineAction(config)
      const deadline = new Date(Date.now() + maxMs)
      patch[LABEL.deadline] = deadline.toISOString()
      patch[LABEL.deadlineAction] = action
      this.#deadlines.schedule(id, deadline, action)
    }
    await this.#d.driver.configSet(id, patch, { signal })
    await this.#d.history.recordEnd(id, new Date())
    await this.#d.history.recordStart({
      sessionId,
      id,
      workspace: session.workspace,
      tool: toolName,
      persistent: session.persistent,
      time: new Date(),
    })
    await this.#d.registry.sync(id)
    return { id, status: 'running' }
  }

  /**
   * After (re)start of the server or of Incus: remove half-created leftovers, re-arm deadlines and
   * close the history of sessions that stopped meanwhile.
   */
  async restore(): Promise<void> {
    await this.#d.registry.refresh()
    for (const inst of await this.#d.registry.instances()) {
      const created = Date.parse(inst.config[LABEL.created] ?? '')
      const leftover =
        inst.config[LABEL.ready] !== 'true' &&
        !this.#creating.has(inst.name) &&
        (this.#orphans.has(inst.name) || Number.isNaN(created) || created < this.#startedAt)
      if (leftover) {
        this.#d.log.warn({ session: inst.name }, 'removing a half-created container')
        try {
          await this.#d.driver.delete(inst.name, { force: true, timeoutMs: 60_000 })
          this.#orphans.delete(inst.name)
          this.#d.registry.remove(inst.name)
          await this.#d.egress?.forget(inst.name)
          const ws = inst.config[LABEL.workspace]
          if (ws)
            await this.#removeCreated(ws, parseProtectLabel(inst.config[PROTECTION]), inst.name)
        } catch (err) {
          this.#d.log.error(
            { err, session: inst.name },
            'could not remove a half-created container',
          )
        }
        continue
      }
      await this.#d.egress?.attach(inst).catch((err: unknown) => {
        this.#d.log.warn({ err, session: inst.name }, 'could not open the egress proxy')
      })
      const running = inst.status.toLowerCase() === 'running'
      const deadline = inst.config[LABEL.deadline]
      const action = (inst.config[LABEL.deadlineAction] ?? 'graceful') as DeadlineAction
      if (running && deadline && !Number.isNaN(Date.parse(deadline)))
        this.#deadlines.schedule(inst.name, new Date(deadline), action)
      if (!running) await this.#d.history.recordEnd(inst.name, new Date())
    }
  }

  /** Keeps cache, timers and history right for transitions made outside clincus. */
  async handleLifecycle(e: LifecycleEvent): Promise<void> {
    this.noteLifecycle(e)
    await this.followUpLifecycle(e)
  }

  /**
   * The part of an event's handling that needs no Incus call: the cache says what the event says
   * right away, so the event can be published (and a client's refetch is right) without waiting.
   */
  noteLifecycle(e: LifecycleEvent): void {
    if (!parseContainerName(this.#d.prefix, e.name)) return
    const r = this.#d.registry
    switch (e.action) {
      case 'instance-stopped':
      case 'instance-shutdown':
        r.setStatus(e.name, 'stopped')
        this.#deadlines.cancel(e.name)
        break
      case 'instance-deleted':
        r.remove(e.name)
        this.#deadlines.cancel(e.name)
        void this.#d.egress?.forget(e.name)
        break
      case 'instance-started':
      case 'instance-restarted':
      case 'instance-resumed':
        r.setStatus(e.name, 'running')
        break
      case 'instance-paused':
        r.setStatus(e.name, 'frozen')
        break
      default:
        break
    }
  }

  /** History and a fresh read of the instance, in order per instance, off the event path. */
  followUpLifecycle(e: LifecycleEvent): Promise<void> {
    if (!parseContainerName(this.#d.prefix, e.name)) return Promise.resolve()
    const r = this.#d.registry
    return this.#track(
      this.#eventChains.run(e.name, async () => {
        switch (e.action) {
          case 'instance-stopped':
          case 'instance-shutdown':
            await this.#d.history.recordEnd(e.name, new Date(e.timestamp))
            await r.sync(e.name)
            break
          case 'instance-deleted':
            await this.#d.history.recordEnd(e.name, new Date(e.timestamp))
            break
          case 'instance-started':
          case 'instance-created':
          case 'instance-updated':
          case 'instance-restarted':
          case 'instance-paused':
          case 'instance-resumed':
          case 'instance-renamed':
            await r.sync(e.name)
            break
          default:
            break
        }
      }),
    )
  }
}

/** The limits a session was created with; null for sessions created before they were recorded. */
function createdLimits(label: string | undefined): Limits | null {
  if (!label) return null
  try {
    const value: unknown = JSON.parse(label)
    return Value.Check(LimitsSchema, value) ? value : null
  } catch {
    return null
  }
}

function hasProfile(config: Config, profile: string): boolean {
  return Object.hasOwn(config.profiles, profile)
}
