// Copy-on-write storage for sessions (issue 16). On a `dir` pool `incus init` unpacks the whole
// image for every container (7–8 s and ~1 GB written for the real image); on a `btrfs` pool every
// init after the first is a snapshot (~0.16 s): machine-facts.md. Setup therefore gives sessions a
// btrfs pool whenever the kernel can mount one, without ever changing an existing pool.
import { existsSync } from 'node:fs'
import { readFile, statfs } from 'node:fs/promises'
import { aptInstall } from './apt.ts'
import { CLINCUS_POOL, incus } from '../incus/cli.ts'
import { findExecutable } from './host.ts'
import type { StoragePool } from './preseed.ts'
import type { SetupReporter } from './reporter.ts'

/** Drivers whose `incus init` from an image is a snapshot, not an unpack. */
export const COW_DRIVERS: ReadonlySet<string> = new Set([
  'btrfs',
  'zfs',
  'lvm',
  'lvmcluster',
  'ceph',
])

const GIB = 1024 ** 3
/** Bounds of the loop file's size (GiB): a cap on what sessions may write, sparse on disk. */
export const POOL_MIN_GIB = 8
export const POOL_MAX_GIB = 100
/** The share of the free space the loop file may grow to. */
const POOL_FREE_SHARE = 0.5

export interface CowPoolPlan {
  name: string
  driver: 'btrfs'
  /** Incus' `size=` of the loop file, e.g. "30GiB". */
  size: string
}

/**
 * What to add so that sessions get copy-on-write storage: undefined when a pool with such a driver
 * exists already, when btrfs cannot be used here, or when the disk has too little free space for a
 * pool of at least POOL_MIN_GIB (sessions then stay on the `dir` pool, which works, slowly).
 * `freeBytes` is the free space of the filesystem holding /var/lib/incus.
 */
export function planCowPool(
  pools: readonly StoragePool[],
  host: { btrfs: boolean; freeBytes: number },
): CowPoolPlan | undefined {
  // A pool named `clincus` is the user's choice already, whatever its driver.
  if (pools.some((pool) => COW_DRIVERS.has(pool.driver) || pool.name === CLINCUS_POOL))
    return undefined
  if (!host.btrfs) return undefined
  const gib = Math.min(POOL_MAX_GIB, Math.floor((host.freeBytes * POOL_FREE_SHARE) / GIB))
  if (gib < POOL_MIN_GIB) return undefined
  return { name: CLINCUS_POOL, driver: 'btrfs', size: `${String(gib)}GiB` }
}

/** Whether this kernel can back an Incus btrfs pool with a loop file (root only). */
export async function btrfsUsable(): Promise<boolean> {
  const filesystems = await readFile('/proc/filesystems', 'utf8').catch(() => '')
  return /\sbtrfs$/m.test(filesystems) && existsSync('/dev/loop-control')
}

/** Free bytes of the filesystem that holds Incus' loop files. */
export async function incusFreeBytes(): Promise<number> {
  const path = existsSync('/var/lib/incus') ? '/var/lib/incus' : '/var/lib'
  const fs = await statfs(path)
  return fs.bavail * fs.bsize
}

/**
 * Adds a loop-file btrfs pool named `clincus` when the installation has no copy-on-write pool and
 * the kernel supports btrfs (root only: loop devices). Installs btrfs-progs, which Incus' btrfs
 * driver runs. Never fails setup: sessions keep working on the `dir` pool, with a note saying why.
 */
export async function ensureCowPool(
  pools: readonly StoragePool[],
  reporter: SetupReporter,
): Promise<void> {
  const plan = planCowPool(pools, { btrfs: await btrfsUsable(), freeBytes: await incusFreeBytes() })
  if (!plan) {
    const cow =
      pools.find((pool) => pool.name === CLINCUS_POOL) ??
      pools.find((pool) => COW_DRIVERS.has(pool.driver))
    reporter.note(
      cow
        ? `storage: sessions use copy-on-write pool '${cow.name}' (${cow.driver})`
        : 'storage: no copy-on-write pool (btrfs unusable or too little free space); sessions unpack the image on a dir pool',
    )
    return
  }
  try {
    if ((await findExecutable('mkfs.btrfs')) === undefined)
      await reporter.step('install btrfs-progs (for a copy-on-write storage pool)', () =>
        aptInstall(['btrfs-progs']),
      )
    await reporter.step(`create storage pool '${plan.name}' (btrfs, ${plan.size} loop file)`, () =>
      incus.run(['storage', 'create', '--', plan.name, plan.driver, `size=${plan.size}`], {
        timeoutMs: 120_000,
      }),
    )
  } catch (err) {
    reporter.note(
      `storage: could not add a btrfs pool (${err instanceof Error ? err.message : String(err)}); sessions stay on the dir pool`,
    )
  }
}
