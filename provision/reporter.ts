// Setup prints every step with its duration so a slow CI run shows where the time went.

export interface SetupReporter {
  /** Runs `fn` as a named step, reporting its duration (and failure) when it settles. */
  step<T>(name: string, fn: () => Promise<T>): Promise<T>
  /** An informational line (a skipped step, a hint) that is not itself timed. */
  note(message: string): void
}

export interface StepTiming {
  name: string
  ms: number
  ok: boolean
}

export function formatDuration(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`
}

/**
 * Prints `==> name … done (1.23 s)`. A step that starts nested steps or notes gets its
 * closing line repeated with its name, so output stays readable when steps nest.
 */
export function createConsoleReporter(
  write: (text: string) => void = (text) => {
    process.stdout.write(text)
  },
): SetupReporter & { timings(): readonly StepTiming[] } {
  const timings: StepTiming[] = []
  let open: symbol | undefined

  function breakLine(): void {
    if (open !== undefined) {
      write('\n')
      open = undefined
    }
  }

  return {
    async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
      breakLine()
      const token = Symbol(name)
      write(`==> ${name} … `)
      open = token
      const started = performance.now()
      const finish = (ok: boolean): void => {
        const ms = performance.now() - started
        timings.push({ name, ms, ok })
        const word = ok ? 'done' : 'failed'
        if (open === token) {
          write(`${word} (${formatDuration(ms)})\n`)
        } else {
          breakLine()
          write(`==> ${name} ${word} (${formatDuration(ms)})\n`)
        }
        open = undefined
      }
      try {
        const result = await fn()
        finish(true)
        return result
      } catch (error) {
        finish(false)
        throw error
      }
    },
    note(message: string): void {
      breakLine()
      write(`    ${message}\n`)
    },
    timings: () => timings,
  }
}

/** For callers (the server, tests) that want the work without the output. */
export const silentReporter: SetupReporter = {
  step: (_name, fn) => fn(),
  note: () => undefined,
}
