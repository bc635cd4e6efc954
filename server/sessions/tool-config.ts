import { constants } from 'node:fs'
import { open, readdir } from 'node:fs/promises'
import { join, posix } from 'node:path'
import type { IncusDriver } from '../incus/driver.ts'
import type { AgentHookInstall } from './agent/hook-files.ts'
import { packTar, tarPathFits, type TarEntry } from './tar.ts'
import { mergeSettings, type ToolSpec } from './tools.ts'

const MAX_FILES = 2000
/** Bytes copied from the directories (plugins, hooks, ...) in all. */
const MAX_DIR_BYTES = 64 * 1024 * 1024
/** Bytes read of one named file (a long-used ~/.claude.json grows with history). */
const MAX_FILE_BYTES = 64 * 1024 * 1024
const EXTRACT_TIMEOUT_MS = 60_000

interface CopyContext {
  driver: IncusDriver
  name: string
  hostHome: string
  containerHome: string
  uid: number
  effortLevel: string
  /** Issue 17: the agent status hooks (files added, a JSON file merged into). */
  hooks?: AgentHookInstall
  signal?: AbortSignal
}

export interface PlannedFile {
  /** Relative to the home. */
  path: string
  content: Buffer
  mode: number
}

/** A regular file's bytes (links followed: the host home is the user's own), else null. */
async function readRegular(path: string, max: number): Promise<Buffer | null> {
  let fh
  try {
    // O_NONBLOCK: a FIFO in place of a config file must not hang the creation.
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch {
    return null
  }
  try {
    const st = await fh.stat()
    if (!st.isFile() || st.size > max) return null
    return await fh.readFile()
  } catch {
    return null
  } finally {
    await fh.close()
  }
}

/** Regular files below `dir` (relative paths); links and special files are skipped. */
async function walk(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = []
  let entries
  try {
    entries = await readdir(join(dir, rel), { withFileTypes: true })
  } catch {
    return out
  }
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name
    if (e.isDirectory()) out.push(...(await walk(dir, r)))
    else if (e.isFile()) out.push(r)
  }
  return out
}

function parseJsonObject(buf: Buffer | null): Record<string, unknown> | null {
  if (!buf) return null
  try {
    const v: unknown = JSON.parse(buf.toString('utf8'))
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : null
  } catch {
    return null
  }
}

/**
 * What a session gets of the host's tool config (README "What a session gets of your tool
 * config"): the spec's named files, JSON narrowed by its selector and with host-home paths
 * rewritten to the container home; the spec's directories (regular files only); the sandbox
 * settings merged in. Secret-bearing files are 0600, everything else 0644.
 */
export async function planToolConfig(
  spec: ToolSpec,
  ctx: Pick<CopyContext, 'hostHome' | 'containerHome' | 'effortLevel' | 'hooks'>,
): Promise<PlannedFile[]> {
  const out: PlannedFile[] = []
  const rewrite = (text: string): string =>
    ctx.hostHome === ctx.containerHome ? text : text.replaceAll(ctx.hostHome, ctx.containerHome)
  const sandbox = spec.sandboxSettings(ctx.effortLevel)
  const hasSandbox = Object.keys(sandbox).length > 0

  for (const f of spec.copy.files) {
    const buf = await readRegular(join(ctx.hostHome, f.path), MAX_FILE_BYTES)
    const mode = f.secret ? 0o600 : 0o644
    const isJson = f.select !== undefined || f.sandbox === true
    if (!isJson) {
      if (buf) out.push({ path: f.path, content: buf, mode })
      continue
    }
    const host = parseJsonObject(buf)
    // An unparsable file is not copied raw: its secrets would pass the selector.
    if (!host && !(f.sandbox && hasSandbox)) continue
    let value = f.select ? f.select(host ?? {}) : (host ?? {})
    if (f.sandbox && hasSandbox) value = mergeSettings(value, sandbox)
    let text = rewrite(JSON.stringify(value, null, 2))
    // After the rewrite: clincus's hook commands name container paths, never host ones.
    if (ctx.hooks)
      text = JSON.stringify(ctx.hooks.transform(f.path, JSON.parse(text) as typeof value), null, 2)
    out.push({ path: f.path, content: Buffer.from(text + '\n'), mode })
  }

  let total = 0
  for (const dir of spec.copy.dirs) {
    for (const rel of await walk(join(ctx.hostHome, dir))) {
      if (out.length >= MAX_FILES) break
      // Plugin files are named by third parties: one the archive cannot carry (a backslash, a
      // control character, a path too long for ustar) is left out instead of failing the launch.
      if (!tarPathFits(posix.join(dir, rel))) continue
      const buf = await readRegular(join(ctx.hostHome, dir, rel), MAX_DIR_BYTES)
      if (!buf || (total += buf.length) > MAX_DIR_BYTES) continue
      const text = rel.endsWith('.json') ? Buffer.from(rewrite(buf.toString('utf8'))) : buf
      out.push({ path: posix.join(dir, rel), content: text, mode: 0o644 })
    }
  }
  // The hook files win over a host file of the same path (one entry per path in the archive).
  const extra = ctx.hooks?.files ?? []
  const taken = new Set(extra.map((f) => f.path))
  return [...out.filter((f) => !taken.has(f.path)), ...extra]
}

/** Tar entries for `files`: each parent directory once (0700), before its children. */
export function toTarEntries(files: readonly PlannedFile[]): TarEntry[] {
  const entries: TarEntry[] = []
  const dirs = new Set<string>()
  for (const f of files) {
    const parts = f.path.split('/').slice(0, -1)
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/')
      if (dirs.has(d)) continue
      dirs.add(d)
      entries.push({ path: d, type: 'dir', mode: 0o700 })
    }
    entries.push({ path: f.path, type: 'file', mode: f.mode, content: f.content })
  }
  return entries
}

/**
 * Copies the tool's config into the container home in one transfer: one tar archive extracted by
 * one `tar -x` run as the code user (so every file is the code user's, and the archive, checked
 * entry by entry in packTar, holds no links, absolute paths or `..`). One process for any number
 * of files, where one `incus file push` per file took seconds with a populated ~/.claude.
 */
export async function copyToolConfig(spec: ToolSpec, ctx: CopyContext): Promise<number> {
  const files = await planToolConfig(spec, ctx)
  if (files.length === 0) return 0
  const archive = packTar(toTarEntries(files), ctx.uid)
  const res = await ctx.driver.exec(
    ctx.name,
    // -p: the archive's modes (0600 for secrets) instead of the umask's; --no-overwrite-dir: the
    // home's existing directories keep their owner and mode.
    [
      'tar',
      '-x',
      '-p',
      '--no-same-owner',
      '--no-overwrite-dir',
      '-C',
      ctx.containerHome,
      '-f',
      '-',
    ],
    {
      user: ctx.uid,
      group: ctx.uid,
      stdin: archive,
      timeoutMs: EXTRACT_TIMEOUT_MS,
      signal: ctx.signal,
    },
  )
  if (res.exitCode !== 0)
    throw new Error(`extracting the tool configuration failed: ${res.stderr.trim()}`)
  return files.length
}
