// The primed side of the warm pool (issue 16): the members' state (primed.ts), the Primer that
// makes and removes them, and one pass of the fill loop WarmPool runs (one member at a time, never
// while a create runs: WarmPool's gating). A fill that fails drops its request (logged), so a
// request that cannot be primed is never tried again in a loop.
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { IncusDriver } from '../../incus/driver.ts'
import { warmName } from '../naming.ts'
import { deleteWithRetry } from '../readiness.ts'
import type { AgentView } from './agent-view.ts'
import type { PrimedKey, PrimeRequest } from './primed-key.ts'
import { PrimedMembers, type PrimedClaim, type PrimedInfo, type Primer } from './primed.ts'

export interface PrimedPoolDeps {
  driver: IncusDriver
  log: Logger
  prefix: string
  /** `[pool] primed`, read at each use (hot reload). */
  size: () => number
  /** A member's name leaves the pool: its late lifecycle events are still no session's. */
  retire: (name: string) => void
}

export class PrimedPool {
  readonly members = new PrimedMembers()
  readonly #d: PrimedPoolDeps
  #primer: Primer | null = null
  /** Stale members taken out at a claim: removed by the next pass, after the create. */
  readonly #stale: { name: string; info: PrimedInfo }[] = []

  constructor(deps: PrimedPoolDeps) {
    this.#d = deps
  }

  size(): number {
    return this.#d.size()
  }

  usePrimer(primer: Primer): void {
    this.#primer = primer
  }

  /**
   * Takes the member of `req` when its key is `key` and its agent's view `view` (PrimedMembers.claim;
   * synchronous: two creates never get one); a member of `req` with another key or view is stale: removed (as a rollback does) once the create ends,
   * so its deletion does not compete with the create for Incus.
   */
  claim(req: PrimeRequest, key: PrimedKey, view: AgentView | null): PrimedClaim {
    if (this.size() === 0) return null
    const got = this.members.claim(req, key, view)
    if (got && 'stale' in got) {
      this.#d.log.info({ container: got.stale.name, why: got.reason }, 'primed container stale')
      this.#d.retire(got.stale.name)
      this.#stale.push(got.stale)
    }
    return got
  }

  /** One step of primed work (remove a stale member, or make one); false when there is none. */
  async pass(signal: AbortSignal): Promise<boolean> {
    const stale = this.#stale.shift()
    if (stale) {
      await this.remove(stale.name, stale.info)
      return true
    }
    const primer = this.#primer
    if (!primer) return false
    const work = this.members.next(this.size())
    if (!work) return false
    if ('remove' in work) {
      this.#d.retire(work.remove)
      await this.remove(work.remove, work.info)
      return true
    }
    const req = work.fill
    const name = warmName(this.#d.prefix, randomBytes(5).toString('hex'))
    this.members.begin(name, req)
    const started = Date.now()
    try {
      const made = await primer.make(name, req, signal)
      if (!this.members.ready(name, made)) {
        // Dropped while it was made (a reload, a sweep): removed, its late events no session's.
        this.#d.retire(name)
        await this.remove(name, made)
      } else
        this.#d.log.info({ container: name, ms: Date.now() - started }, 'primed container ready')
    } catch (err) {
      // Never retried in a loop: the request goes until a create of it succeeds again.
      this.members.delete(name)
      this.#d.retire(name)
      this.members.drop(req)
      if (!signal.aborted) this.#d.log.warn({ err, workspace: req.workspace }, 'priming failed')
    }
    return true
  }

  /** Removes a member (the Primer's cleanup; without one, the container only). */
  async remove(name: string, info: PrimedInfo | null): Promise<void> {
    this.members.delete(name)
    if (this.#primer) await this.#primer.remove(name, info).catch(() => undefined)
    else await deleteWithRetry(this.#d.driver, name, this.#d.log).catch(() => false)
  }

  /** Removes the stale members no pass removed yet (shutdown). */
  async removeStale(): Promise<void> {
    for (let s = this.#stale.shift(); s; s = this.#stale.shift()) await this.remove(s.name, s.info)
  }
}
