// The directory of the per-session proxy sockets: /run/clincus/egress when root, else
// $XDG_RUNTIME_DIR/clincus/egress (main.ts picks it). Ours alone: 0700, owned by us, never a
// symbolic link; stale sockets from a crash are unlinked (lstat: a link is removed, not followed).
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises'
import { userInfo } from 'node:os'

export class RuntimeDirError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'RuntimeDirError'
  }
}

/** Creates (or checks) `dir`: a real directory owned by this user, mode 0700. */
export async function prepareRuntimeDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const st = await lstat(dir)
  if (!st.isDirectory())
    throw new RuntimeDirError(`${dir} is not a directory (a symbolic link?); remove it`)
  const uid = userInfo().uid
  if (st.uid !== uid)
    throw new RuntimeDirError(`${dir} belongs to uid ${st.uid}, not to us (${uid})`)
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700)
}

/** Removes what a crash left at a socket path: a socket, a link or a file, never a directory. */
export async function removeStale(path: string): Promise<void> {
  let st
  try {
    st = await lstat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  if (st.isDirectory()) throw new RuntimeDirError(`${path} is a directory; remove it`)
  await unlink(path)
}
