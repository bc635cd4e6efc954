// Node and the agent CLIs for the real image, installed from the host: the host has the npm
// registry, containers have no network. The host's node binary is reused because CI hosts are
// Debian 12 like the image (same glibc), which spares a second download.
import { chmod, copyFile, cp, mkdir, readFile, realpath, rm, symlink } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { run } from '../provision/command.ts'
import { findExecutable } from '../provision/host.ts'

const NPM_TIMEOUT_MS = 20 * 60_000

/** The host's npm package directory (…/node_modules/npm), if npm is installed. */
export async function hostNpmRoot(): Promise<string | undefined> {
  const npm = await findExecutable('npm')
  if (npm === undefined) return undefined
  const root = resolve(dirname(await realpath(npm)), '..')
  const manifest = await readFile(join(root, 'package.json'), 'utf8').catch(() => '')
  return manifest.includes('"name": "npm"') ? root : undefined
}

/** Copies node (and npm when the host has it) into the image's /usr/local. */
export async function installNode(
  target: string,
  opts: { nodePath: string; npmRoot: string | undefined },
): Promise<void> {
  const bin = join(target, 'usr', 'local', 'bin')
  await mkdir(bin, { recursive: true })
  await copyFile(opts.nodePath, join(bin, 'node'))
  await chmod(join(bin, 'node'), 0o755)
  if (opts.npmRoot === undefined) return
  const lib = join(target, 'usr', 'local', 'lib', 'node_modules')
  await mkdir(lib, { recursive: true })
  await rm(join(lib, 'npm'), { recursive: true, force: true })
  await cp(opts.npmRoot, join(lib, 'npm'), { recursive: true, verbatimSymlinks: true })
  for (const [name, script] of [
    ['npm', 'npm-cli.js'],
    ['npx', 'npx-cli.js'],
  ] as const) {
    await rm(join(bin, name), { force: true })
    await symlink(`../lib/node_modules/npm/bin/${script}`, join(bin, name))
  }
}

/**
 * `npm install --global` into the image's /usr/local, run by the host's node and npm. The tools'
 * install scripts (which fetch or place their native binaries) are allowed explicitly: npm 11
 * runs no dependency scripts unless told to, and older npm ignores the flag.
 */
export async function installNpmPackage(
  target: string,
  pkg: string,
  opts: { nodePath: string; npmRoot: string; signal?: AbortSignal },
): Promise<void> {
  await run(
    opts.nodePath,
    [
      join(opts.npmRoot, 'bin', 'npm-cli.js'),
      'install',
      '--global',
      '--prefix',
      join(target, 'usr', 'local'),
      '--no-audit',
      '--no-fund',
      '--no-update-notifier',
      `--allow-scripts=${pkg}`,
      pkg,
    ],
    { timeoutMs: NPM_TIMEOUT_MS, ...(opts.signal ? { signal: opts.signal } : {}) },
  )
}
