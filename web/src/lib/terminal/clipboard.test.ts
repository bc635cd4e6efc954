import { afterEach, describe, expect, it, vi } from 'vitest'
import { isClipboardQuery, namesClipboard, writeOnlyClipboard } from './clipboard.ts'

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
