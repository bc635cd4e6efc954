// Pieces of the in-memory Incus (fake-driver.ts): what it records, and its monitor stream.
import { on, type EventEmitter } from 'node:events'
import { IncusCommandError } from '../errors.ts'
import type { LifecycleEvent } from './driver.ts'

export type FakeMethod =
  | 'listInstances'
  | 'getInstance'
  | 'imageExists'
  | 'rootPoolDriver'
  | 'init'
  | 'deviceAdd'
  | 'deviceRemove'
  | 'configSet'
  | 'configGet'
  | 'start'
  | 'stop'
  | 'freeze'
  | 'unfreeze'
  | 'delete'
  | 'exec'
  | 'filePush'
  | 'containerRoot'

export interface FakeCall {
  method: FakeMethod
  args: unknown[]
}

export interface Failure {
  method: FakeMethod
  match: (args: unknown[]) => boolean
  stderr: string
  remaining: number
}

/** Incus reports a running instance whose guest said it is ready (/dev/incus) as "Ready". */
export function isRunning(status: string): boolean {
  return status === 'Running' || status === 'Ready'
}

/** An incus-like refusal of a state change (start a running one, pause a stopped one). */
export function stateError(verb: string, name: string, message: string): IncusCommandError {
  return new IncusCommandError({ argv: [verb, name], exitCode: 1, stderr: `Error: ${message}` })
}

/**
 * The fake's `incus monitor`: the `event`s emitted on `events` until `signal` aborts; a `drop`
 * ends it with the error a daemon restart gives.
 */
export async function* monitorEvents(
  events: EventEmitter,
  signal: AbortSignal,
  reachable: boolean,
): AsyncIterable<LifecycleEvent> {
  const lost = (): IncusCommandError =>
    new IncusCommandError({
      argv: ['monitor'],
      exitCode: 1,
      stderr: "Error: The incus daemon doesn't appear to be started",
    })
  if (!reachable) throw lost()
  const drop = new AbortController()
  const onDrop = (): void => {
    drop.abort()
  }
  events.once('drop', onDrop)
  try {
    for await (const [event] of on(events, 'event', {
      signal: AbortSignal.any([signal, drop.signal]),
    })) {
      yield event as LifecycleEvent
    }
  } catch (err) {
    if (signal.aborted) return
    if (drop.signal.aborted) throw lost()
    throw err
  } finally {
    events.off('drop', onDrop)
  }
}
