// Test clients for the terminal and event sockets: collect what arrives, and await conditions
// on it with a deadline instead of sleeping.
import { WebSocket, type RawData } from 'ws'
import { ackFrame, inputFrame, Op, parseFrame, resizeFrame } from '../../shared/ws/terminal.ts'

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000
  const until = Date.now() + timeoutMs
  let delay = opts.intervalMs ?? 20
  for (;;) {
    const v = await check()
    if (v !== undefined && v !== false) return v
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, delay))
    delay = Math.min(delay * 2, opts.intervalMs ?? 200)
  }
}

export interface Closed {
  code: number
  reason: string
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

/**
 * A terminal client for either protocol. Output is kept as bytes (`output`) and as text; v1
 * clients acknowledge what they receive unless `autoAck` is false.
 */
export class TerminalClient {
  readonly ws: WebSocket
  readonly protocol: 'raw' | 'v1'
  readonly opened: Promise<void>
  readonly closed: Promise<Closed>
  /** Every output byte, in order (drop with `clear()` in long tests). */
  chunks: Buffer[] = []
  bytes = 0
  frames = 0
  textFrames = 0
  exitCode: number | undefined
  errors: string[] = []
  autoAck: boolean
  #listeners = new Set<(chunk: Buffer) => void>()
  #closedWith: Closed | undefined

  constructor(
    url: string,
    opts: { protocol?: 'raw' | 'v1'; autoAck?: boolean; keep?: boolean } = {},
  ) {
    this.protocol = opts.protocol ?? 'raw'
    this.autoAck = opts.autoAck ?? true
    const keep = opts.keep ?? true
    this.ws = new WebSocket(url, this.protocol === 'v1' ? ['clincus.v1'] : [])
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => {
        resolve()
      })
      this.ws.once('error', reject)
    })
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.#closedWith = { code, reason: reason.toString() }
        resolve(this.#closedWith)
      })
    })
    this.ws.on('error', () => undefined)
    this.ws.on('message', (data, isBinary) => {
      const buf = toBuffer(data)
      this.frames++
      let out: Buffer
      if (this.protocol === 'raw') {
        if (!isBinary) this.textFrames++
        out = buf
      } else {
        const f = parseFrame(buf)
        if (!f) throw new Error('malformed frame from the server')
        if (f.op === Op.EXIT) {
          this.exitCode = f.code
          return
        }
        if (f.op === Op.ERROR) {
          this.errors.push(f.message)
          return
        }
        if (f.op !== Op.OUTPUT) throw new Error(`unexpected opcode ${f.op}`)
        out = Buffer.from(f.data)
        if (this.autoAck) this.ws.send(ackFrame(out.length))
      }
      this.bytes += out.length
      if (keep) this.chunks.push(out)
      for (const l of this.#listeners) l(out)
    })
  }

  get closedWith(): Closed | undefined {
    return this.#closedWith
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8')
  }

  get output(): Buffer {
    return Buffer.concat(this.chunks)
  }

  clear(): void {
    this.chunks = []
  }

  onOutput(listener: (chunk: Buffer) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  send(input: string | Buffer): void {
    if (this.protocol === 'v1') this.ws.send(inputFrame(input))
    else this.ws.send(input)
  }

  resize(cols: number, rows: number): void {
    this.ws.send(resizeFrame(cols, rows))
  }

  /** Waits until the output (as text, ANSI sequences stripped) contains `needle`. */
  async waitFor(needle: string | RegExp, timeoutMs = 15_000): Promise<void> {
    await waitUntil(
      `${String(needle)} in the terminal output`,
      () => {
        const t = stripAnsi(this.text)
        return typeof needle === 'string' ? t.includes(needle) : needle.test(t)
      },
      { timeoutMs, intervalMs: 20 },
    ).catch((err: unknown) => {
      const tail = JSON.stringify(stripAnsi(this.text).slice(-600))
      throw new Error(`${String(err)}; ${this.bytes} bytes so far, ending ${tail}`, { cause: err })
    })
  }

  async close(): Promise<Closed> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.close(1000)
    return this.closed
  }
}

