import type { Limits } from '../../shared/schemas/config.ts'

/**
 * Instance config keys for the configured limits. Only keys that differ from Incus' defaults are
 * set (the original always set enforce/swap, so every session counted as limited).
 */
export function instanceLimitConfig(limits: Limits): Record<string, string> {
  const out: Record<string, string> = {}
  if (limits.cpu.count) out['limits.cpu'] = limits.cpu.count
  if (limits.cpu.allowance) out['limits.cpu.allowance'] = limits.cpu.allowance
  if (limits.cpu.priority) out['limits.cpu.priority'] = String(limits.cpu.priority)
  if (limits.memory.limit) {
    out['limits.memory'] = limits.memory.limit
    out['limits.memory.enforce'] = limits.memory.enforce
  }
  if (limits.memory.swap === 'false') out['limits.memory.swap'] = 'false'
  if (limits.disk.priority) out['limits.disk.priority'] = String(limits.disk.priority)
  if (limits.runtime.max_processes > 0)
    out['limits.processes'] = String(limits.runtime.max_processes)
  return out
}

/**
 * Storage drivers whose volumes take a `size` quota. The `dir` driver only enforces one with
 * project quotas on the backing filesystem, and otherwise accepts `size` and ignores it (seen on
 * Incus 6.0.4): a quota we cannot trust is not set at all, and the log says so.
 */
const QUOTA_DRIVERS = new Set(['btrfs', 'zfs', 'lvm', 'lvmcluster', 'ceph'])

export interface RootDiskPlan {
  /** Options of the root disk device given at creation. */
  device: Record<string, string>
  /** Why the configured size was not applied, when it was not. */
  sizeSkipped?: string
}

/**
 * Disk I/O limits and the size quota are options of the root disk device in Incus, not instance
 * keys. `poolDriver` is the storage driver of the pool the root disk lives on (null: unknown).
 */
export function rootDiskLimits(limits: Limits, poolDriver: string | null = null): RootDiskPlan {
  const device: Record<string, string> = {}
  if (limits.disk.read) device['limits.read'] = limits.disk.read
  if (limits.disk.write) device['limits.write'] = limits.disk.write
  if (limits.disk.max) device['limits.max'] = limits.disk.max
  const plan: RootDiskPlan = { device }
  if (limits.disk.size) {
    if (poolDriver !== null && QUOTA_DRIVERS.has(poolDriver)) device.size = limits.disk.size
    else
      plan.sizeSkipped =
        poolDriver === null
          ? 'the storage pool of the root disk is unknown'
          : `the '${poolDriver}' storage pool does not enforce a root-disk size`
  }
  return plan
}

/** "2GiB" → "2G" for mount(8)'s size= option. */
export function tmpfsSize(size: string): string {
  return size.replace(/([KMGT])i?B$/, '$1')
}

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}

/** Parses a Go-style duration ("1h30m", "5s"); null when empty or malformed. */
export function parseDuration(text: string): number | null {
  if (!text) return null
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy
  let total = 0
  let consumed = 0
  for (const m of text.matchAll(re)) {
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? 0)
    consumed += m[0].length
  }
  return consumed === text.length ? total : null
}
