// Everything a creation decides before it touches Incus: the workspace (checked), its config, the
// tool, mounts, id mapping, root-disk limits and the protection plan. Refusals happen here, so a
// bad request never leaves a container behind.
import { stat } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { Config } from '../../shared/schemas/config.ts'
import type { ImageState } from '../../shared/schemas/health.ts'
import type { CreateSessionBody } from '../../shared/schemas/sessions.ts'
import type { ToolName } from '../../shared/tools.ts'
import { expandPath } from '../config/paths.ts'
import type { ConfigStore } from '../config/store.ts'
import { UnavailableError } from '../errors.ts'
import type { IncusDriver } from '../incus/driver.ts'
import { CONTAINER_WORKSPACE } from './commands.ts'
import { chooseIdMapping, refuseRootOwner, type IdMappingPlan } from './id-mapping.ts'
import { parseDuration, rootDiskLimits } from './limits.ts'
import { planMounts, type MountDevice } from './mounts.ts'
import { planProtection, type ProtectionPlan } from './protect.ts'
import { configFor } from './session-config.ts'
import { resolveWorkspace } from './workspace-check.ts'

/** How long the root pool's storage driver is trusted before it is asked again. */
const POOL_DRIVER_TTL_MS = 60_000

export interface LaunchPlan {
  /** The workspace's real path. */
  workspace: string
  config: Config
  tool: ToolName
  persistent: boolean
  image: string
  profile: string | undefined
  owner: { uid: number; gid: number }
  /**
   * The workspace directory's identity (device, inode) when it was planned: a primed member
   * (pool/primed-key.ts) mounted the directory then at the path, so a directory replaced at the
   * path since (renamed, deleted and made again) gives another key, protection or not.
   */
  workspaceId: { dev: number; ino: number }
  mounts: MountDevice[]
  mapping: IdMappingPlan
  rootDisk: Record<string, string>
  /** ms; null for no limit. */
  maxDurationMs: number | null
  /** null when `security.disable_protection`; may have created directories (removed on failure). */
  protection: ProtectionPlan | null
}

/** The storage driver of the root disk's pool, cached for a minute; null when Incus cannot tell. */
export class PoolDriverCache {
  readonly #driver: IncusDriver
  readonly #log: Logger
  #pool: { driver: string | null; at: number } | null = null
  #warned = false

  constructor(driver: IncusDriver, log: Logger) {
    this.#driver = driver
    this.#log = log
  }

  async get(signal: AbortSignal): Promise<string | null> {
    const now = Date.now()
    if (this.#pool && now - this.#pool.at < POOL_DRIVER_TTL_MS) return this.#pool.driver
    let driver: string | null
    try {
      driver = await this.#driver.rootPoolDriver({ timeoutMs: 10_000, signal })
    } catch (err) {
      if (signal.aborted) throw err
      this.#log.warn({ err }, 'could not read the storage pool of the root disk')
      driver = null
    }
    this.#pool = { driver, at: now }
    return driver
  }

  /** Logs once per process that the root-disk size cannot be applied. */
  warnSizeSkipped(size: string, reason: string): void {
    if (this.#warned) return
    this.#warned = true
    this.#log.warn(
      { size, reason },
      'root-disk size not applied: sessions can fill the storage pool',
    )
  }
}

export interface PlanDeps {
  config: ConfigStore
  pool: PoolDriverCache
  imageState?: (alias: string) => ImageState | null
}

/**
 * Plans a creation. Throws BadRequestError / NotFoundError for the request's mistakes,
 * UnavailableError 503 `image_building` (Retry-After 30) while the image is being built.
 */
export async function planLaunch(
  d: PlanDeps,
  body: CreateSessionBody,
  signal: AbortSignal,
): Promise<LaunchPlan> {
  signal.throwIfAborted()
  const store = d.config
  const roots = store.current.dashboard.workspace_roots.map((r) => expandPath(r, store.home))
  const workspace = await resolveWorkspace(body.workspace, { home: store.home, roots })
  const config = await configFor(store, workspace, body.profile)
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
  const wsStat = await stat(workspace)
  const owner = { uid: wsStat.uid, gid: wsStat.gid }
  refuseRootOwner('the workspace', workspace, owner)
  const mounts = await planMounts(config.mounts.default, store.home, CONTAINER_WORKSPACE)
  const rootDisk = rootDiskLimits(config.limits, await d.pool.get(signal))
  if (rootDisk.sizeSkipped) d.pool.warnSizeSkipped(config.limits.disk.size, rootDisk.sizeSkipped)
  signal.throwIfAborted()
  // Last: it may create directories, which the caller removes again on any failure.
  const protection = config.security.disable_protection
    ? null
    : await planProtection(workspace, CONTAINER_WORKSPACE, {
        paths: [...config.security.protected_paths, ...config.security.additional_protected_paths],
        owner,
        writableHooks: config.git.writable_hooks,
      })
  return {
    workspace,
    config,
    tool: body.tool ?? config.tool.name,
    persistent: body.persistent ?? config.defaults.persistent,
    image,
    profile: body.profile,
    owner,
    workspaceId: { dev: wsStat.dev, ino: wsStat.ino },
    mounts,
    mapping: chooseIdMapping(owner, config.incus.code_uid),
    rootDisk: rootDisk.device,
    maxDurationMs: parseDuration(config.limits.runtime.max_duration),
    protection,
  }
}
