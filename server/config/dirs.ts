import { constants, fstatSync, fchmodSync, closeSync, openSync } from 'node:fs'
import { lstat, rename } from 'node:fs/promises'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { pino, type DestinationStream } from 'pino'
import type { Config } from '../../shared/schemas/config.ts'
import { prepareRuntimeDir, RuntimeDirError } from '../network/runtime-dir.ts'

/**
 * Where clincus keeps its files, from `[paths]` (already `~`-expanded by the loader). Read once
 * at startup: a change takes effect at the next start. History is not here: it stays at
 * `~/.clincus/history.jsonl` (the contract).
 */
export interface DataDirs {
  /** `paths.sessions_dir`: per-session data. */
  sessions: string
  /** `<sessions_dir>/network`: each session's network audit, `<session>.jsonl`. */
  network: string
  /** `paths.logs_dir`: the server's log file. */
  logs: string
  /** `<logs_dir>/server.log`. */
  serverLog: string
}

export function dataDirs(config: Config): DataDirs {
  const { sessions_dir: sessions, logs_dir: logs } = config.paths
  return {
    sessions,
    network: join(sessions, 'network'),
    logs,
    serverLog: join(logs, 'server.log'),
  }
}

/** A server.log larger than this at startup is moved to server.log.1 (one old generation). */
export const SERVER_LOG_ROTATE_BYTES = 16 * 1024 * 1024

/**
 * Makes (or checks) `<sessions_dir>` and `<sessions_dir>/network`: real directories of ours, mode
 * 0700, under ancestors no other user may rename in (the network audit is appended there by
 * name). Throws RuntimeDirError naming the directory and the key otherwise.
 */
export async function prepareDataDirs(dirs: Pick<DataDirs, 'sessions' | 'network'>): Promise<void> {
  const words = {
    what: 'the sessions directory',
    fix: 'set [paths] sessions_dir to a directory of yours',
  }
  await prepareRuntimeDir(dirs.sessions, words)
  await prepareRuntimeDir(dirs.network, words)
}

/**
 * Opens `<logs_dir>/server.log` for appending, after moving a large one aside. The directory must
 * be ours alone (made 0700; a link, another user's directory or an ancestor another user may
 * rename in is refused) and the file is opened without following a link (O_NOFOLLOW), must be
 * our own regular file, and is made 0600: request lines name workspaces. Throws RuntimeDirError
 * otherwise. Resolves with a pino destination the caller flushes and ends on shutdown.
 */
export async function openServerLog(dirs: DataDirs): Promise<DestinationStream & { end(): void }> {
  await prepareRuntimeDir(dirs.logs, {
    what: 'the log directory',
    fix: 'set [paths] logs_dir to a directory of yours',
  })
  const st = await lstat(dirs.serverLog).catch(() => null)
  if (st && !st.isFile())
    throw new RuntimeDirError(`${dirs.serverLog} is not a regular file (a link?); remove it`)
  if (st && st.size > SERVER_LOG_ROTATE_BYTES) await rename(dirs.serverLog, `${dirs.serverLog}.1`)
  const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW } = constants
  let fd: number
  try {
    fd = openSync(dirs.serverLog, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0o600)
  } catch (err) {
    throw new RuntimeDirError(`cannot open ${dirs.serverLog}: ${(err as Error).message}`)
  }
  const opened = fstatSync(fd)
  if (!opened.isFile() || opened.uid !== userInfo().uid) {
    closeSync(fd)
    throw new RuntimeDirError(`${dirs.serverLog} is not a regular file of ours; remove it`)
  }
  if ((opened.mode & 0o777) !== 0o600) fchmodSync(fd, 0o600)
  return pino.destination({ fd, sync: true })
}
