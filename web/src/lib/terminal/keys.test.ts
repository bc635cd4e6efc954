import { describe, expect, it } from 'vitest'
import { isShiftEnter, KEY_BAR, pageAction, SHIFT_ENTER_SEQUENCE } from './keys.ts'

const key = (over: Partial<KeyboardEvent>): KeyboardEvent =>
  ({
    key: 'Enter',
    shiftKey: false,
    ctrlKey: false,
    altKey: false,
    metaKey: false,
    isComposing: false,
    ...over,
  }) as KeyboardEvent

describe('Shift+Enter', () => {
  it('is ESC CR, the newline of Claude Code, Copilot CLI and opencode', () => {
    expect(SHIFT_ENTER_SEQUENCE).toBe('\x1b\r')
  })

  it('takes Shift+Enter only: not Enter, other modifiers or an IME composition', () => {
    expect(isShiftEnter(key({ shiftKey: true }))).toBe(true)
    expect(isShiftEnter(key({}))).toBe(false)
    expect(isShiftEnter(key({ shiftKey: true, ctrlKey: true }))).toBe(false)
    expect(isShiftEnter(key({ shiftKey: true, altKey: true }))).toBe(false)
    expect(isShiftEnter(key({ shiftKey: true, metaKey: true }))).toBe(false)
    expect(isShiftEnter(key({ shiftKey: true, isComposing: true }))).toBe(false)
    expect(isShiftEnter(key({ key: 'a', shiftKey: true }))).toBe(false)
  })
})

describe('the key bar', () => {
  it('has PgUp and PgDn, and every key an accessible name', () => {
    expect(KEY_BAR.map((k) => k.label)).toEqual(expect.arrayContaining(['PgUp', 'PgDn']))
    expect(new Set(KEY_BAR.map((k) => k.name)).size).toBe(KEY_BAR.length)
  })

  it('pages with the wheel when the program reports it (tmux copy mode): about a screen', () => {
    expect(pageAction({ mouseTracking: 'any', buffer: 'normal', rows: 41 }, -1)).toEqual({
      kind: 'wheel',
      ticks: 8,
      direction: -1,
    })
    expect(pageAction({ mouseTracking: 'vt200', buffer: 'alternate', rows: 3 }, 1)).toEqual({
      kind: 'wheel',
      ticks: 1,
      direction: 1,
    })
  })

  it("scrolls the browser's scrollback in the normal buffer", () => {
    expect(pageAction({ mouseTracking: 'none', buffer: 'normal', rows: 24 }, 1)).toEqual({
      kind: 'scroll',
      pages: 1,
    })
    // X10 reporting has no wheel.
    expect(pageAction({ mouseTracking: 'x10', buffer: 'normal', rows: 24 }, -1)).toEqual({
      kind: 'scroll',
      pages: -1,
    })
  })

  it('sends PgUp/PgDn to a full-screen program without mouse reporting (less, vim)', () => {
    expect(pageAction({ mouseTracking: 'none', buffer: 'alternate', rows: 24 }, -1)).toEqual({
      kind: 'keys',
      seq: '\x1b[5~',
    })
    expect(pageAction({ mouseTracking: 'none', buffer: 'alternate', rows: 24 }, 1)).toEqual({
      kind: 'keys',
      seq: '\x1b[6~',
    })
  })
})
