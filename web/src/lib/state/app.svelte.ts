// Everything the views share, created once in App.svelte and handed down through a typed context.
import { createContext } from 'svelte'
import { ApiClient, ApiError, errorMessage, localCredentialStore } from '../api.ts'
import { AttentionNotifier, type NotifierDeps } from '../attention/notifier.svelte.ts'
import { EventsSocket } from '../events-socket.svelte.ts'
import type { ClientEvent } from '../schemas.ts'
import { Router, sessionPath, type RouterWindow } from '../router.svelte.ts'
import { Clock } from './clock.svelte.ts'
import { ConfigStore } from './config.svelte.ts'
import { HealthStore } from './health.svelte.ts'
import { ImagesStore } from './images.svelte.ts'
import { SessionsStore } from './sessions.svelte.ts'
import { ToastsStore } from './toasts.svelte.ts'
import { WorkspacesStore } from './workspaces.svelte.ts'

/** A view's own interest in the event stream (e.g. the Network panel of one session). */
export interface EventListener {
  /** Every event the page understands, after the shared stores applied it. */
  onEvent?(event: ClientEvent): void
  /** The stream (re)connected: events may have been missed, reload from the REST API. */
  onReopen?(): void
}

export interface AppOptions {
  api?: ApiClient
  win?: RouterWindow
  WebSocket?: typeof WebSocket
  eventsUrl?: () => string | Promise<string>
  /** The notifier's browser parts (tests give stand-ins). */
  attention?: Omit<NotifierDeps, 'sessions' | 'viewedId' | 'open'>
}

