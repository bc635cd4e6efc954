import { readFile } from 'node:fs/promises'
import { BadRequestError } from '../errors.ts'
import { subIdAllows } from '../../provision/subid.ts'

export interface IdMappingPlan {
  method: 'raw.idmap'
  /** Instance config keys: raw.idmap. */
  config: Record<string, string>
}

/** Who owns a host folder mounted into a session. */
export interface Owner {
  uid: number
  gid: number
}

/**
 * The one place that decides how container ids meet host ids: exactly the code user (and its group)
 * map to the workspace owner with raw.idmap; every other container id, root included, stays in the
 * container's unprivileged range. So a file the code user makes is the owner's, a file container
 * root makes belongs to an unprivileged host id (1000000+), and no container id is host root.
 * Disks are never shifted (shift=true would map container root to host root on the mount).
 */
export function chooseIdMapping(owner: Owner, codeUid: number): IdMappingPlan {
  return {
    method: 'raw.idmap',
    config: { 'raw.idmap': `uid ${owner.uid} ${codeUid}\ngid ${owner.gid} ${codeUid}` },
  }
}

/**
 * Refuses a host folder owned by root (user or group): the code user would be host root there, and
 * a setuid copy of a shell it leaves in the folder would give anyone on the host root.
 */
export function refuseRootOwner(what: string, dir: string, owner: Owner): void {
  if (owner.uid !== 0 && owner.gid !== 0) return
  const whom = owner.uid === 0 ? 'the root user' : 'the root group'
  throw new BadRequestError(
    `${what} ${dir} is owned by ${whom}; the agent's files would be root's on the host. ` +
      `Give the folder to a normal user: chown -R <you>:<your group> ${dir}`,
    'root_owned_folder',
  )
}

/** Every extra mount must belong to the workspace owner: only that owner is mapped into the session. */
export function refuseForeignOwner(what: string, dir: string, owner: Owner, ws: Owner): void {
  refuseRootOwner(what, dir, owner)
  if (owner.uid === ws.uid && owner.gid === ws.gid) return
  throw new BadRequestError(
    `${what} ${dir} is owned by ${owner.uid}:${owner.gid}, not by the workspace's owner ` +
      `${ws.uid}:${ws.gid}; only the workspace owner is mapped into the session. ` +
      `Give it to the same user: chown -R ${ws.uid}:${ws.gid} ${dir}`,
    'foreign_owned_mount',
  )
}

/** The lines root's sub-id files lack for mapping `owner`, as a sentence, or '' when allowed. */
export async function rawIdmapHint(
  owner: Owner,
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
  return ` (mapping the workspace owner with raw.idmap needs ${missing.join(' and ')}, then a restart of incusd; \`clincus setup\` adds them for uid/gid 1000 and the user who runs it)`
}
