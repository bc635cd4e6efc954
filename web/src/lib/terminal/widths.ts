// Cell widths as tmux 3.3a (the images' tmux, Debian 12) counts them, so the browser draws what
// tmux laid out (issue 14 row 2: `✅|` and `ab|` line up). tmux takes widths from the container's
// libc `wcwidth` (glibc 2.36, no utf8proc in Debian's build) and joins the character after a
// zero-width joiner into the joiner's cell (👩‍💻 is one cell of 2, not 2 + 2). Nothing else joins:
// U+FE0F keeps ❤️ one cell wide, a skin-tone modifier is its own wide cell (👍🏽 is 4).
//
// Widths are the Unicode 11 addon's, corrected where glibc 2.36 (Unicode 14) differs for an
// assigned character: the ranges below, generated on Debian 12 by comparing `wcwidth` (C.UTF-8)
// with the addon's for every code point. The measured widths are in widths.test.ts.
import { Unicode11Addon } from '@xterm/addon-unicode11'
import type { IUnicodeVersionProvider, Terminal } from '@xterm/xterm'

type Width = 0 | 1 | 2

/** [first, last, width] code point ranges where glibc 2.36 differs from Unicode 11's tables. */
// prettier-ignore
const GLIBC_2_36: readonly (readonly [number, number, Width])[] = [
  ...([
    [0x898, 0x89f], [0x8ca, 0x8d2], [0xb55, 0xb55], [0xc3c, 0xc3c], [0xd81, 0xd81],
    [0x180f, 0x180f], [0x1abf, 0x1ace], [0x1dfa, 0x1dfa], [0xa82c, 0xa82c], [0xd7b0, 0xd7c6],
    [0xd7cb, 0xd7fb], [0x10eab, 0x10eac], [0x10f82, 0x10f85], [0x11070, 0x11070],
    [0x11073, 0x11074], [0x110c2, 0x110c2], [0x111cf, 0x111cf], [0x1193b, 0x1193c],
    [0x1193e, 0x1193e], [0x11943, 0x11943], [0x16fe4, 0x16fe4], [0x1cf00, 0x1cf2d],
    [0x1cf30, 0x1cf46], [0x1e2ae, 0x1e2ae],
  ] as const).map(([a, b]) => [a, b, 0] as const),
  ...([
    [0x600, 0x605], [0x6dd, 0x6dd], [0x70f, 0x70f], [0x8e2, 0x8e2], [0x1734, 0x1734],
    [0x110bd, 0x110bd], [0x110cd, 0x110cd], [0x1f93b, 0x1f93b], [0x1f946, 0x1f946],
  ] as const).map(([a, b]) => [a, b, 1] as const),
  ...([
    [0x31bb, 0x31bf], [0x3248, 0x324f], [0x4dc0, 0x4dff], [0x16ff0, 0x16ff1],
    [0x18af3, 0x18cd5], [0x18d00, 0x18d08], [0x1aff0, 0x1aff3], [0x1aff5, 0x1affb],
    [0x1affd, 0x1affe], [0x1b11f, 0x1b122], [0x1f6d6, 0x1f6d7], [0x1f6dd, 0x1f6df],
    [0x1f6fb, 0x1f6fc], [0x1f7f0, 0x1f7f0], [0x1f90c, 0x1f90c], [0x1f972, 0x1f972],
    [0x1f977, 0x1f979], [0x1f9a3, 0x1f9a4], [0x1f9ab, 0x1f9ad], [0x1f9cb, 0x1f9cc],
    [0x1fa74, 0x1fa74], [0x1fa7b, 0x1fa7c], [0x1fa83, 0x1fa86], [0x1fa96, 0x1faac],
    [0x1fab0, 0x1faba], [0x1fac0, 0x1fac5], [0x1fad0, 0x1fad9], [0x1fae0, 0x1fae7],
    [0x1faf0, 0x1faf6],
  ] as const).map(([a, b]) => [a, b, 2] as const),
]

const ZWJ = 0x200d
/** A bit of xterm's per-character state (above width and join): "this character was a ZWJ". */
const AFTER_ZWJ = 1

/**
 * xterm's packed character properties (common/services/UnicodeService.ts, not exported):
 * state << 3 | width << 1 | shouldJoin. The width of a joined character is the whole cell's.
 */
function props(state: number, width: number, join: boolean): number {
  return ((state & 0xffffff) << 3) | ((width & 3) << 1) | (join ? 1 : 0)
}

/** The name `term.unicode.activeVersion` takes for these widths. */
export const TMUX_WIDTHS = 'tmux-3.3a'

/**
 * A Unicode version provider with tmux 3.3a's widths, built over the Unicode 11 addon's
 * (`base`, registered first) so its tables are not copied here.
 */
export function tmuxWidths(
  base: Pick<IUnicodeVersionProvider, 'wcwidth'>,
): IUnicodeVersionProvider {
  const wcwidth = (cp: number): Width => {
    if (cp >= 0x600) {
      for (const [first, last, width] of GLIBC_2_36) if (cp >= first && cp <= last) return width
    }
    return base.wcwidth(cp)
  }
  return {
    version: TMUX_WIDTHS,
    wcwidth,
    charProperties(cp: number, preceding: number): number {
      const state = cp === ZWJ ? AFTER_ZWJ : 0
      const width = wcwidth(cp)
      if (preceding === 0) return props(state, width, false)
      const cellWidth = (preceding >> 1) & 3
      const afterZwj = ((preceding >> 3) & AFTER_ZWJ) !== 0
      // tmux: a zero-width character, and any character after a ZWJ, joins the previous cell.
      if (cellWidth !== 0 && (width === 0 || afterZwj)) return props(state, cellWidth, true)
      return props(state, width, false)
    },
  }
}

/**
 * The Unicode 11 addon's provider itself: the addon only hands it to `term.unicode.register`, so
 * it is caught from a stand-in with just that method.
 */
export function unicode11Provider(): IUnicodeVersionProvider {
  let provider: IUnicodeVersionProvider | undefined
  const standIn = {
    unicode: {
      register: (p: IUnicodeVersionProvider) => {
        provider = p
      },
    },
  }
  new Unicode11Addon().activate(standIn as unknown as Terminal)
  if (!provider) throw new Error('the Unicode 11 addon registered no provider')
  return provider
}
