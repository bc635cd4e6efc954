import { Type, type Static } from 'typebox'

export const ErrorBodySchema = Type.Object(
  {
    error: Type.String({ description: 'A human-readable message' }),
    code: Type.String({ description: 'A stable snake_case error code' }),
    details: Type.Optional(Type.Unknown()),
  },
  { $id: 'ErrorBody' },
)
export type ErrorBody = Static<typeof ErrorBodySchema>

/** Error responses every route may answer with. */
export const errorResponses = {
  400: ErrorBodySchema,
  401: ErrorBodySchema,
  403: ErrorBodySchema,
  404: ErrorBodySchema,
  409: ErrorBodySchema,
  413: ErrorBodySchema,
  415: ErrorBodySchema,
  429: ErrorBodySchema,
  500: ErrorBodySchema,
  502: ErrorBodySchema,
  503: ErrorBodySchema,
} as const

export const StatusBodySchema = Type.Object({ status: Type.String() })
