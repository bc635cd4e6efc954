import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The repository root, found by walking up from this module to clincus's package.json: the same
 * answer whether the server runs from its TypeScript sources (tsx) or from the bundle in dist/.
 */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const pkg = join(dir, 'package.json')
    if (
      existsSync(pkg) &&
      (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'clincus'
    )
      return dir
    const up = dirname(dir)
    if (up === dir) throw new Error('cannot find the clincus package root')
    dir = up
  }
}

export const repoRoot = findRoot()
