// Brings a machine from "nothing" to "incus launch works": packages, daemon, storage. Every step is
// idempotent and checks before it acts, so setup can run on every CI start and on a developer's
// long-lived installation alike (which it must never reconfigure beyond what is missing).
import { mkdir, readFile } from 'node:fs/promises'
import { execa, ExecaError } from 'execa'
import Type from 'typebox'
import { incus, IncusCommandError } from '../incus/cli.ts'
import { aptInstall, aptUpdate, ensureBackportsSource } from './apt.ts'
import { lastLines, run } from './command.ts'
import {
  fileExists,
  findExecutable,
  findIncusDaemon,
  hasSystemd,
  isDebianFamily,
  isRoot,
  readOsRelease,
  type OsRelease,
} from './host.ts'
import {
  planPreseed,
  ProfileSchema,
  renderPreseed,
  StoragePoolSchema,
  type IncusInitState,
} from './preseed.ts'
import { silentReporter, type SetupReporter } from './reporter.ts'
import { ensureCowPool } from './storage.ts'
import { ensureRootSubIds } from './subid.ts'

export type IncusReadiness =
  { ok: true; version: string } | { ok: false; reason: string; hint: string }
export type IncusProbe = { reachable: true; version: string } | { reachable: false; reason: string }
export type ChromiumReadiness =
  { ok: true; path: string } | { ok: false; reason: string; hint: string }

export interface EnsureIncusOptions {
  reporter?: SetupReporter
  /** Allow installing packages (root only). Starting and initialising the daemon is always allowed. */
  install: boolean
  /**
   * The group whose members may use the daemon (`incus.group`, default incus-admin): made when
   * absent and given to incusd started without systemd; named in the hints.
   */
  group?: string
  /**
   * Host ids that own workspaces (raw.idmap maps them onto the code user): each gets a
   * `root:<id>:1` line in /etc/subuid or /etc/subgid. uid/gid 1000 are always added.
   */
  ownerIds?: { uids: readonly number[]; gids: readonly number[] }
}

/** The owner ids every setup allows: the first normal user, which is also the code user's id. */
export const DEFAULT_OWNER_ID = 1000

export const MIN_INCUS_MAJOR = 6
export const INCUS_ADMIN_GROUP = 'incus-admin'
export const INCUSD_LOG = '/var/log/incus/clincus-incusd.log'
export const CHROMIUM_PATH = '/usr/bin/chromium'
const INCUS_PACKAGES = ['incus-base', 'incus-client']
// Debian's and Ubuntu's path (off PATH); other distributions put the daemon on PATH.
const INCUSD_CANDIDATES = ['/usr/libexec/incus/incusd']
// What /etc/default/incus gives the daemon: its helpers live next to it.
const DAEMON_PATH =
  '/usr/libexec/incus:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
const WAITREADY_SECONDS = 30
const QUERY_TIMEOUT_MS = 15_000
const SETUP_HINT = 'run `sudo npm run setup` (as root it installs and starts Incus)'

const ServerSchema = Type.Object({
  environment: Type.Object({ server_version: Type.String() }),
})

function notReady(reason: string, hint: string): IncusReadiness {
  return { ok: false, reason, hint }
}

export function majorVersion(version: string): number {
  const major = Number.parseInt(version.trim(), 10)
  return Number.isNaN(major) ? 0 : major
}

/** Cheap reachability check for /api/health: one `incus query /1.0`. */
export async function probeIncus(timeoutMs = 3_000): Promise<IncusProbe> {
  try {
    const server = await incus.queryAs(ServerSchema, 'server', '/1.0', { timeoutMs })
    return { reachable: true, version: server.environment.server_version }
  } catch (error) {
    const reason =
      error instanceof IncusCommandError
        ? error.timedOut
          ? `incus query /1.0 timed out after ${timeoutMs} ms`
          : error.message
        : error instanceof Error
          ? error.message
          : String(error)
    return { reachable: false, reason }
  }
}

