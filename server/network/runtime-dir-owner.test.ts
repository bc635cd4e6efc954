// Red-team pass (issue 12), another local user: the socket directory is only ours if no one else
// can rename one of its ancestors. With `XDG_RUNTIME_DIR` (or a parent) writable by another user
// without the sticky bit, or a `clincus` directory that user created first, they can move our
// `egress` directory away after the check and put their own in its place: the next session's
// socket is then made in their directory, and the Incus proxy device connects to whatever they put
// at that path (the agent's traffic, and the user's tool credentials in plain-HTTP requests, go to
// them). Every ancestor must be root's or ours, and sticky where others may write.
import { chmod, chown, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { attackerUser, canActAsOtherUser } from '../test/local-user.ts'
import { prepareRuntimeDir, RuntimeDirError } from './runtime-dir.ts'

describe.runIf(canActAsOtherUser)('runtime directory ancestors', () => {
  it('refuses a directory under a parent another local user owns or may rename in', async () => {
    const attacker = await attackerUser()
    const base = await tempDir()
    await chmod(base, 0o755)
    // the attacker made `clincus` first
    const theirs = join(base, 'theirs')
    await mkdir(join(theirs, 'clincus'), { recursive: true })
    await chown(join(theirs, 'clincus'), attacker.uid, attacker.gid)
    await chmod(join(theirs, 'clincus'), 0o777)
    await expect(prepareRuntimeDir(join(theirs, 'clincus', 'egress'))).rejects.toThrow(
      RuntimeDirError,
    )
    // a world-writable parent without the sticky bit
    const open = join(base, 'open')
    await mkdir(open)
    await chmod(open, 0o777)
    await expect(prepareRuntimeDir(join(open, 'clincus', 'egress'))).rejects.toThrow(
      RuntimeDirError,
    )
    // sticky and world-writable (like /tmp) is fine: no one else may rename our entries
    const sticky = join(base, 'sticky')
    await mkdir(sticky)
    await chmod(sticky, 0o1777)
    await prepareRuntimeDir(join(sticky, 'clincus', 'egress'))
  })
})
