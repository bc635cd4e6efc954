// git.writable_hooks (issue 15), live: with the key the code user can write .git/hooks (and only
// that part of .git); without it, it cannot. Through clincus's API on the real Incus daemon.
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  describeIncus,
  execAsCode,
  startLiveServer,
  type LiveServer,
} from '../test/incus-harness.ts'
import { WORKSPACE_OWNER } from '../test/owner.ts'

let server: LiveServer
let home: string

/** A shell command in the container as the code user; its exit code. */
async function asCode(id: string, script: string): Promise<number> {
  return (await execAsCode(id, script, { cwd: '/workspace' })).exitCode
}

async function setHooks(writable: boolean): Promise<void> {
  await writeFile(
    server.configFile,
    `[defaults]\nimage = "clincus-test"\n\n[dashboard]\nworkspace_roots = ["${server.root}"]\n\n[git]\nwritable_hooks = ${String(writable)}\n`,
  )
  await server.services.config.reload()
  expect(server.services.config.current.git.writable_hooks).toBe(writable)
}

describeIncus('git.writable_hooks (issue 15)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-hooks-'))
    server = await startLiveServer({ home })
  })

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('with the key, the code user writes .git/hooks; the rest of .git stays read-only', async () => {
    await setHooks(true)
    const id = await server.launch('hooks-on')
    expect(await asCode(id, 'touch /workspace/.git/hooks/x')).toBe(0)
    const made = await stat(join(server.root, 'hooks-on', '.git', 'hooks', 'x'))
    expect(made.uid).toBe(WORKSPACE_OWNER.uid) // the workspace owner's file on the host
    expect(await asCode(id, 'touch /workspace/.git/y')).not.toBe(0)
    expect(await asCode(id, 'echo x >> /workspace/.git/config')).not.toBe(0)
  })

  it('without it (the default), .git/hooks is read-only like the rest of .git', async () => {
    await setHooks(false)
    const id = await server.launch('hooks-off')
    expect(await asCode(id, 'touch /workspace/.git/hooks/x')).not.toBe(0)
    await expect(stat(join(server.root, 'hooks-off', '.git', 'hooks', 'x'))).rejects.toThrow()
  })
})
