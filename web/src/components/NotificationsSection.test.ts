import { cleanup, fireEvent, screen } from '@testing-library/svelte'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { NotificationApi } from '../lib/attention/notifier.svelte.ts'
import { PREFS_KEY } from '../lib/attention/preferences.ts'
import { ApiClient } from '../lib/api.ts'
import { AppState } from '../lib/state/app.svelte.ts'
import { renderWithApp } from '../lib/testing/app.ts'
import NotificationsSection from './NotificationsSection.svelte'

const win = {
  location: { pathname: '/settings', search: '', hash: '', origin: 'http://127.0.0.1:3000' },
  history: { pushState: vi.fn(), replaceState: vi.fn() },
  addEventListener: vi.fn(),
  removeEventListener: vi.fn(),
}

function setup(permission: NotificationPermission, answer: NotificationPermission) {
  const requestPermission = vi.fn(() => {
    Api.permission = answer
    return Promise.resolve(answer)
  })
  class Api {
    static permission = permission
    static requestPermission = requestPermission
    onclick = null
    close(): void {
      // nothing shown
    }
  }
  const m = new Map<string, string>()
  const storage = {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => m.set(k, v),
  }
  const sound = { play: vi.fn(), close: vi.fn() }
  const app = new AppState({
    api: new ApiClient(() => Promise.reject(new TypeError('Failed to fetch'))),
    win,
    attention: {
      Notification: Api as unknown as NotificationApi,
      storage,
      sound,
      setFavicon: vi.fn(),
    },
  })
  renderWithApp(app, NotificationsSection, {})
  const box = screen.getByRole<HTMLInputElement>('checkbox', {
    name: 'Desktop notifications when an agent waits for you or exits',
  })
  return { app, box, requestPermission, m, sound }
}

afterEach(() => {
  cleanup()
})

describe('Settings → Notifications', () => {
  it("asks the browser's permission on the click only, then turns notifications on", async () => {
    const { box, requestPermission, m } = setup('default', 'granted')
    expect(box.checked).toBe(false)
    expect(requestPermission).not.toHaveBeenCalled()
    expect(screen.getByTestId('notify-permission').textContent).toContain('asks the browser')
    await fireEvent.click(box)
    await vi.waitFor(() => {
      expect(box.checked).toBe(true)
    })
    expect(requestPermission).toHaveBeenCalledTimes(1)
    expect(m.get(PREFS_KEY)).toBe('{"notify":true,"sound":false}')
    await fireEvent.click(box)
    await vi.waitFor(() => {
      expect(box.checked).toBe(false)
    })
    expect(m.get(PREFS_KEY)).toBe('{"notify":false,"sound":false}')
  })

  it('stays off and says how to unblock when the permission is refused', async () => {
    const { box } = setup('default', 'denied')
    await fireEvent.click(box)
    await vi.waitFor(() => {
      expect(screen.getByTestId('notify-permission').textContent).toContain('blocked')
    })
    expect(box.checked).toBe(false)
  })

  it('turns the sound on (playing it once, from the click) and off', async () => {
    const { sound, m } = setup('granted', 'granted')
    const sbox = screen.getByRole<HTMLInputElement>('checkbox', { name: 'Play a short sound' })
    expect(sbox.checked).toBe(false)
    await fireEvent.click(sbox)
    expect(sound.play).toHaveBeenCalledTimes(1)
    expect(m.get(PREFS_KEY)).toBe('{"notify":false,"sound":true}')
    await fireEvent.click(sbox)
    expect(m.get(PREFS_KEY)).toBe('{"notify":false,"sound":false}')
    expect(sound.play).toHaveBeenCalledTimes(1)
  })
})
