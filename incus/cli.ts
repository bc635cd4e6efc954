// The one Incus layer: every `incus` process clincus starts goes through `IncusCli`, whether the
// server's driver (server/incus/cli-driver.ts), the image builder's store (images/image-store.ts)
// or host setup (provision/incus.ts) runs it. Argv arrays only (no shell), a timeout and an abort
// signal on every call, and one error type that keeps Incus' own message. It lives outside server/
// so that provision/ and images/ use it without importing the server; server/errors.ts re-exports
// the error and maps it to HTTP (502) with the server's other errors.
import { execa, ExecaError } from 'execa'
import type { Static, TSchema } from 'typebox'
import { Value } from 'typebox/value'

/** Shown instead of a secret; the same marker as server/security/log-redaction.ts's REDACTED. */
export const REDACTED = '[redacted]'

/** The default deadline of one call (ms), where the caller gives none. */
export const DEFAULT_TIMEOUT_MS = 30_000

/**
 * The copy-on-write storage pool setup adds beside `dir` pools (provision/storage.ts) and the
 * server puts sessions' root disks on when it exists (issue 16).
 */
export const CLINCUS_POOL = 'clincus'

/** How long the drivers reuse the answer "does the clincus pool exist" (ms). */
export const POOL_LOOKUP_TTL_MS = 30_000

/** Bytes of stdout (and of stderr) a call keeps by default (IncusCallOptions.maxBuffer). */
const DEFAULT_MAX_BUFFER = 64 * 1024 * 1024

export interface IncusCallOptions {
  /** Milliseconds before the process is killed (SIGTERM, SIGKILL 2 s later); default 30 s. */
  timeoutMs?: number
  signal?: AbortSignal
  /** Bytes for the command's stdin; stdin is closed when absent. */
  input?: string | Uint8Array
  /** Drop the output's final newline (what a shell's `$(…)` does); kept by default. */
  stripFinalNewline?: boolean
  /**
   * Bytes of stdout (and of stderr) kept; more kills the process and the call throws. Default
   * 64 MiB: lower it where the output comes from a container (hostile) and a little is expected.
   */
  maxBuffer?: number
}

export interface IncusQueryOptions extends IncusCallOptions {
  /** HTTP method of `incus query --request`; GET when absent. */
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  /** The request body, sent as `--data`. */
  data?: unknown
}

/** What a command printed and how it ended (runResult: a non-zero exit is not an error). */
export interface IncusResult {
  stdout: string
  stderr: string
  exitCode: number
}

/**
 * A failed `incus` invocation. The argv, exit code and full stderr stay on the error for the log;
 * `message` is Incus' own one-line reason ("Instance is busy"), not "exit status 1". The values
 * of `--env KEY=VALUE` (a profile's API keys) never stay on it: not in the argv, the stderr, the
 * message nor the cause. The server answers it with 502 and `code` (server/errors.ts).
 */
export class IncusCommandError extends Error {
  readonly status = 502
  readonly code: 'incus_error' | 'incus_timeout'
  /** Incus' reason is meant for the user: the API shows it. */
  readonly expose = true
  readonly headers: Record<string, string> = {}
  readonly argv: readonly string[]
  readonly exitCode: number | undefined
  readonly stderr: string
  readonly timedOut: boolean
  /** The HTTP status of the REST API's refusal (incus/rest.ts); undefined for a CLI call. */
  readonly httpStatus: number | undefined

  constructor(opts: {
    argv: readonly string[]
    exitCode: number | undefined
    stderr: string
    timedOut?: boolean
    aborted?: boolean
    httpStatus?: number
    cause?: unknown
  }) {
    const command = subcommand(opts.argv)
    const reason = opts.timedOut
      ? `incus ${command} timed out`
      : opts.aborted
        ? `incus ${command} was cancelled`
        : incusReason(opts.stderr) ||
          `incus ${command} failed with exit code ${String(opts.exitCode)}`
    const secrets = envValues(opts.argv)
    super(scrub(reason, secrets), { cause: scrubCause(opts.cause, secrets) })
    this.name = 'IncusCommandError'
    this.code = opts.timedOut ? 'incus_timeout' : 'incus_error'
    this.argv = redactArgv(opts.argv)
    this.exitCode = opts.exitCode
    this.stderr = scrub(opts.stderr, secrets)
    this.timedOut = opts.timedOut ?? false
    this.httpStatus = opts.httpStatus
  }

  /** Incus' "not found" answers, for callers that treat a missing object as a normal outcome. */
  get isNotFound(): boolean {
    return this.httpStatus === 404 || /not found/i.test(this.stderr)
  }

