// `incus admin init --minimal` insists on creating a bridge and fails on machines without a free
// private subnet (machine-facts.md); our containers need no network, only somewhere to put their
// root filesystems. So setup writes its own preseed containing just what is missing.
import Type, { type Static } from 'typebox'

export const StoragePoolSchema = Type.Object({ name: Type.String(), driver: Type.String() })
export const ProfileSchema = Type.Object({
  name: Type.String(),
  devices: Type.Record(Type.String(), Type.Record(Type.String(), Type.String())),
})
export type StoragePool = Static<typeof StoragePoolSchema>
export type Profile = Static<typeof ProfileSchema>

export interface IncusInitState {
  pools: readonly StoragePool[]
  /** The `default` profile, absent if someone deleted it. */
  defaultProfile: Profile | undefined
}

export interface PreseedDocument {
  storage_pools?: {
    name: string
    driver: string
    description: string
    config: Record<string, string>
  }[]
  profiles?: { name: string; devices: Record<string, Record<string, string>> }[]
}

export const DEFAULT_POOL = 'default'

export function hasRootDisk(profile: Profile | undefined): boolean {
  return Object.values(profile?.devices ?? {}).some(
    (device) => device.type === 'disk' && device.path === '/',
  )
}

/**
 * What to add so that `incus launch IMAGE NAME` works: a root disk in the default profile, backed by
 * the existing pool if there is one, else by a new `dir` pool named `default`. Returns undefined when
 * the installation is already usable; an initialised installation is never changed.
 */
export function planPreseed(state: IncusInitState): PreseedDocument | undefined {
  if (hasRootDisk(state.defaultProfile)) return undefined
  const existing = state.pools.find((pool) => pool.name === DEFAULT_POOL) ?? state.pools[0]
  const poolName = existing?.name ?? DEFAULT_POOL
  const taken = state.defaultProfile?.devices ?? {}
  const deviceName = 'root' in taken ? 'clincus-root' : 'root'
  const doc: PreseedDocument = {
    profiles: [
      { name: 'default', devices: { [deviceName]: { type: 'disk', path: '/', pool: poolName } } },
    ],
  }
  if (!existing) {
    doc.storage_pools = [{ name: DEFAULT_POOL, driver: 'dir', description: '', config: {} }]
  }
  return doc
}

/** JSON is a subset of YAML, so the preseed needs no YAML library. */
export function renderPreseed(doc: PreseedDocument): string {
  return `${JSON.stringify(doc, null, 2)}\n`
}
