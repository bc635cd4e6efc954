// Git index files for tests, written byte by byte (https://git-scm.com/docs/index-format).

export interface Entry {
  path: string
  mode: number
  extended?: number
}

function varint(n: number): Buffer {
  const bytes = [n & 0x7f]
  let v = n
  while ((v >>= 7)) {
    v -= 1
    bytes.unshift(0x80 | (v & 0x7f))
  }
  return Buffer.from(bytes)
}

/** An index as git writes it (entries only, no extensions or checksum: the parser needs neither). */
export function encodeIndex(version: number, entries: Entry[], hashBytes = 20): Buffer {
  const head = Buffer.alloc(12)
  head.write('DIRC', 0, 'latin1')
  head.writeUInt32BE(version, 4)
  head.writeUInt32BE(entries.length, 8)
  const parts: Buffer[] = [head]
  let previous = ''
  for (const e of entries) {
    const name = Buffer.from(e.path)
    const ext = e.extended !== undefined
    const fixed = Buffer.alloc(40 + hashBytes + 2 + (ext ? 2 : 0))
    fixed.writeUInt32BE(e.mode, 24)
    fixed.writeUInt16BE((ext ? 0x4000 : 0) | Math.min(name.length, 0xfff), 40 + hashBytes)
    if (ext) fixed.writeUInt16BE(e.extended ?? 0, 42 + hashBytes)
    if (version === 4) {
      let common = 0
      while (common < previous.length && previous[common] === e.path[common]) common++
      parts.push(
        fixed,
        varint(previous.length - common),
        Buffer.from(e.path.slice(common)),
        Buffer.alloc(1),
      )
    } else {
      const len = fixed.length + name.length
      const padded = (len + 8) & ~7
      parts.push(fixed, name, Buffer.alloc(padded - len))
    }
    previous = e.path
  }
  return Buffer.concat(parts)
}
