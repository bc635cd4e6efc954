import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Workspace } from '../../shared/schemas/workspaces.ts'

// A folder counts as a project when it has one of these (clincus-behaviour §3.5).
export const PROJECT_MARKERS = [
  '.git',
  'go.mod',
  'package.json',
  'Cargo.toml',
  'pyproject.toml',
  '.clincus.toml',
  'Makefile',
  'pom.xml',
  'build.gradle',
]

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/** Projects directly inside `root` (depth 1, dot-dirs skipped), sorted by name. */
export async function discoverProjects(
  root: string,
  activeByPath: ReadonlyMap<string, number>,
): Promise<Workspace[]> {
  let entries
  try {
    entries = await readdir(root, { withFileTypes: true })
  } catch {
    return []
  }
  const dirs = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const out: Workspace[] = []
  for (const e of dirs) {
    const path = join(root, e.name)
    const marks = await Promise.all(PROJECT_MARKERS.map((m) => exists(join(path, m))))
    if (!marks.some(Boolean)) continue
    out.push({
      path,
      name: e.name,
      root,
      has_config: marks[PROJECT_MARKERS.indexOf('.clincus.toml')] ?? false,
      active_sessions: activeByPath.get(path) ?? 0,
    })
  }
  return out
}
