// A workspace's .clincus.toml comes with a cloned repository, or is written by the agent itself:
// it may make a session's limits stricter, never looser (issue 10 row 8). Each key keeps the
// stricter of the user's value and the workspace's; values that cannot be compared keep the
// user's.
import type { Limits, NetworkConfig } from '../../shared/schemas/config.ts'
import { parseDuration } from '../sessions/limits.ts'
import { isPlainObject, own } from './merge.ts'

export interface TightenContext {
  /** The host's memory, for limits given as a percentage ("50%"). */
  hostMemoryBytes: number
}

const UNIT: Record<string, number> = {
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
}

/** "2GiB", "512MB" or "50%" (of the host's memory) → bytes; null when not a size. */
export function memoryBytes(text: string, hostMemoryBytes: number): number | null {
  const pct = /^(\d+)%$/.exec(text)
  if (pct) return (Number(pct[1]) / 100) * hostMemoryBytes
  const m = /^(\d+)([KMGT]i?B)$/.exec(text)
  const unit = m ? own(UNIT, m[2] ?? '') : undefined
  return m && typeof unit === 'number' ? Number(m[1]) * unit : null
}

/** A tmpfs size as mount(8) reads it once tmpfsSize() drops the "B": K/M/G/T are binary. */
export function tmpfsBytes(text: string): number | null {
  const m = /^(\d+)(?:([KMGT])i?B)?$/.exec(text)
  if (!m) return null
  const power = m[2] ? 'KMGT'.indexOf(m[2]) + 1 : 0
  return Number(m[1]) * 1024 ** power
}

/** "2" → 2 CPUs; "0-3" → 4; "0,2,5-6" → 4. */
export function cpuCount(text: string): number | null {
  if (/^\d+$/.test(text)) return Number(text)
  let n = 0
  for (const part of text.split(',')) {
    const range = /^(\d+)-(\d+)$/.exec(part)
    if (range) n += Math.max(0, Number(range[2]) - Number(range[1]) + 1)
    else if (/^\d+$/.test(part)) n += 1
    else return null
  }
  return n
}

type Allowance = { kind: 'share'; value: number } | { kind: 'quota'; value: number }

/** "50%" is a soft share (only under contention); "25ms/100ms" a hard quota in CPUs. */
export function cpuAllowance(text: string): Allowance | null {
  const pct = /^(\d+)%$/.exec(text)
  if (pct) return { kind: 'share', value: Number(pct[1]) }
  const quota = /^(\d+)ms\/(\d+)ms$/.exec(text)
  if (quota && Number(quota[2]) > 0)
    return { kind: 'quota', value: Number(quota[1]) / Number(quota[2]) }
  return null
}

/** "100MiB/s" → { bytes/s }, "1000iops" → { iops }. */
export function diskRate(text: string): { kind: 'bytes' | 'iops'; value: number } | null {
  const iops = /^(\d+)iops$/.exec(text)
  if (iops) return { kind: 'iops', value: Number(iops[1]) }
  const rate = /^(\d+)([KMGT]i?B)\/s$/.exec(text)
  const unit = rate ? own(UNIT, rate[2] ?? '') : undefined
  return rate && typeof unit === 'number' ? { kind: 'bytes', value: Number(rate[1]) * unit } : null
}

/** "" is unlimited. The smaller of two limits; the user's when they cannot be compared. */
function lowerOptional(user: string, ws: string, measure: (s: string) => number | null): string {
  if (ws === '') return user
  if (user === '') return ws
  const u = measure(user)
  const w = measure(ws)
  if (u === null || w === null) return user
  return w < u ? ws : user
}

function stricterAllowance(user: string, ws: string): string {
  if (ws === '') return user
  if (user === '') return ws
  const u = cpuAllowance(user)
  const w = cpuAllowance(ws)
  if (!u || !w) return user
  if (u.kind === w.kind) return w.value < u.value ? ws : user
  // A hard quota caps the CPU at all times; a share only weighs under contention.
  return w.kind === 'quota' ? ws : user
}

function stricterRate(user: string, ws: string): string {
  if (ws === '') return user
  if (user === '') return ws
  const u = diskRate(user)
  const w = diskRate(ws)
  // Incus takes one rate per key: bytes/s and iops cannot both apply, so the user's stays.
  if (!u || !w || u.kind !== w.kind) return user
  return w.value < u.value ? ws : user
}

/** 0 means "not set": Incus' default priority applies (CPU 10, disk 5). */
function lowerPriority(user: number, ws: number, incusDefault: number): number {
  const u = user === 0 ? incusDefault : user
  const w = ws === 0 ? incusDefault : ws
  return w < u ? ws : user
}