export class AppState {
  readonly api: ApiClient
  readonly router: Router
  readonly sessions: SessionsStore
  readonly workspaces: WorkspacesStore
  readonly config: ConfigStore
  readonly images: ImagesStore
  readonly health: HealthStore
  readonly toasts = new ToastsStore()
  readonly clock = new Clock()
  readonly events: EventsSocket
  /** Notifications, sound and favicon badge for agents that need the user (issue 17). */
  readonly attention: AttentionNotifier
  tools: string[] = $state.raw([])
  /** Optimistic: the first request refused for want of a token switches to the sign-in page. */
  auth: 'ok' | 'required' = $state('ok')
  /** Why the sign-in link did not work (shown on the sign-in page). */
  signInProblem: string | null = $state(null)
  #started = false
  // Not rendered from: plain bookkeeping, no reactivity wanted.
  // eslint-disable-next-line svelte/prefer-svelte-reactivity
  readonly #listeners = new Set<EventListener>()
  readonly #win: AppOptions['win']
  #pruneTimer: ReturnType<typeof setInterval> | null = null
  #onOnline = (): void => {
    this.events.retryNow()
  }

  constructor(opts: AppOptions = {}) {
    this.api = opts.api ?? new ApiClient(undefined, '', localCredentialStore())
    this.#win = opts.win
    this.router = new Router(opts.win)
    this.sessions = new SessionsStore(this.api)
    this.workspaces = new WorkspacesStore(this.api)
    this.config = new ConfigStore(this.api, {
      onRootsChanged: () => {
        this.workspaces.invalidate()
      },
    })
    this.images = new ImagesStore(this.api)
    this.health = new HealthStore(this.api)
    this.attention = new AttentionNotifier({
      ...opts.attention,
      sessions: () => this.sessions.list,
      viewedId: () => (this.router.route.name === 'session' ? this.router.route.id : null),
      open: (id) => {
        this.router.navigate(sessionPath(id))
      },
    })
    const events: ConstructorParameters<typeof EventsSocket>[0] = {
      url: opts.eventsUrl ?? (() => this.api.socketUrl('/ws/events')),
      onEvent: (e) => {
        this.onEvent(e)
      },
      onOpen: () => {
        void this.refreshAll()
      },
    }
    if (opts.WebSocket) events.WebSocket = opts.WebSocket
    this.events = new EventsSocket(events)
    this.api.onUnauthorized = () => {
      this.#signedOut()
    }
  }

  start(): void {
    this.clock.start()
    this.health.start()
    this.attention.start()
    this.#pruneTimer = setInterval(() => {
      this.sessions.prune()
    }, 5000)
    if (typeof window !== 'undefined') window.addEventListener('online', this.#onOnline)
    const code = this.#takeCode()
    if (code === null) {
      this.#goLive()
      return
    }
    this.api.signIn({ code }).then(
      () => {
        this.#goLive()
      },
      (err: unknown) => {
        this.signInProblem =
          err instanceof ApiError && err.status === 401
            ? 'That sign-in link has expired or was used already. Paste the token instead.'
            : errorMessage(err)
        // Someone signed in before still is; otherwise the first request asks for the token.
        this.#goLive()
      },
    )
  }

  /** The one-time `?code=` of the printed sign-in link, removed from the address bar at once. */
  #takeCode(): string | null {
    const win = this.#win ?? (typeof window === 'undefined' ? undefined : window)
    if (!win) return null
    // A local value read once, not reactive state.
    // eslint-disable-next-line svelte/prefer-svelte-reactivity
    const params = new URLSearchParams(win.location.search)
    const code = params.get('code')
    // A stale `?token=` link is dropped from the address bar (and history) too, never used.
    if (code === null && !params.has('token')) return null
    params.delete('code')
    params.delete('token')
    const rest = params.toString()
    win.history.replaceState(
      null,
      '',
      `${win.location.pathname}${rest ? `?${rest}` : ''}${win.location.hash}`,
    )
    return code
  }

  async signIn(token: string): Promise<void> {
    await this.api.signIn({ token })
    this.signInProblem = null
    this.auth = 'ok'
    this.#goLive()
  }

  /** Revokes this browser's sign-in session; other browsers and the token stay valid. */
  async signOut(): Promise<void> {
    try {
      await this.api.signOut()
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401))
        this.toasts.error(`Signing out on the server failed: ${errorMessage(err)}`)
    }
    this.#signedOut()
  }

  /**
   * Loads everything, then subscribes to events (whose every open loads everything again, so
   * nothing that happened in between is missed). Loading first means a signed-out page learns
   * it from a plain 401 instead of a refused WebSocket, and shows data without waiting for it.
   */
  #goLive(): void {
    if (this.#started) return
    this.#started = true
    void this.refreshAll().then(() => {
      if (this.#started && this.auth === 'ok') this.events.start()
    })
  }

  #signedOut(): void {
    this.auth = 'required'
    this.#started = false
    this.events.close()
  }

  /** Subscribes a view to events and reconnects; returns the unsubscribe function. */
  listen(listener: EventListener): () => void {
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  /** Everything from the REST API: on start and on every events (re)connect. */
  async refreshAll(): Promise<void> {
    for (const l of this.#listeners) l.onReopen?.()
    await Promise.all([
      this.sessions.load(),
      this.images.reload(),
      this.health.load(),
      this.workspaces.load(),
      this.config.load(),
      this.api.tools().then(
        (t) => {
          this.tools = t
        },
        (err: unknown) => {
          // Signed out: the sign-in page says so; a toast would linger after signing in.
          if (err instanceof ApiError && err.status === 401) return
          this.toasts.error(`Could not load the tool list: ${errorMessage(err)}`)
        },
      ),
    ])
  }

  onEvent(e: ClientEvent): void {
    if (e.type === 'config.reloaded' || e.type === 'config.invalid') {
      this.config.apply(e)
    } else if (
      e.type === 'image.building' ||
      e.type === 'image.built' ||
      e.type === 'image.failed'
    ) {
      this.images.apply(e)
      this.health.apply(e)
    } else if (e.type === 'session.agent') {
      // The notifier decides from the status the page knew before this event (no repeats).
      const previous = this.sessions.get(e.id)?.agent?.status
      this.sessions.apply(e)
      this.attention.onAgent(e.id, previous, e.agent)
    } else {
      // Active-session counts on project cards are derived from this list, so session events
      // need no workspace refetch.
      this.sessions.apply(e)
    }
    for (const l of this.#listeners) l.onEvent?.(e)
  }

  dispose(): void {
    this.events.close()
    this.clock.stop()
    this.health.stop()
    this.attention.dispose()
    if (this.#pruneTimer) clearInterval(this.#pruneTimer)
    this.router.dispose()
    if (typeof window !== 'undefined') window.removeEventListener('online', this.#onOnline)
  }
}

export const [getApp, setApp] = createContext<AppState>()
