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

function safeStorage(): Storage | null {
  try {
    return globalThis.localStorage
  } catch {
    return null
  }
}
