// Walking a workspace without following links. Node has no openat(2): a directory is held open and
// its children reached through /proc/self/fd/<fd>/<name>, where only <name> is looked up, in the
// directory the descriptor pins. A component that is a symlink is never followed, wherever it
// points; a rename of a parent meanwhile cannot send the walk elsewhere.
import { constants, type Stats } from 'node:fs'
import { lstat, mkdir, open, opendir, readdir, rmdir, type FileHandle } from 'node:fs/promises'
import { BadRequestError, ConflictError } from '../errors.ts'

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW
const FILE_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK

/** What a pinned walk found at one path: its identity, for the check after the mount. */
export interface Found {
  rel: string
  kind: 'dir' | 'file'
  dev: number
  ino: number
}

export class SymlinkRefused extends BadRequestError {
  constructor(rel: string) {
    super(
      `${rel} in the workspace is a symlink; refusing to start the session, because protection ` +
        'cannot follow a link (replace it with a real directory or file)',
      'protected_path_symlink',
    )
  }
}

function found(rel: string, st: Stats): Found {
  return { rel, kind: st.isDirectory() ? 'dir' : 'file', dev: st.dev, ino: st.ino }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT'
}

/** A directory held open; children are looked up in it only. */
export class PinnedDir {
  readonly #fh: FileHandle
  readonly rel: string

  private constructor(fh: FileHandle, rel: string) {
    this.#fh = fh
    this.rel = rel
  }

  /** Opens an absolute directory path (already resolved by the caller), refusing a final symlink. */
  static async open(path: string): Promise<PinnedDir> {
    return new PinnedDir(await open(path, DIR_FLAGS), '')
  }

