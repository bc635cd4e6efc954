// apt-get as setup uses it: non-interactive, no recommends (the `incus` meta package's recommends
// drag in QEMU and GTK, ≈ 1 GB), and an `apt-get update` only when the lists are missing or stale.
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { run } from './command.ts'
import {
  BACKPORTS_SOURCES_FILE,
  configuredArchive,
  readAptSources,
  renderBackportsSources,
} from './apt-sources.ts'

const APT_ENV = { DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' }
const UPDATE_TIMEOUT_MS = 10 * 60_000
const INSTALL_TIMEOUT_MS = 20 * 60_000

export async function aptUpdate(signal?: AbortSignal): Promise<void> {
  await run('apt-get', ['update'], {
    timeoutMs: UPDATE_TIMEOUT_MS,
    env: APT_ENV,
    ...(signal ? { signal } : {}),
  })
}

async function listsPresent(): Promise<boolean> {
  const names = await readdir('/var/lib/apt/lists').catch(() => [])
  return names.some((name) => name.endsWith('_Packages'))
}

export interface AptInstallOptions {
  /** `-t <release>`, e.g. `bookworm-backports`. */
  targetRelease?: string
  signal?: AbortSignal
}

/**
 * Installs packages, running `apt-get update` first when no package lists exist and once more
 * (then retrying) when the install fails, which is what stale lists look like.
 */
export async function aptInstall(
  packages: readonly string[],
  opts: AptInstallOptions = {},
): Promise<void> {
  const args = ['install', '-y', '--no-install-recommends']
  if (opts.targetRelease) args.push('-t', opts.targetRelease)
  args.push(...packages)
  const runOpts = {
    timeoutMs: INSTALL_TIMEOUT_MS,
    env: APT_ENV,
    ...(opts.signal ? { signal: opts.signal } : {}),
  }
  if (!(await listsPresent())) await aptUpdate(opts.signal)
  try {
    await run('apt-get', args, runOpts)
  } catch {
    await aptUpdate(opts.signal)
    await run('apt-get', args, runOpts)
  }
}

/**
 * Makes `<codename>-backports` available from the archive already configured for `<codename>`.
 * Returns false when nothing had to change (an existing entry, ours or the admin's, provides it).
 */
export async function ensureBackportsSource(codename: string): Promise<boolean> {
  const suite = `${codename}-backports`
  const others = await readAptSources()
  if (others.some((source) => source.types.includes('deb') && source.suites.includes(suite))) {
    return false
  }
  const content = renderBackportsSources(await configuredArchive(codename), suite)
  const current = await readFile(BACKPORTS_SOURCES_FILE, 'utf8').catch(() => undefined)
  if (current === content) return false
  await writeFile(BACKPORTS_SOURCES_FILE, content, { mode: 0o644 })
  return true
}
