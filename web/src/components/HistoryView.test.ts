import { cleanup, fireEvent, screen } from '@testing-library/svelte'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { HistoryEntry } from '../../../shared/schemas/sessions.ts'
import { renderWithApp, testApp } from '../lib/testing/app.ts'
import HistoryView from './HistoryView.svelte'

afterEach(() => {
  cleanup()
})

function entries(from: number, count: number): HistoryEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    session_id: `s-${from + i}`,
    id: `clincus-aaaa0000-${from + i}`,
    workspace: `/home/u/code/p${from + i}`,
    tool: 'claude',
    persistent: false,
    started_at: '2026-01-01T10:00:00Z',
    ended_at: i % 2 === 0 ? '2026-01-01T10:30:00Z' : null,
  }))
}

describe('HistoryView', () => {
  it('pages through the history 25 at a time, asking for one extra row to know if more exist', async () => {
    const t = testApp()
    const total = 30
    const history = vi
      .spyOn(t.api, 'history')
      .mockImplementation((limit, offset) =>
        Promise.resolve(entries(offset, Math.max(0, Math.min(limit, total - offset)))),
      )
    renderWithApp(t.app, HistoryView, {})
    await screen.findByText('p0')
    expect(history).toHaveBeenLastCalledWith(26, 0)
    expect(screen.getAllByRole('row')).toHaveLength(26) // header + 25
    expect(screen.getByRole('button', { name: '← Newer' }).hasAttribute('disabled')).toBe(true)

    await fireEvent.click(screen.getByRole('button', { name: 'Older →' }))
    await screen.findByText('p25')
    expect(history).toHaveBeenLastCalledWith(26, 25)
    expect(screen.getAllByRole('row')).toHaveLength(6)
    expect(screen.getByText('Page 2')).toBeTruthy()
    expect(screen.getByRole('button', { name: 'Older →' }).hasAttribute('disabled')).toBe(true)

    await fireEvent.click(screen.getByRole('button', { name: '← Newer' }))
    await screen.findByText('p0')
    expect(history).toHaveBeenLastCalledWith(26, 0)
  })

  it('says so plainly when the history cannot be read', async () => {
    const t = testApp()
    const { ApiError } = await import('../lib/api.ts')
    vi.spyOn(t.api, 'history').mockRejectedValue(
      new ApiError(500, 'history_read_failed', 'failed to read history'),
    )
    renderWithApp(t.app, HistoryView, {})
    const alert = await screen.findByRole('alert')
    expect(alert.textContent.trim()).toBe('Could not load the history: failed to read history')
  })
})
