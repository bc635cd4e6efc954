import { describe, expect, it } from 'vitest'
import { CLINCUS_POOL } from '../incus/cli.ts'
import { planCowPool, POOL_MAX_GIB } from './storage.ts'

const GIB = 1024 ** 3
const dir = { name: 'default', driver: 'dir' }

describe('planCowPool: a btrfs pool beside dir pools, never a change to an existing one', () => {
  it('adds a loop-file btrfs pool named clincus to an installation with only dir pools', () => {
    expect(planCowPool([dir], { btrfs: true, freeBytes: 100 * GIB })).toEqual({
      name: CLINCUS_POOL,
      driver: 'btrfs',
      size: '50GiB',
    })
  })

  it('adds nothing when a copy-on-write pool exists, or a pool is named clincus already', () => {
    for (const driver of ['btrfs', 'zfs', 'lvm'])
      expect(
        planCowPool([dir, { name: 'fast', driver }], { btrfs: true, freeBytes: 100 * GIB }),
      ).toBeUndefined()
    expect(
      planCowPool([dir, { name: CLINCUS_POOL, driver: 'dir' }], {
        btrfs: true,
        freeBytes: 100 * GIB,
      }),
    ).toBeUndefined()
  })

  it('adds nothing without kernel btrfs support or with too little free space', () => {
    expect(planCowPool([dir], { btrfs: false, freeBytes: 100 * GIB })).toBeUndefined()
    expect(planCowPool([dir], { btrfs: true, freeBytes: 10 * GIB })).toBeUndefined()
  })

  it('caps the loop file on a large disk', () => {
    expect(planCowPool([], { btrfs: true, freeBytes: 4096 * GIB })?.size).toBe(
      `${String(POOL_MAX_GIB)}GiB`,
    )
  })
})
