// Reading git metadata the agent may have written (gitfiles, git configs), as text and by
// clincus only: host git is never run over the workspace (SECURITY.md).
import { isAbsolute, posix } from 'node:path'

/** A path named by git metadata, relative to the workspace, or null when it is outside. */
export function insideWorkspace(workspace: string, base: string, target: string): string | null {
  const abs = posix.normalize(isAbsolute(target) ? target : posix.join(base, target))
  const root = workspace.endsWith('/') ? workspace : `${workspace}/`
  if (!abs.startsWith(root)) return null
  const rel = abs.slice(root.length).replace(/\/+$/, '')
  return rel === '' ? null : rel
}

/**
 * `gitdir: <path>` of a gitfile, read as host git reads it (setup.c read_gitfile_gently): the
 * file starts with exactly `gitdir: `, and the path is everything after it up to the trailing
 * CR/LF, blanks and further lines included. Null when git would refuse it.
 */
export function parseGitfile(text: string): string | null {
  if (!text.startsWith('gitdir: ')) return null
  const path = text.slice('gitdir: '.length).replace(/[\r\n]+$/, '')
  return path === '' || path.includes('\0') ? null : path
}

/**
 * True when `target` has a `..` segment. Git resolves a gitfile's path by following links first
 * (strbuf_realpath), so `link/../x` is not `x`: such a path cannot be checked as text.
 */
export function hasDotDot(target: string): boolean {
  return target.split('/').includes('..')
}

/** `worktree = <path>` in the [core] section of a git config (what git uses for a submodule). */
export function parseCoreWorktree(text: string): string | null {
  return configValue(text, 'core', 'worktree')
}

/** The last `key = value` of `[section]` in a git config (simple values only). */
export function configValue(text: string, wanted: string, key: string): string | null {
  let section = ''
  let value: string | null = null
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    const head = /^\[\s*([A-Za-z0-9.-]+)(?:\s+"[^"]*")?\s*\]/.exec(line)
    if (head) {
      section = (head[1] ?? '').toLowerCase()
      continue
    }
    const kv = /^([A-Za-z][A-Za-z0-9-]*)\s*=\s*(.*)$/.exec(line)
    if (section === wanted && kv?.[1]?.toLowerCase() === key)
      value = (kv[2] ?? '').replace(/^"(.*)"$/, '$1')
  }
  return value
}
