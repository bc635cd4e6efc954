// Attention preferences that live in this browser (localStorage), like the terminal's. The stored
// value is parsed on every read: anything else than the shape below (another version's value, a
// value another page of this origin wrote, garbage) falls back to the defaults, field by field.

export interface AttentionPrefs {
  /** Desktop notifications for `waiting` and `exited` (they also need the browser's permission). */
  notify: boolean
  /** A short sound with each announcement. */
  sound: boolean
}

export const DEFAULT_PREFS: AttentionPrefs = { notify: false, sound: false }

export const PREFS_KEY = 'clincus.attention'

/** The preferences in a stored string (null: nothing stored). Never throws. */
export function parsePrefs(raw: string | null): AttentionPrefs {
  if (raw === null || raw.length > 1000) return { ...DEFAULT_PREFS }
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    return { ...DEFAULT_PREFS }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ...DEFAULT_PREFS }
  const v = value as Record<string, unknown>
  const flag = (key: keyof AttentionPrefs): boolean => {
    const x = Object.hasOwn(v, key) ? v[key] : undefined
    return typeof x === 'boolean' ? x : DEFAULT_PREFS[key]
  }
  return { notify: flag('notify'), sound: flag('sound') }
}

export function loadPrefs(
  storage: Pick<Storage, 'getItem'> | null = safeStorage(),
): AttentionPrefs {
  try {
    return parsePrefs(storage?.getItem(PREFS_KEY) ?? null)
  } catch {
    return { ...DEFAULT_PREFS }
  }
}

export function savePrefs(
  prefs: AttentionPrefs,
  storage: Pick<Storage, 'setItem'> | null = safeStorage(),
): void {
  try {
    storage?.setItem(PREFS_KEY, JSON.stringify({ notify: prefs.notify, sound: prefs.sound }))
  } catch {
    // Storage full or disabled: the choice holds for this page only.
  }
}

function safeStorage(): Storage | null {
  try {
    return globalThis.localStorage
  } catch {
    return null
  }
}
