// Facts about the machine setup runs on. Reads only; nothing here changes the host.
import { constants, existsSync } from 'node:fs'
import { access, readdir, readFile } from 'node:fs/promises'
import { delimiter, join } from 'node:path'

export interface OsRelease {
  id: string
  idLike: readonly string[]
  versionCodename: string
  prettyName: string
}

/** Parses os-release(5): KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): OsRelease {
  const values = new Map<string, string>()
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim())
    if (!match) continue
    const [, key = '', raw = ''] = match
    values.set(key, raw.replace(/^(["'])(.*)\1$/, '$2'))
  }
  return {
    id: values.get('ID') ?? '',
    idLike: (values.get('ID_LIKE') ?? '').split(/\s+/).filter(Boolean),
    versionCodename: values.get('VERSION_CODENAME') ?? '',
    prettyName: values.get('PRETTY_NAME') ?? values.get('NAME') ?? 'unknown system',
  }
}

export async function readOsRelease(): Promise<OsRelease | undefined> {
  for (const path of ['/etc/os-release', '/usr/lib/os-release']) {
    const text = await readFile(path, 'utf8').catch(() => undefined)
    if (text !== undefined) return parseOsRelease(text)
  }
  return undefined
}

export function isDebianFamily(os: OsRelease): boolean {
  return os.id === 'debian' || os.id === 'ubuntu' || os.idLike.includes('debian')
}

export function isRoot(): boolean {
  return process.getuid?.() === 0
}

/** sd_booted(3): systemd is the running init exactly when this directory exists. */
export function hasSystemd(): boolean {
  return existsSync('/run/systemd/system')
}

/** `which` without a subprocess; also looks in the sbin directories a non-login root PATH may lack. */
export async function findExecutable(
  name: string,
  pathEnv = process.env.PATH ?? '',
): Promise<string | undefined> {
  const dirs = [...pathEnv.split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  for (const dir of dirs.filter(Boolean)) {
    const candidate = join(dir, name)
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {
      // not in this directory
    }
  }
  return undefined
}

/**
 * The pid of a live process whose command name is `comm`, found through /proc. Zombies do not
 * count: where PID 1 does not reap (these CI machines), a daemon that exited lingers as one.
 */
export async function findProcess(comm: string): Promise<number | undefined> {
  const entries = await readdir('/proc').catch(() => [])
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    // pid (comm) state …; comm may itself contain spaces or parentheses.
    const open = stat.indexOf('(')
    const close = stat.lastIndexOf(')')
    if (open < 0 || close < open) continue
    const state = stat.slice(close + 2, close + 3)
    if (stat.slice(open + 1, close) === comm && state !== 'Z' && state !== 'X') return Number(entry)
  }
  return undefined
}

export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

/**
 * The Incus daemon itself: an `incusd` process that is not one of its `forkexec`/`forkfile`/…
 * helpers (those share the name and can outlive a killed daemon for a moment).
 */
export async function findIncusDaemon(): Promise<number | undefined> {
  const entries = await readdir('/proc').catch(() => [])
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    const close = stat.lastIndexOf(')')
    if (stat.slice(stat.indexOf('(') + 1, close) !== 'incusd') continue
    const state = stat.slice(close + 2, close + 3)
    if (state === 'Z' || state === 'X') continue
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0')
    // helpers are `incusd forkexec …`; container monitors rename themselves `[lxc monitor] …`
    if (!argv[0]?.endsWith('incusd') || argv[1]?.startsWith('fork')) continue
    return Number(entry)
  }
  return undefined
}
