// Test workspaces belong to a normal user, as in real use: sessions refuse root-owned folders.
import { chown, readdir } from 'node:fs/promises'
import { join } from 'node:path'

/** uid/gid 1000: the usual first user (no passwd entry needed on the host). */
export const WORKSPACE_OWNER = { uid: 1000, gid: 1000 } as const

/** Gives a test workspace, and everything already in it, to WORKSPACE_OWNER. */
export async function ownByUser(dir: string): Promise<void> {
  await chown(dir, WORKSPACE_OWNER.uid, WORKSPACE_OWNER.gid)
  for (const entry of await readdir(dir, { recursive: true }))
    await chown(join(dir, entry), WORKSPACE_OWNER.uid, WORKSPACE_OWNER.gid)
}
