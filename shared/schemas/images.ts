import { Type, type Static } from 'typebox'

// Images API (issue 13): GET /api/images, POST /api/images/{alias}/build. The UI (Settings) is
// built against exactly these shapes.

const Version = Type.Union([Type.String(), Type.Null()])

export const ImageToolsSchema = Type.Object({
  claude: Version,
  copilot: Version,
  opencode: Version,
  node: Version,
})
export type ImageTools = Static<typeof ImageToolsSchema>

export const ImageInfoSchema = Type.Object({
  alias: Type.String(),
  /** null while the alias names no image (`missing`). */
  fingerprint: Type.Union([Type.String(), Type.Null()]),
  size_bytes: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
  /** ISO 8601, as Incus reports it. */
  created_at: Type.Union([Type.String(), Type.Null()]),
  /**
   * `outdated`: the image exists but was built from other inputs than the config gives now
   * (`[image]` extras, the builder, the Node pin); a rebuild picks the change up.
   */
  state: Type.Union([
    Type.Literal('ready'),
    Type.Literal('building'),
    Type.Literal('missing'),
    Type.Literal('outdated'),
  ]),
  /** 0..1 while building, else null. */
  progress: Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()]),
  /** The build step while building, else null. */
  step: Type.Union([Type.String(), Type.Null()]),
  /** Versions recorded at build time; null where absent (the test image has no Node). */
  tools: ImageToolsSchema,
  /** The last build's failure (apt's own message), until the next build starts. */
  error: Type.Optional(Type.String()),
})
export type ImageInfo = Static<typeof ImageInfoSchema>

export const ImageListSchema = Type.Array(ImageInfoSchema)

export const ImageAliasParamsSchema = Type.Object({
  alias: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$' }),
})

export const ImageBuildBodySchema = Type.Union([
  Type.Object(
    {
      /** Install the newest agent versions (otherwise the image's current ones are kept). */
      update: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  ),
  Type.Null(),
])
export type ImageBuildBody = Static<typeof ImageBuildBodySchema>

export const ImageBuildAcceptedSchema = Type.Object({
  alias: Type.String(),
  state: Type.Literal('building'),
})
