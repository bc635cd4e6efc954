import { describe, expect, it } from 'vitest'
import { tmuxWidths, unicode11Provider } from './widths.ts'

const widths = tmuxWidths(unicode11Provider())

/** The cells a string takes, the way xterm's UnicodeService counts with a provider. */
function cells(text: string): number {
  let preceding = 0
  let total = 0
  for (const ch of text) {
    const cur = widths.charProperties(ch.codePointAt(0) ?? 0, preceding)
    let w = (cur >> 1) & 3
    if (cur & 1) w -= (preceding >> 1) & 3
    total += w
    preceding = cur
  }
  return total
}

describe('tmux 3.3a cell widths', () => {
  // Measured in the clincus-test image: tmux 3.3a's cursor_x after printf '%s|'.
  const measured: [string, number][] = [
    ['✅', 2],
    ['👩‍💻', 2],
    ['👨‍👩‍👧', 2],
    ['❤️', 1],
    ['❤', 1],
    ['🇩🇪', 2],
    ['日', 2],
    ['é', 1],
    ['⚠️', 1],
    ['☑️', 1],
    ['🎉', 2],
    ['𝄞', 1],
    ['1️⃣', 1],
    ['👍🏽', 4],
    ['⏱', 1],
    ['✔', 1],
    ['▶️', 1],
    ['ab', 2],
  ]
  for (const [text, width] of measured) {
    it(`${text} takes ${width} cell(s), as in tmux`, () => {
      expect(cells(text)).toBe(width)
    })
  }

  it('uses glibc 2.36 widths where Unicode 11 is older (🫠 U+1FAE0 is wide)', () => {
    expect(widths.wcwidth(0x1fae0)).toBe(2)
    expect(unicode11Provider().wcwidth(0x1fae0)).toBe(1)
  })
})
