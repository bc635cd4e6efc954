// What the browser tests may read of an open terminal, and only when they ask for it: a test sets
// localStorage `clincus.testHooks` = `on` before the page loads (web/e2e/support.ts does), and
// each terminal then appears as `window.__clincusTerminals[kind]`. Without the flag nothing is
// exposed and the serialize addon is never loaded.
//
// Nothing here is a way in for an attacker: the page's window is reachable only by scripts of
// this origin, which can read the terminal's DOM anyway.
import type { ISerializeOptions } from '@xterm/addon-serialize'
import type { Terminal } from '@xterm/xterm'

const FLAG = 'clincus.testHooks'

export interface TerminalTestHook {
  /** The xterm terminal: its buffers, modes and cell widths. */
  term: Terminal
  /** The serialize addon's output (its options: `scrollback`, `excludeAltBuffer`, …). */
  serialize(options?: ISerializeOptions): string
}

declare global {
  interface Window {
    __clincusTerminals?: Partial<Record<string, TerminalTestHook>>
  }
}

export function testHooksEnabled(): boolean {
  try {
    return globalThis.localStorage.getItem(FLAG) === 'on'
  } catch {
    return false
  }
}

/**
 * Exposes `term` as `window.__clincusTerminals[kind]` once the serialize addon is loaded into it,
 * when the flag is set; returns the function that withdraws it (the terminal's dispose).
 */
export function exposeForTests(kind: string, term: Terminal): () => void {
  if (!testHooksEnabled()) return () => undefined
  let disposed = false
  let dispose = (): void => {
    disposed = true
  }
  void import('@xterm/addon-serialize').then(({ SerializeAddon }) => {
    if (disposed) return
    const serializer = new SerializeAddon()
    term.loadAddon(serializer)
    const hooks = (window.__clincusTerminals ??= {})
    hooks[kind] = { term, serialize: (options) => serializer.serialize(options) }
    dispose = () => {
      if (hooks[kind]?.term === term) hooks[kind] = undefined
      serializer.dispose()
    }
  })
  return () => {
    dispose()
  }
}
