// The Debian archive we install from (backports for Incus, debootstrap for images) is the one the
// machine's apt is already configured with: users behind corporate or offline mirrors need theirs,
// so no mirror is ever named in this repository (machine-facts.md, "Incus on Debian 12").
import { readdir, readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'

export interface AptSource {
  /** File the entry came from, for messages. */
  file: string
  types: readonly string[]
  uris: readonly string[]
  suites: readonly string[]
  components: readonly string[]
  /** `Signed-By` when it names a keyring file (an inline key block is not carried over). */
  signedBy?: string
}

export interface ArchiveChoice {
  uri: string
  signedBy?: string
  file: string
}

/** Our own file; it is skipped when reading sources so a previous run never feeds itself. */
export const BACKPORTS_SOURCES_FILE = '/etc/apt/sources.list.d/clincus-backports.sources'

/** Parses deb822 `.sources` content (sources.list(5), "DEB822-STYLE FORMAT"). */
export function parseDeb822Sources(text: string, file: string): AptSource[] {
  const sources: AptSource[] = []
  let fields = new Map<string, string>()
  let lastKey: string | undefined

  const flush = (): void => {
    if (fields.size > 0) {
      const source = deb822Entry(fields, file)
      if (source) sources.push(source)
    }
    fields = new Map()
    lastKey = undefined
  }

  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '')
    if (line.trim() === '') {
      flush()
      continue
    }
    // Comment lines may sit inside a stanza (Debian's own debian.sources does this).
    if (line.startsWith('#')) continue
    if (/^[ \t]/.test(line)) {
      if (lastKey !== undefined) {
        fields.set(lastKey, `${fields.get(lastKey) ?? ''}\n${line.trim()}`)
      }
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    lastKey = line.slice(0, colon).trim().toLowerCase()
    fields.set(lastKey, line.slice(colon + 1).trim())
  }
  flush()
  return sources
}

function deb822Entry(fields: Map<string, string>, file: string): AptSource | undefined {
  const enabled = (fields.get('enabled') ?? 'yes').trim().toLowerCase()
  if (enabled === 'no' || enabled === 'false') return undefined
  const field = (key: string): string[] => words(fields.get(key) ?? '')
  const signedBy = fields.get('signed-by')?.trim()
  return {
    file,
    types: field('types'),
    uris: field('uris'),
    suites: field('suites'),
    components: field('components'),
    ...(signedBy && !signedBy.includes('\n') ? { signedBy } : {}),
  }
}

/** Splits on whitespace, keeping `[…]` groups whole (`[arch=amd64 signed-by=…]`, `cdrom:[Disc 1]/`). */
function words(text: string): string[] {
  return text.match(/(?:\[[^\]]*\]|[^\s[])+/g) ?? []
}

/** Parses one-line-style `sources.list` content: `deb [opt=val …] uri suite [component …]`. */
export function parseOneLineSources(text: string, file: string): AptSource[] {
  const sources: AptSource[] = []
  for (const raw of text.split('\n')) {
    const tokens = words(raw.replace(/#.*$/, ''))
    const type = tokens.shift()
    if (type !== 'deb' && type !== 'deb-src') continue
    const options = tokens[0]?.startsWith('[') ? (tokens.shift() ?? '') : ''
    const [uri, suite, ...components] = tokens
    if (uri === undefined || suite === undefined) continue
    const signedBy = /(?:^\[|\s)signed-by=([^\s\]]+)/.exec(options)?.[1]
    sources.push({
      file,
      types: [type],
      uris: [uri],
      suites: [suite],
      components,
      ...(signedBy ? { signedBy } : {}),
    })
  }
  return sources
}

/**
 * The archive serving `suite` itself (e.g. `bookworm`, not `bookworm-security`, whose archive
 * does not carry backports or the base system): the first binary entry listing it.
 */
export function pickArchive(
  sources: readonly AptSource[],
  suite: string,
): ArchiveChoice | undefined {
  for (const source of sources) {
    if (!source.types.includes('deb') || !source.suites.includes(suite)) continue
    const uri = source.uris.find((candidate) => !candidate.startsWith('cdrom:'))
    if (uri === undefined) continue
    return { uri, file: source.file, ...(source.signedBy ? { signedBy: source.signedBy } : {}) }
  }
  return undefined
}

export function renderBackportsSources(archive: ArchiveChoice, suite: string): string {
  const lines = [
    `# Written by clincus setup (copied from ${archive.file}) to install Incus from ${suite}.`,
    'Types: deb',
    `URIs: ${archive.uri}`,
    `Suites: ${suite}`,
    'Components: main',
  ]
  if (archive.signedBy) lines.push(`Signed-By: ${archive.signedBy}`)
  return `${lines.join('\n')}\n`
}

/** Reads every source apt would read, in apt's order, except our own backports file. */
export async function readAptSources(etcApt = '/etc/apt'): Promise<AptSource[]> {
  const sources: AptSource[] = []
  const main = join(etcApt, 'sources.list')
  const text = await readFile(main, 'utf8').catch(() => undefined)
  if (text !== undefined) sources.push(...parseOneLineSources(text, main))

  const dir = join(etcApt, 'sources.list.d')
  const names = await readdir(dir).catch(() => [])
  for (const name of names.sort()) {
    const path = join(dir, name)
    if (name === basename(BACKPORTS_SOURCES_FILE)) continue
    if (name.endsWith('.sources')) {
      sources.push(...parseDeb822Sources(await readFile(path, 'utf8'), path))
    } else if (name.endsWith('.list')) {
      sources.push(...parseOneLineSources(await readFile(path, 'utf8'), path))
    }
  }
  return sources
}

export class NoArchiveError extends Error {
  override readonly name = 'NoArchiveError'
  constructor(suite: string) {
    super(
      `no apt source for the Debian suite "${suite}" is configured (looked in /etc/apt/sources.list` +
        ' and /etc/apt/sources.list.d/); add one for your Debian mirror and run setup again',
    )
  }
}

export async function configuredArchive(suite: string): Promise<ArchiveChoice> {
  const choice = pickArchive(await readAptSources(), suite)
  if (!choice) throw new NoArchiveError(suite)
  return choice
}
