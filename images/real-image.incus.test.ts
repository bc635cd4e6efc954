// Issue 13 acceptance, live and slow (minutes; one test in its own file): the real image built
// with a different, broken `node` first on PATH still has the pinned Node major, and the three
// agents answer --version with the versions the image records. Own alias, deleted afterwards.
import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { execa } from 'execa'
import { afterAll, expect, it } from 'vitest'
import { repoRoot } from '../server/paths.ts'
import { describeIncus, execAsCode } from '../server/test/incus-harness.ts'
import { NODE_PIN, parseVersion } from './recipe.ts'

const ALIAS = `clincus-real-it-${randomBytes(3).toString('hex')}`
const BUILD_MS = 20 * 60_000
const dirs: string[] = []

describeIncus('the real image (issue 13)', () => {
  afterAll(async () => {
    await execa('incus', ['image', 'delete', ALIAS], { timeout: 60_000, reject: false })
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  })

  it(
    'has the pinned Node whatever node is first on PATH, and the agents answer',
    async () => {
      const fake = await mkdtemp(join(tmpdir(), 'clincus-fake-node-'))
      dirs.push(fake)
      // A host Node that is old and broken: nothing of the image may come from it.
      await writeFile(join(fake, 'node'), '#!/bin/sh\necho v16.0.0\nexit 1\n')
      await chmod(join(fake, 'node'), 0o755)
      const build = await execa(
        process.execPath,
        [join(repoRoot, 'scripts', 'clincus.mjs'), 'build'],
        {
          timeout: BUILD_MS,
          stdin: 'ignore',
          all: true,
          reject: false,
          env: {
            PATH: [fake, process.env.PATH ?? '/usr/bin:/bin'].join(delimiter),
            CLINCUS_IMAGE: ALIAS,
          },
        },
      )
      expect(build.exitCode, build.all).toBe(0)
      expect(
        (await execa('node', ['--version'], { env: { PATH: fake }, reject: false })).stdout,
      ).toBe('v16.0.0')

      const name = `clincus-real-it-${randomBytes(2).toString('hex')}`
      try {
        await execa('incus', ['launch', ALIAS, name, '--quiet'], {
          timeout: 300_000,
          stdin: 'ignore',
        })
        const asCode = async (cmd: string): Promise<string> => {
          const r = await execAsCode(name, `bash -lc ${JSON.stringify(cmd)}`)
          if (r.exitCode !== 0) throw new Error(`${cmd} exited ${r.exitCode}: ${r.stderr}`)
          return r.stdout
        }
        const nodeVersion = await asCode('node --version')
        expect(nodeVersion).toMatch(new RegExp(`^v${NODE_PIN.major}\\.`))
        expect(await asCode('npm --version')).toBe(NODE_PIN.npm)
        const { stdout } = await execa('incus', ['image', 'show', ALIAS], {
          timeout: 30_000,
          stdin: 'ignore',
        })
        expect(stdout).toContain(`clincus.node-version: ${nodeVersion.slice(1)}`)
        for (const tool of ['claude', 'copilot', 'opencode']) {
          const version = parseVersion(await asCode(`${tool} --version`))
          expect(version, tool).not.toBeNull()
          // What GET /api/images and the session card show is what the agent itself says.
          expect(stdout).toContain(`clincus.tool.${tool}: ${version ?? ''}`)
        }
      } finally {
        await execa('incus', ['delete', '--force', name], { timeout: 60_000, reject: false })
      }
    },
    BUILD_MS + 10 * 60_000,
  )
})
