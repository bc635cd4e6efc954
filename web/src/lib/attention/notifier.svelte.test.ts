import { flushSync } from 'svelte'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { AgentStatus, AgentStatusName } from '../../../../shared/schemas/sessions.ts'
import type { Session } from '../schemas.ts'
import { AppState } from '../state/app.svelte.ts'
import { session } from '../testing/app.ts'
import { FAVICON, faviconHref } from './attention.ts'
import {
  AttentionNotifier,
  REANNOUNCE_GAP_MS,
  type NotificationApi,
  type NotificationLike,
  type NotifierDeps,
} from './notifier.svelte.ts'
import { PREFS_KEY } from './preferences.ts'

interface Shown extends NotificationLike {
  title: string
  options?: NotificationOptions | undefined
  closed: boolean
}

/** A stand-in for the browser's Notification: keeps every instance. */
function fakeNotificationApi(permission: NotificationPermission = 'granted', answer = permission) {
  const shown: Shown[] = []
  const requestPermission = vi.fn(() => {
    Api.permission = answer
    return Promise.resolve(answer)
  })
  class Api implements Shown {
    static permission: NotificationPermission = permission
    static requestPermission = requestPermission
    onclick: ((ev: Event) => unknown) | null = null
    closed = false
    constructor(
      readonly title: string,
      readonly options?: NotificationOptions,
    ) {
      shown.push(this)
    }
    close(): void {
      this.closed = true
    }
  }
  return { Api: Api as NotificationApi, shown, requestPermission }
}

function memoryStorage(init: Record<string, string> = {}): Pick<Storage, 'getItem' | 'setItem'> {
  const m = new Map(Object.entries(init))
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v) }
}

const ON = { [PREFS_KEY]: '{"notify":true,"sound":false}' }

function agent(status: AgentStatusName, reason?: string): AgentStatus {
  return { status, since: '2026-11-30T06:00:00Z', ...(reason ? { reason } : {}) }
}

const owned: { dispose(): void }[] = []
afterEach(() => {
  for (const o of owned.splice(0)) o.dispose()
})

function setup(
  over: Partial<NotifierDeps> & {
    list?: Session[]
    viewed?: string | null
    visible?: boolean
  } = {},
) {
  const api = fakeNotificationApi()
  const opened: string[] = []
  const focus = vi.fn()
  const sound = { play: vi.fn(), close: vi.fn() }
  const favicons: string[] = []
  const state = { viewed: over.viewed ?? null, visible: over.visible ?? true }
  const list = over.list ?? [session('c-a', { workspace: '/home/u/shop' }), session('c-b')]
  const n = new AttentionNotifier({
    sessions: () => list,
    viewedId: () => state.viewed,
    open: (id) => opened.push(id),
    Notification: api.Api,
    visible: () => state.visible,
    focus,
    storage: memoryStorage(ON),
    sound,
    setFavicon: (href) => favicons.push(href),
    ...over,
  })
  owned.push(n)
  return { n, api, opened, focus, sound, favicons, state }
}

