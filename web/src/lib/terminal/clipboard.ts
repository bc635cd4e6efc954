// The browser clipboard, from the terminal: the user's copies (selection, Copy button) and the
// copies programs make with OSC 52 (Claude's /copy, opencode, tmux copy mode), writes only.
import type { IClipboardProvider } from '@xterm/addon-clipboard'

/**
 * Writes `text` to the clipboard: the Clipboard API where the page may use it (a secure context:
 * https or 127.0.0.1), else a hidden textarea and `execCommand('copy')`, which works in a user
 * gesture only. Focus goes back where it was. Resolves to whether the text was written.
 */
export async function writeClipboard(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text)
    return true
  } catch {
    // Plain HTTP on a LAN address has no clipboard API: fall back to a hidden textarea.
  }
  const focused = document.activeElement instanceof HTMLElement ? document.activeElement : null
  const ta = document.createElement('textarea')
  ta.value = text
  ta.setAttribute('readonly', '')
  ta.style.position = 'fixed'
  ta.style.opacity = '0'
  document.body.append(ta)
  ta.select()
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- the only copy path without the Clipboard API
  const ok = document.execCommand('copy')
  ta.remove()
  focused?.focus()
  return ok
}

/**
 * Whether an OSC 52 payload (`Pc;Pd`, what follows `ESC ] 52 ;`) asks to read the clipboard
 * (`Pd` is `?`). Such a query is never answered: a program in the container (a prompt-injected
 * agent) must not read what the user copied elsewhere.
 */
export function isClipboardQuery(payload: string): boolean {
  const fields = payload.split(';')
  return fields.length >= 2 && fields[1] === '?'
}

/**
 * Whether an OSC 52 write names the clipboard. The browser has one clipboard: the empty field
 * (what tmux's copy mode sends: "the terminal's default"), `c` (clipboard) and `s` (selection)
 * go to it; `p` alone (X11's primary selection, set by merely selecting text) does not.
 */
export function namesClipboard(selection: string): boolean {
  return selection === '' || selection.includes('c') || selection.includes('s')
}

/**
 * The OSC 52 provider for @xterm/addon-clipboard: writes go to the browser clipboard through the
 * Clipboard API (an OSC 52 arrives outside any user gesture, so the textarea fallback would not
 * work) and are reported to `onWrite`; an empty or undecodable payload is ignored rather than
 * clearing the clipboard. Reads return nothing: queries are stopped before they reach the addon
 * ({@link isClipboardQuery}), this is the second line.
 */
export function writeOnlyClipboard(
  onWrite: (text: string, written: boolean) => void = () => undefined,
): IClipboardProvider {
  return {
    readText: () => '',
    writeText: async (selection, text) => {
      if (!namesClipboard(selection) || text === '') return
      let written = true
      try {
        await navigator.clipboard.writeText(text)
      } catch {
        written = false
      }
      onWrite(text, written)
    },
  }
}

/**
 * Whether a `beforeinput` of type `inputType` with `data` is a clip inserted in one piece (a
 * phone keyboard's clipboard strip) that must go through the paste path: text inserted at once,
 * more than one character, with a line end or any other control character in it. A single
 * typed character, or text without controls (a word from autocorrect), is typing.
 */
export function isInsertedClip(inputType: string, data: string | null): boolean {
  if (inputType !== 'insertText' && inputType !== 'insertReplacementText') return false
  if (data === null || data.length < 2) return false
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  return /[\x00-\x1f\x7f-\x9f]/.test(data)
}
