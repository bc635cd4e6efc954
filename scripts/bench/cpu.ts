// CPU time spent by the processes of a terminal pipeline, from /proc: on a machine whose cores
// are all busy, throughput is set by the total CPU a byte costs on its way, so each path's CPU
// per 64 MiB explains its throughput better than wall time alone.
import { readdir, readFile } from 'node:fs/promises'

export type CpuPart = 'server' | 'client' | 'incus' | 'incusd' | 'container'

interface Proc {
  pid: number
  comm: string
  ppid: number
  cpuMs: number
}

async function readProc(pid: number): Promise<Proc | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const open = stat.indexOf('(')
    const close = stat.lastIndexOf(')')
    const fields = stat.slice(close + 2).split(' ')
    // After the comm: state, ppid, …; utime and stime are the 12th and 13th (USER_HZ = 100).
    return {
      pid,
      comm: stat.slice(open + 1, close),
      ppid: Number(fields[1]),
      cpuMs: (Number(fields[11]) + Number(fields[12])) * 10,
    }
  } catch {
    return null
  }
}

async function inContainer(pid: number, names: readonly string[]): Promise<boolean> {
  try {
    const cgroup = await readFile(`/proc/${pid}/cgroup`, 'utf8')
    return names.some((n) => cgroup.includes(`lxc.payload.${n}`))
  } catch {
    return false
  }
}

export type CpuSnapshot = Map<number, { part: CpuPart; cpuMs: number }>

/**
 * CPU so far of: the server, this process (the client), `incus` clients started by either,
 * every incusd process (the daemon is shared with anything else on the machine, so that part is
 * approximate), and the processes inside the given containers.
 */
export async function cpuSnapshot(
  serverPid: number,
  containers: readonly string[],
): Promise<CpuSnapshot> {
  const out: CpuSnapshot = new Map()
  const pids = (await readdir('/proc')).filter((e) => /^\d+$/.test(e)).map(Number)
  for (const pid of pids) {
    const p = await readProc(pid)
    if (!p) continue
    let part: CpuPart | null = null
    if (pid === serverPid) part = 'server'
    else if (pid === process.pid) part = 'client'
    else if (p.comm === 'incus' && (p.ppid === serverPid || p.ppid === process.pid)) part = 'incus'
    else if (p.comm === 'incusd') part = 'incusd'
    else if (await inContainer(pid, containers)) part = 'container'
    if (part) out.set(pid, { part, cpuMs: p.cpuMs })
  }
  return out
}

/** CPU used per part between two snapshots (processes that ended in between are not counted). */
export function cpuDelta(before: CpuSnapshot, after: CpuSnapshot): Record<CpuPart, number> {
  const sums: Record<CpuPart, number> = { server: 0, client: 0, incus: 0, incusd: 0, container: 0 }
  for (const [pid, a] of after) sums[a.part] += a.cpuMs - (before.get(pid)?.cpuMs ?? 0)
  return sums
}
