import type { Logger } from 'pino'
import type { ImageState } from '../shared/schemas/health.ts'
import type { IncusDriver } from './incus/driver.ts'

export type ImageBuilder = (
  alias: string,
  onProgress: (p: { step: string; progress: number }) => void,
  signal: AbortSignal,
) => Promise<void>

/**
 * Knows whether the session image exists, and builds it in the background when asked, with
 * progress for /api/health and the log. Session creation answers 503 while a build runs.
 */
export class ImageManager {
  readonly #driver: IncusDriver
  readonly #log: Logger
  readonly #builder: ImageBuilder | undefined
  readonly #states = new Map<string, ImageState>()
  readonly #checks = new Map<string, Promise<ImageState>>()
  readonly #abort = new AbortController()
  #build: Promise<void> | null = null

  constructor(driver: IncusDriver, log: Logger, builder?: ImageBuilder) {
    this.#driver = driver
    this.#log = log
    this.#builder = builder
  }

  /** The last known state, without asking incus (the create gate uses this). */
  current(alias: string): ImageState | null {
    return this.#states.get(alias) ?? null
  }

  /** The cached state, `unknown` when nothing was learnt yet: what /api/health serves. */
  state(alias: string): ImageState {
    return this.#states.get(alias) ?? { name: alias, state: 'unknown' }
  }

  /**
   * Asks incus whether the image exists and caches the answer. Called on startup, on (re)connect,
   * on image lifecycle events and when the default image changes, never per request; concurrent
   * calls for one alias share one query.
   */
  check(alias: string): Promise<ImageState> {
    const running = this.#checks.get(alias)
    if (running) return running
    const query = this.#query(alias).finally(() => this.#checks.delete(alias))
    this.#checks.set(alias, query)
    return query
  }

  async #query(alias: string): Promise<ImageState> {
    const known = this.#states.get(alias)
    if (known?.state === 'building') return known
    let state: ImageState
    try {
      const exists = await this.#driver.imageExists(alias, { timeoutMs: 5000 })
      state = exists
        ? { name: alias, state: 'ready' }
        : known?.state === 'failed'
          ? known
          : { name: alias, state: 'missing' }
    } catch (err) {
      state = {
        name: alias,
        state: 'unknown',
        error: err instanceof Error ? err.message : String(err),
      }
    }
    // A build that started while incus was being asked wins over the answer.
    if (this.#states.get(alias)?.state !== 'building') this.#states.set(alias, state)
    return this.#states.get(alias) ?? state
  }

  /** Starts a background build when the image is missing; resolves once the check is done. */
  async ensure(alias: string): Promise<ImageState> {
    const state = await this.check(alias)
    if (state.state !== 'missing' || !this.#builder || this.#build) return state
    const builder = this.#builder
    const building: ImageState = { name: alias, state: 'building', step: 'starting', progress: 0 }
    this.#states.set(alias, building)
    this.#log.info({ image: alias }, 'session image missing; building it in the background')
    let lastLogged = ''
    this.#build = builder(
      alias,
      (p) => {
        this.#states.set(alias, {
          name: alias,
          state: 'building',
          step: p.step,
          progress: p.progress,
        })
        if (p.step !== lastLogged) {
          lastLogged = p.step
          this.#log.info(
            { image: alias, step: p.step, progress: Math.round(p.progress * 100) },
            'image build progress',
          )
        }
      },
      this.#abort.signal,
    )
      .then(
        () => {
          this.#states.set(alias, { name: alias, state: 'ready' })
          this.#log.info({ image: alias }, 'image build finished')
        },
        (err: unknown) => {
          const error = err instanceof Error ? err.message : String(err)
          this.#states.set(alias, { name: alias, state: 'failed', error })
          if (!this.#abort.signal.aborted)
            this.#log.error({ err, image: alias }, 'image build failed')
        },
      )
      .finally(() => {
        this.#build = null
      })
    return this.#states.get(alias) ?? building
  }

  async dispose(): Promise<void> {
    this.#abort.abort()
    await this.#build
  }
}
