// The image's root filesystem in one rootless step: `mmdebstrap --mode=unshare` bootstraps Debian
// inside a user namespace (the builder's subordinate ids), runs our hooks in there instead of a
// host chroot, and writes the rootfs tarball with the image's own ownership (root is uid 0 in the
// tarball whoever builds). Root and an `incus-admin` member take exactly this path.
import { lstat, readdir, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { CommandError, run } from '../provision/command.ts'
import { CODE_USER, LOCALES } from './recipe.ts'

const MMDEBSTRAP_TIMEOUT_MS = 30 * 60_000

/** Everything one mmdebstrap run needs; every path is on the host. */
export interface BootstrapPlan {
  suite: string
  /** The archive the host's apt already uses for `suite` (never a name written in the repo). */
  archiveUri: string
  packages: readonly string[]
  /** Output: the rootfs tarball Incus imports. */
  output: string
  /** Downloaded .deb files kept between builds (read before, refreshed after). */
  debCache: string
  /** A tarball of files owned by 0:0 unpacked over the tree (/usr/local, /usr/sbin/init). */
  overlay: string
  /** Shell script run as root inside the tree: the code user, locales, time zone. */
  configureScript: string
  /** The user's `[image] setup` script, run as root inside the tree last; undefined for none. */
  setupScript?: string | undefined
}

/** POSIX single quotes: the hooks are shell commands mmdebstrap runs with `sh -c`. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`
}

/**
 * Hooks that run a host script as root inside the tree. The script travels through mmdebstrap's
 * `upload` (read by the builder outside): namespace root is one of the builder's subordinate ids
 * and cannot read the builder's own 0700 work directory.
 */
function runInside(script: string, name: string): string[] {
  const inside = `/tmp/clincus-${name}.sh`
  return [
    `--customize-hook=upload ${script} ${inside}`,
    `--customize-hook=chroot "$1" /bin/sh -e ${inside}`,
    `--customize-hook=rm -f "$1${inside}"`,
  ]
}

/**
 * The mmdebstrap argv for a plan. Paths in special hooks are split on white space: the caller
 * keeps them free of it. Special hooks (`sync-in`, `tar-in`, …) must stand alone in
 * their option; others are shell commands with the tree as `$1`.
 */
export function mmdebstrapArgs(plan: BootstrapPlan): string[] {
  const args = [
    '--mode=unshare',
    '--variant=minbase',
    '--format=tar',
    `--include=${[...new Set(plan.packages)].join(',')}`,
    '--aptopt=APT::Install-Recommends "false"',
    // Keep the downloaded .deb files so the hooks below can save them for the next build.
    '--skip=download/empty',
    '--setup-hook=mkdir -p "$1/var/cache/apt/archives"',
    `--setup-hook=sync-in ${plan.debCache} /var/cache/apt/archives`,
    `--customize-hook=sync-out /var/cache/apt/archives ${plan.debCache}`,
    '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb',
    `--customize-hook=tar-in ${plan.overlay} /`,
    ...runInside(plan.configureScript, 'configure'),
  ]
  if (plan.setupScript !== undefined) args.push(...runInside(plan.setupScript, 'setup'))
  // What only describes the build host, or what Incus supplies itself.
  args.push('--customize-hook=rm -f "$1/etc/hostname" "$1/etc/resolv.conf"')
  args.push(plan.suite, plan.output, plan.archiveUri)
  return args
}

/** Where Debian keeps locally added CA certificates (`update-ca-certificates(8)`). */
export const LOCAL_CA_DIR = '/usr/local/share/ca-certificates'
const MAX_CERT_BYTES = 256 * 1024
const MAX_CERTS = 200

/**
 * The CA certificates the host's administrator added (`/usr/local/share/ca-certificates/**.crt`):
 * relative path → PEM text. Sessions trust what the host trusts, so an agent works behind the
 * same TLS-inspecting proxy or private registry as the host. Only regular PEM files are taken
 * (no links followed, at most 200 of at most 256 KiB each); none when the folder is absent.
 */
export async function hostExtraCertificates(
  dir: string = LOCAL_CA_DIR,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(dir, rel), { withFileTypes: true }).catch(() => [])
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (Object.keys(out).length >= MAX_CERTS) return
      const path = rel === '' ? e.name : `${rel}/${e.name}`
      if (e.isDirectory()) await walk(path)
      else if (e.isFile() && e.name.endsWith('.crt')) {
        const info = await lstat(join(dir, path))
        if (!info.isFile() || info.size > MAX_CERT_BYTES) continue
        const text = await readFile(join(dir, path), 'utf8')
        if (text.includes('-----BEGIN CERTIFICATE-----')) out[path] = text
      }
    }
  }
  await walk('')
  return out
}

