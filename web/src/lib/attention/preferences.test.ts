import { describe, expect, it } from 'vitest'
import { DEFAULT_PREFS, loadPrefs, parsePrefs, PREFS_KEY, savePrefs } from './preferences.ts'

function memoryStorage(): Pick<Storage, 'getItem' | 'setItem'> & { m: Map<string, string> } {
  const m = new Map<string, string>()
  return { m, getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v) }
}

describe('attention preferences', () => {
  it('are off by default: no notification and no sound until the user turns them on', () => {
    expect(DEFAULT_PREFS).toEqual({ notify: false, sound: false })
    expect(parsePrefs(null)).toEqual(DEFAULT_PREFS)
    expect(loadPrefs(memoryStorage())).toEqual(DEFAULT_PREFS)
    expect(loadPrefs(null)).toEqual(DEFAULT_PREFS)
  })

  it('round-trip through storage', () => {
    const storage = memoryStorage()
    savePrefs({ notify: true, sound: false }, storage)
    expect(storage.m.get(PREFS_KEY)).toBe('{"notify":true,"sound":false}')
    expect(loadPrefs(storage)).toEqual({ notify: true, sound: false })
  })

  it('fall back to the defaults for a hostile or stale value, field by field', () => {
    for (const raw of [
      '',
      'on',
      'null',
      '42',
      '"notify"',
      '[true, true]',
      '{"notify": "yes", "sound": 1}',
      '{"__proto__": {"notify": true}}',
      `{"notify": true, "pad": "${'x'.repeat(2000)}"}`,
      '{"notify": tru',
    ]) {
      expect(parsePrefs(raw), raw.slice(0, 40)).toEqual(DEFAULT_PREFS)
    }
    // A known field survives beside unknown or broken ones (another version's value).
    expect(parsePrefs('{"notify": true, "sound": "loud", "volume": 3}')).toEqual({
      notify: true,
      sound: false,
    })
    expect(parsePrefs('{"sound": true}')).toEqual({ notify: false, sound: true })
  })

  it('survive a storage that throws (disabled, or full)', () => {
    const broken = {
      getItem: (): string | null => {
        throw new Error('SecurityError')
      },
      setItem: (): void => {
        throw new Error('QuotaExceededError')
      },
    }
    expect(loadPrefs(broken)).toEqual(DEFAULT_PREFS)
    expect(() => {
      savePrefs({ notify: true, sound: true }, broken)
    }).not.toThrow()
  })
})
