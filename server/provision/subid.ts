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

/** Adds root's range to /etc/subuid and /etc/subgid where missing; returns the files changed. */
export async function ensureRootSubIds(files = ['/etc/subuid', '/etc/subgid']): Promise<string[]> {
  const changed: string[] = []
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => '')
    const next = withRange(text, 'root')
    if (next !== text) {
      await writeFile(file, next, { mode: 0o644 })
      changed.push(file)
    }
  }
  return changed
}
