import { describe, expect, it } from 'vitest'
import { formatDuration } from './clock.svelte.ts'

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [59_999, '59s'],
    [60_000, '1m'],
    [3_599_000, '59m'],
    [3_600_000, '1h 00m'],
    [3_600_000 * 5 + 7 * 60_000, '5h 07m'],
    [86_400_000 * 2 + 3_600_000 * 4, '2d 4h'],
    [-5, '0s'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text)
  })
})
