import { readdir, readFile, stat } from 'node:fs/promises'
import { join, posix } from 'node:path'
import type { IncusDriver } from '../incus/driver.ts'
import { mergeSettings, type ToolSpec } from './tools.ts'

const MAX_FILES = 2000
const MAX_BYTES = 64 * 1024 * 1024
const PUSH_CONCURRENCY = 6

interface CopyContext {
  driver: IncusDriver
  name: string
  hostHome: string
  containerHome: string
  uid: number
  effortLevel: string
  signal?: AbortSignal
}

async function readIfFile(path: string): Promise<Buffer | null> {
  try {
    if (!(await stat(path)).isFile()) return null
    return await readFile(path)
  } catch {
    return null
  }
}

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

function parseJsonObject(buf: Buffer | null): Record<string, unknown> {
  if (!buf) return {}
  try {
    const v: unknown = JSON.parse(buf.toString('utf8'))
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : {}
  } catch {
    return {}
  }
}

/**
 * Copies the tool's config and credentials from the host home into the container (clincus-behaviour
 * §1.4): only files that exist, owned by the code user, credentials 0600, JSON paths rewritten
 * from the host home to the container home, sandbox settings merged in.
 */
export async function copyToolConfig(spec: ToolSpec, ctx: CopyContext): Promise<number> {
  const pushes: { dest: string; content: Buffer | string; mode: string }[] = []
  const dirs = new Set<string>()
  const rewrite = (rel: string, buf: Buffer): Buffer | string =>
    rel.endsWith('.json') && ctx.hostHome !== ctx.containerHome
      ? buf.toString('utf8').replaceAll(ctx.hostHome, ctx.containerHome)
      : buf
  const sandbox = spec.sandboxSettings(ctx.effortLevel)
  const hasSandbox = Object.keys(sandbox).length > 0

  if (spec.configDir) {
    const { dir, files, secretFiles, dirs: subdirs } = spec.configDir
    const hostDir = join(ctx.hostHome, dir)
    const ctrDir = posix.join(ctx.containerHome, dir)
    const hostDirExists = await stat(hostDir).then(
      (s) => s.isDirectory(),
      () => false,
    )
    if (hostDirExists || hasSandbox) dirs.add(ctrDir)
    if (hostDirExists) {
      for (const f of [...files, ...secretFiles]) {
        if (f === 'settings.json') continue
        const buf = await readIfFile(join(hostDir, f))
        if (buf)
          pushes.push({
            dest: posix.join(ctrDir, f),
            content: rewrite(f, buf),
            mode: secretFiles.includes(f) ? '0600' : '0644',
          })
      }
      let total = 0
      for (const sub of subdirs) {
        for (const rel of await walk(join(hostDir, sub))) {
          if (pushes.length >= MAX_FILES) break
          const buf = await readIfFile(join(hostDir, sub, rel))
          if (!buf || (total += buf.length) > MAX_BYTES) continue
          const dest = posix.join(ctrDir, sub, rel)
          dirs.add(posix.dirname(dest))
          pushes.push({ dest, content: rewrite(rel, buf), mode: '0644' })
        }
      }
    }
    if (files.includes('settings.json') && (hostDirExists || hasSandbox)) {
      const host = parseJsonObject(await readIfFile(join(hostDir, 'settings.json')))
      const merged = mergeSettings(host, sandbox)
      if (Object.keys(merged).length > 0) {
        const text = JSON.stringify(merged, null, 2).replaceAll(ctx.hostHome, ctx.containerHome)
        pushes.push({
          dest: posix.join(ctrDir, 'settings.json'),
          content: text + '\n',
          mode: '0644',
        })
      }
    }
  }
  if (spec.stateFile) {
    const buf = await readIfFile(join(ctx.hostHome, spec.stateFile))
    if (buf || hasSandbox) {
      const merged = mergeSettings(parseJsonObject(buf), sandbox)
      // The state file can hold tokens (e.g. .claude.json oauth account): keep it private.
      pushes.push({
        dest: posix.join(ctx.containerHome, spec.stateFile),
        content: JSON.stringify(merged, null, 2).replaceAll(ctx.hostHome, ctx.containerHome) + '\n',
        mode: '0600',
      })
    }
  }
  if (pushes.length === 0) return 0
  if (dirs.size > 0) {
    const res = await ctx.driver.exec(ctx.name, ['mkdir', '-p', '--', ...dirs], {
      user: ctx.uid,
      group: ctx.uid,
      signal: ctx.signal,
    })
    if (res.exitCode !== 0)
      throw new Error(`could not create tool config directories: ${res.stderr.trim()}`)
  }
  // Each push is its own `incus file push` process (~20-90 ms), so a populated ~/.claude made
  // creation wait seconds when they ran one after another (docs/performance.md). A few at a time;
  // all of them settle before an error is thrown, so a rollback never races a push in flight.
  let next = 0
  let stop = false
  const worker = async (): Promise<void> => {
    while (!stop && next < pushes.length) {
      const p = pushes[next++]
      if (!p) return
      try {
        await ctx.driver.filePush(ctx.name, p.content, p.dest, {
          uid: ctx.uid,
          gid: ctx.uid,
          mode: p.mode,
          signal: ctx.signal,
        })
      } catch (err) {
        stop = true
        throw err
      }
    }
  }
  const results = await Promise.allSettled(
    Array.from({ length: Math.min(PUSH_CONCURRENCY, pushes.length) }, worker),
  )
  const failed = results.find((r) => r.status === 'rejected')
  if (failed) throw failed.reason
  return pushes.length
}
