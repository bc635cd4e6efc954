// What GET /api/health says about Incus and the session image, for the banner at the top of every
// page (issue 15). Fetched on start and on every events (re)connect, on image.built/failed, and
// polled: every 10 s while there is a problem (to clear the banner soon after it is fixed), every
// 60 s while healthy (Incus has no event of its own for going away). image.building events patch
// the progress without a request.
import type { Health } from '../../../../shared/schemas/health.ts'
import type { ApiClient } from '../api.ts'
import { Refetch } from '../refetch.ts'
import type { ClientEvent } from '../schemas.ts'

export const POLL_PROBLEM_MS = 10_000
export const POLL_HEALTHY_MS = 60_000

/** What the banner says; null when all is well (or unknown). */
export interface HealthProblem {
  kind: 'incus' | 'image-missing' | 'image-building' | 'image-failed'
  /** One sentence saying what is wrong. */
  title: string
  /** The server's reason (Incus' error, the build's failure), when it gave one. */
  detail: string | null
  /** What to do about it. */
  hint: string | null
  /** Build progress 0..1 while building. */
  progress: number | null
}

/** The banner's content for a health answer: Incus first (nothing works without it). */
export function healthProblem(h: Health | null): HealthProblem | null {
  if (!h) return null
  if (!h.incus.reachable) {
    return {
      kind: 'incus',
      title: 'Incus is not reachable: sessions cannot be started or stopped.',
      detail: h.incus.error ?? null,
      hint: h.incus.hint ?? null,
      progress: null,
    }
  }
  const name = h.image.name
  switch (h.image.state) {
    case 'missing':
      return {
        kind: 'image-missing',
        title: `The session image ${name} is missing: new sessions cannot start.`,
        detail: null,
        hint: 'Build it under Settings → Images, or run `clincus build`.',
        progress: null,
      }
    case 'building':
      return {
        kind: 'image-building',
        title: `The session image ${name} is being built: new sessions start when it is ready.`,
        detail: h.image.step ?? null,
        hint: null,
        progress: h.image.progress ?? null,
      }
    case 'failed':
      return {
        kind: 'image-failed',
        title: `Building the session image ${name} failed.`,
        detail: h.image.error ?? null,
        hint: 'Settings → Images can try again.',
        progress: null,
      }
    default:
      return null
  }
}

export class HealthStore {
  health: Health | null = $state.raw(null)
  readonly problem: HealthProblem | null = $derived(healthProblem(this.health))

  readonly #api: ApiClient
  readonly #refetch = new Refetch(() => this.#fetch())
  #timer: ReturnType<typeof setTimeout> | null = null
  #polling = false

  constructor(api: ApiClient) {
    this.#api = api
  }

  load(): Promise<void> {
    return this.#refetch.run()
  }

  async #fetch(): Promise<void> {
    try {
      this.health = await this.#api.health()
    } catch {
      // Unreachable server: the events link already says so; keep the last answer.
    }
  }

  apply(event: ClientEvent): void {
    const h = this.health
    switch (event.type) {
      case 'image.building':
        if (h?.image.name === event.alias) {
          this.health = {
            ...h,
            status: 'degraded',
            image: {
              name: h.image.name,
              state: 'building',
              step: event.step,
              progress: event.progress,
            },
          }
        }
        return
      case 'image.built':
      case 'image.failed':
        if (!h || h.image.name === event.alias) void this.load()
        return
      default:
        return
    }
  }

  /** Polls until stop(): often while there is a problem, rarely while healthy. */
  start(): void {
    if (this.#polling) return
    this.#polling = true
    this.#schedule()
  }

  stop(): void {
    this.#polling = false
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
  }

  #schedule(): void {
    if (!this.#polling) return
    const delay = this.problem ? POLL_PROBLEM_MS : POLL_HEALTHY_MS
    this.#timer = setTimeout(() => {
      this.#timer = null
      // A hidden tab asks nothing; it catches up on the next tick after it is shown.
      const hidden = typeof document !== 'undefined' && document.hidden
      void (hidden ? Promise.resolve() : this.load()).finally(() => {
        this.#schedule()
      })
    }, delay)
  }
}
