import { describe, expect, it } from 'vitest'
import { runSteps, StepFailure, type Step } from './steps.ts'

function recorder(): { log: string[]; step: (id: string, weight: number, fail?: boolean) => Step } {
  const log: string[] = []
  return {
    log,
    step: (id, weight, fail = false) => ({
      id,
      label: `doing ${id}`,
      weight,
      run: async () => {
        log.push(`run ${id}`)
        if (fail) throw new Error(`${id} broke`)
      },
      undo: async () => {
        log.push(`undo ${id}`)
      },
    }),
  }
}

describe('runSteps', () => {
  it('runs the steps in order and reports progress by weight before each', async () => {
    const { log, step } = recorder()
    const progress: Array<[string, number]> = []
    await runSteps([step('a', 1), step('b', 3), step('c', 4)], {
      onProgress: (p) => progress.push([p.step, p.progress]),
    })
    expect(progress).toEqual([
      ['a', 0],
      ['b', 1 / 8],
      ['c', 4 / 8],
    ])
    expect(log).toEqual(['run a', 'run b', 'run c'])
  })

  it('undoes every started step in reverse order when one fails, and names it', async () => {
    const { log, step } = recorder()
    const err = await runSteps([
      step('a', 1),
      step('b', 1),
      step('c', 1, true),
      step('d', 1),
    ]).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StepFailure)
    const failure = err as StepFailure
    expect(failure.step).toBe('c')
    expect(failure.message).toBe('doing c failed: c broke')
    expect((failure.cause as Error).message).toBe('c broke')
    expect(log).toEqual(['run a', 'run b', 'run c', 'undo c', 'undo b', 'undo a'])
  })

  it('stops at an abort between steps and undoes what ran', async () => {
    const { log, step } = recorder()
    const ctl = new AbortController()
    const b = step('b', 1)
    const steps = [
      step('a', 1),
      {
        ...b,
        run: async (s: AbortSignal) => {
          await b.run(s)
          ctl.abort(new Error('client left'))
        },
      },
      step('c', 1),
    ]
    const err = await runSteps(steps, { signal: ctl.signal }).catch((e: unknown) => e)
    expect((err as StepFailure).step).toBe('c')
    expect(((err as StepFailure).cause as Error).message).toBe('client left')
    expect(log).toEqual(['run a', 'run b', 'undo b', 'undo a'])
  })

  it('keeps undoing when an undo throws, and collects its error', async () => {
    const { log, step } = recorder()
    const a = step('a', 1)
    const b = {
      ...step('b', 1),
      undo: async () => {
        throw new Error('undo b broke')
      },
    }
    const err = (await runSteps([a, b, step('c', 1, true)]).catch((e: unknown) => e)) as StepFailure
    expect(log).toEqual(['run a', 'run b', 'run c', 'undo c', 'undo a'])
    expect(err.undoErrors.map((e) => (e as Error).message)).toEqual(['undo b broke'])
  })

  it('passes each run through `around`', async () => {
    const { log, step } = recorder()
    await runSteps([step('a', 1)], {
      around: async (s, run) => {
        log.push(`before ${s.id}`)
        await run()
        log.push(`after ${s.id}`)
      },
    })
    expect(log).toEqual(['before a', 'run a', 'after a'])
  })
})
