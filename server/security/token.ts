import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { chmod, readFile, stat } from 'node:fs/promises'
import { writeFileAtomic } from '../fs/atomic-write.ts'

const TOKEN_PATTERN = /^[A-Za-z0-9_-]{32,256}$/

/**
 * Reads the dashboard token, creating it (32 random bytes, base64url, mode 0600) on first start.
 * A token file readable by others is tightened to 0600 rather than trusted as is.
 */
export async function loadOrCreateToken(file: string): Promise<string> {
  try {
    const text = (await readFile(file, 'utf8')).trim()
    if (TOKEN_PATTERN.test(text)) {
      if (((await stat(file)).mode & 0o077) !== 0) await chmod(file, 0o600)
      return text
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const token = randomBytes(32).toString('base64url')
  await writeFileAtomic(file, `${token}\n`, { mode: 0o600 })
  await chmod(file, 0o600)
  return token
}

/** Constant-time equality of two secrets of any length (compares their SHA-256 digests). */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest()
  const db = createHash('sha256').update(b).digest()
  return timingSafeEqual(da, db)
}
