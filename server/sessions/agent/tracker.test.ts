// The tracker and the reconciler together (fake Incus): lines through the session's socket
// turned into `session.agent` events by the reconciler (the one writer), no agent on a session
// that does not run, a fresh start after a stop, and one session's garbage never reaching another.
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import type { ServerEvent } from '../../../shared/schemas/events.ts'
import { EventHub } from '../../events/hub.ts'
import { HistoryStore } from '../../history/store.ts'
import { FakeIncusDriver } from '../../incus/fake-driver.ts'
import { testSessionSockets } from '../../network/session-sockets.test-support.ts'
import { waitUntil } from '../../test/ws-client.ts'
import { SessionReconciler } from '../reconciler.ts'
import { LABEL } from '../registry.ts'
import { AgentTracker } from './tracker.ts'

const A = 'clincus-0123abcd-1'
const B = 'clincus-0123abcd-2'
const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), 'clincus-tracker-'))
  const driver = new FakeIncusDriver()
  const hub = new EventHub()
  const log = pino({ level: 'silent' })
  const r = new SessionReconciler({
    driver,
    prefix: 'clincus-',
    hub,
    history: new HistoryStore(join(dir, 'history.jsonl')),
    log,
  })
  for (const id of [A, B])
    driver.addInstance(id, {
      status: 'Running',
      config: { [LABEL.managed]: 'true', [LABEL.workspace]: '/w', [LABEL.tool]: 'claude' },
    })
  await r.resync()
  r.setLive(true)
  const tracker = new AgentTracker({
    driver,
    reconciler: r,
    log,
    codeUser: () => ({ uid: 1000, home: '/home/code' }),
    options: {
      machine: { graceMs: 50, minGapMs: 0 },
      screenIntervalMs: 0,
    },
  })
  const sockets = await testSessionSockets({
    log,
    hooks: (id, socket, head) => {
      tracker.accept(id, socket, head)
    },
  })
  cleanup.push(async () => {
    await sockets.dispose()
    await tracker.dispose()
    await rm(dir, { recursive: true, force: true })
  })
  const events: ServerEvent[] = []
  hub.subscribe(({ event }) => events.push(event))
  const agents = (id: string) =>
    events.flatMap((e) => (e.type === 'session.agent' && e.id === id ? [e.agent] : []))
  /** Opens the session's socket (the egress service does, in the app); returns its path. */
  const open = async (id: string): Promise<string> => {
    await sockets.open(id)
    return sockets.path(id)
  }
  return { driver, r, tracker, events, agents, open }
}

async function send(path: string, text: string): Promise<void> {
  const s = net.connect(path)
  s.on('error', () => undefined)
  s.end(text)
  await new Promise<void>((resolve) => {
    s.once('close', () => {
      resolve()
    })
  })
}

