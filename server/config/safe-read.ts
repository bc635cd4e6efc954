// Reading small text files that someone else may control (a workspace's .clincus.toml comes with
// a cloned repository or is written by the agent): a FIFO must not hang a threadpool thread, a
// link to /dev/zero must not fill memory, a link must not read a file outside the workspace.
import { constants, type Stats } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'

export const WORKSPACE_FILE_MAX_BYTES = 64 * 1024
const DEFAULT_TIMEOUT_MS = 2000

export interface SafeReadOptions {
  /** Refuse bigger files (default 64 KiB). */
  maxBytes?: number
  /** Give up after this long (a file on a hung network or FUSE mount). */
  timeoutMs?: number
  /**
   * Follow a symbolic link in the last path component. Off for files from the workspace; on for
   * the user's own config files (dotfiles managers link them).
   */
  followLinks?: boolean
  /** How to open the file (tests pass one that hangs, as a dead network mount would). */
  open?: (path: string, flags: number) => Promise<FileHandle>
}

/** Why a file was refused; the message says what to do. */
export class UnsafeFileError extends Error {
  readonly path: string
  readonly reason: 'symlink' | 'not_regular' | 'too_large' | 'timeout' | 'unreadable'

  constructor(path: string, reason: UnsafeFileError['reason'], message: string) {
    super(message)
    this.name = 'UnsafeFileError'
    this.path = path
    this.reason = reason
  }
}

function kind(st: Stats): string {
  if (st.isDirectory()) return 'a directory'
  if (st.isFIFO()) return 'a FIFO'
  if (st.isSocket()) return 'a socket'
  if (st.isCharacterDevice()) return 'a character device'
  if (st.isBlockDevice()) return 'a block device'
  return 'not a regular file'
}

function sizeText(bytes: number): string {
  return bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} bytes`
}

/**
 * Races `work` against the deadline. A file system call cannot be cancelled once it runs in the
 * threadpool; on timeout we stop waiting and `onLate` disposes of whatever it yields later.
 */
async function bounded<T>(
  work: Promise<T>,
  deadline: number,
  path: string,
  onLate: (value: T) => void = () => undefined,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => {
        reject(new UnsafeFileError(path, 'timeout', `${path}: reading it took too long`))
      },
      Math.max(0, deadline - Date.now()),
    )
  })
  try {
    return await Promise.race([work, timeout])
  } catch (err) {
    if (err instanceof UnsafeFileError && err.reason === 'timeout')
      work.then(onLate, () => undefined)
    throw err
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Reads a small regular file as UTF-8; null when it does not exist. Opened non-blocking (a FIFO
 * opens at once and is then refused by fstat), without following a final symbolic link unless
 * asked, checked to be a regular file on the open descriptor (no race with a swap after a stat),
 * read up to `maxBytes` + 1 bytes whatever its reported size (procfs reports 0), within a deadline.
 */
export async function readSmallFile(
  path: string,
  opts: SafeReadOptions = {},
): Promise<string | null> {
  const maxBytes = opts.maxBytes ?? WORKSPACE_FILE_MAX_BYTES
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  const flags =
    constants.O_RDONLY |
    constants.O_NONBLOCK |
    constants.O_NOCTTY |
    (opts.followLinks ? 0 : constants.O_NOFOLLOW)
  let handle: FileHandle
  try {
    handle = await bounded((opts.open ?? open)(path, flags), deadline, path, (late) => {
      void late.close().catch(() => undefined)
    })
  } catch (err) {
    if (err instanceof UnsafeFileError) throw err
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return null
    if (code === 'ELOOP')
      throw new UnsafeFileError(
        path,
        'symlink',
        `${path} is a symbolic link; clincus does not follow links here, make it a regular file`,
      )
    throw new UnsafeFileError(path, 'unreadable', `${path}: cannot open: ${(err as Error).message}`)
  }
  let timedOut = false
  try {
    const st = await bounded(handle.stat(), deadline, path)
    if (!st.isFile())
      throw new UnsafeFileError(path, 'not_regular', `${path} is ${kind(st)}, not a regular file`)
    const tooLarge = (): UnsafeFileError =>
      new UnsafeFileError(path, 'too_large', `${path} is larger than ${sizeText(maxBytes)}`)
    if (st.size > maxBytes) throw tooLarge()
    const buf = Buffer.alloc(maxBytes + 1)
    let length = 0
    for (;;) {
      const { bytesRead } = await bounded(
        handle.read(buf, length, buf.length - length, length),
        deadline,
        path,
      )
      if (bytesRead === 0) break
      length += bytesRead
      if (length > maxBytes) throw tooLarge()
    }
    return buf.subarray(0, length).toString('utf8')
  } catch (err) {
    if (err instanceof UnsafeFileError) {
      timedOut = err.reason === 'timeout'
      throw err
    }
    throw new UnsafeFileError(path, 'unreadable', `${path}: cannot read: ${(err as Error).message}`)
  } finally {
    // close() waits for a call still running in the threadpool: after a timeout, do not wait.
    const closing = handle.close().catch(() => undefined)
    if (!timedOut) await closing
  }
}
