// The Incus REST API over its unix socket (issue 16: no `incus` process where the API does the
// call). A request costs a socket connect and a few ms of the daemon's time, where a CLI call
// costs a process start (~0.1 s). Same rules as the CLI layer (cli.ts): a deadline and an abort
// signal on every call, Incus' own message kept on one error type (IncusCommandError, which the
// server maps to 502), every answer parsed with TypeBox, a cap on what is read.
import { accessSync, constants, lstatSync } from 'node:fs'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import Type, { type Static, type TSchema } from 'typebox'
import { Value } from 'typebox/value'
import { DEFAULT_TIMEOUT_MS, IncusCommandError } from './cli.ts'

/** The most an answer may hold (bytes) before the request is dropped: a list of 1,000 instances is ~4 MB. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024

/**
 * The socket the `incus` client talks to, found the way it finds it (lxc/incus
 * client/connection.go, ConnectIncusUnixWithContext): `$INCUS_SOCKET`; else `$INCUS_DIR`, else
 * /run/incus when its socket exists, else /var/lib/incus, joined with `unix.socket`, or with
 * `unix.socket.user` (the incus-user daemon) when only that one is writable for us.
 */
export function findIncusSocket(env: Readonly<Record<string, string | undefined>>): string {
  const explicit = env.INCUS_SOCKET
  if (explicit) return explicit
  let dir = env.INCUS_DIR
  if (!dir) dir = exists('/run/incus/unix.socket') ? '/run/incus' : '/var/lib/incus'
  const path = join(dir, 'unix.socket')
  const userPath = join(dir, 'unix.socket.user')
  return !writable(path) && writable(userPath) ? userPath : path
}

function exists(path: string): boolean {
  try {
    lstatSync(path)
    return true
  } catch {
    return false
  }
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK)
    return true
  } catch {
    return false
  }
}

/**
 * The socket could not be reached (ENOENT, EACCES, ECONNREFUSED): nothing was sent, so the
 * caller may run the same call through the CLI without doing anything twice.
 */
export class IncusUnreachableError extends Error {
  readonly errno: string
  constructor(socketPath: string, errno: string, cause: unknown) {
    super(`the Incus socket ${socketPath} cannot be reached (${errno})`, { cause })
    this.name = 'IncusUnreachableError'
    this.errno = errno
  }
}

const UNREACHABLE = new Set(['ENOENT', 'EACCES', 'ECONNREFUSED', 'ENOTSOCK', 'EPERM'])

// The envelope of every answer (https://linuxcontainers.org/incus/docs/main/rest-api/).
const EnvelopeSchema = Type.Object({
  type: Type.Union([Type.Literal('sync'), Type.Literal('async'), Type.Literal('error')]),
  status_code: Type.Optional(Type.Number()),
  error_code: Type.Optional(Type.Number()),
  error: Type.Optional(Type.String()),
  operation: Type.Optional(Type.String()),
  metadata: Type.Optional(Type.Unknown()),
})
type Envelope = Static<typeof EnvelopeSchema>

/** A background operation (`async` answers and `/1.0/operations/{id}/wait`). */
export const OperationSchema = Type.Object({
  id: Type.String(),
  status: Type.String(),
  status_code: Type.Number(),
  err: Type.Optional(Type.String()),
})
export type Operation = Static<typeof OperationSchema>

/** Operation status codes (shared/api/status_code.go): below 200 still going, 200 success. */
const OP_SUCCESS = 200
const OP_RUNNING_BELOW = 200

export interface RestCallOptions {
  /** Deadline of the whole call in ms, the operation's wait included; default 30 s. */
  timeoutMs?: number
  signal?: AbortSignal
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  /** JSON-encoded unless it is bytes (sent as application/octet-stream). */
  body?: unknown
  headers?: Readonly<Record<string, string>>
  /**
   * The `incus` subcommand this call stands for ("start", "config"): errors say "incus start
   * timed out" as the CLI layer's do, so API answers do not depend on which layer ran the call.
   */
  verb: string
}

/** A sync answer: its metadata (unparsed) and the ETag header for a later If-Match. */
export interface RestAnswer {
  metadata: unknown
  etag: string | undefined
}

export interface IncusRestOptions {
  socketPath: string
  /** See DEFAULT_MAX_BODY_BYTES. */
  maxBodyBytes?: number
}