  /** Incus refused because another operation on the instance is running (it ends on its own). */
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

/** The last "Error: …" line Incus printed, which is its human message (at most 2,000 chars). */
export function incusReason(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
  const errorLine = [...lines].reverse().find((l) => l.startsWith('Error:'))
  const line = errorLine ?? lines.at(-1) ?? ''
  return line.replace(/^Error:\s*/, '').slice(0, 2000)
}

/** `?project=<name>` appended to a REST path (with `&` when it has a query already). */
export function withProject(path: string, project: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}project=${encodeURIComponent(project)}`
}

export interface IncusCliOptions {
  /** The incus executable; `incus` on PATH by default (tests point it at a stub). */
  binary?: string
  /** Added to the inherited environment of every call. */
  env?: Readonly<Record<string, string>>
}

/** Runs the `incus` client. Stateless apart from the binary and environment it was given. */
export class IncusCli {
  readonly binary: string
  readonly env: Readonly<Record<string, string>> | undefined

  constructor(opts: IncusCliOptions = {}) {
    this.binary = opts.binary ?? 'incus'
    this.env = opts.env
  }

  /** Runs `incus <args>` and resolves with its stdout; IncusCommandError when it fails. */
  async run(args: readonly string[], opts: IncusCallOptions = {}): Promise<string> {
    const result = await this.runResult(args, opts)
    if (result.exitCode !== 0) {
      throw new IncusCommandError({
        argv: args,
        exitCode: result.exitCode,
        stderr: result.stderr,
      })
    }
    return result.stdout
  }

  /**
   * Runs `incus <args>` and resolves however it exits (for `incus exec`, whose exit code is the
   * program's). Rejects with IncusCommandError only when it timed out, was aborted or could not
   * start.
   */
  async runResult(args: readonly string[], opts: IncusCallOptions = {}): Promise<IncusResult> {
    const argv = [...args]
    try {
      const result = await execa(this.binary, argv, {
        timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        ...(opts.signal ? { cancelSignal: opts.signal } : {}),
        forceKillAfterDelay: 2000,
        ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
        ...(this.env ? { env: this.env } : {}),
        stripFinalNewline: opts.stripFinalNewline ?? false,
        maxBuffer: opts.maxBuffer ?? DEFAULT_MAX_BUFFER,
        reject: false,
      })
      // Output over maxBuffer was cut: never an answer (the call throws, the process is killed).
      if (
        result.timedOut ||
        result.isCanceled ||
        result.isMaxBuffer ||
        result.exitCode === undefined
      ) {
        throw new IncusCommandError({
          argv,
          exitCode: result.exitCode,
          stderr: result.isMaxBuffer
            ? `Error: the output of incus exceeds ${String(opts.maxBuffer ?? DEFAULT_MAX_BUFFER)} bytes`
            : result.stderr || (result.failed ? (result.shortMessage ?? '') : ''),
          timedOut: result.timedOut,
          aborted: result.isCanceled,
          cause: result.cause,
        })
      }
      return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode }
    } catch (cause) {
      if (cause instanceof IncusCommandError) throw cause
      throw new IncusCommandError({
        argv,
        exitCode: undefined,
        stderr: cause instanceof ExecaError ? cause.shortMessage : String(cause),
        cause,
      })
    }
  }

  /**
   * `incus query <path>`: the REST API's JSON (null for an empty answer, which is how Incus
   * prints an empty list). IncusCommandError when it fails or prints something that is not JSON.
   */
  async query(path: string, opts: IncusQueryOptions = {}): Promise<unknown> {
    const argv = ['query']
    if (opts.method !== undefined) argv.push('--request', opts.method)
    if (opts.data !== undefined) argv.push('--data', JSON.stringify(opts.data))
    // The path is ours (it starts with /1.0; names inside it are URI-encoded), never a flag.
    argv.push(path)
    const out = await this.run(argv, opts)
    if (out.trim() === '') return null
    try {
      return JSON.parse(out) as unknown
    } catch (cause) {
      throw new IncusCommandError({
        argv,
        exitCode: 0,
        stderr: `unparsable JSON from incus: ${out.slice(0, 200)}`,
        cause,
      })
    }
  }

  /**
   * `query`, checked against `schema` (extra fields are kept). IncusCommandError naming `what`
   * when the answer has another shape: Incus' output is parsed, never trusted.
   */
  async queryAs<S extends TSchema>(
    schema: S,
    what: string,
    path: string,
    opts: IncusQueryOptions = {},
  ): Promise<Static<S>> {
    const data = await this.query(path, opts)
    if (!Value.Check(schema, data)) {
      throw new IncusCommandError({
        argv: ['query', path],
        exitCode: 0,
        stderr: `unexpected ${what} shape from incus`,
      })
    }
    return data
  }
}

/** The `incus` on PATH with the inherited environment: what setup and the image builder use. */
export const incus = new IncusCli()
