// The directory of the per-session proxy sockets: /run/clincus/egress when root, else
// $XDG_RUNTIME_DIR/clincus/egress (main.ts picks it). Ours alone: 0700, owned by us, never a
// symbolic link; stale sockets from a crash are unlinked (lstat: a link is removed, not followed).
import { chmod, lstat, mkdir, realpath, stat, unlink } from 'node:fs/promises'
import { userInfo } from 'node:os'
import { dirname } from 'node:path'

export class RuntimeDirError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'RuntimeDirError'
  }
}

/** What a private directory holds and how the user gets one, for the error messages. */
export interface PrivateDirWords {
  /** e.g. "the egress socket directory". */
  what: string
  /** e.g. "set XDG_RUNTIME_DIR to a directory of yours (mode 0700)". */
  fix: string
}

const RUNTIME_WORDS: PrivateDirWords = {
  what: 'the egress socket directory',
  fix: 'set XDG_RUNTIME_DIR to a directory of yours (mode 0700)',
}

/**
 * Creates (or checks) `dir`: a real directory owned by this user, mode 0700, under ancestors no
 * other user may rename in. Throws RuntimeDirError naming `words` otherwise.
 */
export async function prepareRuntimeDir(
  dir: string,
  words: PrivateDirWords = RUNTIME_WORDS,
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const st = await lstat(dir)
  if (!st.isDirectory())
    throw new RuntimeDirError(`${dir} is not a directory (a symbolic link?); remove it`)
  const uid = userInfo().uid
  if (st.uid !== uid)
    throw new RuntimeDirError(`${dir} belongs to uid ${st.uid}, not to us (${uid})`)
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700)
  await checkAncestors(dir, words)
}

/**
 * Every ancestor of `dir` (links resolved) must be root's or ours, and writable by no one else
 * unless sticky (like /tmp): otherwise another local user could rename our directory away after
 * the checks above and put their own in its place, and the sessions' sockets would be made there.
 * A group-writable ancestor is fine when the group is our own (user private groups).
 */
async function checkAncestors(dir: string, words: PrivateDirWords): Promise<void> {
  const { uid, gid } = userInfo()
  let at = dirname(await realpath(dir))
  for (;;) {
    const st = await stat(at)
    const sticky = (st.mode & 0o1000) !== 0
    if (st.uid !== 0 && st.uid !== uid)
      throw new RuntimeDirError(
        `${at} belongs to uid ${st.uid}: another user could replace ${words.what} under it; ${words.fix}`,
      )
    const othersWrite = (st.mode & 0o002) !== 0
    const groupWrite = (st.mode & 0o020) !== 0 && st.gid !== gid
    if ((othersWrite || groupWrite) && !sticky)
      throw new RuntimeDirError(
        `${at} is writable by other users without the sticky bit: one could replace ${words.what} under it; chmod o-w,g-w ${at} or ${words.fix}`,
      )
    const up = dirname(at)
    if (up === at) return
    at = up
  }
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
