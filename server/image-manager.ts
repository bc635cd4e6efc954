import type { Logger } from 'pino'
import type { ServerEvent } from '../shared/schemas/events.ts'
import type { ImageState } from '../shared/schemas/health.ts'
import type { ImageInfo } from '../shared/schemas/images.ts'
import { ConflictError, UnavailableError } from './errors.ts'
import type { IncusDriver } from './incus/driver.ts'
import {
  INPUT_HASH_PROPERTY,
  toolVersionsOf,
  type ImageExtras,
  type ImageTarget,
} from '../images/index.ts'

/** An image as Incus describes it (what the API lists). */
export interface StoredImage {
  fingerprint: string
  sizeBytes: number
  /** ISO 8601. */
  createdAt: string
  properties: Readonly<Record<string, string>>
}

export interface BuildRequest {
  extras: ImageExtras
  /** Newest agent versions instead of the image's current ones. */
  update: boolean
}

/** How images are looked up and built; images/backend.ts in production, fakes in tests. */
export interface ImageBackend {
  describe(alias: string): Promise<StoredImage | undefined>
  /** The input hash a build of `alias` with `extras` would record now. */
  expectedHash(alias: string, extras: ImageExtras): Promise<string>
  build(
    alias: string,
    request: BuildRequest,
    onProgress: (p: { step: string; progress: number }) => void,
    signal: AbortSignal,
  ): Promise<void>
}

export interface ImageManagerOptions {
  backend?: ImageBackend
  /** `ensure` builds a missing image in the background (`npm start`); off by default. */
  autoBuild?: boolean
}

/**
 * Knows whether the session images exist and are current, and builds one at a time in the
 * background (startup when missing, POST /api/images/{alias}/build), with progress for
 * /api/health, the images API and `image.*` events. Session creation answers 503 while the image
 * it needs is first being built; a rebuild leaves the published image serving until the new one
 * replaces it (build.ts moves the alias atomically).
 */
export class ImageManager {
  readonly #driver: IncusDriver
  readonly #log: Logger
  readonly #backend: ImageBackend | undefined
  readonly #autoBuild: boolean
  readonly #states = new Map<string, ImageState>()
  readonly #checks = new Map<string, Promise<ImageState>>()
  readonly #listeners = new Set<(e: ServerEvent) => void>()
  readonly #abort = new AbortController()
  /** The running build; `serving` while a previous image keeps serving launches meanwhile. */
  #build: { alias: string; done: Promise<void>; serving: boolean } | null = null

  constructor(driver: IncusDriver, log: Logger, opts: ImageManagerOptions = {}) {
    this.#driver = driver
    this.#log = log
    this.#backend = opts.backend
    this.#autoBuild = opts.autoBuild ?? false
  }

