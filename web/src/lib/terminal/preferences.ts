// Terminal settings that live in this browser (kept apart from xterm so the settings page does not
// load it).

export const SCROLLBACK = 10_000

export type RendererPreference = 'auto' | 'dom'

const RENDERER_KEY = 'clincus.renderer'

export function rendererPreference(
  storage: Pick<Storage, 'getItem'> | null = safeStorage(),
): RendererPreference {
  return storage?.getItem(RENDERER_KEY) === 'dom' ? 'dom' : 'auto'
}

export function setRendererPreference(
  pref: RendererPreference,
  storage: Pick<Storage, 'setItem'> | null = safeStorage(),
): void {
  storage?.setItem(RENDERER_KEY, pref)
}

const OPTION_META_KEY = 'clincus.optionAsMeta'
const optionMetaListeners = new Set<(on: boolean) => void>()

/**
 * "Option as Meta" (Mac keyboards): off by default, so Option types the layout's character
 * (Option+L is `@` on a German Mac layout); on, Option+key sends ESC key (Meta), as terminal
 * users of Emacs or readline's Alt bindings may want. Ignored off a Mac, where Alt is Meta and
 * AltGr types characters anyway.
 */
export function optionAsMeta(storage: Pick<Storage, 'getItem'> | null = safeStorage()): boolean {
  return storage?.getItem(OPTION_META_KEY) === 'on'
}

/** Saves the setting and applies it at once to every open terminal of this page. */
export function setOptionAsMeta(
  on: boolean,
  storage: Pick<Storage, 'setItem'> | null = safeStorage(),
): void {
  storage?.setItem(OPTION_META_KEY, on ? 'on' : 'off')
  for (const listener of optionMetaListeners) listener(on)
}

/**
 * Calls `listener` whenever the setting changes, in this page or in another tab of this
 * browser (the `storage` event). Returns the function that stops it.
 */
export function watchOptionAsMeta(listener: (on: boolean) => void): () => void {
  const onStorage = (e: StorageEvent): void => {
    if (e.key === OPTION_META_KEY) listener(e.newValue === 'on')
  }
  optionMetaListeners.add(listener)
  globalThis.addEventListener('storage', onStorage)
  return () => {
    optionMetaListeners.delete(listener)
    globalThis.removeEventListener('storage', onStorage)
  }
}

function safeStorage(): Storage | null {
  try {
    return globalThis.localStorage
  } catch {
    return null
  }
}
