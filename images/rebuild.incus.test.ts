// Issue 13 acceptance, live: changing `[image] packages` marks the image outdated in GET
// /api/images; a rebuild installs the package, with image.building events in order ending in
// image.built; a build that fails (bad package name) answers with apt's own message in
// image.failed and leaves the previous image in place and usable. Builds a test-kind image under
// its own alias (never replaces clincus-test) and deletes it afterwards.
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { pino } from 'pino'
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest'
import type { ServerEvent } from '../shared/schemas/events.ts'
import type { ImageInfo } from '../shared/schemas/images.ts'
import { ImageManager } from '../server/image-manager.ts'
import { CliIncusDriver } from '../server/incus/cli-driver.ts'
import {
  describeIncus,
  requestJson,
  startLiveServer,
  TEST_IMAGE,
  type LiveServer,
} from '../server/test/incus-harness.ts'
import { waitUntil } from '../server/test/ws-client.ts'
import { incusImageBackend } from './backend.ts'

const ALIAS = `clincus-test-it-${randomBytes(3).toString('hex')}`
const BUILD_MS = 10 * 60_000

let server: LiveServer
let home: string
const events: ServerEvent[] = []

function config(packages: string[]): string {
  return `[defaults]\nimage = "${ALIAS}"\n\n[image]\npackages = ${JSON.stringify(packages)}\n\n[dashboard]\nworkspace_roots = ["${join(home, 'projects')}"]\n`
}

async function setPackages(packages: string[]): Promise<void> {
  await writeFile(server.configFile, config(packages))
  await server.services.config.reload()
  expect(server.services.config.current.image.packages).toEqual(packages)
}

async function image(): Promise<ImageInfo> {
  const res = await requestJson(server.url, 'GET', '/api/images')
  expect(res.status).toBe(200)
  const found = (res.body as ImageInfo[]).find((i) => i.alias === ALIAS)
  if (!found) throw new Error(`${ALIAS} is not listed`)
  return found
}

/** Starts a rebuild and waits for its last event; returns this build's image events. */
async function rebuild(): Promise<ServerEvent[]> {
  const from = events.length
  const res = await requestJson(server.url, 'POST', `/api/images/${ALIAS}/build`)
  expect(res.status).toBe(202)
  await waitUntil(
    'the build to end',
    () => events.slice(from).some((e) => e.type === 'image.built' || e.type === 'image.failed'),
    { timeoutMs: BUILD_MS },
  )
  return events.slice(from).filter((e) => e.type.startsWith('image.'))
}

async function launch(): Promise<string> {
  const name = `${server.prefix}img-${randomBytes(2).toString('hex')}`
  onTestFinished(async () => {
    await execa('incus', ['delete', '--force', name], { timeout: 60_000, reject: false })
  })
  await execa('incus', ['launch', ALIAS, name, '--quiet'], { timeout: 120_000, stdin: 'ignore' })
  return name
}

describeIncus('image rebuilds from the config (issue 13)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-img-it-'))
    const driver = new CliIncusDriver({ project: 'default' })
    const images = new ImageManager(driver, pino({ level: 'silent' }), {
      backend: incusImageBackend(() => 'default'),
    })
    server = await startLiveServer({ home, configText: '', images })
    await setPackages([])
    server.services.hub.subscribe((e) => events.push(e.event))
    // Start from an image built from other inputs: a second alias on the shared test image
    // (clincus-test itself is never touched; the rebuild only moves our alias).
    const { stdout } = await execa('incus', ['image', 'info', TEST_IMAGE], {
      timeout: 30_000,
      stdin: 'ignore',
    })
    const fingerprint = /Fingerprint: ([0-9a-f]{64})/.exec(stdout)?.[1]
    if (!fingerprint) throw new Error(`no fingerprint for ${TEST_IMAGE}`)
    await execa('incus', ['image', 'alias', 'create', ALIAS, fingerprint], {
      timeout: 30_000,
      stdin: 'ignore',
    })
  })

  afterAll(async () => {
    await server.close()
    await execa('incus', ['image', 'delete', ALIAS], { timeout: 60_000, reject: false })
    await rm(home, { recursive: true, force: true })
  })

  it(
    'outdated after [image] packages changes; the rebuild installs it, events in order',
    async () => {
      await setPackages(['cowsay'])
      expect(await image()).toMatchObject({ alias: ALIAS, state: 'outdated' })

      const built = await rebuild()
      expect(built.at(-1)).toEqual({ type: 'image.built', alias: ALIAS })
      const building = built.filter((e) => e.type === 'image.building')
      expect(building.length).toBeGreaterThan(3)
      const progress = building.map((e) => e.progress)
      expect(progress).toEqual([...progress].sort((a, b) => a - b))
      expect(building.map((e) => e.step)).toContain('mmdebstrap bookworm (35 packages)')
      const info = await image()
      expect(info).toMatchObject({ state: 'ready', step: null, progress: null })
      expect(info.size_bytes).toBeGreaterThan(100_000_000)
      // The test image has the fake tool and no Node: nothing recorded.
      expect(info.tools).toEqual({ claude: null, copilot: null, opencode: null, node: null })

      const name = await launch()
      const { stdout } = await execa(
        'incus',
        ['exec', name, '--user', '1000', '--group', '1000', '--', '/usr/games/cowsay', 'moo'],
        { timeout: 30_000, stdin: 'ignore' },
      )
      expect(stdout).toContain('moo')
    },
    2 * BUILD_MS,
  )

  it(
    "a bad package name fails with apt's message and the previous image stays usable",
    async () => {
      const before = (await image()).fingerprint
      expect(before).not.toBeNull()
      await setPackages(['cowsay', 'no-such-package-clincus-it'])
      expect((await image()).state).toBe('outdated')

      const failed = await rebuild()
      const last = failed.at(-1)
      expect(last?.type).toBe('image.failed')
      expect(last?.type === 'image.failed' ? last.error : '').toContain(
        'E: Unable to locate package no-such-package-clincus-it',
      )
      const info = await image()
      expect(info.fingerprint).toBe(before)
      expect(info.error).toContain('Unable to locate package')

      const name = await launch()
      const { stdout } = await execa(
        'incus',
        ['exec', name, '--user', '1000', '--group', '1000', '--', '/usr/games/cowsay', 'still'],
        { timeout: 30_000, stdin: 'ignore' },
      )
      expect(stdout).toContain('still')
    },
    2 * BUILD_MS,
  )
})
