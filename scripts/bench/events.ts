// 5. Event latency: from the timestamp Incus puts on a lifecycle event to the moment a /ws/events
// client has the matching clincus event. Our own `incus monitor` supplies the daemon's timestamps;
// both clocks are this machine's.
import { WebSocket } from 'ws'
import { SECTIONS, type BenchContext } from './context.ts'
import { createEmptySession, incus, LifecycleRecorder, randomHash } from './incus.ts'
import { percentile, round, waitFor, wallNow } from './stats.ts'

/** The clincus event a lifecycle action turns into (server/sessions/lifecycle.ts ACTION_RULES). */
const EVENT_FOR: Record<string, string> = {
  'instance-created': 'session.created',
  'instance-started': 'session.started',
  'instance-restarted': 'session.started',
  'instance-stopped': 'session.stopped',
  'instance-shutdown': 'session.stopped',
  'instance-deleted': 'session.deleted',
}

interface Received {
  type: string
  id: string
  at: number
  used: boolean
}

/** A /ws/events client plus our own monitor; pairs each Incus event with its clincus event. */
export class EventProbe {
  readonly #recorder = new LifecycleRecorder()
  readonly #ws: WebSocket
  readonly #received: Received[] = []
  readonly #prefix: string

  private constructor(ctx: BenchContext) {
    this.#prefix = ctx.prefix
    this.#ws = new WebSocket(`${ctx.server.wsUrl}/ws/events`, { headers: ctx.server.headers })
    this.#ws.on('message', (data: Buffer) => {
      const at = wallNow()
      try {
        const e = JSON.parse(data.toString('utf8')) as { type?: string; id?: string }
        if (e.type && e.id) this.#received.push({ type: e.type, id: e.id, at, used: false })
      } catch {
        // not an event we measure
      }
    })
  }

  static async open(ctx: BenchContext): Promise<EventProbe> {
    const p = new EventProbe(ctx)
    await new Promise<void>((resolve, reject) => {
      p.#ws.once('open', () => {
        resolve()
      })
      p.#ws.once('error', reject)
    })
    await p.#recorder.ready
    return p
  }

  /** Waits until the clincus event `type` for `id` has arrived. */
  async waitFor(type: string, id: string, timeoutMs = 15_000): Promise<void> {
    await waitFor(
      `${type} for ${id} on /ws/events`,
      () => this.#received.some((r) => r.type === type && r.id === id),
      timeoutMs,
      2,
    )
  }

  /** Latency (ms) of every Incus lifecycle event on our instances since `since` (epoch ms). */
  latencies(since: number): { ms: number[]; missing: number } {
    const ms: number[] = []
    let missing = 0
    for (const e of this.#recorder.events) {
      const type = EVENT_FOR[e.action]
      if (!type || e.at < since || !e.name.startsWith(this.#prefix)) continue
      const r = this.#received.find((x) => !x.used && x.type === type && x.id === e.name)
      if (!r) {
        missing++
        continue
      }
      r.used = true
      ms.push(r.at - e.at)
    }
    return { ms, missing }
  }

  async close(): Promise<void> {
    this.#ws.close()
    await this.#recorder.stop()
  }
}

export async function benchEvents(ctx: BenchContext, cycles = 40, startStops = 10): Promise<void> {
  const probe = await EventProbe.open(ctx)
  try {
    // Warm-up, not measured: the first event also pays for connections and JIT.
    const since = await (async () => {
      const warm = `${ctx.prefix}${randomHash()}-1`
      await createEmptySession(warm, '/bench/events')
      await probe.waitFor('session.created', warm)
      await incus(['delete', warm])
      await probe.waitFor('session.deleted', warm)
      return wallNow()
    })()
    // One at a time, as a person clicks: create (stopped, no rootfs) then delete.
    for (let i = 0; i < cycles; i++) {
      const name = `${ctx.prefix}${randomHash()}-1`
      await createEmptySession(name, '/bench/events')
      await probe.waitFor('session.created', name)
      await incus(['delete', name])
      await probe.waitFor('session.deleted', name)
    }
    ctx.progress(`events: ${cycles} create/delete cycles`)
    // Start and stop of a real container (the events a dashboard shows most).
    const real = `${ctx.prefix}${randomHash()}-1`
    await incus(['init', ctx.image, real, '--config', 'user.clincus.managed=true'])
    for (let i = 0; i < startStops; i++) {
      await incus(['start', real])
      await probe.waitFor('session.started', real)
      await incus(['stop', '--force', real])
      await probe.waitFor('session.stopped', real)
    }
    await incus(['delete', '--force', real])
    await probe.waitFor('session.deleted', real)
    ctx.progress(`events: ${startStops} start/stop cycles`)
    const { ms, missing } = probe.latencies(since)
    const p99 = percentile(ms, 0.99)
    ctx.record({
      section: SECTIONS.events,
      name: `Incus event → /ws/events client, one at a time: p99 (n=${ms.length})`,
      value: round(p99, 1),
      unit: 'ms',
      goal: 'p99 < 100 ms',
      met: p99 < 100 && missing === 0,
      note: missing > 0 ? `${missing} events never arrived` : 'floor: the Incus timestamp itself',
      detail: {
        p50: round(percentile(ms, 0.5), 1),
        max: round(Math.max(...ms), 1),
        missing,
      },
    })
    ctx.record({
      section: SECTIONS.events,
      name: 'Incus event → /ws/events client, one at a time: p50',
      value: round(percentile(ms, 0.5), 1),
      unit: 'ms',
    })
  } finally {
    await probe.close()
  }
}
