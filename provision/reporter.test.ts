import { describe, expect, it } from 'vitest'
import { createConsoleReporter, formatDuration } from './reporter.ts'

describe('createConsoleReporter', () => {
  it('prints a step and its duration on one line', async () => {
    let out = ''
    const reporter = createConsoleReporter((text) => (out += text))
    expect(await reporter.step('start incusd', () => Promise.resolve(42))).toBe(42)
    expect(out).toMatch(/^==> start incusd … done \(\d+\.\d\d s\)\n$/)
    const [timing] = reporter.timings()
    expect(timing?.name).toBe('start incusd')
    expect(timing?.ok).toBe(true)
    expect(timing?.ms).toBeGreaterThanOrEqual(0)
  })

  it('repeats the name when nested output broke the line, and reports failures', async () => {
    let out = ''
    const reporter = createConsoleReporter((text) => (out += text))
    await expect(
      reporter.step('outer', async () => {
        await reporter.step('inner', () => Promise.resolve())
        reporter.note('a note')
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(out.replace(/\d+\.\d\d s/g, 'T')).toBe(
      '==> outer … \n==> inner … done (T)\n    a note\n==> outer failed (T)\n',
    )
  })

  it('formats durations in seconds with two decimals', () => {
    expect(formatDuration(1234)).toBe('1.23 s')
    expect(formatDuration(0)).toBe('0.00 s')
  })
})