describe('AgentTracker', () => {
  it('hook lines become session.agent events and the session’s agent; garbage changes nothing', async () => {
    const t = await setup()
    const path = await t.open(A)
    await t.open(B)
    await send(
      path,
      '{garbage\n{"hook_event_name":"UserPromptSubmit"}\n{"hook_event_name":"PreToolUse"}\n',
    )
    await waitUntil('working', () => t.agents(A).length === 1)
    expect(t.agents(A)[0]).toMatchObject({ status: 'working' })
    expect(t.r.cached(A)?.agent?.status).toBe('working')
    await send(
      path,
      '{"hook_event_name":"Notification","message":"Proceed?","notification_type":"elicitation_dialog"}\n',
    )
    await waitUntil('waiting', () => t.agents(A).length === 2)
    expect(t.agents(A)[1]).toMatchObject({ status: 'waiting', reason: 'Proceed?' })
    expect(t.agents(B)).toEqual([])
    expect(t.r.cached(B)?.agent).toBeUndefined()
  })

  it('a stopped session has no agent; its next launch starts from nothing', async () => {
    const t = await setup()
    const path = await t.open(A)
    await send(path, '{"hook_event_name":"Stop"}\n')
    await waitUntil('idle', () => t.r.cached(A)?.agent?.status === 'idle')
    await t.r.stopped(A)
    expect(t.r.cached(A)?.agent).toBeUndefined()
    const stopped = t.events.findLast((e) => e.type === 'session.stopped')
    expect(stopped && 'session' in stopped ? stopped.session?.agent : 'none').toBeUndefined()
    // Started again (as a resume does): the same idle is announced again.
    const inst = t.driver.instances.get(A)
    if (inst) inst.status = 'Running'
    await t.r.fetch(A)
    expect(t.r.cached(A)?.status).toBe('running')
    expect(t.r.cached(A)?.agent).toBeUndefined()
    await send(path, '{"hook_event_name":"SessionStart"}\n')
    await waitUntil('idle again', () => t.r.cached(A)?.agent?.status === 'idle')
    expect(t.agents(A).map((a) => a.status)).toEqual(['idle', 'idle'])
  })

  it('a screen trigger reads the pane once: back at the shell is exited; a flood of triggers is coalesced', async () => {
    const t = await setup()
    const path = await t.open(A)
    let reads = 0
    let running = '1'
    t.driver.execHandler = (_name, argv) => {
      if (argv[0] !== 'bash' || argv[3] !== 'clincus-screen') return undefined
      reads++
      return { exitCode: 0, stdout: `${running}|0|title\n$ \n`, stderr: '' }
    }
    // The tool still runs: the placeholder classifier says nothing, so nothing is announced.
    await send(path, '{"hook_event_name":"ClincusScreenSilence"}\n')
    await waitUntil('a read', () => reads === 1)
    running = '0'
    await send(path, '{"hook_event_name":"ClincusScreenBell"}\n'.repeat(50))
    await waitUntil('exited', () => t.r.cached(A)?.agent?.status === 'exited')
    expect(reads).toBeLessThanOrEqual(3)
    expect(t.agents(A).map((a) => a.status)).toEqual(['exited'])
  })

  it('at startup a running session’s screen is read once', async () => {
    const t = await setup()
    let reads = 0
    t.driver.execHandler = (_name, argv) => {
      if (argv[3] !== 'clincus-screen') return undefined
      reads++
      return { exitCode: 0, stdout: '0|0|\n$ \n', stderr: '' }
    }
    const inst = t.driver.instances.get(A)
    if (!inst) throw new Error('no instance')
    await t.tracker.attach(inst)
    await waitUntil('exited', () => t.r.cached(A)?.agent?.status === 'exited')
    expect(reads).toBe(1)
    expect(t.driver.callsOf('deviceAdd')).toHaveLength(0)
  })

  it('a pane read is bounded in bytes: the container prints it', async () => {
    const t = await setup()
    let limit: number | undefined
    t.driver.execHandler = (_name, argv, opts) => {
      if (argv[3] !== 'clincus-screen') return undefined
      limit = opts.maxOutputBytes
      return { exitCode: 0, stdout: '0|0|\n$ \n', stderr: '' }
    }
    const inst = t.driver.instances.get(A)
    if (!inst) throw new Error('no instance')
    await t.tracker.attach(inst)
    await waitUntil('exited', () => t.r.cached(A)?.agent?.status === 'exited')
    expect(limit).toBeDefined()
    expect(limit).toBeLessThanOrEqual(1024 * 1024)
  })

  it("forget closes the session's hook connections and drops its counters", async () => {
    const t = await setup()
    const held = net.connect(await t.open(A))
    held.on('error', () => undefined)
    const closed = new Promise((resolve) => held.once('close', resolve))
    held.write('{')
    await waitUntil('connected', () => t.tracker.counters(A)?.open === 1)
    await t.tracker.forget(A)
    await closed
    expect(t.tracker.counters(A)).toBeUndefined()
  })
})
