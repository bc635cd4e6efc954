import { describe, expect, it } from 'vitest'
import { optionAsMeta, setOptionAsMeta, watchOptionAsMeta } from './preferences.ts'

function memoryStorage(): Pick<Storage, 'getItem' | 'setItem'> {
  const m = new Map<string, string>()
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v) }
}

describe('Option as Meta', () => {
  it('is off by default: Option types characters', () => {
    expect(optionAsMeta(memoryStorage())).toBe(false)
    expect(optionAsMeta(null)).toBe(false)
  })

  it('is saved, and every open terminal hears the change at once until it stops listening', () => {
    const storage = memoryStorage()
    const heard: boolean[] = []
    const stop = watchOptionAsMeta((on) => heard.push(on))
    setOptionAsMeta(true, storage)
    expect(optionAsMeta(storage)).toBe(true)
    setOptionAsMeta(false, storage)
    stop()
    setOptionAsMeta(true, storage)
    expect(heard).toEqual([true, false])
  })

  it('follows a change made in another tab (the storage event)', () => {
    const heard: boolean[] = []
    const stop = watchOptionAsMeta((on) => heard.push(on))
    window.dispatchEvent(
      new StorageEvent('storage', { key: 'clincus.optionAsMeta', newValue: 'on' }),
    )
    window.dispatchEvent(new StorageEvent('storage', { key: 'other', newValue: 'on' }))
    stop()
    expect(heard).toEqual([true])
  })
})
