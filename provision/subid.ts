// Unprivileged containers map their uids/gids onto root's subordinate ranges; Debian's incus-base
// postinst adds them only on first install (when incus-admin does not exist yet), so a machine whose
// group predates the package, or whose files were reset, has none and every container would fail to
// start. The numbers follow the postinst: a billion ids after the highest range in use.
import { readFile, writeFile } from 'node:fs/promises'

/** Incus needs at least one full 16-bit range to map a container's ids. */
const MIN_IDS = 65536
export const DEFAULT_RANGE_SIZE = 1_000_000_000

interface SubIdRange {
  owner: string
  start: number
  count: number
}

export function parseSubIds(text: string): SubIdRange[] {
  const ranges: SubIdRange[] = []
  for (const line of text.split('\n')) {
    const [owner = '', start = '', count = ''] = line.trim().split(':')
    if (!owner || !/^\d+$/.test(start) || !/^\d+$/.test(count)) continue
    ranges.push({ owner, start: Number(start), count: Number(count) })
  }
  return ranges
}

export function hasUsableRange(text: string, owner: string): boolean {
  return parseSubIds(text).some((range) => range.owner === owner && range.count >= MIN_IDS)
}

/** Returns the file content with a range for `owner` appended, or the same text if one exists. */
export function withRange(text: string, owner: string, size = DEFAULT_RANGE_SIZE): string {
  if (hasUsableRange(text, owner)) return text
  const end = parseSubIds(text).reduce((max, range) => Math.max(max, range.start + range.count), 0)
  const start = Math.max(end, 1_000_000)
  const prefix = text === '' || text.endsWith('\n') ? text : `${text}\n`
  return `${prefix}${owner}:${start}:${size}\n`
}

/**
 * Whether root's subordinate ranges allow Incus to map host id `id` into a container (raw.idmap of
 * the workspace owner onto the code user); root's own id 0 is always allowed.
 */
export function subIdAllows(text: string, id: number): boolean {
  if (id === 0) return true
  return parseSubIds(text).some(
    (r) => r.owner === 'root' && id >= r.start && id < r.start + r.count,
  )
}

/** The text with `root:<id>:1` appended for each id root may not map yet. */
export function withSingleIds(text: string, ids: readonly number[]): string {
  let out = text
  for (const id of [...new Set(ids)].filter((i) => Number.isInteger(i) && i > 0)) {
    if (subIdAllows(out, id)) continue
    out = `${out === '' || out.endsWith('\n') ? out : `${out}\n`}root:${id}:1\n`
  }
  return out
}

/**
 * Adds root's range, and `root:<id>:1` for each workspace owner id clincus should be able to map
 * (raw.idmap), to /etc/subuid and /etc/subgid where missing; returns the files changed. Incus reads
 * them when its daemon starts.
 */
export async function ensureRootSubIds(
  owners: { uids: readonly number[]; gids: readonly number[] } = { uids: [], gids: [] },
  files = { uid: '/etc/subuid', gid: '/etc/subgid' },
): Promise<string[]> {
  const changed: string[] = []
  for (const [file, ids] of [
    [files.uid, owners.uids],
    [files.gid, owners.gids],
  ] as const) {
    const text = await readFile(file, 'utf8').catch(() => '')
    const next = withSingleIds(withRange(text, 'root'), ids)
    if (next !== text) {
      await writeFile(file, next, { mode: 0o644 })
      changed.push(file)
    }
  }
  return changed
}
