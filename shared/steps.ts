// A pipeline as data: a list of steps run in order by one loop, which reports progress and, when a
// step fails or the work is aborted, undoes what was done in reverse order. Used by session
// creation (server/sessions/launch-steps.ts) and by the image builder (images/build.ts).

/** One step of a pipeline. */
export interface Step<Id extends string = string> {
  /** Stable name (what progress events carry). */
  id: Id
  /** What the step does, in words (progress lines, error messages). */
  label: string
  /** Its rough share of the whole run's time (any unit; only ratios count). */
  weight: number
  /** Does the step; should stop early when `signal` aborts. */
  run: (signal: AbortSignal) => Promise<void>
  /**
   * Undoes the step. Called for every step that was started (including the one that failed,
   * which may have done part of its work), so it must cope with a step that did nothing yet.
   */
  undo?: () => Promise<void>
}

export interface StepProgress<Id extends string = string> {
  step: Id
  label: string
  /** 0..1: the weight of the steps finished before this one over the total weight. */
  progress: number
}

/** A step failed (or the run was aborted during it); `cause` is what it threw. */
export class StepFailure extends Error {
  /** The id of the step that failed. */
  readonly step: string
  readonly label: string
  /** Errors of undo callbacks (the run's own error is `cause`). */
  readonly undoErrors: unknown[]

  constructor(step: Step, cause: unknown, undoErrors: unknown[]) {
    super(`${step.label} failed: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    })
    this.name = 'StepFailure'
    this.step = step.id
    this.label = step.label
    this.undoErrors = undoErrors
  }
}

export interface RunStepsOptions<Id extends string> {
  /** Checked before each step and passed to it: an abort stops the run and undoes it. */
  signal?: AbortSignal
  /** Before each step starts, in order. */
  onProgress?: (p: StepProgress<Id>) => void
  /** Wraps each step's run (timing, logging); default: runs it. */
  around?: (step: Step<Id>, run: () => Promise<void>) => Promise<void>
}

/**
 * Runs `steps` in order. On a failure or an abort, the `undo` of every started step runs, last
 * first (an undo that throws does not stop the others), then a {@link StepFailure} naming the step
 * is thrown with the original error as its `cause`. Resolves when every step succeeded.
 */
export async function runSteps<Id extends string>(
  steps: readonly Step<Id>[],
  opts: RunStepsOptions<Id> = {},
): Promise<void> {
  const signal = opts.signal ?? new AbortController().signal
  const total = steps.reduce((sum, s) => sum + s.weight, 0) || 1
  const started: Step<Id>[] = []
  let done = 0
  for (const step of steps) {
    try {
      signal.throwIfAborted()
      opts.onProgress?.({ step: step.id, label: step.label, progress: done / total })
      started.push(step)
      const run = (): Promise<void> => step.run(signal)
      await (opts.around ? opts.around(step, run) : run())
    } catch (err) {
      throw new StepFailure(step, err, await undoAll(started))
    }
    done += step.weight
  }
}

async function undoAll<Id extends string>(started: readonly Step<Id>[]): Promise<unknown[]> {
  const errors: unknown[] = []
  for (const step of [...started].reverse()) {
    try {
      await step.undo?.()
    } catch (err) {
      errors.push(err)
    }
  }
  return errors
}

/** An `around` that records what each step took (ms, rounded) into `into`, by step id. */
export function timeSteps<Id extends string>(
  into: Partial<Record<Id, number>>,
): (step: Step<Id>, run: () => Promise<void>) => Promise<void> {
  return async (step, run) => {
    const t0 = performance.now()
    await run()
    into[step.id] = Math.round(performance.now() - t0)
  }
}