/** Installs (when allowed), starts and initialises Incus; reports why not when it cannot. */
export async function ensureIncus(opts: EnsureIncusOptions): Promise<IncusReadiness> {
  const reporter = opts.reporter ?? silentReporter
  const root = isRoot()
  const group = opts.group ?? INCUS_ADMIN_GROUP

  const missing = await ensurePackages(root, opts.install, reporter)
  if (missing) return missing

  const clientVersion = (await incus.run(['--version'], { timeoutMs: QUERY_TIMEOUT_MS })).trim()
  if (majorVersion(clientVersion) < MIN_INCUS_MAJOR) {
    return notReady(
      `incus ${clientVersion} is too old (need ≥ ${MIN_INCUS_MAJOR})`,
      'install Incus 6 (Debian 12: from bookworm-backports) and run setup again',
    )
  }

  let probe = await probeIncus()
  if (root) {
    const changed = await ensureRootSubIds({
      uids: [DEFAULT_OWNER_ID, ...(opts.ownerIds?.uids ?? [])],
      gids: [DEFAULT_OWNER_ID, ...(opts.ownerIds?.gids ?? [])],
    })
    if (changed.length > 0) {
      reporter.note(
        `added root's subordinate ids (container range, workspace owners) to ${changed.join(', ')}`,
      )
      // Incus reads the files when it starts: a running daemon would refuse the new mappings.
      if (probe.reachable) {
        await reporter.step('restart incusd (it reads /etc/subuid and /etc/subgid at start)', () =>
          restartDaemon(group),
        )
        probe = await probeIncus(QUERY_TIMEOUT_MS)
      }
    }
  }
  if (probe.reachable) {
    reporter.note(`incusd already running (Incus ${probe.version})`)
  } else {
    if (!root) {
      return notReady(
        `the Incus daemon is not reachable: ${probe.reason}`,
        unreachableHint(probe.reason, group),
      )
    }
    await reporter.step('start incusd', () => startDaemon(group))
    probe = await probeIncus(QUERY_TIMEOUT_MS)
    if (!probe.reachable) throw new Error(`incusd started but is not reachable: ${probe.reason}`)
  }
  if (majorVersion(probe.version) < MIN_INCUS_MAJOR) {
    return notReady(
      `the Incus daemon is version ${probe.version} (need ≥ ${MIN_INCUS_MAJOR})`,
      'upgrade Incus and restart its daemon',
    )
  }

  const plan = planPreseed(await readInitState())
  if (plan) {
    await reporter.step('initialise incus (dir storage pool, root disk)', () =>
      incus.run(['admin', 'init', '--preseed'], { timeoutMs: 60_000, input: renderPreseed(plan) }),
    )
  } else {
    reporter.note('incus already initialised (default profile has a root disk)')
  }
  if (root) await ensureCowPool((await readInitState()).pools, reporter)
  return { ok: true, version: probe.version }
}

/**
 * Installs the client and daemon packages where root may and either is missing; returns why
 * Incus is unavailable when it cannot. A non-root user with a client but no local daemon may
 * still reach a daemon (the probe decides), so only a missing client stops them here.
 */
async function ensurePackages(
  root: boolean,
  install: boolean,
  reporter: SetupReporter,
): Promise<IncusReadiness | undefined> {
  const client = await findExecutable('incus')
  const daemonPresent = !root || (await findIncusd()) !== undefined
  if (client !== undefined && daemonPresent) {
    reporter.note('incus already installed')
    return undefined
  }
  if (!root) {
    return notReady(
      'incus is not installed',
      `${SETUP_HINT}, or install Incus ≥ ${MIN_INCUS_MAJOR} yourself (Debian 12: apt-get install ` +
        '--no-install-recommends -t bookworm-backports incus-base incus-client)',
    )
  }
  if (!install) return notReady('incus is not installed', SETUP_HINT)
  const os = await readOsRelease()
  if (!os || !isDebianFamily(os)) {
    return notReady(
      `incus is not installed and ${os?.prettyName ?? 'this system'} is not Debian or Ubuntu`,
      `install Incus ≥ ${MIN_INCUS_MAJOR} with your distribution's packages, then run setup again`,
    )
  }
  await installIncus(os, reporter)
  if ((await findExecutable('incus')) === undefined || (await findIncusd()) === undefined) {
    throw new Error(`apt-get installed ${INCUS_PACKAGES.join(' ')} but incus or incusd is missing`)
  }
  return undefined
}

/** What to do when the daemon is not reachable; `group` is `incus.group`. */
export function unreachableHint(reason: string, group: string = INCUS_ADMIN_GROUP): string {
  if (/permission/i.test(reason)) {
    return (
      `add your user to the ${group} group (sudo usermod -aG ${group} ` +
      `"$USER"), then log in again or run \`newgrp ${group}\``
    )
  }
  return `start the Incus daemon: ${SETUP_HINT}, or \`sudo systemctl start incus\` where systemd runs`
}

async function installIncus(os: OsRelease, reporter: SetupReporter): Promise<void> {
  // Debian 12 has Incus only in backports; later Debian and Ubuntu releases ship it in main.
  let targetRelease: string | undefined
  if (os.id === 'debian' && os.versionCodename === 'bookworm') {
    targetRelease = 'bookworm-backports'
    const added = await reporter.step(`enable ${targetRelease}`, () =>
      ensureBackportsSource(os.versionCodename),
    )
    if (added) await reporter.step('apt-get update', () => aptUpdate())
  }
  await reporter.step(`apt-get install ${INCUS_PACKAGES.join(' ')}`, () =>
    aptInstall(INCUS_PACKAGES, targetRelease ? { targetRelease } : {}),
  )
}

