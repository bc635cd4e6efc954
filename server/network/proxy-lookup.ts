// Name resolution for the egress proxy: the injectable resolver, the bounds on lookups running at
// once (a slow DNS server holds one of libuv's four pool threads for its whole retry time), a
// short answer cache, the per-request timeout, and the fixed `lookup` that makes node:net connect
// to exactly the addresses the policy checked.
//
// Shapes: a Resolver answers every address of a name (A and AAAA, as strings) or throws an
// errno-style error (`code`: ENOTFOUND, ETIMEOUT when our timeout fired, ...). Times are ms.
import net, { type LookupFunction } from 'node:net'

/** Resolves a name to every address (A and AAAA); throws when it does not resolve. */
export type Resolver = (name: string) => Promise<string[]>

export const defaultResolver: Resolver = async (name) => {
  const { lookup } = await import('node:dns/promises')
  const found = await lookup(name, { all: true, verbatim: true })
  return found.map((a) => a.address)
}

/**
 * Name lookups at once, overall and per session. getaddrinfo runs on libuv's thread pool (4
 * threads by default), shared with every file operation of the server, and a lookup whose DNS
 * server never answers holds its thread for the resolver's whole retry time, whatever our own
 * timeout says. Two at most keeps half the pool for the dashboard; one per session keeps one
 * session from taking both.
 */
export const MAX_LOOKUPS = 2
export const MAX_LOOKUPS_PER_SESSION = 1
/** How long a successful answer is reused, and how many names are kept. */
const LOOKUP_CACHE_MS = 5000
const LOOKUP_CACHE_SIZE = 1000

/**
 * Runs lookups within those bounds, first come first served among the sessions that have a free
 * slot. A slot is held until the lookup itself settles (not when its requester gave up); a queued
 * lookup whose requester gave up is dropped without running.
 */
class LookupGate {
  #active = 0
  readonly #perSession = new Map<string, number>()
  readonly #queue: Array<{ session: string; signal: AbortSignal; start: () => void }> = []

  run<T>(session: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        this.#active++
        this.#perSession.set(session, (this.#perSession.get(session) ?? 0) + 1)
        fn()
          .then(resolve, reject)
          .finally(() => {
            this.#active--
            const left = (this.#perSession.get(session) ?? 1) - 1
            if (left === 0) this.#perSession.delete(session)
            else this.#perSession.set(session, left)
            this.#next()
          })
      }
      this.#queue.push({ session, signal, start })
      this.#next()
    })
  }

  #next(): void {
    for (let i = 0; i < this.#queue.length && this.#active < MAX_LOOKUPS;) {
      const job = this.#queue[i]
      if (!job) break
      if (job.signal.aborted) {
        this.#queue.splice(i, 1)
        continue
      }
      if ((this.#perSession.get(job.session) ?? 0) >= MAX_LOOKUPS_PER_SESSION) {
        i++
        continue
      }
      this.#queue.splice(i, 1)
      job.start()
    }
  }
}

async function withTimeout<T>(make: (signal: AbortSignal) => Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const gaveUp = new AbortController()
  try {
    return await Promise.race([
      make(gaveUp.signal),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          gaveUp.abort()
          reject(Object.assign(new Error('lookup timed out'), { code: 'ETIMEOUT' }))
        }, ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** A lookup for node:net that answers what was resolved and checked, whatever it is asked. */
export function fixedLookup(addresses: readonly string[]): LookupFunction {
  return (_host: string, options: unknown, callback: unknown) => {
    const cb = (typeof options === 'function' ? options : callback) as (
      err: Error | null,
      address: string | Array<{ address: string; family: number }>,
      family?: number,
    ) => void
    const opts = (typeof options === 'object' && options !== null ? options : {}) as {
      all?: boolean
      family?: number | string
    }
    const want =
      opts.family === 4 || opts.family === 'IPv4'
        ? 4
        : opts.family === 6 || opts.family === 'IPv6'
          ? 6
          : 0
    const list = addresses
      .map((address) => ({ address, family: net.isIP(address) }))
      .filter((a) => want === 0 || a.family === want)
    if (list.length === 0) {
      const err = Object.assign(new Error('no checked address of that family'), {
        code: 'ENOTFOUND',
      })
      setImmediate(() => {
        cb(err, opts.all ? [] : '', 0)
      })
      return
    }
    const first = list[0] as { address: string; family: number }
    setImmediate(() => {
      if (opts.all) cb(null, list)
      else cb(null, first.address, first.family)
    })
  }
}

/**
 * The proxy's resolver: an answer is reused for LOOKUP_CACHE_MS (the caller checks its addresses
 * again on every use), so parallel connections to one host wait for one lookup, not one each in a
 * row; lookups run through the LookupGate; each request gives up after `timeoutMs` (an error with
 * code ETIMEOUT) while the lookup itself keeps its slot until it settles.
 */
export class CachingResolver {
  readonly #resolver: Resolver
  readonly #timeoutMs: number
  readonly #lookups = new LookupGate()
  readonly #answers = new Map<string, { at: number; addresses: string[] }>()

  constructor(resolver: Resolver, timeoutMs: number) {
    this.#resolver = resolver
    this.#timeoutMs = timeoutMs
  }

  /** The addresses of `name`, for `session` (whose lookups count against its own bound). */
  resolve(session: string, name: string): Promise<string[]> {
    return withTimeout((signal) => this.#resolve(session, signal, name), this.#timeoutMs)
  }

  async #resolve(session: string, signal: AbortSignal, name: string): Promise<string[]> {
    const cached = (): string[] | undefined => {
      const hit = this.#answers.get(name)
      return hit && Date.now() - hit.at < LOOKUP_CACHE_MS ? hit.addresses : undefined
    }
    const now = cached()
    if (now) return now
    return this.#lookups.run(session, signal, async () => {
      const again = cached()
      if (again) return again
      const addresses = await this.#resolver(name)
      if (this.#answers.size >= LOOKUP_CACHE_SIZE) this.#answers.clear()
      this.#answers.set(name, { at: Date.now(), addresses })
      return addresses
    })
  }
}
