import { describe, expect, it } from 'vitest'
import { INCUSD_LOG, incusdArgs, majorVersion, unreachableHint } from './incus.ts'

describe('majorVersion', () => {
  it('takes the leading number of a version string', () => {
    expect(majorVersion('6.0.4')).toBe(6)
    expect(majorVersion('0.6\n')).toBe(0)
    expect(majorVersion('garbage')).toBe(0)
  })
})

describe('incus.group (issue 15)', () => {
  it('is the group incusd gives its socket to, and the one the hint names', () => {
    expect(incusdArgs('devs')).toEqual(['--group', 'devs', '--logfile', INCUSD_LOG])
    expect(unreachableHint('permission denied', 'devs')).toContain('sudo usermod -aG devs')
    expect(unreachableHint('permission denied', 'devs')).toContain('newgrp devs')
    expect(unreachableHint('permission denied')).toContain('incus-admin')
  })
})
