import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { encodeIndex as encode, type Entry } from '../test/git-index-fixture.ts'
import { gitlinkRel, MAX_INDEX_BYTES, parseIndexGitlinks } from './git-index.ts'

const run = promisify(execFile)

const entries: Entry[] = [
  { path: 'README.md', mode: 0o100644 },
  { path: 'lib/a', mode: 0o160000 },
  { path: 'lib/ab', mode: 0o120000 },
  { path: 'lib/abc/sub', mode: 0o160000 },
  { path: 'z', mode: 0o100755 },
]

describe('git index gitlinks', () => {
  it('reads the gitlinks of versions 2, 3 (extended flags) and 4 (prefix-compressed paths)', () => {
    expect(parseIndexGitlinks(encode(2, entries))).toEqual(['lib/a', 'lib/abc/sub'])
    const v3 = entries.map((e, i) => (i % 2 ? { ...e, extended: 0x4000 } : e))
    expect(parseIndexGitlinks(encode(3, v3))).toEqual(['lib/a', 'lib/abc/sub'])
    expect(parseIndexGitlinks(encode(4, entries))).toEqual(['lib/a', 'lib/abc/sub'])
    expect(parseIndexGitlinks(encode(2, entries, 32), 32)).toEqual(['lib/a', 'lib/abc/sub'])
    const long = [{ path: `${'d/'.repeat(2100)}sub`, mode: 0o160000 }]
    expect(parseIndexGitlinks(encode(2, long))).toEqual([long[0]?.path])
    expect(parseIndexGitlinks(encode(2, []))).toEqual([])
  })

  it('refuses malformed and hostile indexes without throwing', () => {
    const good = encode(2, entries)
    for (let cut = 0; cut < good.length; cut++) {
      // every truncation is refused (the last entry's padding included)
      expect(parseIndexGitlinks(good.subarray(0, cut))).toBeNull()
    }
    const v4 = encode(4, entries)
    for (let cut = 0; cut < v4.length; cut++)
      expect(parseIndexGitlinks(v4.subarray(0, cut))).toBeNull()
    const bad = (f: (b: Buffer) => void, src = good) => {
      const b = Buffer.from(src)
      f(b)
      return parseIndexGitlinks(b)
    }
    expect(bad((b) => b.write('DIRX', 0, 'latin1'))).toBeNull()
    expect(bad((b) => b.writeUInt32BE(5, 4))).toBeNull()
    expect(bad((b) => b.writeUInt32BE(1, 4))).toBeNull()
    expect(bad((b) => b.writeUInt32BE(0xffffffff, 8))).toBeNull() // entry count over the cap
    expect(bad((b) => b.writeUInt32BE(6, 8))).toBeNull() // more entries than the bytes hold
    expect(bad((b) => b.writeUInt16BE(0x4000 | 9, 12 + 60))).toBeNull() // extended flag in v2
    expect(bad((b) => b.writeUInt16BE(3, 12 + 60))).toBeNull() // name length disagrees
    // v4: stripping more than the previous path holds
    const strip = encode(4, [
      { path: 'a', mode: 0o160000 },
      { path: 'b', mode: 0o160000 },
    ])
    strip[12 + 65 + 62] = 5
    expect(parseIndexGitlinks(strip)).toBeNull()
    const huge = Buffer.alloc(12)
    huge.write('DIRC', 0, 'latin1')
    expect(parseIndexGitlinks(Buffer.concat([huge, Buffer.alloc(MAX_INDEX_BYTES)]))).toBeNull()
    expect(parseIndexGitlinks(Buffer.from(''))).toBeNull()
  })

  it('keeps only paths git itself would accept inside the work tree', () => {
    expect(gitlinkRel('lib/sub')).toBe('lib/sub')
    for (const p of [
      '',
      '/etc',
      '../x',
      'a/../../x',
      'a/./b',
      'a//b',
      'a/',
      '.git/x',
      'a/.GIT',
      'a\\b',
      'a\nb',
    ])
      expect(gitlinkRel(p)).toBeNull()
  })

  it('agrees with the index host git writes (v2 and v4)', async () => {
    const repo = await tempDir()
    const git = (...args: string[]) =>
      run('git', ['-C', repo, ...args], {
        env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: repo },
      })
    await git('init', '-q')
    const sha = '1'.repeat(40)
    for (const p of ['vendor/lib', 'vendor/lib2', 'x/deep/er/sub'])
      await git('update-index', '--add', '--cacheinfo', `160000,${sha},${p}`)
    const want = ['vendor/lib', 'vendor/lib2', 'x/deep/er/sub']
    expect(parseIndexGitlinks(await readFile(join(repo, '.git/index')))).toEqual(want)
    await git('update-index', '--index-version', '4')
    const v4 = await readFile(join(repo, '.git/index'))
    expect(v4.readUInt32BE(4)).toBe(4)
    expect(parseIndexGitlinks(v4)).toEqual(want)
  })
})
