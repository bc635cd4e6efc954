// What the logger may see of a request. Fastify logs every request line with its URL, and a URL
// can carry a credential (a sign-in code, a WebSocket ticket, a stale `?token=` link): the URL is
// rewritten before it reaches any log line, and credential headers are censored should anything
// log them. Used by main.ts and by every test app builder, so the tests exercise the real logger.
import type { LoggerOptions } from 'pino'

/** Query parameter names whose values are credentials (matched case-insensitively, decoded). */
const SECRET_PARAM = /token|code|ticket|session|secret|key|auth|pass|credential|sig/i

export const REDACTED = '[redacted]'

function decodeName(name: string): string | null {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '))
  } catch {
    return null
  }
}

/** The URL with the value of every credential-like query parameter replaced by `[redacted]`. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?')
  if (q < 0) return url
  const params = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=')
      const name = eq < 0 ? pair : pair.slice(0, eq)
      if (eq < 0) return pair
      const decoded = decodeName(name)
      // A name that does not even decode is not ours: hide its value too.
      return decoded === null || SECRET_PARAM.test(decoded) ? `${name}=${REDACTED}` : pair
    })
  return `${url.slice(0, q)}?${params.join('&')}`
}

interface LoggedRequest {
  method?: string
  url?: string
  host?: string
  ip?: string
  socket?: { remotePort?: number } | null
}

/** Fastify's request serializer, with the URL redacted. */
export function serializeRequest(req: LoggedRequest): Record<string, unknown> {
  return {
    method: req.method,
    url: typeof req.url === 'string' ? redactUrl(req.url) : undefined,
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  }
}

/** The pino options every clincus logger starts from (main.ts and the test builders). */
export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    serializers: { req: serializeRequest },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["x-api-key"]',
        'headers.authorization',
        'headers.cookie',
        'headers["x-api-key"]',
      ],
      censor: REDACTED,
    },
  }
}
