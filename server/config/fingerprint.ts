import { createHash } from 'node:crypto'
import { resolve } from 'node:path'
import type { ConfigLocations } from './paths.ts'
import { readSmallFile } from './safe-read.ts'

/** The files of the merge order, in order, without duplicates (absolute paths). */
export function watchedFiles(l: ConfigLocations): string[] {
  const files = [l.system, l.user, l.extra, l.writable].filter(
    (f): f is string => typeof f === 'string' && f !== '',
  )
  return [...new Set(files.map((f) => resolve(f)))]
}

/**
 * A sha256 (hex) over the paths and bytes of `files`, in order: a missing file and an unreadable
 * one each count as a state of their own. Read with the safe reader (links followed, at most
 * 1 MiB, never waiting on a FIFO or a device), so it never hangs and never throws.
 */
export async function fingerprint(files: readonly string[]): Promise<string> {
  const h = createHash('sha256')
  for (const f of files) {
    h.update(f).update('\0')
    try {
      const text = await readSmallFile(f, { followLinks: true, maxBytes: 1024 * 1024 })
      h.update(text === null ? '\0missing' : `\0${text}`).update('\0')
    } catch (err) {
      h.update(`\0unreadable: ${(err as Error).message}\0`)
    }
  }
  return h.digest('hex')
}
