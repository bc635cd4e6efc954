// The page's view of the server's shapes: re-exports of the shared TypeBox schemas (one schema per
// shape for the server, the OpenAPI document and the browser), under the names the page uses.
import type { Static } from 'typebox'
import type { ServerEvent } from '../../../shared/schemas/events.ts'
import type { ImageInfo } from '../../../shared/schemas/images.ts'
import type { NetworkModeValueSchema } from '../../../shared/schemas/network.ts'

export {
  NetworkAllowResponseSchema,
  SessionNetworkSchema,
  type NetworkConnection,
  type SessionNetwork,
  type SessionNetworkSummary,
} from '../../../shared/schemas/network.ts'
export { ImageListSchema, type ImageInfo } from '../../../shared/schemas/images.ts'
export {
  SessionInfoSchema as SessionSchema,
  SessionListSchema,
  type SessionInfo as Session,
} from '../../../shared/schemas/sessions.ts'
export {
  ServerEventSchema as ClientEventSchema,
  type ServerEvent as ClientEvent,
} from '../../../shared/schemas/events.ts'

export type NetworkMode = Static<typeof NetworkModeValueSchema>
export type ImageState = ImageInfo['state']
export type SessionNetworkEvent = Extract<ServerEvent, { type: 'session.network' }>
export type ImageEvent = Extract<ServerEvent, { type: `image.${string}` }>
