import { Type, type Static } from 'typebox'

// The subset of Incus REST structs we read (https://linuxcontainers.org/incus/docs/main/rest-api/).
// Parsed at the boundary; extra fields are allowed because Incus adds fields between releases.
export const IncusInstanceSchema = Type.Object({
  name: Type.String(),
  status: Type.String(),
  type: Type.Optional(Type.String()),
  created_at: Type.Optional(Type.String()),
  config: Type.Record(Type.String(), Type.String()),
  devices: Type.Optional(Type.Record(Type.String(), Type.Record(Type.String(), Type.String()))),
})
export type IncusInstance = Static<typeof IncusInstanceSchema>

export const IncusInstanceListSchema = Type.Array(IncusInstanceSchema)

export const IncusLifecycleEventSchema = Type.Object({
  type: Type.String(),
  timestamp: Type.Optional(Type.String()),
  project: Type.Optional(Type.String()),
  metadata: Type.Object({
    action: Type.String(),
    source: Type.Optional(Type.String()),
    name: Type.Optional(Type.String()),
  }),
})
export type IncusLifecycleEvent = Static<typeof IncusLifecycleEventSchema>

export const IncusServerSchema = Type.Object({
  api_version: Type.Optional(Type.String()),
  environment: Type.Optional(
    Type.Object({
      server_version: Type.Optional(Type.String()),
    }),
  ),
})

export const IncusProfileSchema = Type.Object({
  devices: Type.Optional(Type.Record(Type.String(), Type.Record(Type.String(), Type.String()))),
})

export const IncusStoragePoolSchema = Type.Object({
  driver: Type.String(),
})
