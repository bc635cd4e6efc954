// The one place provisioning and image building start subprocesses other than `incus` (that goes
// through incus/cli.ts, the one Incus layer): argv arrays only, a timeout on every call, and
// failures that keep the command and its stderr (house style §8.4 habit 5).
import { execa, ExecaError } from 'execa'

export interface RunOptions {
  timeoutMs: number
  /** Written to the child's stdin; stdin is closed (ignored) when absent. */
  input?: string
  /** Added to (not replacing) the inherited environment. */
  env?: Readonly<Record<string, string>>
  cwd?: string
  signal?: AbortSignal
}

const TAIL_LINES = 20

export class CommandError extends Error {
  override readonly name = 'CommandError'
  readonly argv: readonly string[]
  readonly exitCode: number | undefined
  readonly stderr: string
  readonly timedOut: boolean

  constructor(
    argv: readonly string[],
    details: {
      exitCode: number | undefined
      stderr: string
      stdout: string
      timedOut: boolean
      canceled: boolean
    },
    cause: unknown,
  ) {
    const outcome = details.timedOut
      ? 'timed out'
      : details.canceled
        ? 'was cancelled'
        : details.exitCode === undefined
          ? 'could not run'
          : `exited with code ${details.exitCode}`
    // apt-get and debootstrap print the interesting line on stdout as often as on stderr.
    const tail = lastLines(details.stderr.trim() || details.stdout.trim(), TAIL_LINES)
    const reason = tail || (cause instanceof Error ? cause.message : '')
    super(`${argv.join(' ')} ${outcome}${reason ? `:\n${reason}` : ''}`, { cause })
    this.argv = argv
    this.exitCode = details.exitCode
    this.stderr = details.stderr
    this.timedOut = details.timedOut
  }
}

export function lastLines(text: string, count: number): string {
  return text.split('\n').slice(-count).join('\n')
}

/** Runs `file args…` and resolves with its trimmed stdout; rejects with a CommandError. */
export async function run(
  file: string,
  args: readonly string[],
  opts: RunOptions,
): Promise<string> {
  const argv = [file, ...args]
  try {
    const result = await execa(file, args, {
      timeout: opts.timeoutMs,
      ...(opts.signal ? { cancelSignal: opts.signal } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
      stripFinalNewline: true,
    })
    return result.stdout
  } catch (error) {
    if (error instanceof ExecaError) {
      throw new CommandError(
        argv,
        {
          exitCode: error.exitCode,
          stderr: asText(error.stderr),
          stdout: asText(error.stdout),
          timedOut: error.timedOut,
          canceled: error.isCanceled,
        },
        error,
      )
    }
    throw error
  }
}

function asText(value: unknown): string {
  return typeof value === 'string' ? value : ''
}
