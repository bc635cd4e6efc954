import type { FastifyError, FastifyInstance } from 'fastify'
import { IncusCommandError } from '../incus/cli.ts'

/** An error the API answers with its own status and a stable snake_case code. */
export class AppError extends Error {
  readonly status: number
  readonly code: string
  /** Whether `message` may be shown to the client (5xx messages are hidden unless exposed). */
  readonly expose: boolean
  readonly headers: Record<string, string>

  constructor(
    status: number,
    code: string,
    message: string,
    opts: { cause?: unknown; expose?: boolean; headers?: Record<string, string> } = {},
  ) {
    super(message, { cause: opts.cause })
    this.name = new.target.name
    this.status = status
    this.code = code
    this.expose = opts.expose ?? status < 500
    this.headers = opts.headers ?? {}
  }
}

export class BadRequestError extends AppError {
  constructor(message: string, code = 'bad_request', cause?: unknown) {
    super(400, code, message, { cause })
  }
}

export class NotFoundError extends AppError {
  constructor(message: string, code = 'not_found') {
    super(404, code, message)
  }
}

export class ConflictError extends AppError {
  constructor(message: string, code = 'conflict') {
    super(409, code, message)
  }
}

export class UnavailableError extends AppError {
  constructor(message: string, code = 'unavailable', headers: Record<string, string> = {}) {
    super(503, code, message, { expose: true, headers })
  }
}

// A failed `incus` invocation: the one Incus layer's error (incus/cli.ts), re-exported so the
// server names it with its other errors; toErrorReply answers it with 502 and Incus' reason.
export { IncusCommandError, incusReason, redactArgv } from '../incus/cli.ts'

/** The message a client may see (an AppError or Incus' reason marked `expose`); else undefined. */
export function exposedMessage(err: unknown): string | undefined {
  return (err instanceof AppError || err instanceof IncusCommandError) && err.expose
    ? err.message
    : undefined
}

interface ErrorBody {
  error: string
  code: string
}

function validationMessage(err: FastifyError): string {
  const first = err.validation?.[0]
  if (!first) return err.message
  const where = err.validationContext ?? 'request'
  const path = first.instancePath.replace(/^\//, '').replaceAll('/', '.')
  const params = first.params
  if (first.keyword === 'required' && typeof params.missingProperty === 'string') {
    return `${where}.${params.missingProperty} is required`
  }
  if (first.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    return `${where}.${params.additionalProperty} is not a known field`
  }
  const subject = path ? `${where}.${path}` : where
  return `${subject} ${first.message ?? 'is invalid'}`
}

/** Maps every error to `{error, code}` with the right status, in one place. */
export function toErrorReply(err: unknown): {
  status: number
  body: ErrorBody
  headers: Record<string, string>
} {
  if (err instanceof AppError || err instanceof IncusCommandError) {
    return {
      status: err.status,
      body: { error: err.expose ? err.message : 'internal server error', code: err.code },
      headers: err.headers,
    }
  }
  const fe = err as Partial<FastifyError>
  if (fe.validation) {
    return {
      status: 400,
      body: { error: validationMessage(fe as FastifyError), code: 'invalid_request' },
      headers: {},
    }
  }
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500
  if (status === 415) {
    return {
      status,
      body: { error: 'request body must be application/json', code: 'unsupported_media_type' },
      headers: {},
    }
  }
  if (status === 413) {
    return {
      status,
      body: { error: 'request body is too large', code: 'payload_too_large' },
      headers: {},
    }
  }
  if (status === 400 && fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return {
      status,
      body: { error: 'request body is not valid JSON', code: 'invalid_json' },
      headers: {},
    }
  }
  if (status === 400 && fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return { status, body: { error: 'request body is empty', code: 'invalid_json' }, headers: {} }
  }
  if (status >= 400 && status < 500) {
    return {
      status,
      body: { error: fe.message ?? 'bad request', code: (fe.code ?? 'bad_request').toLowerCase() },
      headers: {},
    }
  }
  return { status: 500, body: { error: 'internal server error', code: 'internal' }, headers: {} }
}

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    const { status, body, headers } = toErrorReply(err)
    if (status >= 500) request.log.error({ err }, 'request failed')
    else
      request.log.info(
        { err: { message: err instanceof Error ? err.message : String(err) }, status },
        'request rejected',
      )
    return reply.code(status).headers(headers).send(body)
  })
}
