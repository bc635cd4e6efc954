import { createHash } from 'node:crypto'

export const MAX_SLOTS = 10
export const DEFAULT_PREFIX = 'clincus-'
/** Incus instance names are hostnames: at most 63 characters. */
const PREFIX_PATTERN = /^[a-z][a-z0-9-]{0,40}$/

export function validPrefix(prefix: string): boolean {
  return PREFIX_PATTERN.test(prefix)
}

/** sha256 of the workspace's real path, first 8 hex characters (clincus-behaviour §1.1). */
export function workspaceHash(realPath: string): string {
  return createHash('sha256').update(realPath).digest('hex').slice(0, 8)
}

export function containerName(prefix: string, hash: string, slot: number): string {
  return `${prefix}${hash}-${slot}`
}

export interface ParsedName {
  hash: string
  slot: number
}

/** Parses one of our container names; null for anything else (never passed on to incus). */
export function parseContainerName(prefix: string, name: string): ParsedName | null {
  if (!name.startsWith(prefix)) return null
  const m = /^([a-f0-9]{8})-([1-9]\d?)$/.exec(name.slice(prefix.length))
  if (!m?.[1] || !m[2]) return null
  const slot = Number(m[2])
  if (slot > MAX_SLOTS) return null
  return { hash: m[1], slot }
}

/** The infix of a warm pool container's name: `<prefix>warm-<10 hex>` (never a cold name: w is not hex). */
const WARM_INFIX = 'warm-'

/**
 * A warm pool container's name (issue 16). Incus refuses to rename a running instance, so a
 * session claimed from the pool keeps this name as its id: `id` is the pool member's `<10 hex>`.
 */
export function warmName(prefix: string, id: string): string {
  return `${prefix}${WARM_INFIX}${id}`
}

/** Whether `name` has the form of one of our warm pool containers (claimed or not). */
export function isWarmName(prefix: string, name: string): boolean {
  return name.startsWith(prefix) && /^warm-[a-f0-9]{10}$/.test(name.slice(prefix.length))
}

/**
 * Whether `name` can be one of our sessions: a cold name (`<prefix><hash>-<slot>`) or a warm one.
 * Anything else is never passed on to incus.
 */
export function isSessionName(prefix: string, name: string): boolean {
  return parseContainerName(prefix, name) !== null || isWarmName(prefix, name)
}

/** The tmux session the tool runs in; the original's name, so its CLI can attach too. */
export function tmuxSessionName(container: string): string {
  return `clincus-${container}`
}
