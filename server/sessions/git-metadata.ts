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

/** `gitdir: <path>` of a gitfile. */
export function parseGitfile(text: string): string | null {
  const m = /^gitdir:[ \t]*(.+?)[ \t]*$/m.exec(text)
  return m?.[1] ?? null
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
