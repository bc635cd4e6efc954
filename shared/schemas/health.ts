import { Type, type Static } from 'typebox'

export const ImageStateSchema = Type.Object({
  name: Type.String(),
  state: Type.Union([
    Type.Literal('ready'),
    Type.Literal('missing'),
    Type.Literal('building'),
    Type.Literal('failed'),
    Type.Literal('unknown'),
  ]),
  step: Type.Optional(Type.String()),
  progress: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  error: Type.Optional(Type.String()),
})
export type ImageState = Static<typeof ImageStateSchema>

export const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  version: Type.String(),
  uptime_seconds: Type.Number(),
  incus: Type.Object({
    reachable: Type.Boolean(),
    version: Type.Optional(Type.String()),
    error: Type.Optional(Type.String()),
    hint: Type.Optional(Type.String()),
    // Issue 16: the storage driver of the pool sessions' root disks go on (`dir` unpacks the
    // image for every session; btrfs, zfs, lvm and ceph snapshot it). Learnt once per connection.
    storage_driver: Type.Optional(
      Type.String({ description: 'Storage driver of the session pool, e.g. btrfs or dir' }),
    ),
  }),
  image: ImageStateSchema,
  // Issue 16: the warm pool (absent when the server runs without one).
  pool: Type.Optional(
    Type.Object({
      size: Type.Integer({ minimum: 0, description: 'Configured [pool] size' }),
      ready: Type.Integer({ minimum: 0, description: 'Frozen containers ready to be claimed' }),
      creating: Type.Integer({ minimum: 0, description: 'Pool containers being made' }),
      memory_bytes: Type.Integer({
        minimum: 0,
        description:
          'Memory the pool containers hold: the primed ones (running, frozen; measured once frozen)',
      }),
      primed: Type.Optional(
        Type.Object({
          size: Type.Integer({ minimum: 0, description: 'Configured [pool] primed' }),
          ready: Type.Integer({ minimum: 0, description: 'Primed containers ready to be claimed' }),
          creating: Type.Integer({ minimum: 0, description: 'Primed containers being made' }),
        }),
      ),
    }),
  ),
})
export type Health = Static<typeof HealthSchema>
