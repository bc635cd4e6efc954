import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { ensureRootSubIds, hasUsableRange, withRange } from './subid.ts'

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
    expect(await ensureRootSubIds([subuid, subgid])).toEqual([subgid])
    expect(await readFile(subgid, 'utf8')).toBe('alice:100000:65536\nroot:1000000:1000000000\n')
    expect(await ensureRootSubIds([subuid, subgid])).toEqual([])
  })
})
