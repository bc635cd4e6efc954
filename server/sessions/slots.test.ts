import { describe, expect, it } from 'vitest'
import { ConflictError } from '../errors.ts'
import { FakeIncusDriver } from '../incus/fake-driver.ts'
import { MAX_SLOTS } from './naming.ts'
import { lowestFreeSlot, SlotAllocator } from './slots.ts'

const HASH = '0123abcd'
const signal = new AbortController().signal

describe('lowestFreeSlot', () => {
  it('is the lowest number not used, or null when all are', () => {
    expect(lowestFreeSlot(new Set())).toBe(1)
    expect(lowestFreeSlot(new Set([1, 2, 4]))).toBe(3)
    expect(lowestFreeSlot(new Set([1, 2, 3]), 3)).toBeNull()
  })
})

describe('SlotAllocator', () => {
  it('skips slots held by any instance with the name, ours or not, and by reservations', async () => {
    const driver = new FakeIncusDriver()
    driver.addInstance(`clincus-${HASH}-1`, { status: 'Stopped' })
    driver.addInstance(`clincus-ffffffff-2`)
    const slots = new SlotAllocator(driver, 'clincus-')
    expect(await slots.reserve(HASH, signal)).toBe(2)
    expect(await slots.reserve(HASH, signal)).toBe(3)
    expect(slots.reserved(HASH, 2)).toBe(true)
    expect(slots.reserved(HASH, undefined, 2)).toBe(true)
    slots.release(HASH, 2)
    slots.release(HASH, 3)
    expect(slots.reserved(HASH)).toBe(false)
    expect(await slots.reserve(HASH, signal)).toBe(2)
  })

  it('gives concurrent creations different slots', async () => {
    const slots = new SlotAllocator(new FakeIncusDriver(), 'clincus-')
    const got = await Promise.all(Array.from({ length: 5 }, () => slots.reserve(HASH, signal)))
    expect(got.sort()).toEqual([1, 2, 3, 4, 5])
  })

  it('refuses with 409 slots_exhausted when every slot is taken', async () => {
    const driver = new FakeIncusDriver()
    for (let i = 1; i <= MAX_SLOTS; i++) driver.addInstance(`clincus-${HASH}-${i}`)
    const err = await new SlotAllocator(driver, 'clincus-')
      .reserve(HASH, signal)
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConflictError)
    expect(err).toMatchObject({ status: 409, code: 'slots_exhausted' })
  })
})
