// The session images for Settings (issue 13): GET /api/images, patched live by `image.building`
// events (step and progress), re-fetched on `image.built` / `image.failed` (new fingerprint, size
// and tool versions, or the previous image still in place). The last failure per alias is kept so
// its message stays readable after the list says the old image is ready again.
import { ApiError, errorMessage, type ApiClient } from '../api.ts'
import type { ClientEvent, ImageInfo } from '../schemas.ts'
import { Refetch } from '../refetch.ts'

/**
 * `already-building`: the server runs a build already (of this image or another: builds share
 * the package cache, one at a time); `message` is the server's, e.g. "image clincus is being built".
 */
export type BuildOutcome =
  { outcome: 'started' } | { outcome: 'already-building'; message: string | null }

export class ImagesStore {
  list: ImageInfo[] = $state.raw([])
  loaded = $state(false)
  loadError: string | null = $state(null)
  /** The last failed build's message per alias, until the next build starts. */
  failures: Record<string, string> = $state.raw({})
  /** Aliases whose build request is in flight from this page. */
  requesting: string[] = $state.raw([])

  readonly #api: ApiClient
  /** Set once Settings asked: only then is a reconnect worth a refetch. */
  #wanted = false
  readonly #refetch = new Refetch(() => this.#fetch())
  /** Aliases with an `image.building` event and no built/failed since. */
  // Not rendered from (the list carries the state): plain bookkeeping.
  // eslint-disable-next-line svelte/prefer-svelte-reactivity
  readonly #building = new Set<string>()

  constructor(api: ApiClient) {
    this.#api = api
  }

  get(alias: string): ImageInfo | undefined {
    return this.list.find((i) => i.alias === alias)
  }

  load(): Promise<void> {
    this.#wanted = true
    return this.#refetch.run()
  }

  /** On an events reconnect: refetch only when the list was ever shown. */
  reload(): Promise<void> {
    return this.#wanted ? this.load() : Promise.resolve()
  }

  async #fetch(): Promise<void> {
    try {
      const list = await this.#api.images()
      // A list answered before a build's first step was recorded must not hide the live progress.
      this.list = list.map((img) => {
        const live = this.get(img.alias)
        return live && img.state !== 'building' && this.#building.has(img.alias)
          ? { ...img, state: 'building', step: live.step, progress: live.progress ?? 0 }
          : img
      })
      this.loaded = true
      this.loadError = null
    } catch (err) {
      this.loadError = errorMessage(err)
    }
  }

  apply(event: ClientEvent): void {
    switch (event.type) {
      case 'image.building':
        this.#building.add(event.alias)
        this.#clearFailure(event.alias)
        if (!this.get(event.alias)) {
          void this.reload()
          return
        }
        this.#patch(event.alias, {
          state: 'building',
          step: event.step,
          progress: event.progress,
        })
        return
      case 'image.built':
        this.#building.delete(event.alias)
        this.#clearFailure(event.alias)
        this.#patch(event.alias, { progress: 1 })
        void this.reload()
        return
      case 'image.failed':
        this.#building.delete(event.alias)
        this.failures = { ...this.failures, [event.alias]: event.error }
        void this.reload()
        return
      default:
        return
    }
  }

  /**
   * Starts a rebuild (`update`: newest agent versions too). A 409 `image_building` means a build
   * runs already: an answer, not an error. Anything else (also a 409 `no_builder`) rejects with
   * the server's message.
   */
  async build(alias: string, update = false): Promise<BuildOutcome> {
    if (this.requesting.includes(alias)) return { outcome: 'already-building', message: null }
    this.requesting = [...this.requesting, alias]
    try {
      await this.#api.buildImage(alias, update)
      this.#clearFailure(alias)
      const img = this.get(alias)
      if (img && img.state !== 'building')
        this.#patch(alias, { state: 'building', step: null, progress: 0 })
      return { outcome: 'started' }
    } catch (err) {
      if (err instanceof ApiError && err.status === 409 && err.code !== 'no_builder')
        return { outcome: 'already-building', message: err.message }
      throw err
    } finally {
      this.requesting = this.requesting.filter((a) => a !== alias)
    }
  }

  #patch(alias: string, change: Partial<ImageInfo>): void {
    if (!this.get(alias)) return
    this.list = this.list.map((i) => (i.alias === alias ? { ...i, ...change } : i))
  }

  #clearFailure(alias: string): void {
    if (!(alias in this.failures)) return
    const next = { ...this.failures }
    Reflect.deleteProperty(next, alias)
    this.failures = next
  }
}
