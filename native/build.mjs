// Builds the splice relay (splice-relay.c) with the machine's C compiler. Plain JavaScript with no
// dependencies: scripts/ensure-deps.mjs runs it before anything is installed, and the tests use it
// to build a copy of their own. The output is written to a temporary name and renamed, so a server
// running meanwhile never starts a half-written program.
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const RELAY_SOURCE = join(dirname(fileURLToPath(import.meta.url)), 'splice-relay.c')

function mtime(path) {
  try {
    return statSync(path).mtimeMs
  } catch {
    return 0
  }
}

/**
 * Builds `out` from splice-relay.c unless it is already newer than the source.
 * @param {string} out where the program goes
 * @param {{ cc?: string, force?: boolean }} [opts] cc: the compiler (default `cc`)
 * @returns {{ path: string, built: boolean } | { path: null, error: string }}
 */
export function buildSpliceRelay(out, opts = {}) {
  if (process.platform !== 'linux') return { path: null, error: 'splice(2) is Linux only' }
  if (!opts.force && mtime(out) >= mtime(RELAY_SOURCE)) return { path: out, built: false }
  mkdirSync(dirname(out), { recursive: true })
  const tmp = `${out}.${process.pid}.tmp`
  const cc = opts.cc ?? 'cc'
  const res = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-o', tmp, RELAY_SOURCE], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  if (res.error || res.status !== 0) {
    rmSync(tmp, { force: true })
    const why = res.error ? res.error.message : (res.stderr || `exit ${res.status}`).trim()
    return { path: null, error: `${cc} failed: ${why.split('\n').slice(0, 5).join(' / ')}` }
  }
  chmodSync(tmp, 0o755)
  renameSync(tmp, out)
  return { path: out, built: true }
}
