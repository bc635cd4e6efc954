// The request target must be in the one form the router and every check agree on. Access is
// decided from the matched route (never from the URL), so a target the router decodes
// differently is not a way past authentication any more; refusing the ambiguous forms anyway
// keeps logs, the SPA fallback and any future check honest. Refused (400):
// - absolute-form (`GET http://host/api/x`) and anything else not starting with a single `/`;
// - empty segments (`//`), dot segments (`.`, `..`), backslashes;
// - percent-encodings of characters that never need one (letters, digits, `-._~`), of control
//   characters, and malformed ones (`%zz`, a lone `%`).
// Everything a browser or `encodeURIComponent` produces stays accepted (`%2F` inside an id is
// data: the router matches it as part of one segment).

const UNRESERVED = /[A-Za-z0-9\-._~]/

/** Why the target is refused, or null when it is in canonical form. */
export function nonCanonicalTarget(raw: string): string | null {
  if (!raw.startsWith('/')) return 'the request target must be a path starting with "/"'
  const q = raw.indexOf('?')
  const path = q < 0 ? raw : raw.slice(0, q)
  if (raw.includes('#')) return 'the request target must not contain a fragment'
  if (path.includes('\\')) return 'the request path must not contain a backslash'
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f]/.test(raw)) return 'the request target contains a control character'
  const segments = path.slice(1).split('/')
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] ?? ''
    if (seg === '' && i < segments.length - 1) return 'the request path has an empty segment'
    if (seg === '.' || seg === '..') return 'the request path has a dot segment'
    for (let j = seg.indexOf('%'); j >= 0; j = seg.indexOf('%', j + 1)) {
      const hex = seg.slice(j + 1, j + 3)
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return 'the request path has a malformed percent-encoding'
      const byte = parseInt(hex, 16)
      const ch = String.fromCharCode(byte)
      if (byte < 0x20 || byte === 0x7f || UNRESERVED.test(ch))
        return 'the request path percent-encodes a character that needs no encoding'
    }
  }
  return null
}