async function findIncusd(): Promise<string | undefined> {
  for (const candidate of INCUSD_CANDIDATES) {
    if (await fileExists(candidate)) return candidate
  }
  return findExecutable('incusd')
}

/** incusd's argv when clincus starts it (no systemd): its socket is given to `group`. */
export function incusdArgs(group: string): string[] {
  return ['--group', group, '--logfile', INCUSD_LOG]
}

async function ensureAdminGroup(group: string): Promise<void> {
  const groups = await readFile('/etc/group', 'utf8').catch(() => '')
  if (groups.split('\n').some((line) => line.startsWith(`${group}:`))) return
  await run('groupadd', ['--system', '--', group], { timeoutMs: 15_000 })
}

async function waitReady(): Promise<void> {
  await incus.run(['admin', 'waitready', '--timeout', String(WAITREADY_SECONDS)], {
    timeoutMs: (WAITREADY_SECONDS + 5) * 1000,
  })
}

/** Stops the daemon without stopping its instances (SIGTERM; SIGPWR would shut them down). */
async function restartDaemon(group: string): Promise<void> {
  if (hasSystemd()) {
    await run('systemctl', ['restart', 'incus.service'], { timeoutMs: 120_000 })
    await waitReady()
    return
  }
  const pid = await findIncusDaemon()
  if (pid !== undefined) {
    process.kill(pid, 'SIGTERM')
    const until = Date.now() + 60_000
    while ((await findIncusDaemon()) !== undefined) {
      if (Date.now() > until) throw new Error(`incusd (pid ${pid}) did not exit after SIGTERM`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  await startDaemon(group)
}

async function startDaemon(group: string): Promise<void> {
  if (hasSystemd()) {
    await run('systemctl', ['start', 'incus.service'], { timeoutMs: 120_000 })
    await waitReady()
    return
  }
  // A daemon that is still starting (or one that a previous run left behind) only needs waiting for.
  if ((await findIncusDaemon()) !== undefined) {
    await waitReady()
    return
  }
  await ensureAdminGroup(group)
  const incusd = await findIncusd()
  if (incusd === undefined) throw new Error('incus is installed but its daemon (incusd) is not')
  await mkdir('/var/log/incus', { recursive: true })
  // No init system: the daemon is our child, so it must leave our process group and keep no pipe
  // to us, or it would die with setup (the server and tests need it afterwards). Hence its own
  // --logfile rather than our stdio (execa would pipe a log file through this process).
  const daemon = execa(incusd, incusdArgs(group), {
    detached: true,
    cleanup: false,
    stdio: 'ignore',
    env: { PATH: DAEMON_PATH },
  })
  daemon.unref()
  const exited = daemon.then(
    (result) => `exited with code ${result.exitCode ?? 'unknown'}`,
    (error: unknown) =>
      error instanceof ExecaError ? error.shortMessage : `failed: ${String(error)}`,
  )
  const outcome = await Promise.race([waitReady().then(() => undefined), exited])
  if (outcome !== undefined) {
    const tail = lastLines((await readFile(INCUSD_LOG, 'utf8').catch(() => '')).trim(), 15)
    throw new Error(`incusd ${outcome} before it was ready; ${INCUSD_LOG} ends with:\n${tail}`)
  }
}

async function readInitState(): Promise<IncusInitState> {
  // An empty list comes back as JSON null, which `incus query` prints as nothing at all.
  const pools = await incus.queryAs(
    Type.Union([Type.Array(StoragePoolSchema), Type.Null()]),
    'storage pool list',
    '/1.0/storage-pools?recursion=1',
    { timeoutMs: QUERY_TIMEOUT_MS },
  )
  const profiles = await incus.queryAs(
    Type.Union([Type.Array(ProfileSchema), Type.Null()]),
    'profile list',
    '/1.0/profiles?recursion=1',
    { timeoutMs: QUERY_TIMEOUT_MS },
  )
  return {
    pools: pools ?? [],
    defaultProfile: profiles?.find((profile) => profile.name === 'default'),
  }
}

/** Debian's chromium, for the browser tests (no browser download works on CI machines). */
export async function ensureChromium(
  reporter: SetupReporter = silentReporter,
): Promise<ChromiumReadiness> {
  if (await fileExists(CHROMIUM_PATH)) {
    reporter.note(`chromium already installed (${CHROMIUM_PATH})`)
    return { ok: true, path: CHROMIUM_PATH }
  }
  if (!isRoot()) {
    return {
      ok: false,
      reason: `${CHROMIUM_PATH} is missing`,
      hint: 'install it with `sudo apt-get install --no-install-recommends chromium` or run setup as root',
    }
  }
  await reporter.step('apt-get install chromium', () => aptInstall(['chromium']))
  return { ok: true, path: CHROMIUM_PATH }
}
