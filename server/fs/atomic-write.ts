import { randomBytes } from 'node:crypto'
import { mkdir, open, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/**
 * Writes a file so that readers see either the old or the new content, never half of it:
 * temp file in the same directory, fsync, rename over. Keeps the old file's mode.
 */
export async function writeFileAtomic(
  file: string,
  content: string,
  opts: { mode?: number } = {},
): Promise<void> {
  const dir = dirname(file)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  let mode = opts.mode ?? 0o644
  try {
    mode = (await stat(file)).mode & 0o777
  } catch {
    // new file: the default mode
  }
  const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(tmp, 'wx', mode)
  try {
    await handle.writeFile(content, 'utf8')
    await handle.sync()
  } catch (err) {
    await handle.close()
    await rm(tmp, { force: true })
    throw err
  }
  await handle.close()
  try {
    await rename(tmp, file)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}
