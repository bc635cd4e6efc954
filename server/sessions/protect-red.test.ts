// Red team (session 7): the cleanup of the folders a protection made (a session's, or a primed
// member's, which may run long after the prime) never removes a folder of another directory that
// now sits at the workspace's path.
import { chown, lstat, mkdir, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { planProtection, removeCreatedDirs } from './protect.ts'

const owner = { uid: 1000, gid: 1000 }

describe('red team: removeCreatedDirs', () => {
  it('leaves the empty folders of a workspace replaced at its path (not the ones it made)', async () => {
    const base = await tempDir()
    const ws = join(base, 'proj')
    await mkdir(ws)
    await chown(ws, owner.uid, owner.gid)
    const p = await planProtection(ws, '/workspace', {
      paths: ['.vscode', '.husky'],
      owner,
      writableHooks: false,
    })
    expect(p.created).toContain('.vscode')
    // The workspace is replaced (renamed away, a fresh clone at the path) before the cleanup:
    // the new one has its own empty .vscode, which clincus did not make.
    await rename(ws, join(base, 'proj-old'))
    await mkdir(join(ws, '.vscode'), { recursive: true })
    await removeCreatedDirs(ws, p.created, p.root)
    expect((await lstat(join(ws, '.vscode'))).isDirectory()).toBe(true)
    // The directory it made them in still gets them removed.
    await removeCreatedDirs(join(base, 'proj-old'), p.created, p.root)
    await expect(lstat(join(base, 'proj-old', '.vscode'))).rejects.toThrow(/ENOENT/)
  })
})
