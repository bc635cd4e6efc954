// The API error of a failed creation, and the hint for a refused id mapping.
import { StepFailure } from '../../shared/steps.ts'
import { AppError, IncusCommandError, incusReason } from '../errors.ts'
import { rawIdmapHint } from './id-mapping.ts'
import type { LaunchPlan } from './launch-plan.ts'

/** A refused raw.idmap fails deep in LXC ("forkstart ... exit status 1"): names the cause. */
export async function withIdmapHint(err: unknown, owner: LaunchPlan['owner']): Promise<unknown> {
  if (!(err instanceof IncusCommandError)) return err
  const hint = await rawIdmapHint(owner)
  if (!hint) return err
  return new IncusCommandError({
    argv: err.argv,
    exitCode: err.exitCode,
    // incus' reason is its last "Error:" line: the hint goes on a new one.
    stderr: `${err.stderr.trimEnd()}\nError: ${incusReason(err.stderr)}${hint}`,
    cause: err,
  })
}

/**
 * The API error of a creation that failed in a step: 502 for Incus' refusals (container_create_failed
 * in init, else session_setup_failed), the step's own AppError, else 500 session_setup_failed, each
 * saying which step failed. Anything that is not a step failure is returned as it is.
 */
export function launchError(failure: unknown): unknown {
  if (!(failure instanceof StepFailure)) return failure
  const err: unknown = failure.cause
  const { step, label } = failure
  if (err instanceof IncusCommandError)
    return new AppError(
      502,
      step === 'init' ? 'container_create_failed' : 'session_setup_failed',
      `${label} failed: ${err.message}`,
      { cause: err, expose: true },
    )
  if (err instanceof AppError) return err
  return new AppError(
    500,
    'session_setup_failed',
    `${label} failed: ${err instanceof Error ? err.message : String(err)}`,
    { cause: err, expose: true },
  )
}
