import { stat } from 'node:fs/promises'
import { posix } from 'node:path'
import type { Mount } from '../../shared/schemas/config.ts'
import { expandPath } from '../config/paths.ts'
import { BadRequestError } from '../errors.ts'
import { refuseRootOwner } from './id-mapping.ts'

export interface MountDevice {
  device: string
  source: string
  path: string
  /**
   * The source's identity (device, inode) when planned: a primed member (pool/primed-key.ts)
   * holds the file or folder that was at `source` then, so one replaced since (a file rewritten
   * by rename, as editors and `git config` do) gives another key.
   */
  id: { dev: number; ino: number }
}

function nested(a: string, b: string): boolean {
  return (
    a === b ||
    a.startsWith(b.endsWith('/') ? b : b + '/') ||
    b.startsWith(a.endsWith('/') ? a : a + '/')
  )
}

/** [[mounts.default]] as `mount-<i>` devices; container paths must be absolute and not nested. */
export async function planMounts(
  mounts: readonly Mount[],
  home: string,
  ctrWorkspace: string,
): Promise<MountDevice[]> {
  const out: MountDevice[] = []
  for (const [i, m] of mounts.entries()) {
    const path = posix.normalize(m.container)
    if (!path.startsWith('/'))
      throw new BadRequestError(
        `mounts.default[${i}].container must be absolute: ${m.container}`,
        'invalid_mount',
      )
    if (nested(path, ctrWorkspace)) {
      throw new BadRequestError(
        `mounts.default[${i}].container ${path} overlaps the workspace at ${ctrWorkspace}`,
        'invalid_mount',
      )
    }
    const clash = out.find((o) => nested(o.path, path))
    if (clash)
      throw new BadRequestError(
        `nested mount paths: '${clash.path}' and '${path}' conflict`,
        'invalid_mount',
      )
    const source = expandPath(m.host, home)
    const st = await stat(source).catch(() => null)
    if (!st)
      throw new BadRequestError(
        `mounts.default[${i}].host does not exist: ${source}`,
        'invalid_mount',
      )
    // Its files would be host root's for the code user? No: unmapped, but container root with
    // agent_sudo could still plant files there as an unprivileged id. Same rule as the workspace.
    refuseRootOwner(`mounts.default[${i}].host`, source, { uid: st.uid, gid: st.gid })
    out.push({ device: `mount-${i}`, source, path, id: { dev: st.dev, ino: st.ino } })
  }
  return out
}