/** Removes CSI/OSC/charset escape sequences (tmux redraws interleave them with text). */
export function stripAnsi(s: string): string {
  return s.replace(
    // eslint-disable-next-line no-control-regex -- matching escape sequences is the point
    /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78M])/g,
    '',
  )
}

/** An /ws/events client that keeps every event it receives. */
export class EventsClient {
  readonly ws: WebSocket
  readonly opened: Promise<void>
  readonly closed: Promise<Closed>
  events: Array<{ type: string; [k: string]: unknown }> = []
  times: number[] = []

  constructor(url: string) {
    this.ws = new WebSocket(url)
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => {
        resolve()
      })
      this.ws.once('error', reject)
    })
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString() })
      })
    })
    this.ws.on('error', () => undefined)
    this.ws.on('message', (data) => {
      this.events.push(JSON.parse(toBuffer(data).toString('utf8')) as { type: string })
      this.times.push(performance.now())
    })
  }

  /** The first event (at or after index `from`) matching, with its receipt time. */
  async next(
    match: (e: { type: string; [k: string]: unknown }) => boolean,
    opts: { from?: number; timeoutMs?: number } = {},
  ): Promise<{ event: { type: string; [k: string]: unknown }; at: number; index: number }> {
    return waitUntil(
      'a matching event',
      () => {
        for (let i = opts.from ?? 0; i < this.events.length; i++) {
          const e = this.events[i]
          if (e && match(e)) return { event: e, at: this.times[i] ?? 0, index: i }
        }
        return undefined
      },
      { timeoutMs: opts.timeoutMs ?? 10_000, intervalMs: 5 },
    )
  }

  async close(): Promise<Closed> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000)
    return this.closed
  }
}

export interface SseEvent {
  id?: number
  event?: string
  data: string
}

/** Parses an SSE byte stream into events (comments counted, not kept). */
export class SseParser {
  events: SseEvent[] = []
  comments = 0
  #buf = ''

  push(chunk: string): void {
    this.#buf += chunk
    let i
    while ((i = this.#buf.indexOf('\n\n')) >= 0) {
      const block = this.#buf.slice(0, i)
      this.#buf = this.#buf.slice(i + 2)
      const e: SseEvent = { data: '' }
      let isEvent = false
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.comments++
        else if (line.startsWith('id: ')) e.id = Number(line.slice(4))
        else if (line.startsWith('event: ')) e.event = line.slice(7)
        else if (line.startsWith('data: ')) {
          e.data += (isEvent ? '\n' : '') + line.slice(6)
          isEvent = true
        }
      }
      if (isEvent) this.events.push(e)
    }
  }
}

/** GET /api/events over real HTTP (fetch), optionally resuming after `lastEventId`. */
export class SseClient {
  readonly parser = new SseParser()
  readonly #abort = new AbortController()
  readonly done: Promise<void>
  status = 0

  constructor(url: string, lastEventId?: number) {
    const headers: Record<string, string> = {}
    if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId)
    this.done = (async () => {
      try {
        const res = await fetch(url, { headers, signal: this.#abort.signal })
        this.status = res.status
        if (!res.body) return
        const decoder = new TextDecoder()
        const reader = res.body.getReader()
        for (let r = await reader.read(); !r.done; r = await reader.read()) {
          const chunk: unknown = r.value
          if (chunk instanceof Uint8Array) this.parser.push(decoder.decode(chunk, { stream: true }))
        }
      } catch (err) {
        if (!this.#abort.signal.aborted) throw err
      }
    })()
  }

  get events(): SseEvent[] {
    return this.parser.events
  }

  async close(): Promise<void> {
    this.#abort.abort()
    await this.done
  }
}
