// Test fixture: a FIFO whose blocked readers (if any) are released when the test ends.
import { execFileSync } from 'node:child_process'
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import { onTestFinished } from 'vitest'

export function fifo(path: string): void {
  execFileSync('mkfifo', [path])
  onTestFinished(async () => {
    // Opening the write end releases a reader stuck in open(2) or read(2) (it then sees EOF).
    const w = await open(path, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => null)
    await w?.close()
  })
}
