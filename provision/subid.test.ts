import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { ensureRootSubIds, hasUsableRange, subIdAllows, withRange, withSingleIds } from './subid.ts'

describe('subordinate id ranges', () => {
  it('recognises an existing range for root, ignoring junk lines', () => {
    expect(hasUsableRange('# comment\nroot:1000000:1000000000\n', 'root')).toBe(true)
    expect(hasUsableRange('rootless:100000:65536\n', 'root')).toBe(false)
    expect(hasUsableRange('root:100000:1000\n', 'root')).toBe(false)
    expect(hasUsableRange('', 'root')).toBe(false)
  })

  it('appends a range after the highest one in use', () => {
    expect(withRange('alice:100000:65536\nbob:165536:65536', 'root')).toBe(
      'alice:100000:65536\nbob:165536:65536\nroot:1000000:1000000000\n',
    )
    expect(withRange('alice:5000000:65536\n', 'root')).toBe(
      'alice:5000000:65536\nroot:5065536:1000000000\n',
    )
    expect(withRange('', 'root')).toBe('root:1000000:1000000000\n')
  })

  it('leaves a file with a range unchanged', () => {
    const text = 'root:1000000:1000000000\n'
    expect(withRange(text, 'root')).toBe(text)
  })

  it('fixes only the files that lack a range', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clincus-subid-'))
    onTestFinished(() => rm(dir, { recursive: true, force: true }))
    const subuid = join(dir, 'subuid')
    const subgid = join(dir, 'subgid')
    await writeFile(subuid, 'root:1000000:1000000000\n')
    await writeFile(subgid, 'alice:100000:65536\n')
    const files = { uid: subuid, gid: subgid }
    const none = { uids: [], gids: [] }
    expect(await ensureRootSubIds(none, files)).toEqual([subgid])
    expect(await readFile(subgid, 'utf8')).toBe('alice:100000:65536\nroot:1000000:1000000000\n')
    expect(await ensureRootSubIds(none, files)).toEqual([])
  })

  it('allows single owner ids for raw.idmap, once, never root', async () => {
    expect(subIdAllows('root:1000000:1000000000\n', 1000)).toBe(false)
    expect(subIdAllows('root:1000:1\n', 1000)).toBe(true)
    expect(subIdAllows('', 0)).toBe(true)
    expect(withSingleIds('root:1000000:1000000000', [1000, 1000, 0, 1500])).toBe(
      'root:1000000:1000000000\nroot:1000:1\nroot:1500:1\n',
    )
    const dir = await mkdtemp(join(tmpdir(), 'clincus-subid-'))
    onTestFinished(() => rm(dir, { recursive: true, force: true }))
    const files = { uid: join(dir, 'subuid'), gid: join(dir, 'subgid') }
    await writeFile(files.uid, 'root:1000000:1000000000\nroot:1000:1\n')
    await writeFile(files.gid, 'root:1000000:1000000000\n')
    expect(await ensureRootSubIds({ uids: [1000], gids: [1000] }, files)).toEqual([files.gid])
    expect(await readFile(files.gid, 'utf8')).toBe('root:1000000:1000000000\nroot:1000:1\n')
    expect(await ensureRootSubIds({ uids: [1000], gids: [1000] }, files)).toEqual([])
  })
})