describe('AttentionNotifier', () => {
  it('notifies once when a session turns waiting, with its question, and not again for a repeat', () => {
    const { n, api } = setup()
    n.onAgent('c-a', 'working', agent('waiting', 'Allow Bash(npm test)?'))
    expect(api.shown).toHaveLength(1)
    expect(api.shown[0]?.title).toBe('shop: the agent waits for you')
    expect(api.shown[0]?.options?.body).toBe('Allow Bash(npm test)?')
    expect(api.shown[0]?.options?.tag).toBe('clincus-session:c-a')
    // Still waiting (a new reason, or the event seen again): no transition, no notification.
    n.onAgent('c-a', 'waiting', agent('waiting', 'Allow Bash(npm test)? again'))
    expect(api.shown).toHaveLength(1)
    // working and idle are never announced; exited is.
    n.onAgent('c-a', 'waiting', agent('working'))
    n.onAgent('c-a', 'working', agent('idle'))
    expect(api.shown).toHaveLength(1)
    n.onAgent('c-a', 'idle', agent('exited'))
    expect(api.shown.map((s) => s.title)).toEqual([
      'shop: the agent waits for you',
      'shop: agent exited',
    ])
  })

  it('does not notify for the session open in this tab while the tab is visible', () => {
    const { n, api, state } = setup({ viewed: 'c-a' })
    n.onAgent('c-a', 'working', agent('waiting'))
    expect(api.shown).toHaveLength(0)
    // Another session does notify while c-a is open.
    n.onAgent('c-b', 'working', agent('waiting'))
    expect(api.shown).toHaveLength(1)
    // The same page in a hidden tab: the user is not looking at it.
    state.visible = false
    n.onAgent('c-a', 'working', agent('exited'))
    expect(api.shown).toHaveLength(2)
  })

  it("clicking a notification focuses the window and opens that session's page", () => {
    const { n, api, opened, focus } = setup({ viewed: 'c-b' })
    n.onAgent('c-a', 'working', agent('waiting'))
    const shown = api.shown[0]
    expect(shown).toBeDefined()
    shown?.onclick?.(new Event('click'))
    expect(focus).toHaveBeenCalledTimes(1)
    expect(opened).toEqual(['c-a'])
    expect(shown?.closed).toBe(true)
  })

  it('closes a stale notification when the status moves on, and all of them on dispose', () => {
    const { n, api } = setup()
    n.onAgent('c-a', 'working', agent('waiting'))
    n.onAgent('c-b', 'working', agent('waiting'))
    n.onAgent('c-a', 'waiting', agent('working'))
    expect(api.shown.map((s) => s.closed)).toEqual([true, false])
    n.dispose()
    expect(api.shown.map((s) => s.closed)).toEqual([true, true])
  })

  it('shows nothing unless turned on, and nothing without the permission', () => {
    const off = setup({ storage: memoryStorage() })
    off.n.onAgent('c-a', 'working', agent('waiting'))
    expect(off.api.shown).toHaveLength(0)

    const api = fakeNotificationApi('denied')
    const denied = setup({ Notification: api.Api })
    denied.n.onAgent('c-a', 'working', agent('waiting'))
    expect(api.shown).toHaveLength(0)
  })

  it('asks the permission only when turned on (the Settings click), and remembers the choice', async () => {
    const api = fakeNotificationApi('default', 'granted')
    const storage = memoryStorage()
    const { n } = setup({ Notification: api.Api, storage })
    expect(api.requestPermission).not.toHaveBeenCalled()
    n.onAgent('c-a', 'working', agent('waiting'))
    expect(api.requestPermission).not.toHaveBeenCalled()
    expect(n.permission).toBe('default')

    expect(await n.setNotify(true)).toBe('granted')
    expect(api.requestPermission).toHaveBeenCalledTimes(1)
    expect(n.prefs.notify).toBe(true)
    expect(storage.getItem(PREFS_KEY)).toBe('{"notify":true,"sound":false}')
    n.onAgent('c-a', 'working', agent('waiting'))
    expect(api.shown).toHaveLength(1)

    await n.setNotify(false)
    expect(n.prefs.notify).toBe(false)
    n.onAgent('c-a', 'working', agent('exited'))
    expect(api.shown).toHaveLength(1)
    expect(api.requestPermission).toHaveBeenCalledTimes(1)
  })

  it('stays off when the user refuses the permission', async () => {
    const api = fakeNotificationApi('default', 'denied')
    const { n } = setup({ Notification: api.Api, storage: memoryStorage() })
    expect(await n.setNotify(true)).toBe('denied')
    expect(n.prefs.notify).toBe(false)
  })

  it('works without the Notification API (the title and favicon still count)', async () => {
    const { n } = setup({ Notification: null })
    expect(n.permission).toBe('unsupported')
    expect(await n.setNotify(true)).toBe('unsupported')
    expect(() => {
      n.onAgent('c-a', 'working', agent('waiting'))
    }).not.toThrow()
  })

  it('a session flipping in and out of waiting is announced once per gap, not per flip', () => {
    let now = 1_000_000
    const { n, api, sound } = setup({ now: () => now })
    n.setSound(true)
    sound.play.mockClear()
    // A hostile agent alternates a permission prompt and work every 300 ms for a minute.
    for (let i = 0; i < 100; i++) {
      n.onAgent('c-a', 'working', agent('waiting', `Allow ${String(i)}?`))
      now += 300
      n.onAgent('c-a', 'waiting', agent('working'))
      now += 300
    }
    // A minute of flips: one announcement per REANNOUNCE_GAP_MS (20 s) at most.
    expect(REANNOUNCE_GAP_MS).toBeGreaterThanOrEqual(20_000)
    expect(api.shown.length).toBeLessThanOrEqual(3)
    expect(sound.play.mock.calls.length).toBeLessThanOrEqual(3)
    // Another session is not held back by it.
    n.onAgent('c-b', 'working', agent('waiting'))
    expect(api.shown.at(-1)?.options?.tag).toBe('clincus-session:c-b')
  })

  it('plays the sound only when turned on, for the same transitions', () => {
    const { n, sound } = setup()
    n.onAgent('c-a', 'working', agent('waiting'))
    expect(sound.play).not.toHaveBeenCalled()
    n.setSound(true)
    expect(sound.play).toHaveBeenCalledTimes(1) // the sample, from the click
    n.onAgent('c-b', 'working', agent('exited'))
    n.onAgent('c-b', 'exited', agent('exited'))
    n.onAgent('c-b', 'exited', agent('working'))
    expect(sound.play).toHaveBeenCalledTimes(2)
    n.dispose()
    expect(sound.close).toHaveBeenCalledTimes(1)
  })

  it("closes a session's notification when the user opens its page", () => {
    const view = $state<{ id: string | null }>({ id: null })
    const { n, api } = setup({ viewedId: () => view.id })
    n.start()
    n.onAgent('c-a', 'working', agent('waiting'))
    n.onAgent('c-b', 'working', agent('waiting'))
    flushSync()
    expect(api.shown.map((s) => s.closed)).toEqual([false, false])
    view.id = 'c-b'
    flushSync()
    expect(api.shown.map((s) => s.closed)).toEqual([false, true])
  })

  it('follows a preference change made in another tab (the storage event), until disposed', () => {
    const storage = memoryStorage()
    const { n } = setup({ storage })
    n.start()
    expect(n.prefs.notify).toBe(false)
    storage.setItem(PREFS_KEY, '{"notify":true,"sound":true}')
    window.dispatchEvent(new StorageEvent('storage', { key: PREFS_KEY }))
    expect(n.prefs).toEqual({ notify: true, sound: true })
    // A hostile value written by another page of the origin falls back to the defaults.
    storage.setItem(PREFS_KEY, '{"notify":"<script>"}')
    window.dispatchEvent(new StorageEvent('storage', { key: PREFS_KEY }))
    expect(n.prefs).toEqual({ notify: false, sound: false })
    n.dispose()
    storage.setItem(PREFS_KEY, '{"notify":true}')
    window.dispatchEvent(new StorageEvent('storage', { key: PREFS_KEY }))
    expect(n.prefs.notify).toBe(false)
  })

  it('badges the favicon with the number of waiting sessions, and restores it on dispose', () => {
    const list = $state([session('c-a'), session('c-b')])
    const { n, favicons } = setup({ list })
    n.start()
    flushSync()
    expect(favicons.at(-1)).toBe(FAVICON)
    list[0] = session('c-a', { agent: agent('waiting') })
    list[1] = session('c-b', { agent: agent('waiting') })
    flushSync()
    expect(n.waiting).toBe(2)
    expect(favicons.at(-1)).toBe(faviconHref(2))
    list[1] = session('c-b', { agent: agent('working') })
    flushSync()
    expect(favicons.at(-1)).toBe(faviconHref(1))
    n.dispose()
    expect(favicons.at(-1)).toBe(FAVICON)
  })
})

