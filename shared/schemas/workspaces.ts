import { Type, type Static } from 'typebox'

export const FOLDER_NAME_PATTERN = '^[a-z0-9]+(-[a-z0-9]+)*$'

export const WorkspaceSchema = Type.Object({
  path: Type.String(),
  name: Type.String(),
  root: Type.String(),
  has_config: Type.Boolean(),
  active_sessions: Type.Integer(),
})
export type Workspace = Static<typeof WorkspaceSchema>

export const WorkspaceListSchema = Type.Object({
  roots: Type.Array(Type.String()),
  expanded_roots: Type.Array(Type.String()),
  workspaces: Type.Array(WorkspaceSchema),
})
export type WorkspaceList = Static<typeof WorkspaceListSchema>

export const RootsSchema = Type.Object({
  roots: Type.Array(Type.String()),
  expanded_roots: Type.Array(Type.String()),
})
export type Roots = Static<typeof RootsSchema>

export const RootPathBodySchema = Type.Object(
  { path: Type.String({ minLength: 1, maxLength: 4096 }) },
  { additionalProperties: false },
)

export const RootPathQuerySchema = Type.Object(
  { path: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })) },
  { additionalProperties: false },
)

export const CreateFolderBodySchema = Type.Object(
  {
    root: Type.String({ minLength: 1, maxLength: 4096 }),
    name: Type.String({ minLength: 1, maxLength: 128 }),
  },
  { additionalProperties: false },
)

export const CreateFolderResponseSchema = Type.Object({ path: Type.String() })
