import { Type } from 'typebox'

// The REST answers the REST driver reads beyond schemas.ts' (the CLI driver never needed them):
// parsed at the boundary, extra fields allowed (Incus adds fields between releases).

/** GET /1.0/images/aliases/{name}. */
export const IncusImageAliasSchema = Type.Object({
  target: Type.String(),
  type: Type.Optional(Type.String()),
})

/** GET /1.0/images/{fingerprint}. */
export const IncusImageSchema = Type.Object({
  fingerprint: Type.String(),
  type: Type.Optional(Type.String()),
})

/** GET /1.0/instances/{name}/state: what start, delete and containerRoot look at. */
export const IncusInstanceStateSchema = Type.Object({
  status: Type.String(),
  status_code: Type.Optional(Type.Number()),
  pid: Type.Optional(Type.Number()),
  // Issue 16: what a primed pool member holds (health's pool memory_bytes).
  memory: Type.Optional(Type.Object({ usage: Type.Optional(Type.Number()) })),
  // `[pool] prestart`: whether an agent started ahead is done starting (CPU time, ns).
  cpu: Type.Optional(Type.Object({ usage: Type.Optional(Type.Number()) })),
})

/** The fields of GET /1.0/instances/{name} a PUT sends back (InstancePut) besides config/devices. */
export const IncusInstanceFullSchema = Type.Object({
  name: Type.String(),
  status: Type.String(),
  status_code: Type.Optional(Type.Number()),
  ephemeral: Type.Optional(Type.Boolean()),
  config: Type.Record(Type.String(), Type.String()),
  devices: Type.Record(Type.String(), Type.Record(Type.String(), Type.String())),
  expanded_devices: Type.Optional(
    Type.Record(Type.String(), Type.Record(Type.String(), Type.String())),
  ),
})
