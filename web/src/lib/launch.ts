import type { CreateSessionBody } from '../../../shared/schemas/sessions.ts'
import { sessionPath } from './router.svelte.ts'
import type { AppState } from './state/app.svelte.ts'

/**
 * Creates a session and opens it. Sent once: a failed launch is reported, never retried (the
 * original retried POST /api/sessions on 5xx and could start four containers for one click).
 */
export async function launchSession(app: AppState, body: CreateSessionBody): Promise<void> {
  const session = await app.sessions.create(body)
  app.router.navigate(sessionPath(session.id))
}
