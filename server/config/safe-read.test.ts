// Issue 10 row 9: a workspace file is hostile input (FIFO, links, devices, sizes).
import { mkdir, open, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { tempDir } from '../test/helpers.ts'
import { fifo } from './fifo-fixture.ts'
import { readSmallFile, UnsafeFileError } from './safe-read.ts'

async function refused(path: string, opts = {}): Promise<UnsafeFileError> {
  const err = await readSmallFile(path, opts).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(UnsafeFileError)
  return err as UnsafeFileError
}

describe('readSmallFile', () => {
  it('reads a regular file and says null for a missing one', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'a.toml'), 'a = 1\n')
    expect(await readSmallFile(join(dir, 'a.toml'))).toBe('a = 1\n')
    expect(await readSmallFile(join(dir, 'missing.toml'))).toBeNull()
  })

  it('refuses a FIFO at once instead of waiting for a writer', async () => {
    const dir = await tempDir()
    fifo(join(dir, '.clincus.toml'))
    const started = Date.now()
    const err = await refused(join(dir, '.clincus.toml'))
    expect(err.reason).toBe('not_regular')
    expect(err.message).toMatch(/is a FIFO, not a regular file/)
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('refuses a symlink to /dev/zero without reading it, and even when links are followed', async () => {
    const dir = await tempDir()
    await symlink('/dev/zero', join(dir, '.clincus.toml'))
    expect((await refused(join(dir, '.clincus.toml'))).reason).toBe('symlink')
    const followed = await refused(join(dir, '.clincus.toml'), { followLinks: true })
    expect(followed.reason).toBe('not_regular')
    expect(followed.message).toMatch(/character device/)
  })

  it('refuses a symlink to a file outside (its content never read)', async () => {
    const outside = await tempDir()
    const ws = await tempDir()
    await writeFile(join(outside, 'secret.toml'), 'secret = "s3cr3t"\n')
    await symlink(join(outside, 'secret.toml'), join(ws, '.clincus.toml'))
    const err = await refused(join(ws, '.clincus.toml'))
    expect(err.reason).toBe('symlink')
    expect(err.message).not.toContain('s3cr3t')
    // the user's own files may be links (dotfiles managers)
    expect(await readSmallFile(join(ws, '.clincus.toml'), { followLinks: true })).toContain(
      'secret',
    )
  })

  it('refuses a directory', async () => {
    const dir = await tempDir()
    await mkdir(join(dir, '.clincus.toml'))
    expect((await refused(join(dir, '.clincus.toml'))).message).toMatch(/is a directory/)
  })

  it('refuses an oversized file with a clear error, at the limit it reads', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'big.toml'), 'a'.repeat(64 * 1024 + 1))
    const err = await refused(join(dir, 'big.toml'))
    expect(err.reason).toBe('too_large')
    expect(err.message).toMatch(/larger than 64 KiB/)
    await writeFile(join(dir, 'ok.toml'), 'a'.repeat(64 * 1024))
    expect(await readSmallFile(join(dir, 'ok.toml'))).toHaveLength(64 * 1024)
  })

  it('caps files whose reported size is 0 (procfs) by what it reads', async () => {
    const err = await refused('/proc/self/maps', { maxBytes: 16, followLinks: true })
    expect(err.reason).toBe('too_large')
  })

  it('gives up after the deadline when open or read hangs (a dead network mount), closing later', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'a.toml'), 'a = 1\n')
    let release: () => void = () => undefined
    const gate = new Promise<void>((r) => {
      release = r
    })
    let closed = false
    const hangingOpen = async (path: string, flags: number) => {
      await gate
      const handle = await open(path, flags)
      const close = handle.close.bind(handle)
      handle.close = async () => {
        closed = true
        await close()
      }
      return handle
    }
    const started = Date.now()
    const err = await refused(join(dir, 'a.toml'), { timeoutMs: 50, open: hangingOpen })
    expect(err.reason).toBe('timeout')
    expect(err.message).toMatch(/took too long/)
    expect(Date.now() - started).toBeLessThan(1000)
    // the open that finally completes is closed, not leaked
    release()
    await vi.waitFor(() => {
      expect(closed).toBe(true)
    })

    const hangingRead = async (path: string, flags: number) => {
      const handle = await open(path, flags)
      handle.read = () => new Promise(() => undefined)
      onTestFinished(() => handle.close())
      return handle
    }
    const slow = await refused(join(dir, 'a.toml'), { timeoutMs: 50, open: hangingRead })
    expect(slow.reason).toBe('timeout')
  })
})
