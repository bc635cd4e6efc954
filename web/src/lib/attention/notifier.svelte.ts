// Tells the user when an agent needs them (issue 17): desktop notifications (opt-in, the browser's
// permission asked only from the Settings click), an optional short sound, and the count of
// waiting sessions in the favicon. One per page, owned by AppState (start/dispose); it hears each
// `session.agent` event with the status the page knew before it, so a repeat never announces.
import type { AgentStatus, AgentStatusName } from '../../../../shared/schemas/sessions.ts'
import type { Session } from '../schemas.ts'
import {
  AGENT_LABEL,
  cleanReason,
  FAVICON,
  faviconHref,
  shouldAnnounce,
  waitingCount,
} from './attention.ts'
import { loadPrefs, PREFS_KEY, savePrefs, type AttentionPrefs } from './preferences.ts'

/** What the page needs of a notification (the DOM's Notification has it). */
export interface NotificationLike {
  onclick: ((ev: Event) => unknown) | null
  close(): void
}

/** The Notification API (the DOM's `Notification`, or a stand-in in tests). */
export interface NotificationApi {
  new (title: string, options?: NotificationOptions): NotificationLike
  readonly permission: NotificationPermission
  requestPermission(): Promise<NotificationPermission>
}

export type Permission = NotificationPermission | 'unsupported'

export interface NotifierDeps {
  /** The session list as the page knows it. */
  sessions: () => readonly Session[]
  /** The id of the session whose page is open in this tab, if any. */
  viewedId: () => string | null
  /** Opens a session's page (a notification's click). */
  open: (id: string) => void
  /** Default: the browser's `Notification`, when it has one. */
  Notification?: NotificationApi | null
  /** Default: `document.visibilityState === 'visible'`. */
  visible?: () => boolean
  /** Default: `window.focus()`. */
  focus?: () => void
  /** Default: localStorage. */
  storage?: Pick<Storage, 'getItem' | 'setItem'> | null
  /** Default: a WebAudio chime. */
  sound?: Sound
  /** Default: sets the `<link rel="icon">` of the document. */
  setFavicon?: (href: string) => void
  /** Default: Date.now (ms). */
  now?: () => number
}

/**
 * A session announced again in the same status this soon (ms) is not announced: the agent (a
 * hostile one too) can flip waiting → working → waiting every few hundred ms, which would be a
 * new desktop notification and a chime each time. The badge, title and favicon still follow.
 */
export const REANNOUNCE_GAP_MS = 20_000

export interface Sound {
  /** Plays the chime; called from a click first, so the browser lets it play later. */
  play(): void
  close(): void
}

export class AttentionNotifier {
  readonly #deps: NotifierDeps
  prefs: AttentionPrefs = $state({ notify: false, sound: false })
  permission: Permission = $state('unsupported')
  /** Running sessions whose agent waits (the tab title and the favicon show it). */
  readonly waiting: number = $derived(waitingCount(this.#sessions()))
  /** Notifications shown and not yet closed, by session id (a newer one replaces its session's). */
  // Plain bookkeeping, not rendered from.
  // eslint-disable-next-line svelte/prefer-svelte-reactivity
  readonly #shown = new Map<string, NotificationLike>()
  /** The last announcement of each session: its status and when (ms). */
  // eslint-disable-next-line svelte/prefer-svelte-reactivity
  readonly #announced = new Map<string, { status: AgentStatusName; at: number }>()
  readonly #now: () => number
  readonly #api: NotificationApi | null
  readonly #sound: Sound
  readonly #visible: () => boolean
  readonly #focus: () => void
  readonly #setFavicon: (href: string) => void
  #stopEffects: (() => void) | null = null
  readonly #onStorage = (e: StorageEvent): void => {
    if (e.key === PREFS_KEY) this.prefs = loadPrefs(this.#deps.storage)
  }
  readonly #onVisibility = (): void => {
    // The permission can be changed in the browser's site settings at any time.
    this.permission = this.#readPermission()
  }

  constructor(deps: NotifierDeps) {
    this.#deps = deps
    this.#api = deps.Notification === undefined ? browserNotification() : deps.Notification
    this.#sound = deps.sound ?? new WebAudioChime()
    this.#visible =
      deps.visible ??
      (() => typeof document === 'undefined' || document.visibilityState === 'visible')
    this.#focus =
      deps.focus ??
      (() => {
        if (typeof window !== 'undefined') window.focus()
      })
    this.#setFavicon = deps.setFavicon ?? setDocumentFavicon
    this.#now = deps.now ?? Date.now
    this.prefs = loadPrefs(deps.storage)
    this.permission = this.#readPermission()
  }

  // A method (not the field), so the derived above may read it before the constructor ran.
  #sessions(): readonly Session[] {
    return this.#deps.sessions()
  }

