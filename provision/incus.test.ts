import { describe, expect, it } from 'vitest'
import { majorVersion } from './incus.ts'

describe('majorVersion', () => {
  it('takes the leading number of a version string', () => {
    expect(majorVersion('6.0.4')).toBe(6)
    expect(majorVersion('0.6\n')).toBe(0)
    expect(majorVersion('garbage')).toBe(0)
  })
})
