// A minimal ustar writer (and reader, for tests and the fake driver) for copying files into a
// container in one `tar -x`: only regular files and directories, names checked so that nothing
// can land outside the directory it is extracted in (no absolute paths, no `..`, no links).

const BLOCK = 512

export interface TarEntry {
  /** Relative POSIX path: no leading '/', no '.', '..' or empty segments. */
  path: string
  type: 'file' | 'dir'
  mode: number
  content?: Uint8Array
}

export class TarPathError extends Error {}

/** Throws unless `path` is a plain relative path that stays below the extraction directory. */
export function checkTarPath(path: string): void {
  if (path === '' || path.startsWith('/'))
    throw new TarPathError(`not a relative path: ${JSON.stringify(path)}`)
  // Control characters (NUL ends a header field; newlines confuse tar's listing), backslashes.
  // eslint-disable-next-line no-control-regex -- rejecting them is the point
  if (/[\u0000-\u001f\u007f\\]/.test(path))
    throw new TarPathError(`unsafe character in path: ${JSON.stringify(path)}`)
  for (const seg of path.split('/'))
    if (seg === '' || seg === '.' || seg === '..')
      throw new TarPathError(`unsafe path segment in ${JSON.stringify(path)}`)
}

function splitName(path: string): { name: Buffer; prefix: Buffer } {
  const full = Buffer.from(path, 'utf8')
  if (full.length <= 100) return { name: full, prefix: Buffer.alloc(0) }
  // ustar: prefix (<= 155 bytes) + '/' + name (<= 100 bytes), split at a slash.
  for (let i = full.length - 1; i > 0; i--) {
    if (full[i] !== 0x2f) continue
    const prefix = full.subarray(0, i)
    const name = full.subarray(i + 1)
    if (prefix.length <= 155 && name.length <= 100 && name.length > 0) return { name, prefix }
  }
  throw new TarPathError(`path too long for ustar: ${path}`)
}

/** Whether an entry can carry `path` (safe, and short enough for a ustar header). */
export function tarPathFits(path: string): boolean {
  try {
    checkTarPath(path)
    splitName(path)
    return true
  } catch (err) {
    if (err instanceof TarPathError) return false
    throw err
  }
}

function octal(buf: Buffer, offset: number, width: number, value: number): void {
  const text = value.toString(8).padStart(width - 1, '0')
  if (text.length > width - 1) throw new TarPathError(`value too large for a tar header: ${value}`)
  buf.write(text, offset, 'ascii')
}

function header(e: TarEntry, size: number, owner: number): Buffer {
  const h = Buffer.alloc(BLOCK)
  const { name, prefix } = splitName(e.path)
  name.copy(h, 0)
  octal(h, 100, 8, e.mode & 0o7777)
  octal(h, 108, 8, owner)
  octal(h, 116, 8, owner)
  octal(h, 124, 12, size)
  octal(h, 136, 12, 0)
  h.fill(0x20, 148, 156)
  h.write(e.type === 'dir' ? '5' : '0', 156, 'ascii')
  h.write('ustar\u000000', 257, 'ascii')
  prefix.copy(h, 345)
  let sum = 0
  for (const b of h) sum += b
  h.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148, 'ascii')
  return h
}

/** One archive holding `entries` in order (list parents before children). */
export function packTar(entries: readonly TarEntry[], owner = 0): Buffer {
  const parts: Buffer[] = []
  for (const e of entries) {
    checkTarPath(e.path)
    const content = e.type === 'file' ? Buffer.from(e.content ?? new Uint8Array()) : Buffer.alloc(0)
    parts.push(header(e, content.length, owner))
    if (content.length > 0) {
      parts.push(content)
      const pad = (BLOCK - (content.length % BLOCK)) % BLOCK
      if (pad) parts.push(Buffer.alloc(pad))
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2))
  return Buffer.concat(parts)
}

export interface ParsedTarEntry {
  path: string
  /** The header's type flag: '0' file, '5' directory, '1'/'2' links, ... */
  typeflag: string
  mode: number
  content: Buffer
}

function field(h: Buffer, start: number, len: number): string {
  const raw = h.subarray(start, start + len)
  const end = raw.indexOf(0)
  return raw.subarray(0, end === -1 ? len : end).toString('utf8')
}

/** Reads a ustar archive (what packTar writes); for tests and the fake driver. */
export function unpackTar(buf: Uint8Array): ParsedTarEntry[] {
  const data = Buffer.from(buf)
  const out: ParsedTarEntry[] = []
  let off = 0
  while (off + BLOCK <= data.length) {
    const h = data.subarray(off, off + BLOCK)
    if (h.every((b) => b === 0)) break
    const name = field(h, 0, 100)
    const prefix = field(h, 345, 155)
    const size = parseInt(field(h, 124, 12).trim() || '0', 8)
    const mode = parseInt(field(h, 100, 8).trim() || '0', 8)
    const typeflag = String.fromCharCode(h[156] ?? 0x30)
    off += BLOCK
    out.push({
      path: prefix ? `${prefix}/${name}` : name,
      typeflag: typeflag === '\u0000' ? '0' : typeflag,
      mode,
      content: Buffer.from(data.subarray(off, off + size)),
    })
    off += Math.ceil(size / BLOCK) * BLOCK
  }
  return out
}