  #child(name: string): string {
    if (name === '' || name === '.' || name === '..' || name.includes('/'))
      throw new Error(`not a single path component: ${JSON.stringify(name)}`)
    return `/proc/self/fd/${this.#fh.fd}/${name}`
  }

  #relOf(name: string): string {
    return this.rel === '' ? name : `${this.rel}/${name}`
  }

  async stat(): Promise<Stats> {
    return this.#fh.stat()
  }

  /** lstat of a child; null when absent. */
  async lstat(name: string): Promise<Stats | null> {
    return lstat(this.#child(name)).catch((err: unknown) => {
      if (isMissing(err)) return null
      throw err
    })
  }

  /** Opens a child directory; null when absent; SymlinkRefused for a link; an error for a file. */
  async openDir(name: string): Promise<PinnedDir | null> {
    const st = await this.lstat(name)
    if (!st) return null
    if (st.isSymbolicLink()) throw new SymlinkRefused(this.#relOf(name))
    if (!st.isDirectory())
      throw new BadRequestError(
        `${this.#relOf(name)} in the workspace is not a directory`,
        'protected_path_invalid',
      )
    const fh = await open(this.#child(name), DIR_FLAGS).catch((err: unknown) => {
      // It was a directory a moment ago: a link, a file or nothing now means it was swapped.
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENOENT')
        throw new ProtectedPathChanged(this.#relOf(name))
      throw err
    })
    const dir = new PinnedDir(fh, this.#relOf(name))
    const now = await fh.stat()
    // Swapped between the lstat and the open: refuse rather than guess.
    if (now.ino !== st.ino || now.dev !== st.dev) {
      await dir.close()
      throw new ProtectedPathChanged(this.#relOf(name))
    }
    return dir
  }

  /**
   * Creates a child directory owned by `owner` (through the new directory's descriptor); null when
   * it appeared meanwhile (another launch made it): the caller opens it instead.
   */
  async makeDir(name: string, owner: { uid: number; gid: number }): Promise<PinnedDir | null> {
    try {
      await mkdir(this.#child(name), { mode: 0o755 })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return null
      throw err
    }
    const dir = await this.openDir(name)
    if (!dir) throw new ProtectedPathChanged(this.#relOf(name))
    await dir.#fh.chown(owner.uid, owner.gid)
    return dir
  }

  /** Removes a child directory when it is (still) empty; false when it is not. */
  async removeIfEmpty(name: string): Promise<boolean> {
    const st = await this.lstat(name)
    if (!st?.isDirectory()) return false
    return rmdir(this.#child(name)).then(
      () => true,
      () => false,
    )
  }

  async list(): Promise<string[]> {
    return readdir(`/proc/self/fd/${this.#fh.fd}`)
  }

  /**
   * At most `max + 1` names of the directory's entries (in the order the filesystem gives them):
   * more than `max` says there are more, without reading a directory of millions of entries whole.
   */
  async listAtMost(max: number): Promise<string[]> {
    const names: string[] = []
    const dir = await opendir(`/proc/self/fd/${this.#fh.fd}`, { bufferSize: 128 })
    try {
      for (let e = await dir.read(); e !== null && names.length <= max; e = await dir.read())
        names.push(e.name)
    } finally {
      await dir.close()
    }
    return names
  }

  /** Reads a regular child file, at most `max` bytes; null when absent or not a regular file. */
  async readSmall(name: string, max: number): Promise<string | null> {
    const st = await this.lstat(name)
    if (!st?.isFile()) return null
    const fh = await open(this.#child(name), FILE_FLAGS).catch(() => null)
    if (!fh) return null
    try {
      const buf = Buffer.alloc(max)
      const { bytesRead } = await fh.read(buf, 0, max, 0)
      return buf.subarray(0, bytesRead).toString('utf8')
    } finally {
      await fh.close()
    }
  }

  /** Reads a regular child file whole; null when absent, not a regular file or over `max` bytes. */
  async readBytes(name: string, max: number): Promise<Buffer | null> {
    const st = await this.lstat(name)
    if (!st?.isFile() || st.size > max) return null
    const fh = await open(this.#child(name), FILE_FLAGS).catch(() => null)
    if (!fh) return null
    try {
      const now = await fh.stat()
      if (!now.isFile() || now.size > max) return null
      const buf = Buffer.alloc(now.size)
      let got = 0
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, got)
        if (bytesRead === 0) break
        got += bytesRead
      }
      return buf.subarray(0, got)
    } finally {
      await fh.close()
    }
  }

  found(name: string, st: Stats): Found {
    return found(this.#relOf(name), st)
  }

  async self(): Promise<Found> {
    return found(this.rel, await this.stat())
  }

  async close(): Promise<void> {
    await this.#fh.close()
  }
}

export class ProtectedPathChanged extends ConflictError {
  constructor(rel: string) {
    super(
      `${rel} in the workspace changed while the session was being set up; refusing to start it`,
      'protected_path_changed',
    )
  }
}

/**
 * Walks `rel` (relative, normalised) from `root`: every component must be a real directory (created
 * for the owner when `create` and absent); the last may be a file. Returns the identities of the
 * strict ancestors and of the target (null when absent and not created), and which directories it
 * created (relative paths, outermost first).
 */
export async function walk(
  root: PinnedDir,
  rel: string,
  opts: { create: { uid: number; gid: number } | null },
): Promise<{ ancestors: Found[]; target: Found | null; created: string[] }> {
  const parts = rel.split('/')
  const ancestors: Found[] = []
  const created: string[] = []
  const opened: PinnedDir[] = []
  let dir = root
  try {
    for (const [i, name] of parts.entries()) {
      const last = i === parts.length - 1
      const st = await dir.lstat(name)
      if (st?.isSymbolicLink()) throw new SymlinkRefused(parts.slice(0, i + 1).join('/'))
      if (last && st && !st.isDirectory()) {
        if (!st.isFile())
          throw new BadRequestError(
            `${rel} in the workspace is neither a file nor a directory`,
            'protected_path_invalid',
          )
        return { ancestors, target: dir.found(name, st), created }
      }
      let next: PinnedDir | null
      if (st) next = await dir.openDir(name)
      else if (opts.create) {
        next = await dir.makeDir(name, opts.create)
        if (next) created.push(parts.slice(0, i + 1).join('/'))
        else next = await dir.openDir(name)
      } else return { ancestors, target: null, created }
      if (!next) return { ancestors, target: null, created }
      opened.push(next)
      const me = await next.self()
      if (last) return { ancestors, target: me, created }
      ancestors.push(me)
      dir = next
    }
    return { ancestors, target: null, created }
  } finally {
    for (const d of opened) await d.close()
  }
}

/** Opens the directory at `rel` below `root` without following links; null when absent. */
export async function openPath(root: PinnedDir, rel: string): Promise<PinnedDir | null> {
  let dir: PinnedDir | null = root
  const opened: PinnedDir[] = []
  try {
    for (const name of rel.split('/')) {
      dir = await dir.openDir(name)
      if (!dir) return null
      opened.push(dir)
    }
    opened.pop()
    return dir
  } finally {
    for (const d of opened) await d.close()
  }
}
