// Waiting on a container: until it runs processes (readiness), whether the tool's tmux session is
// there, and deleting a half-made container while the daemon may still be busy with it.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { Config } from '../../shared/schemas/config.ts'
import { AppError, IncusCommandError } from '../errors.ts'
import type { IncusDriver } from '../incus/driver.ts'
import { READY_PROBE, toolRunningCommand } from './commands.ts'

/**
 * Resolves once the container runs processes, polling with backoff (50 ms doubling to 500 ms).
 * Asked of the daemon's view first: the instance is Running and its init process has a pid
 * (getInstance and containerRoot, each a REST request of a few ms with the REST driver), which
 * is what `incus exec` needs to attach. Only a driver with no view of the init process (the
 * fake: containerRoot null) is probed with `exec true`. Throws AppError 504
 * `container_not_ready` after `timeoutMs`, or the abort reason.
 */
export async function waitReady(
  driver: IncusDriver,
  name: string,
  signal: AbortSignal,
  timeoutMs = 30_000,
): Promise<void> {
  const until = Date.now() + timeoutMs
  let delay = 50
  let last: string
  for (;;) {
    signal.throwIfAborted()
    try {
      last = await readyProblem(driver, name, signal)
      if (last === '') return
    } catch (err) {
      if (signal.aborted) throw err
      last = err instanceof Error ? err.message : String(err)
    }
    if (Date.now() > until)
      throw new AppError(
        504,
        'container_not_ready',
        `the container did not become ready within ${timeoutMs / 1000} s${last ? `: ${last}` : ''}`,
        { expose: true },
      )
    await sleep(delay, undefined, { signal })
    delay = Math.min(delay * 2, 500)
  }
}

/** Why the container is not ready yet ('' when it is); throws what the driver throws. */
async function readyProblem(driver: IncusDriver, name: string, signal: AbortSignal) {
  const opts = { timeoutMs: 5000, signal }
  const inst = await driver.getInstance(name, opts)
  if (!inst) return 'the instance does not exist'
  if (inst.status !== 'Running') return `the instance is ${inst.status}`
  if ((await driver.containerRoot(name, opts)) !== null) return ''
  const res = await driver.exec(name, READY_PROBE, opts)
  return res.exitCode === 0 ? '' : res.stderr.trim() || `exit code ${String(res.exitCode)}`
}

/** Whether the tool's tmux session exists in the running container `name`. */
export async function toolRunning(
  driver: IncusDriver,
  name: string,
  config: Config,
): Promise<boolean> {
  const cmd = toolRunningCommand(name, config)
  const res = await driver.exec(name, cmd.argv, { ...cmd.opts, timeoutMs: 10_000 })
  return res.exitCode === 0
}

/**
 * Deletes a half-made container. A delete while the daemon still runs an operation on it (the
 * `incus start` of a cancelled launch goes on in the daemon) is refused as busy: that is waited
 * out for up to 60 s; other failures get 4 attempts. False when it is still there.
 */
export async function deleteWithRetry(
  driver: IncusDriver,
  name: string,
  log: Logger,
): Promise<boolean> {
  const until = Date.now() + 60_000
  for (let attempt = 0; ; attempt++) {
    try {
      await driver.delete(name, { force: true, timeoutMs: 60_000 })
      return true
    } catch (err) {
      if (err instanceof IncusCommandError && err.isNotFound) return true
      log.warn({ err, session: name, attempt }, 'rollback delete failed')
      const busy = err instanceof IncusCommandError && err.isBusy
      if ((!busy && attempt >= 3) || Date.now() > until) return false
      await sleep(Math.min(100 * 2 ** attempt, 1000))
    }
  }
}
