// Who is at the other end of a TCP connection from this machine: the kernel lists every socket
// of the network namespace in /proc/net/tcp and /proc/net/tcp6 with its owner's uid, so the
// peer of a loopback connection is found by its address and port. Every local user connects
// from 127.0.0.1; the uid is what tells the dashboard's owner from another local user.
import { readFileSync } from 'node:fs'
import { endianness } from 'node:os'

export interface Endpoints {
  remoteAddress?: string | undefined
  remotePort?: number | undefined
  localAddress?: string | undefined
  localPort?: number | undefined
}

/** An IPv4 or IPv6 address as 16 bytes (IPv4 as ::ffff:a.b.c.d); null when it is neither. */
export function addressBytes(address: string): Buffer | null {
  const addr = address.replace(/%.*$/, '')
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr)
  if (v4) {
    const out = Buffer.alloc(16)
    out[10] = 0xff
    out[11] = 0xff
    for (let i = 0; i < 4; i++) {
      const n = Number(v4[i + 1])
      if (n > 255) return null
      out[12 + i] = n
    }
    return out
  }
  if (!addr.includes(':')) return null
  // A trailing dotted quad (::ffff:127.0.0.1) stands for the last two groups.
  let text = addr
  const tail = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text)
  let tailBytes: Buffer | null = null
  if (tail?.[1]) {
    tailBytes = addressBytes(tail[1])
    if (!tailBytes) return null
    text = `${text.slice(0, -tail[1].length)}0:0`
  }
  const halves = text.split('::')
  if (halves.length > 2) return null
  const groups = (s: string | undefined): string[] => (s ? s.split(':') : [])
  const head = groups(halves[0])
  const rest = groups(halves[1])
  const missing = 8 - head.length - rest.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest]
  const out = Buffer.alloc(16)
  for (let i = 0; i < 8; i++) {
    const g = all[i] ?? ''
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null
    out.writeUInt16BE(parseInt(g, 16), i * 2)
  }
  if (tailBytes) tailBytes.copy(out, 12, 12, 16)
  return out
}

const littleEndian = endianness() === 'LE'

/** A /proc/net/tcp{,6} address ("0100007F:1F90"): 32-bit words printed in host byte order. */
function procEndpoint(field: string): string | null {
  const [hex, port] = field.split(':')
  if (!hex || !port || (hex.length !== 8 && hex.length !== 32)) return null
  const raw = Buffer.from(hex, 'hex')
  if (littleEndian) for (let i = 0; i < raw.length; i += 4) raw.subarray(i, i + 4).reverse()
  const bytes = raw.length === 4 ? addressBytes([...raw].join('.')) : raw
  return bytes ? `${bytes.toString('hex')}:${parseInt(port, 16)}` : null
}

function endpoint(address: string | undefined, port: number | undefined): string | null {
  if (address === undefined || port === undefined) return null
  const bytes = addressBytes(address)
  return bytes ? `${bytes.toString('hex')}:${port}` : null
}

/**
 * The uid owning the other end of each of `sockets` (our accepted connections), for those whose
 * peer is a socket of this machine's network namespace. Reads /proc/net/tcp and tcp6 once for
 * all of them: call it for a batch, and only when it matters (it costs a read of every socket's
 * line). A peer that is not local, or gone already, is simply absent from the result.
 */
export function peerUids<S extends Endpoints>(
  sockets: readonly S[],
  files: readonly string[] = ['/proc/net/tcp', '/proc/net/tcp6'],
): Map<S, number> {
  // The peer's own line has its address as local and ours as remote.
  const wanted = new Map<string, S>()
  const ourPorts = new Set<string>()
  for (const s of sockets) {
    const peer = endpoint(s.remoteAddress, s.remotePort)
    const us = endpoint(s.localAddress, s.localPort)
    if (!peer || !us || s.localPort === undefined) continue
    wanted.set(`${peer}>${us}`, s)
    ourPorts.add(`:${s.localPort.toString(16).toUpperCase().padStart(4, '0')} `)
  }
  const out = new Map<S, number>()
  if (wanted.size === 0) return out
  for (const file of files) {
    let text: string
    try {
      text = readFileSync(file, 'latin1')
    } catch {
      continue
    }
    for (const line of text.split('\n')) {
      // Cheap filter first: only lines that mention one of our ports.
      let ours = false
      for (const p of ourPorts) if (line.includes(p)) ours = true
      if (!ours) continue
      const f = line.trim().split(/\s+/)
      const local = procEndpoint(f[1] ?? '')
      const remote = procEndpoint(f[2] ?? '')
      const uid = Number(f[7])
      if (!local || !remote || !Number.isInteger(uid)) continue
      const s = wanted.get(`${local}>${remote}`)
      if (s) out.set(s, uid)
    }
  }
  return out
}
