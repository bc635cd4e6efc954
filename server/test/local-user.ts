// "Another local user" for the attack tests: a real unprivileged account on this machine, and a
// way to run a program as it. The suite runs as root (CI, `npm test` on a fresh machine), so the
// account is created once with useradd and reused; the attacker's processes get its uid and gid
// and nothing else (no supplementary groups, an empty environment but PATH).
import { execFile, spawn, type SpawnOptions } from 'node:child_process'
import { promisify } from 'node:util'

const exec = promisify(execFile)

export const ATTACKER_NAME = 'clincus-attacker'

export interface LocalUser {
  name: string
  uid: number
  gid: number
}

/** Whether this process can create users and switch to them (root). */
export const canActAsOtherUser = typeof process.getuid === 'function' && process.getuid() === 0

let created: Promise<LocalUser> | undefined

/**
 * The unprivileged attacker account, created on first use (`useradd --system`, no home, no
 * login shell). Throws when not running as root: callers guard with `canActAsOtherUser`.
 */
export function attackerUser(): Promise<LocalUser> {
  created ??= (async () => {
    if (!canActAsOtherUser) throw new Error('creating a local user needs root')
    try {
      await exec('id', ['-u', ATTACKER_NAME])
    } catch {
      await exec('useradd', [
        '--system',
        '--no-create-home',
        '--shell',
        '/usr/sbin/nologin',
        '--user-group',
        ATTACKER_NAME,
      ]).catch(async (err: unknown) => {
        // Two test files racing to create it: the loser finds it there.
        await exec('id', ['-u', ATTACKER_NAME]).catch(() => {
          throw err
        })
      })
    }
    const uid = Number((await exec('id', ['-u', ATTACKER_NAME])).stdout.trim())
    const gid = Number((await exec('id', ['-g', ATTACKER_NAME])).stdout.trim())
    if (!(uid > 0) || !(gid > 0)) throw new Error(`${ATTACKER_NAME} resolved to uid ${uid}`)
    return { name: ATTACKER_NAME, uid, gid }
  })()
  return created
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs `cmd args` as the attacker (uid, gid, no supplementary groups, `HOME=/nonexistent`, only
 * PATH from our environment) and collects its output. `timeoutMs` kills it with SIGKILL.
 */
export async function runAsAttacker(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const user = await attackerUser()
  const spawnOpts: SpawnOptions = {
    uid: user.uid,
    gid: user.gid,
    cwd: '/',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  }
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, spawnOpts)
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
    child.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
    child.stdin?.end(opts.input ?? '')
  })
}
