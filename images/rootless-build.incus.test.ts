// Issue 13 acceptance, live: a user who is not root but is in incus-admin, with subordinate ids,
// builds the test image with the same command (`clincus build`) and a session starts from it.
// The user is created by the test (kept for later runs, like local-user.ts's attacker); the image
// gets its own alias and is deleted afterwards.
import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { repoRoot } from '../server/paths.ts'
import { hasUsableRange } from '../provision/subid.ts'
import { canActAsOtherUser } from '../server/test/local-user.ts'
import {
  describeIncus,
  requestJson,
  startLiveServer,
  type LiveServer,
} from '../server/test/incus-harness.ts'

const BUILDER = 'clincus-builder'
const ALIAS = `clincus-test-rootless-${randomBytes(3).toString('hex')}`
const BUILD_MS = 10 * 60_000

/** The builder account: a normal user (home, no root), in incus-admin, with subordinate ids. */
async function builderUser(): Promise<string> {
  const exists = await execa('id', ['-u', BUILDER], { reject: false })
  if (exists.exitCode !== 0) {
    await execa('useradd', ['--create-home', '--user-group', '--shell', '/bin/bash', BUILDER])
  }
  await execa('usermod', ['--append', '--groups', 'incus-admin', BUILDER])
  const subuid = await readFile('/etc/subuid', 'utf8').catch(() => '')
  const subgid = await readFile('/etc/subgid', 'utf8').catch(() => '')
  if (!hasUsableRange(subuid, BUILDER) || !hasUsableRange(subgid, BUILDER)) {
    const range = '3000000000-3000065535'
    await execa('usermod', ['--add-subuids', range, '--add-subgids', range, BUILDER])
  }
  return (await execa('getent', ['passwd', BUILDER])).stdout.split(':')[5] ?? ''
}

/**
 * A copy of the code the builder can read: the checkout may sit below a folder only root can
 * enter (a CI clone under a 0700 temp dir). Hard links where the filesystem allows, so it is
 * cheap; nothing in it is secret.
 */
async function stageRepo(): Promise<string> {
  const stage = await mkdtemp(join(tmpdir(), 'clincus-rl-repo-'))
  await chmod(stage, 0o755)
  const parts = [
    'package.json',
    'tsconfig.json',
    'scripts',
    'server',
    'images',
    'incus',
    'provision',
    'shared',
    'node_modules',
  ]
  const from = parts.map((p) => join(repoRoot, p))
  const linked = await execa('cp', ['-al', '--', ...from, stage], { reject: false })
  if (linked.exitCode !== 0) await execa('cp', ['-a', '--', ...from, stage])
  return stage
}

let server: LiveServer
let home: string
let stage: string | undefined

describeIncus('building an image without root (issue 13)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-rl-it-'))
    server = await startLiveServer({
      home,
      configText: `[defaults]\nimage = "${ALIAS}"\n\n[dashboard]\nworkspace_roots = ["${join(home, 'projects')}"]\n`,
    })
  })

  afterAll(async () => {
    await server.close()
    await execa('incus', ['image', 'delete', ALIAS], { timeout: 60_000, reject: false })
    await rm(home, { recursive: true, force: true })
    if (stage !== undefined) await rm(stage, { recursive: true, force: true })
  })

  it.skipIf(!canActAsOtherUser)(
    'an incus-admin member builds the test image with clincus build, and a session runs on it',
    async () => {
      const builderHome = await builderUser()
      stage = await stageRepo()
      // runuser sets the user's groups (incus-admin) the way a login does; nothing else of ours.
      const build = await execa(
        'runuser',
        [
          '-u',
          BUILDER,
          '--',
          'env',
          '-i',
          `HOME=${builderHome}`,
          `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`,
          `CLINCUS_IMAGE=${ALIAS}`,
          `CLINCUS_SYSTEM_CONFIG=${join(builderHome, 'none.toml')}`,
          process.execPath,
          join(stage, 'scripts', 'clincus.mjs'),
          'build',
        ],
        // Its own home as the working directory: the test's may be one it cannot enter.
        { cwd: builderHome, timeout: BUILD_MS, all: true, reject: false, stdin: 'ignore' },
      )
      expect(build.exitCode, build.all).toBe(0)
      expect(build.stdout).toContain(`image ${ALIAS} is ready`)
      expect((await execa('id', ['-u', BUILDER])).stdout).not.toBe('0')

      const ws = await server.project('rootless')
      const res = await requestJson(server.url, 'POST', '/api/sessions', { workspace: ws })
      expect(res.status, JSON.stringify(res.body)).toBe(200)
      const id = (res.body as { id: string }).id
      const asCode = (argv: string[]) =>
        execa('incus', ['exec', id, '--user', '1000', '--group', '1000', '--', ...argv], {
          timeout: 30_000,
          stdin: 'ignore',
        })
      expect((await asCode(['claude', '--version'])).stdout).toBe(
        'claude 0.0.0 (clincus fake tool)',
      )
      // The same result as root's build: the tree's own ownership, not the builder's ids.
      expect(
        (await asCode(['stat', '-c', '%u:%g:%a', '/usr/bin/sudo', '/sbin/init', '/home/code']))
          .stdout,
      ).toBe('0:0:4755\n0:0:755\n1000:1000:755')
      expect((await asCode(['stat', '-c', '%g', '/etc/shadow'])).stdout).toBe(
        (await asCode(['getent', 'group', 'shadow'])).stdout.split(':')[2],
      )
    },
    BUILD_MS + 120_000,
  )
})
