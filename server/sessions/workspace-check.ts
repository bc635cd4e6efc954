import { realpath, stat } from 'node:fs/promises'
import { isAbsolute, join, sep } from 'node:path'
import { BadRequestError } from '../errors.ts'
import { expandHome } from '../config/paths.ts'

// Mounting these read-write into a container would hand the agent the machine.
const SYSTEM_TREES = [
  '/etc',
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/boot',
  '/dev',
  '/proc',
  '/sys',
  '/run',
  '/var',
  '/snap',
]
const SYSTEM_EXACT = ['/', '/root', '/home', '/tmp', '/opt', '/srv', '/mnt', '/media']
const HOME_SECRETS = [
  '.ssh',
  '.gnupg',
  '.aws',
  '.config',
  '.kube',
  '.docker',
  '.clincus',
  '.local',
  '.cache',
  '.claude',
  '.copilot',
]

export function isInside(child: string, parent: string): boolean {
  return child !== parent && child.startsWith(parent.endsWith(sep) ? parent : parent + sep)
}

function within(child: string, parent: string): boolean {
  return child === parent || isInside(child, parent)
}

/** Why `path` (a real, absolute path) must not be a workspace, or null when it may. */
export function forbiddenReason(path: string, home: string): string | null {
  if (SYSTEM_EXACT.includes(path)) return `${path} is a system directory`
  const tree = SYSTEM_TREES.find((t) => within(path, t))
  if (tree) return `${path} is inside the system directory ${tree}`
  if (path === home) return `${path} is your home directory; pick a project folder inside it`
  if (isInside(home, path)) return `${path} contains your home directory`
  const secret = HOME_SECRETS.map((s) => join(home, s)).find((s) => within(path, s))
  if (secret) return `${path} is inside ${secret}, which holds credentials or settings`
  return null
}

/**
 * Resolves and checks a workspace path: absolute, existing, a directory (symlinks resolved before
 * any check), not a system or credential path, and inside a workspace root when roots are set.
 */
export async function resolveWorkspace(
  input: string,
  opts: { home: string; roots: string[] },
): Promise<string> {
  if (input.includes('\0'))
    throw new BadRequestError('workspace path contains a NUL byte', 'invalid_workspace')
  const expanded = expandHome(input, opts.home)
  if (!isAbsolute(expanded))
    throw new BadRequestError(`workspace must be an absolute path: ${input}`, 'invalid_workspace')
  let real: string
  try {
    real = await realpath(expanded)
  } catch {
    throw new BadRequestError(`workspace does not exist: ${input}`, 'invalid_workspace')
  }
  if (!(await stat(real)).isDirectory())
    throw new BadRequestError(`workspace is not a directory: ${input}`, 'invalid_workspace')
  const home = await realpath(opts.home).catch(() => opts.home)
  const reason = forbiddenReason(real, home)
  if (reason) throw new BadRequestError(`workspace not allowed: ${reason}`, 'forbidden_workspace')
  if (opts.roots.length > 0) {
    const roots = await Promise.all(opts.roots.map((r) => realpath(r).catch(() => r)))
    if (!roots.some((r) => isInside(real, r))) {
      throw new BadRequestError(
        `workspace ${real} is not inside a configured workspace root (${roots.join(', ')})`,
        'outside_workspace_roots',
      )
    }
  }
  return real
}