describe('AppState and the notifier', () => {
  it('applies session.agent to the list without a fetch, and announces from the status it knew', () => {
    const api = fakeNotificationApi()
    const win = {
      location: {
        pathname: '/sessions/c-b',
        search: '',
        hash: '',
        origin: 'http://127.0.0.1:3000',
      },
      history: { pushState: vi.fn(), replaceState: vi.fn() },
      addEventListener: vi.fn(),
      removeEventListener: vi.fn(),
    }
    const app = new AppState({
      win,
      attention: {
        Notification: api.Api,
        storage: memoryStorage(ON),
        visible: () => true,
        focus: vi.fn(),
        sound: { play: vi.fn(), close: vi.fn() },
        setFavicon: vi.fn(),
      },
    })
    owned.push(app)
    const sessions = vi.spyOn(app.api, 'sessions')
    // The list the page loaded: c-a already waits (no notification for what was there before).
    app.sessions.list = [session('c-a', { agent: agent('waiting') }), session('c-b')]
    app.onEvent({ type: 'session.agent', id: 'c-a', agent: agent('waiting', 'new question') })
    expect(api.shown).toHaveLength(0)
    expect(app.sessions.get('c-a')?.agent?.reason).toBe('new question')

    app.onEvent({ type: 'session.agent', id: 'c-a', agent: agent('working') })
    app.onEvent({ type: 'session.agent', id: 'c-a', agent: agent('waiting', 'Proceed?') })
    expect(api.shown).toHaveLength(1)
    expect(app.attention.waiting).toBe(1)
    // c-b is the open page: its change shows in the list but is not announced.
    app.onEvent({ type: 'session.agent', id: 'c-b', agent: agent('waiting') })
    expect(api.shown).toHaveLength(1)
    expect(app.attention.waiting).toBe(2)

    api.shown[0]?.onclick?.(new Event('click'))
    expect(app.router.route).toEqual({ name: 'session', id: 'c-a' })
    expect(win.history.pushState).toHaveBeenCalledWith(null, '', '/sessions/c-a')
    expect(sessions).not.toHaveBeenCalled()
  })
})
