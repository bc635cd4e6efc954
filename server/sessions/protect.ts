import { lstat, mkdir } from 'node:fs/promises'
import { join, normalize, posix } from 'node:path'
import { BadRequestError } from '../errors.ts'

export interface ProtectDevice {
  device: string
  source: string
  path: string
}

/** `.git/hooks` → `protect-git-hooks` (clincus-behaviour §1.2 step 10). */
export function protectDeviceName(rel: string): string {
  const name = 'protect-' + rel.replaceAll('/', '-').replaceAll('.', '').replace(/^-+/, '')
  return name.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 60)
}

/**
 * Read-only devices for the protected paths of a workspace. `.git/*` paths are skipped when .git
 * is not a real directory (worktrees, submodules); only `.git/hooks` is created when missing; a
 * symlink is refused, because a read-only mount of a link target is not what the user asked for.
 */
export async function planProtectedPaths(
  workspace: string,
  ctrWorkspace: string,
  paths: readonly string[],
): Promise<ProtectDevice[]> {
  const out: ProtectDevice[] = []
  const seen = new Set<string>()
  for (const raw of paths) {
    const rel = normalize(raw).replace(/\/+$/, '')
    if (rel.startsWith('/') || rel === '..' || rel.startsWith('../') || rel === '.' || rel === '') {
      throw new BadRequestError(
        `protected path must be relative to the workspace: ${raw}`,
        'invalid_protected_path',
      )
    }
    if (seen.has(rel)) continue
    seen.add(rel)
    if (rel === '.git' || rel.startsWith('.git/')) {
      const git = await lstat(join(workspace, '.git')).catch(() => null)
      if (!git?.isDirectory()) continue
    }
    const host = join(workspace, rel)
    let st = await lstat(host).catch(() => null)
    if (!st && rel === '.git/hooks') {
      await mkdir(host, { recursive: true, mode: 0o755 })
      st = await lstat(host)
    }
    if (!st) continue
    if (st.isSymbolicLink()) {
      throw new BadRequestError(
        `protected path ${rel} is a symlink; refusing to start the session (replace it with a real file or directory)`,
        'protected_path_symlink',
      )
    }
    out.push({ device: protectDeviceName(rel), source: host, path: posix.join(ctrWorkspace, rel) })
  }
  return out
}
