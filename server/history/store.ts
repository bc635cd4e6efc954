import { mkdir, open, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { Type, type Static } from 'typebox'
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

type HistoryRecord = Static<typeof StartRecord> | Static<typeof EndRecord>

function parseRecord(text: string): HistoryRecord | null {
  try {
    const v: unknown = JSON.parse(text)
    return Value.Check(StartRecord, v) || Value.Check(EndRecord, v) ? v : null
  } catch {
    return null
  }
}

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
  // a+: appends, and reads the last byte to see whether the file ends a line.
  const handle = await open(file, 'a+', 0o600)
  try {
    const { size } = await handle.stat()
    try {
      // A crash can leave a torn last line (no newline, or a tail of NULs where the file system
      // extended the file but the data never landed): start on a fresh line, so the new record is
      // never glued to it.
      let prefix = ''
      if (size > 0) {
        const last = Buffer.alloc(1)
        await handle.read(last, 0, 1, size - 1)
        if (last[0] !== 0x0a) prefix = '\n'
      }
      // A full disk can first accept part of the line (a short write), then refuse the rest.
      const buf = Buffer.from(prefix + line)
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
  #badLines = 0

  constructor(file: string) {
    this.file = file
  }

  async #read(): Promise<HistoryRecord[]> {
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
    const out: HistoryRecord[] = []
    let bad = 0
    for (const line of text.split('\n')) {
      if (!line.trim()) continue
      // NULs are a crash's tail (see appendLine): what lies between them may still be a record.
      let damaged = line.includes('\0')
      for (const piece of line.split(/\0+/)) {
        if (!piece.trim()) continue
        const record = parseRecord(piece)
        if (record) out.push(record)
        else {
          // Written by a version that glued a record to a torn line: the record is the last one.
          const at = piece.lastIndexOf('{"type":')
          const salvaged = at > 0 ? parseRecord(piece.slice(at)) : null
          if (salvaged) out.push(salvaged)
          damaged = true
        }
      }
      if (damaged) bad++
    }
    this.#badLines = bad
    return out
  }

  /** Damaged lines skipped by the last read (a crash's torn tail); the rest stays readable. */
  get badLines(): number {
    return this.#badLines
  }

  async #openMap(): Promise<Map<string, string[]>> {
    if (this.#open) return this.#open
    const open = new Map<string, string[]>()
    for (const r of await this.#read()) {
      const id = r.id
      const sid = r.session_id
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
      const sid = r.session_id
      if (r.type === 'start') {
        entries.set(sid, {
          session_id: sid,
          id: r.id,
          workspace: r.workspace,
          tool: r.tool,
          persistent: r.persistent === true,
          started_at: r.time,
          ended_at: null,
        })
      } else {
        const e = entries.get(sid)
        if (e) e.ended_at = r.time
      }
    }
    const sorted = [...entries.values()]
      .reverse()
      .sort((a, b) => (a.started_at < b.started_at ? 1 : a.started_at > b.started_at ? -1 : 0))
    return sorted.slice(offset, limit === 0 ? undefined : offset + limit)
  }
}
