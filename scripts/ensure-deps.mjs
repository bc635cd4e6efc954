#!/usr/bin/env node
// Runs before `npm start` / `npm test` on a clean clone: installs node_modules when missing or
// older than package-lock.json, and (re)builds the SPA when its sources are newer than the build.
// Plain JavaScript with no dependencies, because nothing is installed yet when it runs.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildSpliceRelay } from '../native/build.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

function mtime(path) {
  try {
    return statSync(path).mtimeMs
  } catch {
    return 0
  }
}

function newest(dir) {
  let max = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'e2e') max = Math.max(max, newest(p))
    } else max = Math.max(max, mtime(p))
  }
  return max
}

function step(name, cmd, args) {
  const started = Date.now()
  process.stdout.write(`==> ${name}\n`)
  const res = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' })
  if (res.status !== 0) {
    process.stderr.write(
      `clincus: "${cmd} ${args.join(' ')}" failed (exit ${res.status ?? res.signal})\n`,
    )
    process.exit(res.status ?? 1)
  }
  process.stdout.write(`==> ${name} done (${((Date.now() - started) / 1000).toFixed(1)} s)\n`)
}

const marker = join(root, 'node_modules', '.package-lock.json')
const lock = join(root, 'package-lock.json')
const ptyBuilt = existsSync(join(root, 'node_modules', 'node-pty', 'build', 'Release', 'pty.node'))
if (!existsSync(marker) || mtime(lock) > mtime(marker) || !ptyBuilt) {
  step('installing npm dependencies', 'npm', ['ci', '--no-audit', '--no-fund'])
}

const built = join(root, 'dist', 'web', 'index.html')
const sources = Math.max(
  newest(join(root, 'web')),
  newest(join(root, 'shared')),
  mtime(join(root, 'vite.config.ts')),
)
if (!existsSync(built) || sources > mtime(built)) {
  step('building the web dashboard', 'npx', ['vite', 'build', '--logLevel', 'warn'])
}

// The server runs from a bundle: plain node needs about half the memory of node + the tsx loader
// (81 MB against 163 MB idle, docs/performance.md). Dependencies stay external (node-pty is native).
const bundle = join(root, 'dist', 'server', 'main.js')
// The bundle takes in the builder (images/) and host setup (provision/) too: `clincus build` and
// the dashboard's rebuild run from it. images/*.sh stay files, read from the checkout at build time.
const serverSources = Math.max(
  ...['server', 'images', 'incus', 'provision', 'shared'].map((dir) => newest(join(root, dir))),
  mtime(join(root, 'package.json')),
)
if (!existsSync(bundle) || serverSources > mtime(bundle)) {
  const started = Date.now()
  process.stdout.write('==> bundling the server\n')
  const { build } = await import('esbuild')
  await build({
    entryPoints: [join(root, 'server', 'main.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  })
  process.stdout.write(
    `==> bundling the server done (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
  )
}

// The splice relay (native/splice-relay.c) carries the bytes of big egress tunnels in the kernel.
// Optional: without a C compiler the server moves them in Node (slower) and says so in its log.
{
  const started = Date.now()
  // The name carries the relay protocol's version: server/network/relay.ts RELAY_BINARY.
  const res = buildSpliceRelay(join(root, 'dist', 'native', 'clincus-splice-relay-2'))
  if (res.path === null) {
    process.stdout.write(
      `==> splice relay not built (${res.error}); egress tunnels use the node pipe\n`,
    )
  } else if (res.built) {
    process.stdout.write(
      `==> building the splice relay done (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
    )
  }
}
