import { mkdir, rename, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { pino, type DestinationStream } from 'pino'
import type { Config } from '../../shared/schemas/config.ts'

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
 * Opens `<logs_dir>/server.log` for appending (directory 0700 and file 0600 when made: request
 * lines name workspaces), after moving a large one aside. Resolves with a pino destination the
 * caller flushes and ends on shutdown.
 */
export async function openServerLog(dirs: DataDirs): Promise<DestinationStream & { end(): void }> {
  await mkdir(dirs.logs, { recursive: true, mode: 0o700 })
  const size = await stat(dirs.serverLog).then(
    (s) => s.size,
    () => 0,
  )
  if (size > SERVER_LOG_ROTATE_BYTES) await rename(dirs.serverLog, `${dirs.serverLog}.1`)
  const dest = pino.destination({ dest: dirs.serverLog, append: true, sync: true, mode: 0o600 })
  return dest
}
