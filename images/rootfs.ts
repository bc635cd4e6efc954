// Host-side files of a build, none needing root: the per-user cache and work directories, the
// overlay (init, fake tool, Node and npm packages) packed with root ownership for mmdebstrap's
// tar-in, and the metadata tarball.
import { chmod, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { run } from '../provision/command.ts'
import { fileExists, isRoot } from '../provision/host.ts'

/** Root's cache (shared by CI runs); another builder's lives in its own home. */
export const CACHE_DIR = '/var/cache/clincus'
const TAR_TIMEOUT_MS = 10 * 60_000

interface SignalOpt {
  signal?: AbortSignal
}

function withSignal(opts: SignalOpt): { signal?: AbortSignal } {
  return opts.signal ? { signal: opts.signal } : {}
}

/** Where this builder keeps downloaded .debs and work directories. */
export function cacheDir(): string {
  return isRoot() ? CACHE_DIR : join(homedir(), '.cache', 'clincus')
}

/**
 * A fresh work directory under the cache. Work directories of builds whose process is gone
 * (killed mid-build) are removed first: each can hold a gigabyte.
 */
export async function makeWorkDir(cache: string): Promise<string> {
  const parent = join(cache, 'work')
  await mkdir(parent, { recursive: true, mode: 0o700 })
  for (const entry of await readdir(parent).catch(() => [])) {
    const pid = /^\d+-(\d+)$/.exec(entry)?.[1]
    if (pid !== undefined && !(await fileExists(`/proc/${pid}`))) {
      await removeWorkDir(join(parent, entry))
    }
  }
  const dir = join(parent, `${Date.now()}-${process.pid}`)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  return dir
}

/** Nothing is ever mounted in a work directory any more: mmdebstrap mounts in its own namespace. */
export async function removeWorkDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}

/** The members of an overlay tarball: nothing that replaces a directory the tree has as a link. */
export const OVERLAY_MEMBERS = ['usr/local', 'usr/sbin/init', 'etc/tmux.conf'] as const

/**
 * Creates the overlay skeleton with the image's own modes (0755 directories), /sbin/init and
 * /etc/tmux.conf (root's, 0644: the agent cannot change what every tmux server reads).
 */
export async function makeOverlay(
  dir: string,
  opts: { init: string; tmuxConf: string; certificates?: Readonly<Record<string, string>> },
): Promise<void> {
  for (const sub of ['usr/local/bin', 'usr/local/lib', 'usr/sbin', 'etc']) {
    await mkdir(join(dir, sub), { recursive: true, mode: 0o755 })
  }
  // The host's extra CAs, at the path update-ca-certificates reads in the image.
  for (const [rel, pem] of Object.entries(opts.certificates ?? {})) {
    const target = join(dir, 'usr/local/share/ca-certificates', rel)
    await mkdir(dirname(target), { recursive: true, mode: 0o755 })
    await writeFile(target, pem, { mode: 0o644 })
  }
  const init = join(dir, 'usr', 'sbin', 'init')
  await writeFile(init, opts.init, { mode: 0o755 })
  await chmod(init, 0o755)
  const tmuxConf = join(dir, 'etc', 'tmux.conf')
  await writeFile(tmuxConf, opts.tmuxConf, { mode: 0o644 })
  await chmod(tmuxConf, 0o644)
}

/** Packs the overlay as root's files, whoever runs the build. */
export async function packOverlay(dir: string, file: string, opts: SignalOpt): Promise<void> {
  await run(
    'tar',
    [
      '--create',
      '--file',
      file,
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--directory',
      dir,
      '--',
      ...OVERLAY_MEMBERS,
    ],
    { timeoutMs: TAR_TIMEOUT_MS, ...withSignal(opts) },
  )
}

/** The fake agent under every tool name, so sessions run it exactly as they would the real tool. */
export async function installFakeTool(
  target: string,
  script: string,
  names: readonly string[],
): Promise<void> {
  const bin = join(target, 'usr', 'local', 'bin')
  await mkdir(bin, { recursive: true })
  const real = join(bin, 'clincus-fake-tool')
  await writeFile(real, script, { mode: 0o755 })
  await chmod(real, 0o755)
  for (const name of names) {
    await rm(join(bin, name), { force: true })
    await symlink('clincus-fake-tool', join(bin, name))
  }
}

export async function packMetadata(
  dir: string,
  file: string,
  content: { metadataYaml: string; templates: Readonly<Record<string, string>> },
): Promise<void> {
  await mkdir(join(dir, 'templates'), { recursive: true })
  await writeFile(join(dir, 'metadata.yaml'), content.metadataYaml)
  for (const [name, text] of Object.entries(content.templates)) {
    await writeFile(join(dir, 'templates', name), text)
  }
  await run(
    'tar',
    ['--create', '--gzip', '--file', file, '--directory', dir, 'metadata.yaml', 'templates'],
    {
      timeoutMs: 60_000,
    },
  )
}