  /** `image.building` / `image.built` / `image.failed`; returns the unsubscribe. */
  subscribe(listener: (e: ServerEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  #emit(event: ServerEvent): void {
    for (const listener of this.#listeners) listener(event)
  }

  /**
   * The last known state, without asking incus (the create gate uses this). A rebuild over a
   * published image reads `ready`: that image serves launches until the new one replaces it.
   */
  current(alias: string): ImageState | null {
    if (this.#build?.alias === alias && this.#build.serving) return { name: alias, state: 'ready' }
    return this.#states.get(alias) ?? null
  }

  /** The cached state, `unknown` when nothing was learnt yet: what /api/health serves. */
  state(alias: string): ImageState {
    return this.#states.get(alias) ?? { name: alias, state: 'unknown' }
  }

  /** The alias being built, if any. */
  get building(): string | null {
    return this.#build?.alias ?? null
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

  /** Starts a background build when the image is missing (autoBuild); resolves once checked. */
  async ensure(target: ImageTarget): Promise<ImageState> {
    const state = await this.check(target.alias)
    if (state.state !== 'missing' || !this.#autoBuild || !this.#backend || this.#build) return state
    this.#log.info({ image: target.alias }, 'session image missing; building it in the background')
    this.#start(target, false, false)
    return this.state(target.alias)
  }

  /**
   * Starts a rebuild of a configured image. ConflictError (409) while any build runs: builds are
   * heavy and share the package cache. Resolves as soon as the build has started.
   */
  async rebuild(target: ImageTarget, opts: { update: boolean }): Promise<void> {
    const backend = this.#backend
    if (!backend) throw new ConflictError('image building is not available here', 'no_builder')
    if (this.#build) {
      throw new ConflictError(`image ${this.#build.alias} is being built`, 'image_building')
    }
    // Reserved before the lookup below, so a second request meanwhile gets its 409.
    this.#build = { alias: target.alias, done: Promise.resolve(), serving: false }
    let serving = false
    try {
      serving = (await backend.describe(target.alias)) !== undefined
    } catch (err) {
      this.#log.warn({ err, image: target.alias }, 'could not look the image up before a rebuild')
    }
    this.#start(target, opts.update, serving)
  }

  #start(target: ImageTarget, update: boolean, serving: boolean): void {
    const backend = this.#backend
    if (!backend) return
    const { alias } = target
    const first = { name: alias, state: 'building' as const, step: 'starting', progress: 0 }
    this.#states.set(alias, first)
    this.#emit({ type: 'image.building', alias, step: first.step, progress: 0 })
    let lastLogged = ''
    const done = backend
      .build(
        alias,
        { extras: target.extras, update },
        (p) => {
          const progress = Math.min(1, Math.max(0, p.progress))
          this.#states.set(alias, { name: alias, state: 'building', step: p.step, progress })
          this.#emit({ type: 'image.building', alias, step: p.step, progress })
          if (p.step !== lastLogged) {
            lastLogged = p.step
            this.#log.info(
              { image: alias, step: p.step, progress: Math.round(progress * 100) },
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
          this.#emit({ type: 'image.built', alias })
        },
        (err: unknown) => {
          const error = err instanceof Error ? err.message : String(err)
          // The previous image (if any) still serves: the alias was never moved.
          this.#states.set(alias, { name: alias, state: 'failed', error })
          if (!this.#abort.signal.aborted) {
            this.#log.error({ err, image: alias }, 'image build failed')
            this.#emit({ type: 'image.failed', alias, error })
          }
        },
      )
      .finally(() => {
        this.#build = null
      })
    this.#build = { alias, done, serving }
  }

  /** What GET /api/images answers for the configured images (asks incus once per alias). */
  async list(targets: readonly ImageTarget[]): Promise<ImageInfo[]> {
    return Promise.all(targets.map((target) => this.#info(target)))
  }

  async #info(target: ImageTarget): Promise<ImageInfo> {
    let stored: StoredImage | undefined
    try {
      stored = await this.#backend?.describe(target.alias)
    } catch (err) {
      this.#log.warn({ err, image: target.alias }, 'could not look the image up')
      throw new UnavailableError('cannot reach incus to list the images', 'incus_unavailable')
    }
    const known = this.#states.get(target.alias)
    const tools = toolVersionsOf(stored?.properties ?? {})
    const info: ImageInfo = {
      alias: target.alias,
      fingerprint: stored?.fingerprint ?? null,
      size_bytes: stored?.sizeBytes ?? null,
      created_at: stored?.createdAt ?? null,
      state: 'missing',
      progress: null,
      step: null,
      tools: {
        claude: tools.claude ?? null,
        copilot: tools.copilot ?? null,
        opencode: tools.opencode ?? null,
        node: tools.node ?? null,
      },
    }
    if (known?.state === 'failed' && known.error !== undefined) info.error = known.error
    if (known?.state === 'building') {
      return { ...info, state: 'building', progress: known.progress ?? 0, step: known.step ?? '' }
    }
    if (stored === undefined || !this.#backend) return info
    let expected: string
    try {
      expected = await this.#backend.expectedHash(target.alias, target.extras)
    } catch (err) {
      // e.g. `[image] setup` names a file that is not there: the user's to fix, not a 500.
      const error = err instanceof Error ? err.message : String(err)
      return { ...info, state: 'outdated', error }
    }
    const current = stored.properties[INPUT_HASH_PROPERTY] === expected
    return { ...info, state: current ? 'ready' : 'outdated' }
  }

  /** Waits for the running build, if any (tests, shutdown). */
  async settled(): Promise<void> {
    await this.#build?.done
  }

  async dispose(): Promise<void> {
    this.#abort.abort()
    await this.#build?.done
    this.#listeners.clear()
  }
}
