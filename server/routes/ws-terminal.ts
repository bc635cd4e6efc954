import type { FastifyPluginAsync } from 'fastify'
import { Value } from 'typebox/value'
import { SessionParamsSchema } from '../../shared/schemas/sessions.ts'
import type { TerminalKind, TerminalManager } from '../pty/terminals.ts'

export interface TerminalRouteOptions {
  terminals: TerminalManager
}

/**
 * /ws/terminal/{id} (the session's tmux session) and /ws/shell/{id} (a login shell in the
 * workspace). No route schema on purpose: a browser cannot read the HTTP status of a refused
 * upgrade, so every check (query, id, session state) happens after the upgrade and ends in a
 * close code with a reason the dashboard can show.
 */
export function terminalRoutes(o: TerminalRouteOptions): FastifyPluginAsync {
  return async (app) => {
    const route = (path: string, kind: TerminalKind): void => {
      app.get(path, { websocket: true }, (socket, req) => {
        // An id that fails the schema becomes '' and is refused with 4404 like any unknown one.
        const id = Value.Check(SessionParamsSchema, req.params) ? req.params.id : ''
        o.terminals.open(socket, { id, kind, query: req.query })
      })
    }
    route('/ws/terminal/:id', 'attach')
    route('/ws/shell/:id', 'shell')
  }
}