/** A time zone name as found under /usr/share/zoneinfo; anything else falls back to UTC. */
const TIME_ZONE = /^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/

/** The host's time zone (`/etc/timezone`, else the `/etc/localtime` link), `Etc/UTC` if unknown. */
export async function hostTimeZone(): Promise<string> {
  const named = (await readFile('/etc/timezone', 'utf8').catch(() => '')).trim()
  if (TIME_ZONE.test(named)) return named
  const link = await readlink('/etc/localtime').catch(() => '')
  const zone = link.replace(/^.*\/zoneinfo\//, '')
  return zone !== link && TIME_ZONE.test(zone) ? zone : 'Etc/UTC'
}

/**
 * Run as root inside the tree: the `code` user (no sudo, no supplementary group: a group it could
 * chgrp files to would map to another host id; root in a session is opt-in, `[security]
 * agent_sudo`), the locales and the time zone.
 */
export function configureScript(opts: { timeZone: string }): string {
  const zone = TIME_ZONE.test(opts.timeZone) ? opts.timeZone : 'Etc/UTC'
  const { name, uid, gid, home } = CODE_USER
  return [
    `groupadd --gid ${gid} ${name}`,
    `useradd --uid ${uid} --gid ${gid} --home-dir ${home} --create-home --shell /bin/bash ${name}`,
    `printf '%s UTF-8\\n' ${LOCALES.join(' ')} > /etc/locale.gen`,
    'locale-gen',
    "printf 'LANG=C.UTF-8\\n' > /etc/default/locale",
    `ln -sf ${shellQuote(`/usr/share/zoneinfo/${zone}`)} /etc/localtime`,
    `printf '%s\\n' ${shellQuote(zone)} > /etc/timezone`,
    // The host's own extra CAs (staged under /usr/local/share/ca-certificates) join the bundle.
    'update-ca-certificates >/dev/null',
    '',
  ].join('\n')
}

/**
 * Runs mmdebstrap; its failure message keeps apt's own lines (CommandError keeps the output's
 * tail), e.g. `E: Unable to locate package no-such-package`.
 */
export async function bootstrap(plan: BootstrapPlan, signal?: AbortSignal): Promise<void> {
  try {
    await run('mmdebstrap', mmdebstrapArgs(plan), {
      timeoutMs: MMDEBSTRAP_TIMEOUT_MS,
      env: { LC_ALL: 'C.UTF-8' },
      ...(signal ? { signal } : {}),
    })
  } catch (error) {
    if (!(error instanceof CommandError) || error.timedOut || signal?.aborted) throw error
    throw new BootstrapError(aptErrorLines(error.stderr), { cause: error })
  }
}

/** A failed bootstrap, its message apt's own lines (the full command stays in `cause`). */
export class BootstrapError extends Error {
  override readonly name = 'BootstrapError'
}

/** mmdebstrap's own wrappers around a failure; apt's and dpkg's lines are the ones that explain. */
const WRAPPER =
  /^E: (setup failed|mmdebstrap failed|hookhelper failed|special hook failed|command failed|run_chroot failed)/

/**
 * The lines of mmdebstrap's output that carry apt's (or dpkg's) own message, e.g.
 * `E: Unable to locate package nope`; the output's last lines when there are none.
 */
export function aptErrorLines(output: string): string {
  const lines = output.split('\n').map((line) => line.trimEnd())
  const own = lines.filter((line) => /^(E|W): /.test(line) && !WRAPPER.test(line))
  const errors = own.filter((line) => line.startsWith('E: '))
  const chosen = errors.length > 0 ? errors : lines.filter((l) => l !== '').slice(-5)
  return chosen.join('\n')
}
