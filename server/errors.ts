import type { FastifyError, FastifyInstance } from 'fastify'
import { REDACTED } from './security/log-redaction.ts'

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

/**
 * A failed `incus` invocation. The argv, exit code and full stderr stay on the error for the log;
 * the client gets incus' own one-line reason (the original lost it: "exit status 1").
 */
export class IncusCommandError extends AppError {
  readonly argv: readonly string[]
  readonly exitCode: number | undefined
  readonly stderr: string
  readonly timedOut: boolean

  constructor(opts: {
    argv: readonly string[]
    exitCode: number | undefined
    stderr: string
    timedOut?: boolean
    aborted?: boolean
    cause?: unknown
  }) {
    const command = subcommand(opts.argv)
    const reason = opts.timedOut
      ? `incus ${command} timed out`
      : opts.aborted
        ? `incus ${command} was cancelled`
        : incusReason(opts.stderr) ||
          `incus ${command} failed with exit code ${String(opts.exitCode)}`
    // The values of `--env KEY=VALUE` (a profile's environment: API keys) never stay on the
    // error, which is logged whole: not in the argv, the stderr, nor the cause's message.
    const secrets = envValues(opts.argv)
    super(502, opts.timedOut ? 'incus_timeout' : 'incus_error', scrub(reason, secrets), {
      cause: scrubCause(opts.cause, secrets),
      expose: true,
    })
    this.argv = redactArgv(opts.argv)
    this.exitCode = opts.exitCode
    this.stderr = scrub(opts.stderr, secrets)
    this.timedOut = opts.timedOut ?? false
  }

  /** incus' "not found" answers, for callers that treat a missing instance as a normal outcome. */
  get isNotFound(): boolean {
    return /not found/i.test(this.stderr)
  }

  /** incus refused because another operation on the instance is running (it ends on its own). */
  get isBusy(): boolean {
    return /is busy running/i.test(this.stderr)
  }
}

/** The incus subcommand an argv runs (`exec`), past the global `--project <name>`. */
function subcommand(argv: readonly string[]): string {
  return (argv[0] === '--project' ? argv[2] : argv[0]) ?? ''
}

/** The values of the `--env KEY=VALUE` options of an incus argv (before its `--`). */
function envValues(argv: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length - 1 && argv[i] !== '--'; i++) {
    const entry = argv[i + 1] ?? ''
    const eq = entry.indexOf('=')
    if (argv[i] === '--env' && eq >= 0 && eq < entry.length - 1) out.push(entry.slice(eq + 1))
  }
  return out
}

/** The argv with every `--env KEY=VALUE` shown as `KEY=[redacted]`. */
export function redactArgv(argv: readonly string[]): string[] {
  const out = [...argv]
  for (let i = 0; i < out.length - 1 && out[i] !== '--'; i++) {
    const entry = out[i + 1] ?? ''
    if (out[i] === '--env' && entry.includes('='))
      out[i + 1] = `${entry.slice(0, entry.indexOf('='))}=${REDACTED}`
  }
  return out
}

function scrub(text: string, secrets: readonly string[]): string {
  return secrets.reduce((t, v) => t.replaceAll(v, REDACTED), text)
}

/** The cause (an execa error names the whole command line) with the secrets taken out. */
function scrubCause(cause: unknown, secrets: readonly string[]): unknown {
  if (secrets.length === 0 || cause === undefined) return cause
  if (!(cause instanceof Error)) return undefined
  const clean = new Error(scrub(cause.message, secrets))
  clean.name = cause.name
  clean.stack = scrub(cause.stack ?? '', secrets)
  return clean
}

/** The last "Error: …" line incus printed, which is its human message. */
export function incusReason(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
  const errorLine = [...lines].reverse().find((l) => l.startsWith('Error:'))
  const line = errorLine ?? lines.at(-1) ?? ''
  return line.replace(/^Error:\s*/, '').slice(0, 2000)
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
  if (err instanceof AppError) {
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
