// What building images needs on the host (issue 13): mmdebstrap (rootless bootstrap in a user
// namespace) and newuidmap/newgidmap (package uidmap) to map the builder's subordinate ids.
import { aptInstall } from './apt.ts'
import { findExecutable, isRoot } from './host.ts'
import type { SetupReporter } from './reporter.ts'

export const IMAGE_TOOL_PACKAGES = ['mmdebstrap', 'uidmap'] as const

/** The packages among IMAGE_TOOL_PACKAGES whose program is missing. */
export async function missingImageTools(): Promise<string[]> {
  const missing: string[] = []
  if ((await findExecutable('mmdebstrap')) === undefined) missing.push('mmdebstrap')
  if ((await findExecutable('newuidmap')) === undefined) missing.push('uidmap')
  return missing
}

/** The one command a user without root runs once to be able to build images. */
export function imageToolsCommand(missing: readonly string[]): string {
  return `sudo apt-get install --no-install-recommends ${missing.join(' ')}`
}

/** Installs them as root; otherwise says which command to run. Returns whether they are there. */
export async function ensureImageTools(reporter: SetupReporter): Promise<boolean> {
  const missing = await missingImageTools()
  if (missing.length === 0) return true
  if (!isRoot()) {
    reporter.note(
      `building images needs ${missing.join(' and ')}: run \`${imageToolsCommand(missing)}\` once`,
    )
    return false
  }
  await reporter.step(`apt-get install ${missing.join(' ')}`, () => aptInstall(missing))
  return true
}
