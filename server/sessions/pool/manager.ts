// The warm pool (issue 16): `[pool] size` containers of the spec creates most likely need, made
// (`incus init`) in the background one at a time and left stopped. A create claims one (atomically:
// a synchronous pick from a map) and turns it into its session (launch-steps.ts: `claim` in place
// of `init`, then the cold steps); the pool refills behind it. Why stopped and not started and
// frozen: Incus cannot hot-plug a disk under another hot-plugged disk (the protected paths under
// /workspace: LXC's move_mount fails with ENOENT, seen on Incus 6.0 / kernel 6.18), and on that
// failure it removes the (empty) mount target, a folder of the user's workspace. The second kind,
// primed members (primed.ts), are made for one recent request with its disks before the start.
// Pool containers carry the pool label and never the managed label, so they are never sessions:
// never listed, counted, in history or in a `session.*` event.
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { IncusDriver } from '../../incus/driver.ts'
import { isWarmName, warmName } from '../naming.ts'
import { deleteWithRetry } from '../readiness.ts'
import { LABEL } from '../registry.ts'
import { mismatchReason, type PoolSpec } from './key.ts'
import type { AgentView } from './agent-view.ts'
import type { PrimedKey, PrimeRequest } from './primed-key.ts'
import { PrimedPool } from './primed-fill.ts'
import { isPrimedLabel, primedInfoOf, type PrimedClaim, type Primer } from './primed.ts'

/** The first wait after a failed fill (ms); doubles up to {@link MAX_BACKOFF_MS}. */
const FIRST_BACKOFF_MS = 5000
const MAX_BACKOFF_MS = 300_000
/** Names of deleted members kept so their late lifecycle events are still recognised. */
const MAX_RETIRED = 256

export interface WarmPoolDeps {
  driver: IncusDriver
  log: Logger
  /** The session prefix: pool containers are `<prefix>warm-<10 hex>` (naming.ts). */
  prefix: string
  /** `[pool] size`, read at each use (hot reload). */
  size: () => number
  /**
   * The spec to fill for when no create said better (a claim sets it): defaultSpec in key.ts;
   * null when it cannot be told (the pool then stays empty).
   */
  defaultSpec: (signal: AbortSignal) => Promise<PoolSpec | null>
  /** `[pool] primed`, read at each use: how many recent requests keep a primed member. */
  primed?: () => number
}

interface Member {
  spec: PoolSpec
  epoch: number
  state: 'creating' | 'ready'
}

export interface PoolStatus {
  size: number
  ready: number
  creating: number
  /** The primed members' memory (bytes, measured once frozen); generic ones hold none. */
  memory_bytes: number
  primed: { size: number; ready: number; creating: number }
}

export type ClaimResult = { name: string } | { reason: string }

export class WarmPool {
  readonly #d: WarmPoolDeps
  readonly #members = new Map<string, Member>()
  /** Pool containers made and not claimed (including deleted ones, for their late events). */
  readonly #retired = new Set<string>()
  /** Containers handed to creates: never swept (their creation relabels or deletes them). */
  readonly #claimed = new Set<string>()
  readonly #abort = new AbortController()
  /** Bumped when the image or Incus changed under the members: older ones are rebuilt. */
  #epoch = 0
  /** The spec of the last create (the owner it had is the likeliest next one). */
  #wanted: PoolSpec | null = null
  /** Creates in flight: the pool makes nothing while one runs. */
  #busy = 0
  #pumping: Promise<void> | null = null
  #again = false
  #backoffMs = 0
  #retry: NodeJS.Timeout | undefined
  #started = false
  readonly #primed: PrimedPool

