import type { CreateSessionBody } from '../../../shared/schemas/sessions.ts'
import type { Session } from './schemas.ts'
import { sessionPath } from './router.svelte.ts'
import type { AppState } from './state/app.svelte.ts'

/**
 * Creates a session and opens it; returns the server's answer (the session, plus how it was
 * launched: parse it with `launchOutcome`). Sent once: a failed launch is reported, never
 * retried (the original retried POST /api/sessions on 5xx and could start four containers for
 * one click).
 */
export async function launchSession(app: AppState, body: CreateSessionBody): Promise<Session> {
  const session = await app.sessions.create(body)
  app.router.navigate(sessionPath(session.id))
  return session
}
