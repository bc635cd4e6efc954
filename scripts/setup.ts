// `tsx scripts/setup.ts --for start|test`: makes this machine ready to run (start) or to test
// (test) clincus, printing every step with its duration. Idempotent: run it on every CI start.
// Exit 0 when ready or when Incus is out of reach for a non-root user (the reason and the fix are
// printed; the caller decides), non-zero with the reason on a real failure.
import { realpathSync } from 'node:fs'
import { homedir } from 'node:os'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { ensureTestImage, type TestImageStatus } from '../images/build.ts'
import { ensureImageTools } from '../provision/image-tools.ts'
import { loadConfig } from '../server/config/load.ts'
import { configLocations } from '../server/config/paths.ts'
import {
  ensureChromium,
  ensureIncus,
  type ChromiumReadiness,
  type IncusReadiness,
} from '../provision/incus.ts'
import { createConsoleReporter, formatDuration, type SetupReporter } from '../provision/reporter.ts'

export type SetupTarget = 'start' | 'test'

export interface SetupResult {
  incus: IncusReadiness
  testImage?: TestImageStatus
  chromium?: ChromiumReadiness
}

export interface SetupOptions {
  reporter?: SetupReporter
  /** Incus project for the test image. */
  project?: string
  /** `incus.group`: the group given the daemon's socket (default incus-admin). */
  group?: string
}

/** The user who ran `sudo clincus setup` owns the workspaces: raw.idmap must be allowed to map them. */
function sudoOwner(env: NodeJS.ProcessEnv): { uids: number[]; gids: number[] } {
  const id = (v: string | undefined): number[] => (v && /^[1-9]\d*$/.test(v) ? [Number(v)] : [])
  return { uids: id(env.SUDO_UID), gids: id(env.SUDO_GID) }
}

export async function runSetup(target: SetupTarget, opts: SetupOptions = {}): Promise<SetupResult> {
  const reporter = opts.reporter ?? createConsoleReporter()
  const incus = await ensureIncus({
    reporter,
    install: true,
    ownerIds: sudoOwner(process.env),
    ...(opts.group ? { group: opts.group } : {}),
  })
  if (!incus.ok) {
    reporter.note(`Incus is not available: ${incus.reason}`)
    reporter.note(`To fix: ${incus.hint}`)
  }
  // Image builds (the dashboard builds a missing image at start) need these, root or not.
  await ensureImageTools(reporter)
  if (target === 'start') return { incus }

  const result: SetupResult = { incus }
  if (incus.ok) {
    result.testImage = await ensureTestImage({ project: opts.project ?? 'default', reporter })
  } else {
    reporter.note('skipping the clincus-test image (needs Incus)')
  }
  result.chromium = await ensureChromium(reporter)
  if (!result.chromium.ok) {
    reporter.note(`Chromium is not available: ${result.chromium.reason}`)
    reporter.note(`To fix: ${result.chromium.hint}`)
  }
  return result
}

function parseTarget(argv: readonly string[]): { target: SetupTarget; project: string } {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      for: { type: 'string', default: 'start' },
      project: { type: 'string', default: 'default' },
    },
  })
  if (values.for !== 'start' && values.for !== 'test') {
    throw new Error(`--for must be "start" or "test", not "${values.for}"`)
  }
  return { target: values.for, project: values.project }
}

async function main(): Promise<void> {
  const started = performance.now()
  const { target, project } = parseTarget(process.argv.slice(2))
  console.log(`clincus setup --for ${target}`)
  // incus.group from the config files (system, the user's, $CLINCUS_CONFIG); its defaults if none.
  const home = process.env.HOME ?? homedir()
  const { config } = await loadConfig(configLocations(process.env, home), process.env, home)
  const result = await runSetup(target, { project, group: config.incus.group })
  const ready = result.incus.ok ? `Incus ${result.incus.version} ready` : 'Incus NOT ready'
  const image = result.testImage
    ? `, ${result.testImage.alias} ${result.testImage.built ? 'built' : 'up to date'}`
    : ''
  const chromium = result.chromium ? `, chromium ${result.chromium.ok ? 'ready' : 'missing'}` : ''
  console.log(
    `setup finished in ${formatDuration(performance.now() - started)}: ${ready}${image}${chromium}`,
  )
}

function isEntryPoint(): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  try {
    await main()
  } catch (error) {
    console.error(`setup failed: ${error instanceof Error ? error.message : String(error)}`)
    process.exitCode = 1
  }
}