/** A path with `?project=` (or `&project=`), the project URL-encoded. */
export function projectPath(path: string, project: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}project=${encodeURIComponent(project)}`
}

/**
 * One HTTP client of the Incus daemon. Every call opens its own connection (no pool: nothing
 * stays open between calls, so there is nothing to close at shutdown) and destroys it on its
 * deadline, its signal or an oversized answer.
 */
export class IncusRest {
  readonly socketPath: string
  readonly #maxBody: number

  constructor(opts: IncusRestOptions) {
    this.socketPath = opts.socketPath
    this.#maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  }

  /**
   * A call whose answer is `sync`: its metadata and ETag. An `async` answer is waited for
   * (bounded by the same deadline) and resolves with the finished operation as metadata.
   * IncusCommandError carrying Incus' message for an `error` answer or a failed operation;
   * IncusUnreachableError when the socket cannot be reached.
   */
  async call(path: string, opts: RestCallOptions): Promise<RestAnswer> {
    const until = Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS)
    const first = await this.#once(path, opts, until)
    if (first.envelope.type !== 'async')
      return { metadata: first.envelope.metadata, etag: first.etag }
    const op = await this.#wait(path, first.envelope, opts, until)
    return { metadata: op, etag: undefined }
  }

  /**
   * Sends a call whose answer is an `async` operation and returns the operation as Incus gave it
   * (unparsed), without waiting for it: for operations that wait on the caller, such as an exec
   * that starts once its WebSockets are connected. Errors as `call`; a `sync` answer is one too.
   */
  async begin(path: string, opts: RestCallOptions): Promise<unknown> {
    const until = Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS)
    const first = await this.#once(path, opts, until)
    if (first.envelope.type !== 'async')
      throw this.#error(opts, path, 'expected a background operation from incus')
    return first.envelope.metadata
  }

  /**
   * The `ws+unix:` address (the `ws` package's form) of a WebSocket endpoint of the daemon, such
   * as `/1.0/operations/{id}/websocket?secret=…`. It holds what `path` holds: never log it.
   */
  websocketUrl(path: string): string {
    return `ws+unix://${this.socketPath}:${path}`
  }

  /** `call`, its metadata checked against `schema`; IncusCommandError naming `what` otherwise. */
  async get<S extends TSchema>(
    schema: S,
    what: string,
    path: string,
    opts: RestCallOptions,
  ): Promise<{ value: Static<S>; etag: string | undefined }> {
    const answer = await this.call(path, opts)
    if (!Value.Check(schema, answer.metadata))
      throw this.#error(opts, path, `unexpected ${what} shape from incus`)
    return { value: answer.metadata, etag: answer.etag }
  }

  async #wait(
    path: string,
    envelope: Envelope,
    opts: RestCallOptions,
    until: number,
  ): Promise<Operation> {
    let op = envelope.metadata
    if (!Value.Check(OperationSchema, op))
      throw this.#error(opts, path, 'unexpected operation shape from incus')
    const opPath = `/1.0/operations/${encodeURIComponent(op.id)}/wait`
    while (op.status_code < OP_RUNNING_BELOW) {
      // The daemon answers when the operation ends or after `timeout` seconds; the socket's own
      // deadline is ours, so a daemon that never answers still ends the call on time.
      const left = Math.max(1, Math.ceil((until - Date.now()) / 1000))
      const next = await this.#waitOnce(
        `${opPath}?timeout=${String(left)}`,
        { ...opts, method: 'GET', body: undefined },
        until,
      )
      op = next.envelope.metadata
      if (!Value.Check(OperationSchema, op))
        throw this.#error(opts, path, 'unexpected operation shape from incus')
    }
    if (op.status_code !== OP_SUCCESS)
      throw this.#error(opts, path, op.err || `operation ${op.status.toLowerCase()}`)
    return op
  }

  /**
   * One wait request. The call's request was sent already: losing the socket now is no
   * "nothing was sent" (a fallback to the CLI would run the call twice), so it is an error.
   */
  async #waitOnce(path: string, opts: RestCallOptions, until: number) {
    try {
      return await this.#once(path, opts, until)
    } catch (err) {
      if (!(err instanceof IncusUnreachableError)) throw err
      throw this.#error(opts, path, `lost the Incus socket while waiting: ${err.message}`, {
        cause: err,
      })
    }
  }

  #error(
    opts: RestCallOptions,
    path: string,
    message: string,
    extra: { timedOut?: boolean; aborted?: boolean; httpStatus?: number; cause?: unknown } = {},
  ): IncusCommandError {
    return new IncusCommandError({
      argv: [opts.verb, opts.method ?? 'GET', path],
      exitCode: undefined,
      // The CLI's form of a refusal, so incusReason and the isNotFound/isBusy tests read it alike.
      stderr: message.startsWith('Error:') || message === '' ? message : `Error: ${message}`,
      ...extra,
    })
  }

  /** One request and its parsed envelope; an `error` envelope is thrown. */
  #once(
    path: string,
    opts: RestCallOptions,
    until: number,
  ): Promise<{ envelope: Envelope; etag: string | undefined }> {
    const method = opts.method ?? 'GET'
    const bytes =
      opts.body === undefined
        ? undefined
        : opts.body instanceof Uint8Array
          ? opts.body
          : Buffer.from(JSON.stringify(opts.body))
    const headers: Record<string, string> = { ...opts.headers }
    if (bytes) {
      headers['Content-Length'] = String(bytes.byteLength)
      headers['Content-Type'] ??=
        opts.body instanceof Uint8Array ? 'application/octet-stream' : 'application/json'
    }
    return new Promise((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(this.#error(opts, path, '', { aborted: true, cause: opts.signal.reason }))
        return
      }
      let settled = false
      let responded = false
      const finish = (fn: () => void): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        opts.signal?.removeEventListener('abort', onAbort)
        fn()
      }
      const fail = (err: Error): void => {
        finish(() => {
          req.destroy()
          reject(err)
        })
      }
      const req = httpRequest({
        socketPath: this.socketPath,
        // The host part is not used over a unix socket; the CLI sends "unix.socket".
        host: 'unix.socket',
        path,
        method,
        headers,
        agent: false,
      })
      const timer = setTimeout(
        () => {
          fail(this.#error(opts, path, '', { timedOut: true }))
        },
        Math.max(0, until - Date.now()),
      )
      const onAbort = (): void => {
        fail(this.#error(opts, path, '', { aborted: true, cause: opts.signal?.reason }))
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      req.on('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? ''
        fail(
          UNREACHABLE.has(code) && !req.reusedSocket && !responded
            ? new IncusUnreachableError(this.socketPath, code, err)
            : this.#error(opts, path, `incus socket: ${err.message}`, { cause: err }),
        )
      })
      req.on('response', (res: IncomingMessage) => {
        responded = true
        const chunks: Buffer[] = []
        let size = 0
        const declared = Number(res.headers['content-length'] ?? '0')
        if (declared > this.#maxBody) {
          fail(
            this.#error(opts, path, `the answer of incus exceeds ${String(this.#maxBody)} bytes`),
          )
          return
        }
        res.on('data', (chunk: Buffer) => {
          size += chunk.byteLength
          if (size > this.#maxBody) {
            fail(
              this.#error(opts, path, `the answer of incus exceeds ${String(this.#maxBody)} bytes`),
            )
            return
          }
          chunks.push(chunk)
        })
        res.on('error', (err) => {
          fail(this.#error(opts, path, `incus socket: ${err.message}`, { cause: err }))
        })
        res.on('end', () => {
          finish(() => {
            try {
              resolve(this.#envelope(opts, path, res, Buffer.concat(chunks)))
            } catch (err) {
              reject(err instanceof Error ? err : new Error(String(err)))
            }
          })
        })
      })
      req.end(bytes)
    })
  }

  #envelope(
    opts: RestCallOptions,
    path: string,
    res: IncomingMessage,
    body: Buffer,
  ): { envelope: Envelope; etag: string | undefined } {
    let data: unknown
    try {
      data = JSON.parse(body.toString('utf8'))
    } catch (cause) {
      throw this.#error(opts, path, `unparsable JSON from incus (HTTP ${String(res.statusCode)})`, {
        cause,
      })
    }
    if (!Value.Check(EnvelopeSchema, data))
      throw this.#error(
        opts,
        path,
        `unexpected answer shape from incus (HTTP ${String(res.statusCode)})`,
      )
    if (data.type === 'error')
      throw this.#error(opts, path, data.error || `HTTP ${String(res.statusCode)}`, {
        httpStatus: data.error_code ?? res.statusCode,
      })
    const etag = res.headers.etag
    return { envelope: data, etag: typeof etag === 'string' ? etag : undefined }
  }
}
