import { chmod, mkdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { dedupeFiles, packageName } from './node-tools.ts'

describe('packageName', () => {
  it.each([
    ['typescript', 'typescript'],
    ['pnpm@9', 'pnpm'],
    ['@anthropic-ai/claude-code', '@anthropic-ai/claude-code'],
    ['@anthropic-ai/claude-code@2.1.197', '@anthropic-ai/claude-code'],
  ])('%s → %s', (spec, name) => {
    expect(packageName(spec)).toBe(name)
  })
})

describe('dedupeFiles', () => {
  it('hard-links identical large files with the same mode, nothing else', async () => {
    const dir = await tempDir()
    const big = Buffer.alloc(2 * 1024 * 1024, 7)
    await mkdir(join(dir, 'a', 'bin'), { recursive: true })
    await mkdir(join(dir, 'b'), { recursive: true })
    await writeFile(join(dir, 'a', 'bin', 'tool'), big)
    await writeFile(join(dir, 'b', 'tool'), big)
    await writeFile(join(dir, 'b', 'other'), Buffer.alloc(big.length, 8))
    await writeFile(join(dir, 'b', 'exec'), big)
    await chmod(join(dir, 'b', 'exec'), 0o755)
    await writeFile(join(dir, 'small-1'), 'x')
    await writeFile(join(dir, 'small-2'), 'x')

    expect(await dedupeFiles(dir)).toBe(big.length)
    const ino = async (p: string) => (await stat(join(dir, p))).ino
    expect(await ino('b/tool')).toBe(await ino('a/bin/tool'))
    expect(await ino('b/other')).not.toBe(await ino('a/bin/tool'))
    expect(await ino('b/exec')).not.toBe(await ino('a/bin/tool'))
    expect(await ino('small-2')).not.toBe(await ino('small-1'))
    // A second pass finds nothing left to do.
    expect(await dedupeFiles(dir)).toBe(0)
  })
})
