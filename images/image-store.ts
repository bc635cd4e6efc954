// The Incus image store as the builder needs it: look an alias up, import, retarget an alias, delete.
// Reads go through `incus query` (the documented REST shapes) rather than parsing tables, all of it
// through the one Incus layer (incus/cli.ts).
import Type from 'typebox'
import { incus, IncusCommandError, withProject, type IncusQueryOptions } from '../incus/cli.ts'

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

function query(path: string, opts: IncusQueryOptions = {}): Promise<unknown> {
  return incus.query(path, { timeoutMs: TIMEOUT_MS, ...opts })
}

async function aliasTarget(alias: string, project: string): Promise<string | undefined> {
  // Listing avoids telling "no such alias" apart from other failures by parsing error text.
  const aliases =
    (await incus.queryAs(
      Type.Union([Type.Array(AliasSchema), Type.Null()]),
      'image alias list',
      withProject('/1.0/images/aliases?recursion=1', project),
      { timeoutMs: TIMEOUT_MS },
    )) ?? []
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
  const image = await incus.queryAs(
    ImageSchema,
    'image',
    withProject(`/1.0/images/${encodeURIComponent(fingerprint)}`, project),
    { timeoutMs: TIMEOUT_MS },
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
  await incus.run(
    [
      'image',
      'import',
      '--project',
      opts.project,
      '--alias',
      opts.alias,
      '--',
      files.meta,
      files.rootfs,
    ],
    { timeoutMs: IMPORT_TIMEOUT_MS, signal: opts.signal },
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
    await query(withProject('/1.0/images/aliases', project), {
      method: 'POST',
      data: { name: alias, target: fingerprint, description: '' },
    })
  } else {
    await query(withProject(`/1.0/images/aliases/${encodeURIComponent(alias)}`, project), {
      method: 'PUT',
      data: { target: fingerprint, description: '' },
    })
  }
  return previous
}

export async function deleteAlias(alias: string, project: string): Promise<void> {
  await query(withProject(`/1.0/images/aliases/${encodeURIComponent(alias)}`, project), {
    method: 'DELETE',
  })
}

export async function deleteImage(fingerprint: string, project: string): Promise<void> {
  await incus.run(['image', 'delete', '--project', project, '--', fingerprint], {
    timeoutMs: TIMEOUT_MS,
  })
}

/** Best effort for cleanup paths: the original error matters more than a failed tidy-up. */
export async function tryDelete(action: () => Promise<void>): Promise<void> {
  try {
    await action()
  } catch (error) {
    if (!(error instanceof IncusCommandError)) throw error
  }
}