  constructor(deps: WarmPoolDeps) {
    this.#d = deps
    this.#primed = new PrimedPool({
      ...deps,
      size: () => deps.primed?.() ?? 0,
      retire: (name) => {
        this.#retire(name)
      },
    })
  }

  /** Whether `name` is a pool container that no create claimed (its events are no session's). */
  isMember(name: string): boolean {
    return this.#members.has(name) || this.#retired.has(name) || this.#primed.members.has(name)
  }

  /** The session side that makes and removes primed members (without it none are made). */
  usePrimer(primer: Primer): void {
    this.#primed.usePrimer(primer)
    this.#kick()
  }

  /** The directories a session made go to a primed member holding the workspace (primed.ts). */
  adoptCreated(workspace: string, created: readonly string[], except?: string): boolean {
    return this.#primed.members.adoptCreated(workspace, created, except)
  }

  /** A create of `req` succeeded: it is primed next (the `[pool] primed` most recent are kept). */
  remember(req: PrimeRequest): void {
    this.#primed.members.remember(req, this.#primed.size())
    this.#kick()
  }

  /**
   * Takes the primed member of `req` when its key is `key` and, for an agent started ahead, its
   * view `view` (synchronous: two creates never get one). A member of `req` with another key or
   * view is stale: removed once the create ends and its reason
   * returned. null: `req` has no primed member.
   */
  claimPrimed(req: PrimeRequest, key: PrimedKey, view: AgentView | null = null): PrimedClaim {
    const got = this.#primed.claim(req, key, view)
    if (got && 'name' in got) this.#handOver(got.name)
    this.#kick()
    return got
  }

  status(): PoolStatus {
    let ready = 0
    let creating = 0
    for (const m of this.#members.values()) {
      if (m.state === 'creating') creating++
      else if (m.epoch === this.#epoch) ready++
    }
    const p = this.#primed.members.status()
    return {
      size: this.#d.size(),
      ready,
      creating,
      memory_bytes: p.memory_bytes,
      primed: { size: this.#primed.size(), ready: p.ready, creating: p.creating },
    }
  }

  /**
   * Takes a ready container of `spec` for a create, or says why there is none (the create then
   * takes the cold path). Synchronous, so two creates never get one container. The container is
   * the caller's from now on: it deletes it on any failure (it never comes back to the pool).
   */
  claim(spec: PoolSpec): ClaimResult {
    this.#wanted = spec
    if (this.#d.size() === 0) return { reason: 'pool disabled' }
    let other: PoolSpec | null = null
    for (const [name, m] of this.#members) {
      if (m.state !== 'ready' || m.epoch !== this.#epoch) continue
      if (m.spec.key !== spec.key) {
        other = m.spec
        continue
      }
      this.#members.delete(name)
      this.#handOver(name)
      this.#kick()
      return { name }
    }
    this.#kick()
    if (other) return { reason: mismatchReason(other, spec) }
    return { reason: 'pool empty' }
  }

  /** `name` is a create's from now on: its events are a session's, the sweep leaves it. */
  #handOver(name: string): void {
    this.#retired.delete(name)
    this.#claimed.add(name)
    if (this.#claimed.size > MAX_RETIRED) {
      const [oldest] = this.#claimed
      if (oldest !== undefined) this.#claimed.delete(oldest)
    }
  }

  /** A create started: the pool makes nothing until it ends (call the returned function). */
  beginCreate(): () => void {
    this.#busy++
    let ended = false
    return () => {
      if (ended) return
      ended = true
      this.#busy--
      if (this.#busy === 0) this.#kick()
    }
  }

  /**
   * Incus (re)connected, or the server started: every pool container it has is a leftover (of a
   * previous process, or stopped by a daemon restart), deleted; then the pool fills.
   */
  async connected(): Promise<void> {
    this.#started = true
    this.#epoch++
    this.#primed.members.invalidate()
    await this.#sweep()
    this.#kick()
  }

  /** The image changed (rebuilt under its alias): every member is rebuilt. */
  invalidate(why: string): void {
    this.#d.log.info({ why }, 'warm pool invalidated')
    this.#epoch++
    this.#primed.members.invalidate()
    this.#wanted = null
    this.#kick()
  }

  /** The config changed: primed members (made with the old one) are rebuilt. */
  reprime(why: string): void {
    this.#d.log.info({ why }, 'primed containers invalidated')
    this.#primed.members.invalidate()
    this.#kick()
  }

  /**
   * The config a pool container depends on changed: the spec is worked out again from it (the
   * last create's no longer holds) and members of another spec are replaced.
   */
  retarget(): void {
    this.#wanted = null
    this.#kick()
  }

  /** `[pool] size` may have changed: fill or shrink. */
  resize(): void {
    this.#kick()
  }

  /** Stops filling and deletes every pool container (waits for the one being made). */
  async dispose(): Promise<void> {
    this.#abort.abort()
    clearTimeout(this.#retry)
    await this.#pumping
    await this.#primed.removeStale()
    await this.#sweep()
  }

  #kick(): void {
    if (!this.#started || this.#abort.signal.aborted) return
    if (this.#pumping) {
      this.#again = true
      return
    }
    this.#pumping = this.#pump()
      .catch((err: unknown) => {
        this.#d.log.warn({ err }, 'warm pool fill failed')
        this.#scheduleRetry()
      })
      .finally(() => {
        this.#pumping = null
        if (this.#again) {
          this.#again = false
          this.#kick()
        }
      })
  }

  #scheduleRetry(): void {
    this.#backoffMs = Math.min(MAX_BACKOFF_MS, this.#backoffMs * 2 || FIRST_BACKOFF_MS)
    clearTimeout(this.#retry)
    this.#retry = setTimeout(() => {
      this.#kick()
    }, this.#backoffMs)
    this.#retry.unref()
  }

  /** One pass: drops stale or excess members, then makes one more if the pool is short. */
  async #pump(): Promise<void> {
    const signal = this.#abort.signal
    for (;;) {
      // A user's create goes first: it kicks again when it ends.
      if (signal.aborted || this.#busy > 0) return
      // Primed members first: a claim of one skips every step but the tool.
      if (await this.#primed.pass(signal)) continue
      const size = this.#d.size()
      const spec = size === 0 ? null : (this.#wanted ?? (await this.#d.defaultSpec(signal)))
      const fits = (m: Member): boolean =>
        spec !== null && m.epoch === this.#epoch && m.spec.key === spec.key
      const ready = [...this.#members].filter(([, m]) => m.state === 'ready')
      const stale = ready.find(([, m]) => !fits(m))
      if (stale) {
        await this.#remove(stale[0])
        continue
      }
      if (!spec) return
      if (ready.length > size) {
        const [name] = ready[0] ?? []
        if (name) await this.#remove(name)
        continue
      }
      if (ready.length === size) return
      await this.#make(spec, signal)
      this.#backoffMs = 0
    }
  }

  async #make(spec: PoolSpec, signal: AbortSignal): Promise<void> {
    const { driver, log } = this.#d
    const name = warmName(this.#d.prefix, randomBytes(5).toString('hex'))
    const member: Member = { spec, epoch: this.#epoch, state: 'creating' }
    this.#members.set(name, member)
    const started = Date.now()
    try {
      // Like a cold init, not cut short by the signal (the daemon would finish the creation).
      await driver.init(spec.image, name, {
        config: { ...spec.config, [LABEL.pool]: spec.key },
        rootDisk: spec.rootDisk,
      })
      signal.throwIfAborted()
      // Left stopped, it holds no memory (nothing to bound). Not started and frozen: a disk device
      // cannot be hot-plugged under the workspace mount (protected paths), see README.
      member.state = 'ready'
      log.info({ container: name, ms: Date.now() - started }, 'warm pool container ready')
    } catch (err) {
      this.#members.delete(name)
      this.#retire(name)
      await deleteWithRetry(driver, name, log).catch(() => false)
      throw err
    }
  }

  async #remove(name: string): Promise<void> {
    this.#members.delete(name)
    this.#retire(name)
    if (!(await deleteWithRetry(this.#d.driver, name, this.#d.log).catch(() => false)))
      this.#d.log.warn({ container: name }, 'could not delete a warm pool container')
  }

  #retire(name: string): void {
    this.#retired.add(name)
    if (this.#retired.size > MAX_RETIRED) {
      const [oldest] = this.#retired
      if (oldest !== undefined) this.#retired.delete(oldest)
    }
  }

  /** Deletes every pool container of ours that is not a member being made. */
  async #sweep(): Promise<void> {
    const { driver, log, prefix } = this.#d
    let list
    try {
      list = await driver.listInstances({ timeoutMs: 10_000 })
    } catch (err) {
      log.warn({ err }, 'could not list warm pool leftovers')
      return
    }
    for (const inst of list) {
      if (!isWarmName(prefix, inst.name) || inst.config[LABEL.pool] === undefined) continue
      if (inst.config[LABEL.managed] === 'true' || this.#claimed.has(inst.name)) continue
      if (this.#members.get(inst.name)?.state === 'creating') continue
      if (this.#primed.members.creating(inst.name)) continue
      this.#members.delete(inst.name)
      this.#retire(inst.name)
      log.info({ container: inst.name }, 'removing a warm pool container')
      if (isPrimedLabel(inst.config[LABEL.pool]))
        await this.#primed.remove(inst.name, primedInfoOf(inst))
      else await deleteWithRetry(driver, inst.name, log).catch(() => false)
    }
  }
}
