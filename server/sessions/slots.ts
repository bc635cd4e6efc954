// Slot allocation: each workspace has MAX_SLOTS numbered slots (the container name's suffix); a
// creation reserves the lowest free one for as long as it runs.
import type { IncusDriver } from '../incus/driver.ts'
import type { IncusInstance } from '../incus/schemas.ts'
import { ConflictError } from '../errors.ts'
import { MAX_SLOTS, workspaceHash } from './naming.ts'
import { LABEL, slotOf } from './registry.ts'

/** Serialises work per key (slot allocation per workspace, lifecycle events per instance). */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>()

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => undefined)
    this.#tails.set(key, tail)
    try {
      return await run
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    }
  }
}

/**
 * The workspace hash an instance's slot counts for: a cold name's own, a warm session's from its
 * workspace label (its name is the pool container's, issue 16).
 */
function instanceHash(prefix: string, inst: IncusInstance): string | null {
  const rest = inst.name.slice(prefix.length)
  const cold = /^([a-f0-9]{8})-\d+$/.exec(rest)?.[1]
  if (cold) return cold
  const ws = inst.config[LABEL.workspace]
  return ws ? workspaceHash(ws) : null
}

/** The lowest slot in 1..max that is not in `used`; null when all are taken. */
export function lowestFreeSlot(used: ReadonlySet<number>, max = MAX_SLOTS): number | null {
  for (let slot = 1; slot <= max; slot++) if (!used.has(slot)) return slot
  return null
}

/**
 * Reserves slots per workspace hash. A slot is taken by any instance with the name (ours or not,
 * running or stopped) and by a creation in flight that reserved it; reservations of one workspace
 * are serialised, so two creations never get the same slot.
 */
export class SlotAllocator {
  readonly #driver: IncusDriver
  readonly #prefix: string
  readonly #locks = new KeyedMutex()
  readonly #reserved = new Map<string, Set<number>>()

  constructor(driver: IncusDriver, prefix: string) {
    this.#driver = driver
    this.#prefix = prefix
  }

  /** Reserves the lowest free slot of `hash`. Throws ConflictError (409 slots_exhausted). */
  reserve(hash: string, signal: AbortSignal): Promise<number> {
    return this.#locks.run(hash, async () => {
      signal.throwIfAborted()
      const used = new Set(this.#reserved.get(hash) ?? [])
      for (const inst of await this.#driver.listInstances({ timeoutMs: 10_000, signal })) {
        const slot = slotOf(this.#prefix, inst)
        if (slot !== null && instanceHash(this.#prefix, inst) === hash) used.add(slot)
      }
      const slot = lowestFreeSlot(used)
      if (slot === null)
        throw new ConflictError(
          `all ${MAX_SLOTS} slots are in use for this workspace; stop or delete a session first`,
          'slots_exhausted',
        )
      const set = this.#reserved.get(hash) ?? new Set<number>()
      set.add(slot)
      this.#reserved.set(hash, set)
      return slot
    })
  }

  release(hash: string, slot: number): void {
    const set = this.#reserved.get(hash)
    set?.delete(slot)
    if (set?.size === 0) this.#reserved.delete(hash)
  }

  /** Whether a creation holds `slot` of `hash` (any slot but `except` when slot is omitted). */
  reserved(hash: string, slot?: number, except?: number): boolean {
    const set = this.#reserved.get(hash)
    if (!set) return false
    return slot === undefined ? [...set].some((s) => s !== except) : set.has(slot)
  }
}
