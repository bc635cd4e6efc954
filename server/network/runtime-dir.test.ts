// The socket directory is ours alone; what a crash left at a socket path is removed, never
// followed.
import { lstat, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { prepareRuntimeDir, removeStale, RuntimeDirError } from './runtime-dir.ts'

describe('runtime directory', () => {
  it('is created 0700 and refused when it is a symbolic link', async () => {
    const base = await tempDir()
    const dir = join(base, 'clincus', 'egress')
    await prepareRuntimeDir(dir)
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    await mkdir(join(base, 'elsewhere'))
    await symlink(join(base, 'elsewhere'), join(base, 'link'))
    await expect(prepareRuntimeDir(join(base, 'link'))).rejects.toThrow(RuntimeDirError)
  })

  it('removes a stale socket path: a link is unlinked, its target untouched', async () => {
    const base = await tempDir()
    await writeFile(join(base, 'precious'), 'keep')
    await symlink(join(base, 'precious'), join(base, 's.sock'))
    await removeStale(join(base, 's.sock'))
    await expect(lstat(join(base, 's.sock'))).rejects.toThrow()
    expect(await readFile(join(base, 'precious'), 'utf8')).toBe('keep')
    await removeStale(join(base, 'missing.sock'))
    await mkdir(join(base, 'd.sock'))
    await expect(removeStale(join(base, 'd.sock'))).rejects.toThrow(RuntimeDirError)
  })
})
