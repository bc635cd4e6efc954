// What a primed pool member (issue 16) fixed in its container, as one key: a create may claim the
// member only when its own plan, made fresh at the click (the workspace re-read, the protection
// re-walked), hashes to the same key. Timestamps, session ids and slots are not in it: they are
// set at the claim.
import { createHash } from 'node:crypto'
import type { Config } from '../../../shared/schemas/config.ts'
import type { ToolName } from '../../../shared/tools.ts'
import { findProfile } from '../../config/load.ts'
import type { LaunchPlan } from '../launch-plan.ts'
import { specForPlan } from './key.ts'

/** One launch request a member is primed for: what the user clicks (workspace real path). */
export interface PrimeRequest {
  workspace: string
  tool: ToolName
  profile: string | undefined
}

/** The parts of a primed key, each hashed on its own so a mismatch can say which one differs. */
export const KEY_PARTS = [
  'image',
  'request',
  'config',
  'mounts',
  'protection',
  'idmap',
  'network',
  'workspace',
] as const
export type KeyPart = (typeof KEY_PARTS)[number]

export interface PrimedKey {
  /** sha256 (first 32 hex) over the parts. */
  key: string
  parts: Record<KeyPart, string>
}

/** JSON with object keys sorted at every level: equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  )
}

function digest(value: unknown, hex = 16): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, hex)
}

/**
 * The merged config as far as it reaches the container or the steps made before the freeze:
 * everything but `[pool]` (how many members, not what they are), `[dashboard]` (the web side) and
 * the other profiles (only the request's one is kept).
 */
export function containerConfig(config: Config, profile: string | undefined): unknown {
  return {
    ...withoutSections(config, ['pool', 'dashboard', 'profiles']),
    profile: profile ? (findProfile(config, profile) ?? null) : null,
  }
}

/** `config` without the named top-level sections. */
export function withoutSections(
  config: Config,
  sections: readonly (keyof Config)[],
): Record<string, unknown> {
  const skip = new Set<string>(sections)
  return Object.fromEntries(Object.entries(config).filter(([k]) => !skip.has(k)))
}

/**
 * The key of `plan` (the request's plan, fresh) with `network`, the instance config the egress
 * service gives the session (proxy environment and the workspace's `[network]` table, as set at
 * creation). The protection part holds every device with the identity (device, inode) checked at
 * planning, and the workspace root's: a `.git` replaced between the prime and the claim changes it.
 * The workspace part is the workspace directory's own identity, with or without protection.
 */
export function primedKey(plan: LaunchPlan, network: Record<string, string>): PrimedKey {
  const protection = plan.protection
    ? { root: plan.protection.root, devices: plan.protection.devices }
    : null
  const parts: Record<KeyPart, string> = {
    image: specForPlan(plan).key,
    request: digest([plan.workspace, plan.tool, plan.profile ?? null]),
    config: digest(containerConfig(plan.config, plan.profile)),
    mounts: digest(plan.mounts),
    protection: digest(protection),
    idmap: digest([plan.owner, plan.mapping.method, plan.mapping.config]),
    network: digest(network),
    // The directory the member mounted: without protection nothing else in the key names it.
    workspace: digest([plan.workspaceId.dev, plan.workspaceId.ino]),
  }
  return {
    key: digest(
      KEY_PARTS.map((p) => parts[p]),
      32,
    ),
    parts,
  }
}

const PART_WORDS: Record<KeyPart, string> = {
  image: 'the image or root disk settings changed',
  request: 'another workspace, tool or profile',
  config: 'the config changed',
  mounts: 'the config mounts changed (or a mounted file or folder was replaced)',
  protection: "the workspace's protected paths changed (e.g. .git replaced)",
  idmap: "the workspace's owner changed",
  network: 'the network settings changed',
  workspace: 'the workspace folder was replaced (another folder at its path)',
}

/** Why a member primed with `have` cannot serve a create whose plan gives `want` (for the user). */
export function primedMismatch(have: PrimedKey, want: PrimedKey): string {
  const part = KEY_PARTS.find((p) => have.parts[p] !== want.parts[p])
  return `primed container stale: ${part ? PART_WORDS[part] : 'settings differ'} since it was primed`
}
