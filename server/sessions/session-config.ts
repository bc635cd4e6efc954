// The effective config of one session: the user's files, the profile and the workspace's
// .clincus.toml (which can only make limits stricter, config/tighten.ts).
import { join } from 'node:path'
import { Value } from 'typebox/value'
import { LimitsSchema, type Config, type Limits } from '../../shared/schemas/config.ts'
import { configForWorkspace, readWorkspaceLayer } from '../config/load.ts'
import { ConfigError } from '../config/merge.ts'
import type { ConfigStore } from '../config/store.ts'
import { BadRequestError } from '../errors.ts'

/** The session's limits at creation (JSON), applied again on resume. */
export const CREATED_LIMITS = 'user.clincus.limits'
/** What the protection checked (identities, created directories), verified again on resume. */
export const PROTECTION = 'user.clincus.protection'

/**
 * Effective config for sessions of `workspace`. A resume passes `created`: the workspace file is
 * not read again and the limits are the ones the session was created with (the CREATED_LIMITS
 * label), so an agent cannot loosen them in between. Throws BadRequestError (invalid_profile,
 * invalid_workspace_config, unknown_profile).
 */
export async function configFor(
  store: ConfigStore,
  workspace: string,
  profile: string | undefined,
  created?: { limits: string | undefined },
): Promise<Config> {
  const file = join(workspace, '.clincus.toml')
  let config: Config | null
  try {
    const layer = created ? null : await readWorkspaceLayer(file)
    config = configForWorkspace(store.loaded, file, layer, store.home, store.locations, {
      profile,
    })
  } catch (err) {
    if (err instanceof ConfigError)
      throw new BadRequestError(
        err.message,
        err.file.startsWith('profile ') ? 'invalid_profile' : 'invalid_workspace_config',
      )
    throw err
  }
  if (!config) throw new BadRequestError(`profile '${profile ?? ''}' not found`, 'unknown_profile')
  const limits = created ? createdLimits(created.limits) : null
  return limits ? { ...config, limits } : config
}

/** The limits a session was created with; null for sessions created before they were recorded. */
export function createdLimits(label: string | undefined): Limits | null {
  if (!label) return null
  try {
    const value: unknown = JSON.parse(label)
    return Value.Check(LimitsSchema, value) ? value : null
  } catch {
    return null
  }
}

export function hasProfile(config: Config, profile: string): boolean {
  return Object.hasOwn(config.profiles, profile)
}
