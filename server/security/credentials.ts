import { createHash, randomBytes } from 'node:crypto'

/**
 * The short- and medium-lived browser credentials, kept in memory and only as SHA-256 hashes
 * (a heap dump or a log line never holds a usable secret):
 *
 * - a sign-in **code**: printed in the banner link, single use, expires after `codeTtlMs`;
 * - a sign-in **session**: what a browser holds after signing in (with the code or the token);
 *   random 256 bits, expires when idle for `idleMs` and at the latest `absoluteMs` after sign-in,
 *   revoked by signing out; kept by the page in its own origin's storage and sent as a Bearer
 *   header, so (unlike a cookie) no other port on the same host ever receives it;
 * - a WebSocket **ticket**: minted by an authenticated POST, single use, `ticketTtlMs`, dies with
 *   the sign-in session it was minted for. Browsers cannot set headers on a WebSocket, so the
 *   ticket rides on the URL; being single use and short-lived, a copy in a log is worthless.
 *
 * Every map is bounded: the oldest entry is dropped first (Maps iterate in insertion order).
 */
export interface CredentialLimits {
  codeTtlMs: number
  ticketTtlMs: number
  idleMs: number
  absoluteMs: number
  maxSessions: number
  maxCodes: number
  maxTickets: number
}

export const DEFAULT_LIMITS: CredentialLimits = {
  codeTtlMs: 10 * 60_000,
  ticketTtlMs: 30_000,
  idleMs: 24 * 3600_000,
  absoluteMs: 7 * 24 * 3600_000,
  maxSessions: 1000,
  maxCodes: 100,
  maxTickets: 1000,
}

/** A random 256-bit secret in base64url (43 characters). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url')
}

/** The hash a secret is stored and looked up (and rate-limited) by; never the secret itself. */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

interface SessionEntry {
  createdAt: number
  lastUsed: number
}

export interface SignInSession {
  /** Hash of the secret: the session's identity in logs, tickets and the rate limiter. */
  id: string
  expiresAt: number
}

export class Credentials {
  readonly #limits: CredentialLimits
  readonly #now: () => number
  readonly #sessions = new Map<string, SessionEntry>()
  readonly #codes = new Map<string, number>()
  readonly #tickets = new Map<string, { expires: number; owner: string | null }>()
  /** What to close when a session ends: the long-lived connections it opened. */
  readonly #closers = new Map<string, Set<() => void>>()

  constructor(limits: Partial<CredentialLimits> = {}, now: () => number = Date.now) {
    this.#limits = { ...DEFAULT_LIMITS, ...limits }
    this.#now = now
  }

  get limits(): CredentialLimits {
    return this.#limits
  }

  /** A new single-use sign-in code (the banner link). */
  issueCode(): { code: string; expiresAt: number } {
    const code = newSecret()
    const expires = this.#now() + this.#limits.codeTtlMs
    bounded(this.#codes, this.#limits.maxCodes).set(secretHash(code), expires)
    return { code, expiresAt: expires }
  }

  /** Whether `code` would be accepted now, without using it up (the limiter's allow-list). */
  peekCode(code: string): boolean {
    const expires = this.#codes.get(secretHash(code))
    return expires !== undefined && expires > this.#now()
  }

  /** Uses the code up; true when it was valid. */
  consumeCode(code: string): boolean {
    const key = secretHash(code)
    const expires = this.#codes.get(key)
    this.#codes.delete(key)
    return expires !== undefined && expires > this.#now()
  }

  /** Starts a sign-in session; the secret is returned once and never stored. */
  createSession(): { secret: string; session: SignInSession } {
    const secret = newSecret()
    const now = this.#now()
    const id = secretHash(secret)
    bounded(this.#sessions, this.#limits.maxSessions).set(id, { createdAt: now, lastUsed: now })
    return { secret, session: { id, expiresAt: this.#expiry({ createdAt: now, lastUsed: now }) } }
  }

  /** The live session a presented secret names (refreshing its idle timer), or null. */
  useSession(secret: string): SignInSession | null {
    const id = secretHash(secret)
    const entry = this.#live(id)
    if (!entry) return null
    entry.lastUsed = this.#now()
    return { id, expiresAt: this.#expiry(entry) }
  }

  revokeSession(id: string): void {
    this.#sessions.delete(id)
    for (const [key, t] of this.#tickets) if (t.owner === id) this.#tickets.delete(key)
    this.#closeAll(id)
  }

  /**
   * Runs `close` when the session `id` is revoked (or found expired): a WebSocket or event
   * stream it opened must not outlive it. Returns the unsubscribe, for when the connection ends
   * first.
   */
  onRevoke(id: string, close: () => void): () => void {
    let set = this.#closers.get(id)
    if (!set) this.#closers.set(id, (set = new Set()))
    set.add(close)
    return () => {
      set.delete(close)
      if (set.size === 0 && this.#closers.get(id) === set) this.#closers.delete(id)
    }
  }

  #closeAll(id: string): void {
    const set = this.#closers.get(id)
    this.#closers.delete(id)
    for (const close of set ?? []) close()
  }

  /** A single-use WebSocket ticket for the holder of `owner` (a session id; null for the token). */
  issueTicket(owner: string | null): { ticket: string; expiresAt: number } {
    const ticket = newSecret()
    const expires = this.#now() + this.#limits.ticketTtlMs
    bounded(this.#tickets, this.#limits.maxTickets).set(secretHash(ticket), { expires, owner })
    return { ticket, expiresAt: expires }
  }

  /** Uses the ticket up; returns its owner when it was valid (and its session still is). */
  consumeTicket(ticket: string): { owner: string | null } | null {
    const key = secretHash(ticket)
    const t = this.#tickets.get(key)
    this.#tickets.delete(key)
    if (!t || t.expires <= this.#now()) return null
    if (t.owner !== null && !this.#live(t.owner)) return null
    return { owner: t.owner }
  }

  #live(id: string): SessionEntry | null {
    const entry = this.#sessions.get(id)
    if (!entry) return null
    if (this.#expiry(entry) <= this.#now()) {
      this.#sessions.delete(id)
      this.#closeAll(id)
      return null
    }
    return entry
  }

  #expiry(e: SessionEntry): number {
    return Math.min(e.lastUsed + this.#limits.idleMs, e.createdAt + this.#limits.absoluteMs)
  }
}

/** Makes room for one more entry by dropping the oldest ones. */
function bounded<K, V>(map: Map<K, V>, max: number): Map<K, V> {
  while (map.size >= max) {
    const oldest = map.keys().next()
    if (oldest.done) break
    map.delete(oldest.value)
  }
  return map
}
