import { mkdir, open, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import type { HistoryEntry } from '../../shared/schemas/sessions.ts'
import { AppError } from '../errors.ts'

const StartRecord = Type.Object({
  type: Type.Literal('start'),
  session_id: Type.String(),
  id: Type.String(),
  workspace: Type.String(),
  tool: Type.String(),
  persistent: Type.Optional(Type.Boolean()),
  time: Type.String(),
})
const EndRecord = Type.Object({
  type: Type.Literal('end'),
  session_id: Type.String(),
  id: Type.String(),
  time: Type.String(),
})

export interface StartInfo {
  sessionId: string
  id: string
  workspace: string
  tool: string
  persistent: boolean
  time: Date
}

/**
 * Appends one line; when the write fails part-way (a full disk), the file is cut back to its
 * previous length so no half record is left for the next line to be glued to.
 */
export async function appendLine(file: string, line: string): Promise<void> {
  const handle = await open(file, 'a', 0o600)
  try {
    const { size } = await handle.stat()
    try {
      // A full disk can first accept part of the line (a short write), then refuse the rest.
      const buf = Buffer.from(line)
      for (let off = 0; off < buf.length;) {
        const { bytesWritten } = await handle.write(buf, off, buf.length - off)
        off += bytesWritten
      }
      await handle.datasync()
    } catch (err) {
      await handle.truncate(size).catch(() => undefined)
      throw err
    }
  } finally {
    await handle.close()
  }
}

export class HistoryWriteError extends AppError {
  constructor(file: string, cause: unknown) {
    super(
      500,
      'history_write_failed',
      `could not write session history to ${file}: ${(cause as Error).message}`,
      { cause, expose: true },
    )
  }
}

/**
 * ~/.clincus/history.jsonl: one `start` record per launch (with a unique session_id) and one `end`
 * record when it stops. Each record is a single append of one line, so a crash never leaves half a
 * record that later lines depend on; unreadable lines are skipped.
 */
export class HistoryStore {
  readonly file: string
  #chain: Promise<unknown> = Promise.resolve()
  /** container name → open session ids (a launch without an end yet). */
  #open: Map<string, string[]> | null = null

  constructor(file: string) {
    this.file = file
  }

  async #read(): Promise<Array<{ type: 'start' | 'end'; [k: string]: unknown }>> {
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw new AppError(
        500,
        'history_read_failed',
        `could not read session history: ${(err as Error).message}`,
        { expose: true },
      )
    }
    const out: Array<{ type: 'start' | 'end'; [k: string]: unknown }> = []
    for (const line of text.split('\n')) {
      if (!line.trim()) continue
      try {
        const v: unknown = JSON.parse(line)
        if (Value.Check(StartRecord, v) || Value.Check(EndRecord, v)) out.push(v)
      } catch {
        // a damaged line is skipped, the rest of the history stays readable
      }
    }
    return out
  }

  async #openMap(): Promise<Map<string, string[]>> {
    if (this.#open) return this.#open
    const open = new Map<string, string[]>()
    for (const r of await this.#read()) {
      const id = String(r.id)
      const sid = String(r.session_id)
      if (r.type === 'start') open.set(id, [...(open.get(id) ?? []), sid])
      else
        open.set(
          id,
          (open.get(id) ?? []).filter((s) => s !== sid),
        )
    }
    this.#open = open
    return open
  }

  #append(record: object): Promise<void> {
    const run = this.#chain.then(async () => {
      try {
        await mkdir(dirname(this.file), { recursive: true, mode: 0o700 })
        await appendLine(this.file, JSON.stringify(record) + '\n')
      } catch (err) {
        throw new HistoryWriteError(this.file, err)
      }
    })
    this.#chain = run.catch(() => undefined)
    return run
  }

  async recordStart(info: StartInfo): Promise<void> {
    const open = await this.#openMap()
    await this.#append({
      type: 'start',
      session_id: info.sessionId,
      id: info.id,
      workspace: info.workspace,
      tool: info.tool,
      persistent: info.persistent,
      time: info.time.toISOString(),
    })
    open.set(info.id, [...(open.get(info.id) ?? []), info.sessionId])
  }

  /** Ends every open launch of container `id`; a no-op when none is open (stops are seen twice). */
  async recordEnd(id: string, time: Date): Promise<number> {
    const open = await this.#openMap()
    const sessions = open.get(id) ?? []
    if (sessions.length === 0) return 0
    open.set(id, [])
    for (const sid of sessions)
      await this.#append({ type: 'end', session_id: sid, id, time: time.toISOString() })
    return sessions.length
  }

  async openSessions(id: string): Promise<string[]> {
    return [...((await this.#openMap()).get(id) ?? [])]
  }

  async list(limit: number, offset: number): Promise<HistoryEntry[]> {
    const entries = new Map<string, HistoryEntry>()
    for (const r of await this.#read()) {
      const sid = String(r.session_id)
      if (r.type === 'start') {
        entries.set(sid, {
          session_id: sid,
          id: String(r.id),
          workspace: String(r.workspace),
          tool: String(r.tool),
          persistent: r.persistent === true,
          started_at: String(r.time),
          ended_at: null,
        })
      } else {
        const e = entries.get(sid)
        if (e) e.ended_at = String(r.time)
      }
    }
    const sorted = [...entries.values()]
      .reverse()
      .sort((a, b) => (a.started_at < b.started_at ? 1 : a.started_at > b.started_at ? -1 : 0))
    return sorted.slice(offset, limit === 0 ? undefined : offset + limit)
  }
}
