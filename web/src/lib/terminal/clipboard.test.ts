import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  isClipboardQuery,
  isInsertedClip,
  namesClipboard,
  writeOnlyClipboard,
} from './clipboard.ts'

afterEach(() => {
  vi.unstubAllGlobals()
})

function stubClipboard(writeText: (t: string) => Promise<void>): { readText: () => never } {
  const readText = vi.fn((): never => {
    throw new Error('the clipboard must never be read')
  })
  vi.stubGlobal('navigator', { clipboard: { writeText, readText } })
  return { readText }
}

describe('OSC 52', () => {
  it('recognises a query (Pd "?") whatever the selection, and nothing else', () => {
    expect(isClipboardQuery('c;?')).toBe(true)
    expect(isClipboardQuery(';?')).toBe(true)
    expect(isClipboardQuery('p;?')).toBe(true)
    expect(isClipboardQuery('c;eA==')).toBe(false)
    expect(isClipboardQuery('c')).toBe(false)
    expect(isClipboardQuery('c;?x')).toBe(false)
  })

  it("writes tmux's empty selection, c and s to the one browser clipboard; not p alone", () => {
    expect(namesClipboard('')).toBe(true)
    expect(namesClipboard('c')).toBe(true)
    expect(namesClipboard('s')).toBe(true)
    expect(namesClipboard('pc')).toBe(true)
    expect(namesClipboard('p')).toBe(false)
  })

  it('the provider writes and reports; it never reads the clipboard', async () => {
    const written: string[] = []
    const { readText } = stubClipboard(async (t) => {
      written.push(t)
    })
    const reports: [string, boolean][] = []
    const provider = writeOnlyClipboard((text, ok) => reports.push([text, ok]))
    await provider.writeText('c' as never, 'hello')
    await provider.writeText('p' as never, 'primary only')
    await provider.writeText('c' as never, '')
    expect(written).toEqual(['hello'])
    expect(reports).toEqual([['hello', true]])
    expect(await provider.readText('c' as never)).toBe('')
    expect(readText).not.toHaveBeenCalled()
  })

  it('reports a write the browser refused (page not focused)', async () => {
    stubClipboard(() => Promise.reject(new Error('Document is not focused')))
    const reports: [string, boolean][] = []
    await writeOnlyClipboard((text, ok) => reports.push([text, ok])).writeText('' as never, 'x')
    expect(reports).toEqual([['x', false]])
  })
})

describe("isInsertedClip (red team: a phone keyboard's clipboard strip)", () => {
  it('takes multi-character inserted text with a line end or control as a clip', () => {
    expect(isInsertedClip('insertText', 'ls\nrm -rf ~\n')).toBe(true)
    expect(isInsertedClip('insertText', 'x\x03 touch f')).toBe(true)
    expect(isInsertedClip('insertReplacementText', 'a\rb')).toBe(true)
  })

  it('leaves typing alone: one character, plain words, emoji, other input types', () => {
    expect(isInsertedClip('insertText', 'a')).toBe(false)
    expect(isInsertedClip('insertText', '\n')).toBe(false)
    expect(isInsertedClip('insertText', 'hello world')).toBe(false)
    expect(isInsertedClip('insertText', '👩‍💻')).toBe(false)
    expect(isInsertedClip('insertCompositionText', 'a\nb')).toBe(false)
    expect(isInsertedClip('insertText', null)).toBe(false)
  })
})
