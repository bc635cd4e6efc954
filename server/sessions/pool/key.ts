// What a warm pool container must match to serve a create (issue 16): what `incus init` fixed (the
// image, the root disk, its storage pool, the base config). Everything else (labels, limits, id
// mapping, environment, disks, the proxy device) is applied at the claim, before the first start,
// by the same functions the cold path uses (launch-steps.ts sessionConfig and the disk steps).
import { createHash } from 'node:crypto'
import type { Config } from '../../../shared/schemas/config.ts'
import type { LaunchPlan } from '../launch-plan.ts'
import { bakedConfig } from '../launch-config.ts'
import { rootDiskLimits } from '../limits.ts'

/** One kind of pool container: how to make it, and the key that names the kind. */
export interface PoolSpec {
  /** sha256 (first 16 hex) of everything below: the value of the pool label on its containers. */
  key: string
  /** The image alias (an image rebuilt under it invalidates the pool: WarmPool.invalidate). */
  image: string
  /** The config it is made with: launch-steps.ts bakedConfig. */
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
export function specForPlan(plan: Pick<LaunchPlan, 'image' | 'rootDisk' | 'config'>): PoolSpec {
  return specOf({
    image: plan.image,
    config: bakedConfig(),
    rootDisk: plan.rootDisk,
    storagePool: plan.config.incus.storage_pool,
  })
}

/**
 * The spec the pool fills before any create told it better: the global config (no workspace
 * layer, no profile). `poolDriver` is the storage driver of the root disk's pool (size quota).
 */
export function defaultSpec(config: Config, poolDriver: string | null): PoolSpec {
  return specOf({
    image: config.defaults.image,
    config: bakedConfig(),
    rootDisk: rootDiskLimits(config.limits, poolDriver).device,
    storagePool: config.incus.storage_pool,
  })
}

/** Why a pool container of spec `have` cannot serve a create that needs `want` (words for the user). */
export function mismatchReason(have: PoolSpec, want: PoolSpec): string {
  if (have.image !== want.image) return 'the image differs from the warm containers'
  const sorted = (r: Record<string, string>): string => JSON.stringify(Object.entries(r).sort())
  if (sorted(have.rootDisk) !== sorted(want.rootDisk)) return 'root disk settings differ'
  if (have.storagePool !== want.storagePool) return 'storage pool differs'
  return 'container settings differ'
}