/** "" is no tmpfs, "0" an unbounded one: a workspace may only shrink the user's tmpfs. */
function stricterTmpfs(user: string, ws: string): string {
  if (user === '' || ws === '') return user
  const w = tmpfsBytes(ws)
  if (w === null || w === 0) return user
  const u = tmpfsBytes(user)
  if (u === null) return user
  if (u === 0) return ws
  return w < u ? ws : user
}

function has(layer: unknown, section: string, key: string): boolean {
  const s = isPlainObject(layer) ? own(layer, section) : undefined
  return isPlainObject(s) && Object.hasOwn(s, key)
}

/**
 * The user's limits tightened by a workspace: `wsLayer` is the workspace file's raw `[limits]`
 * table (which keys it sets), `ws` the same validated over the defaults (their typed values).
 */
export function tightenLimits(
  user: Limits,
  wsLayer: unknown,
  ws: Limits,
  ctx: TightenContext,
): Limits {
  const set = (section: string, key: string): boolean => has(wsLayer, section, key)
  const memory = (s: string): number | null => memoryBytes(s, ctx.hostMemoryBytes)
  const out: Limits = {
    cpu: { ...user.cpu },
    memory: { ...user.memory },
    disk: { ...user.disk },
    runtime: { ...user.runtime },
  }
  if (set('cpu', 'count')) out.cpu.count = lowerOptional(user.cpu.count, ws.cpu.count, cpuCount)
  if (set('cpu', 'allowance'))
    out.cpu.allowance = stricterAllowance(user.cpu.allowance, ws.cpu.allowance)
  if (set('cpu', 'priority'))
    out.cpu.priority = lowerPriority(user.cpu.priority, ws.cpu.priority, 10)

  if (set('memory', 'limit'))
    out.memory.limit = lowerOptional(user.memory.limit, ws.memory.limit, memory)
  if (set('memory', 'enforce') && ws.memory.enforce === 'hard') out.memory.enforce = 'hard'
  if (set('memory', 'swap') && ws.memory.swap === 'false') out.memory.swap = 'false'

  if (set('disk', 'read')) out.disk.read = stricterRate(user.disk.read, ws.disk.read)
  if (set('disk', 'write')) out.disk.write = stricterRate(user.disk.write, ws.disk.write)
  if (set('disk', 'max')) out.disk.max = stricterRate(user.disk.max, ws.disk.max)
  if (set('disk', 'priority'))
    out.disk.priority = lowerPriority(user.disk.priority, ws.disk.priority, 5)
  if (set('disk', 'size'))
    out.disk.size = lowerOptional(user.disk.size, ws.disk.size, (v) => memoryBytes(v, 0))
  if (set('disk', 'tmpfs_size'))
    out.disk.tmpfs_size = stricterTmpfs(user.disk.tmpfs_size, ws.disk.tmpfs_size)

  if (set('runtime', 'max_duration'))
    out.runtime.max_duration = lowerOptional(
      user.runtime.max_duration,
      ws.runtime.max_duration,
      parseDuration,
    )
  if (set('runtime', 'max_processes')) {
    const u = user.runtime.max_processes
    const w = ws.runtime.max_processes
    if (w > 0 && (u === 0 || w < u)) out.runtime.max_processes = w
  }
  // Automatic stop at the deadline, and its graceful form, cannot be turned off by a workspace.
  if (set('runtime', 'auto_stop'))
    out.runtime.auto_stop = user.runtime.auto_stop || ws.runtime.auto_stop
  if (set('runtime', 'stop_graceful'))
    out.runtime.stop_graceful = user.runtime.stop_graceful || ws.runtime.stop_graceful
  return out
}

const MODE_RANK: Record<NetworkConfig['mode'], number> = { none: 0, allowlist: 1, open: 2 }

/**
 * The user's `[network]` narrowed by a workspace's (issue 12): `wsLayer` is the workspace file's
 * raw `[network]` table, `ws` the same validated. The mode becomes the stricter one (none <
 * allowlist < open); a workspace `allow` keeps only the user's entries it also lists (compared
 * as written, after trimming and lower-casing); `upstream` from a workspace is ignored.
 */
export function tightenNetwork(
  user: NetworkConfig,
  wsLayer: unknown,
  ws: NetworkConfig,
): NetworkConfig {
  const layer = isPlainObject(wsLayer) ? wsLayer : {}
  const out: NetworkConfig = { ...user, allow: [...user.allow] }
  if (Object.hasOwn(layer, 'mode') && MODE_RANK[ws.mode] < MODE_RANK[user.mode]) out.mode = ws.mode
  if (Object.hasOwn(layer, 'allow')) {
    const key = (e: string): string => e.trim().toLowerCase()
    const listed = new Set(ws.allow.map(key))
    out.allow = user.allow.filter((e) => listed.has(key(e)))
  }
  return out
}