  /** Keeps the favicon's badge current and follows preference changes made in other tabs. */
  start(): void {
    if (this.#stopEffects) return
    this.#stopEffects = $effect.root(() => {
      $effect(() => {
        this.#setFavicon(faviconHref(this.waiting))
      })
      // Opening a session's page closes its notification: it was read.
      $effect(() => {
        const id = this.#deps.viewedId()
        if (id !== null) this.#close(id)
      })
    })
    globalThis.addEventListener('storage', this.#onStorage)
    if (typeof document !== 'undefined')
      document.addEventListener('visibilitychange', this.#onVisibility)
  }

  dispose(): void {
    this.#stopEffects?.()
    this.#stopEffects = null
    globalThis.removeEventListener('storage', this.#onStorage)
    if (typeof document !== 'undefined')
      document.removeEventListener('visibilitychange', this.#onVisibility)
    for (const id of [...this.#shown.keys()]) this.#close(id)
    this.#sound.close()
    this.#setFavicon(FAVICON)
  }

  /**
   * Turns desktop notifications on or off; must be called from the user's click, since turning
   * them on asks the browser's permission when it was never given. Returns the permission.
   */
  async setNotify(on: boolean): Promise<Permission> {
    if (!on) {
      this.#save({ ...this.prefs, notify: false })
      return this.permission
    }
    if (!this.#api) {
      this.permission = 'unsupported'
      return this.permission
    }
    let permission = this.#api.permission
    if (permission === 'default') permission = await this.#api.requestPermission()
    this.permission = permission
    this.#save({ ...this.prefs, notify: permission === 'granted' })
    return permission
  }

  /** Turns the sound on or off; on, it plays once (from the click, which unlocks audio). */
  setSound(on: boolean): void {
    this.#save({ ...this.prefs, sound: on })
    if (on) this.#sound.play()
  }

  /**
   * A session's agent status changed to `agent`; `previous` is the status the page knew before
   * (undefined: none). Announces a transition into `waiting` or `exited` once, unless the user is
   * looking at that session.
   */
  onAgent(id: string, previous: AgentStatusName | undefined, agent: AgentStatus): void {
    if (agent.status !== previous) this.#close(id)
    const viewing = this.#deps.viewedId() === id && this.#visible()
    if (!shouldAnnounce(previous, agent.status, { viewing })) return
    const notify = this.prefs.notify && this.#api?.permission === 'granted'
    if (!this.prefs.sound && !notify) return
    const now = this.#now()
    const last = this.#announced.get(id)
    if (last?.status === agent.status && now - last.at < REANNOUNCE_GAP_MS) return
    this.#announced.set(id, { status: agent.status, at: now })
    if (this.prefs.sound) this.#sound.play()
    if (!notify) return
    const session = this.#deps.sessions().find((s) => s.id === id)
    const name = session?.workspace ? basename(session.workspace) : id
    const reason = cleanReason(agent.reason)
    let n: NotificationLike
    try {
      n = new this.#api(
        agent.status === 'waiting' ? `${name}: the agent waits for you` : `${name}: agent exited`,
        {
          body: reason || `${AGENT_LABEL[agent.status]} · ${session?.tool ?? 'agent'} · ${id}`,
          // One per session: another tab of the dashboard, or a newer status, replaces it.
          tag: `clincus-session:${id}`,
          icon: FAVICON,
        },
      )
    } catch {
      // Some browsers (Android Chrome) only show notifications from a service worker.
      return
    }
    n.onclick = (ev: Event) => {
      ev.preventDefault()
      this.#focus()
      this.#deps.open(id)
      this.#close(id)
    }
    this.#shown.set(id, n)
  }

  #close(id: string): void {
    const n = this.#shown.get(id)
    if (!n) return
    this.#shown.delete(id)
    n.onclick = null
    n.close()
  }

  #save(prefs: AttentionPrefs): void {
    this.prefs = prefs
    savePrefs(prefs, this.#deps.storage)
  }

  #readPermission(): Permission {
    return this.#api ? this.#api.permission : 'unsupported'
  }
}

function basename(path: string): string {
  return path.replace(/\/+$/, '').split('/').pop() ?? path
}

function browserNotification(): NotificationApi | null {
  return typeof Notification === 'undefined' ? null : Notification
}

function setDocumentFavicon(href: string): void {
  if (typeof document === 'undefined') return
  const link = document.querySelector<HTMLLinkElement>('link[rel~="icon"]')
  if (!link) return
  if (link.getAttribute('href') !== href) link.setAttribute('href', href)
}

/** A short two-note chime made with WebAudio (no sound file). */
class WebAudioChime implements Sound {
  #ctx: AudioContext | null = null

  play(): void {
    if (typeof AudioContext === 'undefined') return
    try {
      this.#ctx ??= new AudioContext()
      const ctx = this.#ctx
      void ctx.resume().catch(() => undefined)
      const t = ctx.currentTime
      const gain = ctx.createGain()
      gain.connect(ctx.destination)
      gain.gain.setValueAtTime(0.0001, t)
      gain.gain.exponentialRampToValueAtTime(0.15, t + 0.02)
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.35)
      for (const [freq, at] of [
        [880, 0],
        [1320, 0.12],
      ] as const) {
        const osc = ctx.createOscillator()
        osc.type = 'sine'
        osc.frequency.value = freq
        osc.connect(gain)
        osc.start(t + at)
        osc.stop(t + at + 0.2)
      }
    } catch {
      // No audio output: the sound is a nicety.
    }
  }

  close(): void {
    void this.#ctx?.close().catch(() => undefined)
    this.#ctx = null
  }
}
