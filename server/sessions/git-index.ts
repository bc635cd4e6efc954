// The gitlinks (registered submodules, mode 0160000) of a git index file, read without running git
// (https://git-scm.com/docs/index-format). The index is hostile input like everything in the
// workspace: the parser is strict and bounded, and anything malformed yields null, never a throw.

/** An index larger than this is not read (a very large repository's index is some tens of MB). */
export const MAX_INDEX_BYTES = 64 * 1024 * 1024
export const MAX_INDEX_ENTRIES = 2_000_000
const GITLINK = 0o160000
const MODE_TYPE = 0o170000

/** The bytes of a varint of index v4 (git's offset encoding), or null when out of range. */
function readVarint(buf: Buffer, at: number): { value: number; next: number } | null {
  let i = at
  if (i >= buf.length) return null
  let c = buf[i++] ?? 0
  let value = c & 0x7f
  while (c & 0x80) {
    if (i >= buf.length || value > 0xffffff) return null
    c = buf[i++] ?? 0
    value = ((value + 1) << 7) | (c & 0x7f)
  }
  return { value, next: i }
}

/**
 * The paths of the gitlinks in `buf` (an index of version 2, 3 or 4; `hashBytes` is 20 for SHA-1
 * and 32 for SHA-256 repositories), in index order; null when the index is not one git would read.
 */
export function parseIndexGitlinks(buf: Buffer, hashBytes: 20 | 32 = 20): string[] | null {
  if (buf.length < 12 || buf.length > MAX_INDEX_BYTES) return null
  if (buf.toString('latin1', 0, 4) !== 'DIRC') return null
  const version = buf.readUInt32BE(4)
  if (version < 2 || version > 4) return null
  const count = buf.readUInt32BE(8)
  if (count > MAX_INDEX_ENTRIES) return null
  const fixed = 40 + hashBytes + 2 // stat data, mode…size, object name, flags
  const out: string[] = []
  let previous: Buffer = Buffer.alloc(0)
  let at = 12
  for (let n = 0; n < count; n++) {
    const start = at
    if (at + fixed > buf.length) return null
    const mode = buf.readUInt32BE(at + 24)
    const flags = buf.readUInt16BE(at + fixed - 2)
    at += fixed
    if (flags & 0x4000) {
      if (version < 3 || at + 2 > buf.length) return null
      at += 2
    }
    let name: Buffer
    if (version === 4) {
      const strip = readVarint(buf, at)
      if (!strip || strip.value > previous.length) return null
      at = strip.next
      const end = buf.indexOf(0, at)
      if (end < 0) return null
      name = Buffer.concat([
        previous.subarray(0, previous.length - strip.value),
        buf.subarray(at, end),
      ])
      at = end + 1
    } else {
      const end = buf.indexOf(0, at)
      if (end < 0) return null
      name = buf.subarray(at, end)
      const length = flags & 0xfff
      if (length < 0xfff ? name.length !== length : name.length < 0xfff) return null
      // NUL-padded to a multiple of 8 bytes (at least one NUL)
      at = start + Math.ceil((end + 1 - start) / 8) * 8
      if (at > buf.length) return null
      for (let i = end; i < at; i++) if (buf[i] !== 0) return null
    }
    if (name.length === 0) return null
    previous = name
    if ((mode & MODE_TYPE) === GITLINK) out.push(name.toString('utf8'))
  }
  return out
}

/**
 * A gitlink path as a workspace-relative path, or null when git itself would not accept it (empty,
 * absolute, `.`/`..`/empty components, inside `.git`, a backslash or control character).
 */
export function gitlinkRel(path: string): string | null {
  // eslint-disable-next-line no-control-regex
  if (path === '' || path.length > 4096 || /[\\\u0000-\u001f]/.test(path)) return null
  const parts = path.split('/')
  for (const p of parts) if (p === '' || p === '.' || p === '..') return null
  if (parts.some((p) => p.toLowerCase() === '.git')) return null
  return path
}
