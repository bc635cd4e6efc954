// The Incus image store as the builder needs it: look an alias up, import, retarget an alias, delete.
// Reads go through `incus query` (the documented REST shapes) rather than parsing tables.
import Type from 'typebox'
import { Value } from 'typebox/value'
import { CommandError, run } from '../provision/command.ts'

const TIMEOUT_MS = 60_000
const IMPORT_TIMEOUT_MS = 15 * 60_000

const AliasSchema = Type.Object({ name: Type.String(), target: Type.String() })
const ImageSchema = Type.Object({
  fingerprint: Type.String(),
  properties: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()]),
  aliases: Type.Union([Type.Array(Type.Object({ name: Type.String() })), Type.Null()]),
  size: Type.Optional(Type.Number()),
  created_at: Type.Optional(Type.String()),
})

export interface ImageSummary {
  fingerprint: string
  /** Bytes of the image files in the store (Incus' `size`). */
  sizeBytes: number
  /** ISO 8601. */
  createdAt: string
  properties: Readonly<Record<string, string>>
  aliases: readonly string[]
}

function apiPath(path: string, project: string): string {
  return `${path}?project=${encodeURIComponent(project)}`
}

async function query(
  path: string,
  opts: { method?: string; data?: string } = {},
): Promise<unknown> {
  const args = ['query']
  if (opts.method) args.push('--request', opts.method)
  if (opts.data !== undefined) args.push('--data', opts.data)
  const out = await run('incus', [...args, path], { timeoutMs: TIMEOUT_MS })
  return out.trim() === '' ? null : (JSON.parse(out) as unknown)
}

async function aliasTarget(alias: string, project: string): Promise<string | undefined> {
  // Listing avoids telling "no such alias" apart from other failures by parsing error text.
  const raw = await query(apiPath('/1.0/images/aliases', project) + '&recursion=1')
  const aliases = Value.Parse(Type.Union([Type.Array(AliasSchema), Type.Null()]), raw) ?? []
  return aliases.find((entry) => entry.name === alias)?.target
}

export async function imageExists(alias: string, project: string): Promise<boolean> {
  return (await aliasTarget(alias, project)) !== undefined
}

/** The image an alias points at, with its properties; undefined when the alias does not exist. */
export async function describeAlias(
  alias: string,
  project: string,
): Promise<ImageSummary | undefined> {
  const fingerprint = await aliasTarget(alias, project)
  if (fingerprint === undefined) return undefined
  return describeImage(fingerprint, project)
}

export async function describeImage(fingerprint: string, project: string): Promise<ImageSummary> {
  const image = Value.Parse(
    ImageSchema,
    await query(apiPath(`/1.0/images/${encodeURIComponent(fingerprint)}`, project)),
  )
  return {
    fingerprint: image.fingerprint,
    sizeBytes: image.size ?? 0,
    createdAt: image.created_at ?? '',
    properties: image.properties ?? {},
    aliases: (image.aliases ?? []).map((entry) => entry.name),
  }
}

/** Imports a split image under a temporary alias and returns its fingerprint. */
export async function importImage(
  files: { meta: string; rootfs: string },
  opts: { project: string; alias: string; signal?: AbortSignal },
): Promise<string> {
  await run(
    'incus',
    ['image', 'import', files.meta, files.rootfs, '--project', opts.project, '--alias', opts.alias],
    { timeoutMs: IMPORT_TIMEOUT_MS, ...(opts.signal ? { signal: opts.signal } : {}) },
  )
  const fingerprint = await aliasTarget(opts.alias, opts.project)
  if (fingerprint === undefined) {
    throw new Error(`incus image import succeeded but alias ${opts.alias} does not exist`)
  }
  return fingerprint
}

/**
 * Points `alias` at `fingerprint` in one request, so launches by alias never see it missing (a
 * delete-then-create would leave a gap), and returns the image it pointed at before, if any.
 */
export async function retargetAlias(
  alias: string,
  fingerprint: string,
  project: string,
): Promise<string | undefined> {
  const previous = await aliasTarget(alias, project)
  if (previous === fingerprint) return undefined
  if (previous === undefined) {
    await query(apiPath('/1.0/images/aliases', project), {
      method: 'POST',
      data: JSON.stringify({ name: alias, target: fingerprint, description: '' }),
    })
  } else {
    await query(apiPath(`/1.0/images/aliases/${encodeURIComponent(alias)}`, project), {
      method: 'PUT',
      data: JSON.stringify({ target: fingerprint, description: '' }),
    })
  }
  return previous
}

export async function deleteAlias(alias: string, project: string): Promise<void> {
  await query(apiPath(`/1.0/images/aliases/${encodeURIComponent(alias)}`, project), {
    method: 'DELETE',
  })
}

export async function deleteImage(fingerprint: string, project: string): Promise<void> {
  await run('incus', ['image', 'delete', '--project', project, fingerprint], {
    timeoutMs: TIMEOUT_MS,
  })
}

/** Best effort for cleanup paths: the original error matters more than a failed tidy-up. */
export async function tryDelete(action: () => Promise<void>): Promise<void> {
  try {
    await action()
  } catch (error) {
    if (!(error instanceof CommandError)) throw error
  }
}
