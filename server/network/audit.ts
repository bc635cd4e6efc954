// What each session reached and what was refused: a bounded ring in memory per session, appended
// to `<dir>/<session>.jsonl` so it survives restarts, reloaded on startup, deleted with the
// session. Records hold host, port, verdict, reason, byte counts and duration, never a URL, a
// path, a query string or a credential.
import { appendFile, mkdir, open, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { Value } from 'typebox/value'
import { NetworkConnectionSchema, type NetworkConnection } from '../../shared/schemas/network.ts'
import { writeFileAtomic } from '../fs/atomic-write.ts'

export interface AuditOptions {
  /** Directory of the per-session files (`<paths.sessions_dir>/network`, default ~/.clincus/sessions/network). */
  dir: string
  log: Logger
  /** Records kept per session in memory (and after a trim, on disk). Default 2000. */
  ringSize?: number
  /** A session's file is cut back to the ring when it grows past this. Default 1 MiB. */
  maxFileBytes?: number
}

/** Lines waiting for the disk per session, beyond which a flood's records stay in memory only. */
const MAX_PENDING_LINES = 5000

/** Container names only (naming.ts): nothing else ever becomes a file name. */
const SAFE_ID = /^[a-z][a-z0-9-]{0,62}$/

class Ring {
  readonly #items: NetworkConnection[] = []
  readonly #size: number
  constructor(size: number) {
    this.#size = size
  }
  push(r: NetworkConnection): void {
    this.#items.push(r)
    if (this.#items.length > this.#size) this.#items.splice(0, this.#items.length - this.#size)
  }
  get length(): number {
    return this.#items.length
  }
  /** Newest first. */
  page(offset: number, limit: number): NetworkConnection[] {
    const out: NetworkConnection[] = []
    for (let i = this.#items.length - 1 - offset; i >= 0 && out.length < limit; i--) {
      const item = this.#items[i]
      if (item) out.push(item)
    }
    return out
  }
  all(): NetworkConnection[] {
    return [...this.#items]
  }
}

const RecordSchema = NetworkConnectionSchema

export class NetworkAudit {
  readonly #o: Required<AuditOptions>
  readonly #rings = new Map<string, Ring>()
  /** Appends per session, in order, never two writers on one file. */
  readonly #chains = new Map<string, Promise<void>>()
  readonly #pending = new Map<string, string[]>()
  #dropped = 0

  constructor(opts: AuditOptions) {
    this.#o = { ringSize: 2000, maxFileBytes: 1024 * 1024, ...opts }
  }

  #file(id: string): string | null {
    return SAFE_ID.test(id) ? join(this.#o.dir, `${id}.jsonl`) : null
  }

  #ring(id: string): Ring {
    let r = this.#rings.get(id)
    if (!r) {
      r = new Ring(this.#o.ringSize)
      this.#rings.set(id, r)
    }
    return r
  }

  /** Loads the files of `ids` (the sessions that exist) and deletes files of any other. */
  async load(ids: readonly string[]): Promise<void> {
    await mkdir(this.#o.dir, { recursive: true, mode: 0o700 })
    const keep = new Set(ids)
    let names: string[]
    try {
      names = await readdir(this.#o.dir)
    } catch (err) {
      this.#o.log.warn({ err }, 'cannot read the network audit directory')
      return
    }
    for (const name of names) {
      const id = name.endsWith('.jsonl') ? name.slice(0, -'.jsonl'.length) : null
      if (id === null || !SAFE_ID.test(id)) continue
      if (!keep.has(id)) {
        await rm(join(this.#o.dir, name), { force: true }).catch(() => undefined)
        continue
      }
      if (this.#rings.has(id)) continue
      const ring = this.#ring(id)
      for (const r of await this.#read(join(this.#o.dir, name))) ring.push(r)
    }
  }

  /** The records of a file: bounded read of its tail; bad or torn lines skipped. */
  async #read(file: string): Promise<NetworkConnection[]> {
    let text: string
    try {
      const handle = await open(file, 'r')
      try {
        const { size } = await handle.stat()
        const length = Math.min(size, this.#o.maxFileBytes * 2)
        const buf = Buffer.alloc(length)
        await handle.read(buf, 0, length, size - length)
        text = buf.toString('utf8')
      } finally {
        await handle.close()
      }
    } catch {
      return []
    }
    // A crash mid-line: end it, so the next record starts on a line of its own.
    if (text !== '' && !text.endsWith('\n')) await appendFile(file, '\n').catch(() => undefined)
    const out: NetworkConnection[] = []
    for (const line of text.split('\n')) {
      if (!line.trim()) continue
      try {
        const v: unknown = JSON.parse(line)
        if (Value.Check(RecordSchema, v)) out.push(v)
      } catch {
        // a torn or foreign line
      }
    }
    return out
  }

  record(id: string, r: NetworkConnection): void {
    this.#ring(id).push(r)
    const file = this.#file(id)
    if (!file) return
    // Lines wait in a bounded queue and go out in one append per flush: a flood of connections
    // from a hostile agent costs memory up to the bound, never an unbounded chain of writes.
    const queue = this.#pending.get(id) ?? []
    if (queue.length >= MAX_PENDING_LINES) {
      this.#dropped++
      return
    }
    queue.push(JSON.stringify(r))
    this.#pending.set(id, queue)
    if (this.#chains.has(id)) return
    const run = this.#drain(id, file)
      .catch((err: unknown) => {
        this.#o.log.warn({ err, session: id }, 'could not write the network audit')
      })
      .finally(() => {
        this.#chains.delete(id)
      })
    this.#chains.set(id, run)
  }

  async #drain(id: string, file: string): Promise<void> {
    await mkdir(this.#o.dir, { recursive: true, mode: 0o700 })
    for (;;) {
      const lines = this.#pending.get(id)
      if (!lines || lines.length === 0) {
        this.#pending.delete(id)
        return
      }
      this.#pending.set(id, [])
      // No fsync per line (a busy session opens hundreds of connections a minute): a crash
      // may cost the last lines; a torn one is ended on the next load.
      await appendFile(file, `${lines.join('\n')}\n`, { mode: 0o600 })
      const { size } = await stat(file)
      if (size > this.#o.maxFileBytes) {
        const ring = this.#rings.get(id)
        const keep = (ring?.all() ?? []).slice(-Math.floor(this.#o.ringSize / 2))
        await writeFileAtomic(file, keep.map((x) => JSON.stringify(x)).join('\n') + '\n', {
          mode: 0o600,
        })
      }
    }
  }

  /** Lines not written because the queue was full (a flood), since the start. */
  get dropped(): number {
    return this.#dropped
  }

  page(id: string, offset: number, limit: number): { total: number; items: NetworkConnection[] } {
    const ring = this.#rings.get(id)
    return ring ? { total: ring.length, items: ring.page(offset, limit) } : { total: 0, items: [] }
  }

  /** Drops a deleted session's records, memory and file. */
  async forget(id: string): Promise<void> {
    this.#rings.delete(id)
    this.#pending.delete(id)
    await (this.#chains.get(id) ?? Promise.resolve())
    const file = this.#file(id)
    if (file) await rm(file, { force: true }).catch(() => undefined)
  }

  /** Waits for pending writes (shutdown, tests). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.#chains.values()])
  }
}
