// The image's root filesystem is assembled on the host: containers here have no network, the host
// reaches the Debian archive and the npm registry. All of this needs root (debootstrap, chroot,
// files owned by other uids).
import { chmod, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { run } from '../provision/command.ts'
import { fileExists } from '../provision/host.ts'
import { CODE_USER } from './recipe.ts'

export const CACHE_DIR = '/var/cache/clincus'
const DEBOOTSTRAP_TIMEOUT_MS = 20 * 60_000
const TAR_TIMEOUT_MS = 10 * 60_000
const TAR_FLAGS = ['--numeric-owner', '--xattrs', '--xattrs-include=*']

interface SignalOpt {
  signal?: AbortSignal
}

function withSignal(opts: SignalOpt): { signal?: AbortSignal } {
  return opts.signal ? { signal: opts.signal } : {}
}

export function cachedRootfsPath(key: string): string {
  return join(CACHE_DIR, `rootfs-${key}.tar`)
}

/**
 * A fresh work directory under the cache, so finished tarballs can be renamed into place. Work
 * directories of builds whose process is gone (killed mid-build) are removed first: each can
 * hold a gigabyte.
 */
export async function makeWorkDir(): Promise<string> {
  const parent = join(CACHE_DIR, 'work')
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

/**
 * Removes a work directory. debootstrap mounts /proc and /sys inside its target and can leave them
 * mounted when it fails; deleting through such a mount would walk the host's kernel filesystems.
 */
export async function removeWorkDir(dir: string): Promise<void> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '')
  const below = mounts
    .split('\n')
    .map((line) => (line.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((point) => point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length)
  for (const point of below) {
    await run('umount', ['--lazy', point], { timeoutMs: 30_000 })
  }
  await rm(dir, { recursive: true, force: true })
}

/** Fills `target` with a minbase Debian tree, from the cache when its package list was built before. */
export async function prepareRootfs(
  target: string,
  opts: SignalOpt & {
    suite: string
    packages: readonly string[]
    archiveUri: string
    cacheKey: string
  },
): Promise<{ cached: boolean }> {
  const cache = cachedRootfsPath(opts.cacheKey)
  await mkdir(target, { recursive: true })
  try {
    await run('tar', ['--extract', '--file', cache, ...TAR_FLAGS, '--directory', target], {
      timeoutMs: TAR_TIMEOUT_MS,
      ...withSignal(opts),
    })
    return { cached: true }
  } catch (error) {
    // A missing or truncated cache just means building it; start from an empty directory.
    if (opts.signal?.aborted) throw error
    await rm(target, { recursive: true, force: true })
    await mkdir(target, { recursive: true })
  }
  await run(
    'debootstrap',
    [
      '--variant=minbase',
      `--include=${opts.packages.join(',')}`,
      opts.suite,
      target,
      opts.archiveUri,
    ],
    { timeoutMs: DEBOOTSTRAP_TIMEOUT_MS, ...withSignal(opts) },
  )
  await tidyRootfs(target)
  await storeCache(target, cache, opts)
  return { cached: false }
}

/** Leaves out what containers supply themselves or what only describes the build host. */
async function tidyRootfs(target: string): Promise<void> {
  // Incus mounts /dev; the host's resolver means nothing in a container without network.
  for (const entry of await readdir(join(target, 'dev')).catch(() => [])) {
    await rm(join(target, 'dev', entry), { recursive: true, force: true })
  }
  await rm(join(target, 'etc', 'resolv.conf'), { force: true })
  await rm(join(target, 'etc', 'hostname'), { force: true })
  for (const dir of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
    for (const entry of await readdir(join(target, dir)).catch(() => [])) {
      if (entry === 'partial' || entry === 'lock') continue
      await rm(join(target, dir, entry), { recursive: true, force: true })
    }
  }
  await rm(join(target, 'var', 'cache', 'apt', 'pkgcache.bin'), { force: true })
  await rm(join(target, 'var', 'cache', 'apt', 'srcpkgcache.bin'), { force: true })
}

async function storeCache(target: string, cache: string, opts: SignalOpt): Promise<void> {
  const partial = `${cache}.partial-${process.pid}`
  await run('tar', ['--create', '--file', partial, ...TAR_FLAGS, '--directory', target, '.'], {
    timeoutMs: TAR_TIMEOUT_MS,
    ...withSignal(opts),
  })
  await rename(partial, cache)
  // Only the current package list is worth keeping: older trees just fill the disk.
  for (const entry of await readdir(CACHE_DIR)) {
    const path = join(CACHE_DIR, entry)
    if (path !== cache && /^rootfs-[0-9a-f]+\.tar(\.partial-\d+)?$/.test(entry)) {
      await rm(path, { force: true })
    }
  }
}

/**
 * The parts both images share: PID 1 and the `code` user, with no sudo and no supplementary group
 * (a group it could chgrp files to would map to another host id). Root in a session is opt-in:
 * `[security] agent_sudo` pushes a sudoers file at launch (sessions/service.ts).
 */
export async function configureBase(target: string, opts: { init: string }): Promise<void> {
  const initPath = join(target, 'sbin', 'init')
  await rm(initPath, { force: true })
  await writeFile(initPath, opts.init, { mode: 0o755 })
  await chmod(initPath, 0o755)

  const passwd = await readFile(join(target, 'etc', 'passwd'), 'utf8')
  if (!passwd.split('\n').some((line) => line.startsWith(`${CODE_USER.name}:`))) {
    // --root chroots into the tree, so the image's own shadow tools and login.defs apply.
    await run('groupadd', ['--root', target, '--gid', String(CODE_USER.gid), CODE_USER.name], {
      timeoutMs: 30_000,
    })
    await run(
      'useradd',
      [
        '--root',
        target,
        '--uid',
        String(CODE_USER.uid),
        '--gid',
        String(CODE_USER.gid),
        '--home-dir',
        CODE_USER.home,
        '--create-home',
        '--shell',
        '/bin/bash',
        CODE_USER.name,
      ],
      { timeoutMs: 30_000 },
    )
  }
  // Images built before sudo became opt-in granted it here.
  await rm(join(target, 'etc', 'sudoers.d', 'clincus-code'), { force: true })
  for (const file of ['group', 'gshadow']) {
    const path = join(target, 'etc', file)
    const text = await readFile(path, 'utf8').catch(() => null)
    if (text !== null) await writeFile(path, withoutMember(text, CODE_USER.name))
  }
}

/** An /etc/group (or gshadow) text with `user` removed from every member list. */
export function withoutMember(text: string, user: string): string {
  return text
    .split('\n')
    .map((line) => {
      const fields = line.split(':')
      const last = fields.length - 1
      if (fields.length < 4) return line
      fields[last] = (fields[last] ?? '')
        .split(',')
        .filter((m) => m !== '' && m !== user)
        .join(',')
      return fields.join(':')
    })
    .join('\n')
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

/** Packs the tree for `incus image import`: uncompressed, Incus unpacks it for every new instance. */
export async function packRootfs(target: string, file: string, opts: SignalOpt): Promise<void> {
  await run('tar', ['--create', '--file', file, ...TAR_FLAGS, '--directory', target, '.'], {
    timeoutMs: TAR_TIMEOUT_MS,
    ...withSignal(opts),
  })
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
