import { readFile } from 'node:fs/promises'
import type { IdMapping } from '../../shared/schemas/sessions.ts'
import { parseSubIds } from '../provision/subid.ts'

export interface IdMappingInput {
  /** `[incus] disable_shift`: never use idmapped (shift=true) mounts. */
  disableShift: boolean
  /** Owner of the workspace directory on the host. */
  owner: { uid: number; gid: number }
  /** The code user inside the container (uid and gid). */
  codeUid: number
  /** False when the workspace's filesystem is known not to support idmapped mounts. */
  idmappedMounts: boolean
}

export interface IdMappingPlan {
  method: IdMapping
  /** Instance config keys (raw.idmap), empty for shift. */
  config: Record<string, string>
  /** Options for every disk device mounted from the host. */
  disk: Record<string, string>
}

/**
 * How files the agent writes in /workspace come to belong to the workspace's owner on the host.
 * An idmapped mount (shift=true) maps container uid N to host uid N, so it only does that when the
 * owner is the code user's uid, the user allows it, and the filesystem supports idmapped mounts;
 * every other case maps the owner to the code user with raw.idmap (unshifted mounts). Kept pure and
 * in one place: issue 11 replaces this design.
 */
export function chooseIdMapping(input: IdMappingInput): IdMappingPlan {
  const { owner, codeUid } = input
  const shiftWorks =
    !input.disableShift && input.idmappedMounts && owner.uid === codeUid && owner.gid === codeUid
  if (shiftWorks) return { method: 'shift', config: {}, disk: { shift: 'true' } }
  return {
    method: 'raw.idmap',
    config: { 'raw.idmap': `uid ${owner.uid} ${codeUid}\ngid ${owner.gid} ${codeUid}` },
    disk: {},
  }
}

/** Incus' refusal of a shift=true mount on a filesystem without idmapped-mount support. */
export function isIdmapUnsupported(stderr: string): boolean {
  return /idmapping abilities are required but aren't supported|idmapped mounts? (are )?not supported/i.test(
    stderr,
  )
}

/**
 * Whether root's subordinate id ranges let Incus map `id` into a container (raw.idmap goes through
 * newuidmap/newgidmap, which check /etc/subuid and /etc/subgid; root's own id 0 is always allowed).
 */
export function subIdAllows(text: string, id: number): boolean {
  if (id === 0) return true
  return parseSubIds(text).some(
    (r) => r.owner === 'root' && id >= r.start && id < r.start + r.count,
  )
}

/** A hint for a failed start with raw.idmap, or '' when the sub-id files allow the mapping. */
export async function rawIdmapHint(
  owner: { uid: number; gid: number },
  files = { uid: '/etc/subuid', gid: '/etc/subgid' },
): Promise<string> {
  const [uids, gids] = await Promise.all([
    readFile(files.uid, 'utf8').catch(() => ''),
    readFile(files.gid, 'utf8').catch(() => ''),
  ])
  const missing: string[] = []
  if (!subIdAllows(uids, owner.uid)) missing.push(`'root:${owner.uid}:1' to ${files.uid}`)
  if (!subIdAllows(gids, owner.gid)) missing.push(`'root:${owner.gid}:1' to ${files.gid}`)
  if (missing.length === 0) return ''
  return ` (mapping the workspace owner with raw.idmap needs ${missing.join(' and ')})`
}
