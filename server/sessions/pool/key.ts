// What a warm pool container must match to serve a create (issue 16): everything fixed when it was
// made and started that a claim cannot change on a running container. Everything else (labels,
// limits, environment, disks, the proxy device) is applied at the claim by the same functions the
// cold path uses (launch-steps.ts sessionConfig and the disk steps).
import { createHash } from 'node:crypto'
import { lstat, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Config } from '../../../shared/schemas/config.ts'
import { expandPath } from '../../config/paths.ts'
import { chooseIdMapping, type Owner } from '../id-mapping.ts'
import type { LaunchPlan } from '../launch-plan.ts'
import { bakedConfig } from '../launch-steps.ts'
import { rootDiskLimits } from '../limits.ts'

/** One kind of pool container: how to make it, and the key that names the kind. */
export interface PoolSpec {
  /** sha256 (first 16 hex) of everything below: the value of the pool label on its containers. */
  key: string
  /** The image alias (an image rebuilt under it invalidates the pool: WarmPool.invalidate). */
  image: string
  /** The baked config (base config and raw.idmap): launch-steps.ts bakedConfig. */
  config: Record<string, string>
  /** Root-disk device options (I/O limits, size quota): fixed at creation. */
  rootDisk: Record<string, string>
  /** `[incus] storage_pool` (the pool the root disk goes on). */
  storagePool: string
}

type SpecInput = Omit<PoolSpec, 'key'>

function specOf(input: SpecInput): PoolSpec {
  const canonical = JSON.stringify([
    input.image,
    Object.entries(input.config).sort(),
    Object.entries(input.rootDisk).sort(),
    input.storagePool,
  ])
  const key = createHash('sha256').update(canonical).digest('hex').slice(0, 16)
  return { key, ...input }
}

/** The spec a create's plan needs from a pool container. */
export function specForPlan(
  plan: Pick<LaunchPlan, 'image' | 'mapping' | 'rootDisk' | 'config'>,
): PoolSpec {
  return specOf({
    image: plan.image,
    config: bakedConfig(plan),
    rootDisk: plan.rootDisk,
    storagePool: plan.config.incus.storage_pool,
  })
}

/** How many entries of a root-owned workspace root are looked at for a workspace owner. */
const MAX_PEEK = 32

/**
 * The owner creates most likely have before any create said: the first workspace root's, or when
 * that root is root's (a shared folder), the first folder in it owned by a normal user. null when
 * none is found (sessions refuse root-owned workspaces, so no pool is made for root).
 */
async function likelyOwner(roots: readonly string[]): Promise<Owner | null> {
  const normal = (st: { uid: number; gid: number }): boolean => st.uid !== 0 && st.gid !== 0
  for (const root of roots) {
    const st = await stat(root).catch(() => null)
    if (!st?.isDirectory()) continue
    if (normal(st)) return { uid: st.uid, gid: st.gid }
    const entries = await readdir(root, { withFileTypes: true }).catch(() => [])
    for (const e of entries.slice(0, MAX_PEEK)) {
      if (!e.isDirectory()) continue
      const sub = await lstat(join(root, e.name)).catch(() => null)
      if (sub?.isDirectory() && normal(sub)) return { uid: sub.uid, gid: sub.gid }
    }
  }
  return null
}

/**
 * The spec the pool fills before any create told it better: the global config (no workspace
 * layer, no profile) and the likely owner (likelyOwner); null when there is none (no pool).
 * `poolDriver` is the storage driver of the root disk's pool (for the size quota).
 */
export async function defaultSpec(
  config: Config,
  home: string,
  poolDriver: string | null,
): Promise<PoolSpec | null> {
  const owner = await likelyOwner(config.dashboard.workspace_roots.map((r) => expandPath(r, home)))
  if (!owner) return null
  return specForPlan({
    image: config.defaults.image,
    mapping: chooseIdMapping(owner, config.incus.code_uid),
    rootDisk: rootDiskLimits(config.limits, poolDriver).device,
    config,
  })
}

/** Why a pool container of spec `have` cannot serve a create that needs `want` (words for the user). */
export function mismatchReason(have: PoolSpec, want: PoolSpec): string {
  if (have.image !== want.image) return 'the image differs from the warm containers'
  if (have.config['raw.idmap'] !== want.config['raw.idmap']) return 'id mapping differs'
  const sorted = (r: Record<string, string>): string => JSON.stringify(Object.entries(r).sort())
  if (sorted(have.rootDisk) !== sorted(want.rootDisk)) return 'root disk settings differ'
  if (have.storagePool !== want.storagePool) return 'storage pool differs'
  return 'container settings differ'
}
