// What a paste into a terminal sends, for every way of pasting (keyboard, context menu, the Paste
// button): the text neutralised, newlines as Enter, bracketed when the application asked for it.
// Pure and browser-safe, so the browser uses it and the tests attack it without a browser.
//
// Why neutralise every ESC rather than remove the paste markers: bracketed paste (xterm's mode
// 2004) only protects the application while the text between `ESC[200~` and `ESC[201~` cannot
// contain its own end marker. Removing markers is not enough when the removal is done once:
// `ESC[20` + `ESC[201~` + `1~` becomes `ESC[201~` after the inner marker is cut (wezterm#7784,
// CVE-2019-11848's class). Without any ESC no marker, CSI or OSC can be formed at all. This is
// what xterm.js does since PR #5716 (after the 6.0.0 we ship): ESC becomes U+241B.

export const PASTE_START = '\x1b[200~'
export const PASTE_END = '\x1b[201~'

/** What an ESC in pasted text becomes: U+241B SYMBOL FOR ESCAPE, visible and inert. */
export const ESCAPE_SYMBOL = '\u241b'
/** What a C1 control (U+0080–U+009F, e.g. U+009B, the one-character CSI) becomes. */
export const C1_SYMBOL = '\ufffd'

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const ESC_OR_C1 = /[\x1b\x80-\x9f]/g
/**
 * The other C0 controls and DEL: everything below 0x20 but tab, LF and CR. Bracketed paste does
 * not protect against them, because they act before the application reads the paste: the pty's
 * line discipline turns ^C, ^\ and ^Z into signals (bash abandons the bracket and reads the
 * rest of the paste as typed keys, so `x^C touch f⏎` runs `touch f`), and tmux takes ^B as its
 * prefix when it arrives in its own read, bracket or not (`^B:run-shell …⏎` runs a command).
 */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const OTHER_CONTROLS = /[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]/g

/** The Control Pictures character of a C0 control or DEL (U+2400 + code, DEL U+2421). */
function controlPicture(c: string): string {
  const code = c.charCodeAt(0)
  return String.fromCharCode(code === 0x7f ? 0x2421 : 0x2400 + code)
}

/**
 * The pasted text with every ESC (0x1b) turned into U+241B and every C1 control (U+0080–U+009F,
 * including U+009B, the 8-bit CSI) into U+FFFD, repeated until nothing changes (a fixed point),
 * so no output of this function contains a byte that starts an escape sequence; and every other
 * C0 control and DEL (not tab, LF or CR) into its Control Pictures symbol (^C → U+2403), so no
 * paste sends a signal or a tmux key binding. Everything else (tabs, newlines, any other
 * Unicode) is kept.
 */
export function sanitizePaste(text: string): string {
  let out = text.replace(OTHER_CONTROLS, controlPicture)
  for (;;) {
    const next = out.replace(ESC_OR_C1, (c) => (c === '\x1b' ? ESCAPE_SYMBOL : C1_SYMBOL))
    if (next === out) return out
    out = next
  }
}

/**
 * What a paste sends: the text sanitised ({@link sanitizePaste}), newlines (LF or CRLF) as
 * carriage returns (what a terminal's Enter sends, as xterm.js does), and wrapped in
 * `ESC[200~` … `ESC[201~` when the application turned bracketed paste on, so a multi-line paste
 * arrives as one paste instead of lines submitted one by one. The only ESC bytes in the result
 * are the two markers.
 */
export function preparePaste(text: string, bracketed: boolean): string {
  const normalized = sanitizePaste(text).replace(/\r?\n/g, '\r')
  return bracketed ? `${PASTE_START}${normalized}${PASTE_END}` : normalized
}
