// The reconciler: the action table applied to monitor events, command reports and resyncs, each
// publishing `session.*` events that carry the session object.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import type { ServerEvent } from '../../shared/schemas/events.ts'
import type { SessionStatus } from '../../shared/schemas/sessions.ts'
import { EventHub } from '../events/hub.ts'
import { HistoryStore } from '../history/store.ts'
import { FakeIncusDriver } from '../incus/fake-driver.ts'
import {
  ACTION_RULES,
  LifecycleActionSchema,
  parseAction,
  transitionEvents,
  type LifecycleAction,
} from './lifecycle.ts'
import { SessionReconciler } from './reconciler.ts'
import { LABEL } from './registry.ts'

const ID = 'clincus-0123abcd-1'
const dirs: string[] = []

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
})

async function setup(status = 'Running') {
  const dir = await mkdtemp(join(tmpdir(), 'clincus-reconciler-'))
  dirs.push(dir)
  const driver = new FakeIncusDriver()
  const hub = new EventHub()
  const history = new HistoryStore(join(dir, 'history.jsonl'))
  const debug: unknown[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => debug.push(JSON.parse(line)) })
  const r = new SessionReconciler({ driver, prefix: 'clincus-', hub, history, log })
  const inst = driver.addInstance(ID, {
    status,
    config: {
      [LABEL.managed]: 'true',
      [LABEL.workspace]: '/w',
      [LABEL.tool]: 'claude',
      [LABEL.persistent]: 'false',
    },
  })
  await r.resync()
  r.setLive(true)
  const events: ServerEvent[] = []
  hub.subscribe(({ event }) => events.push(event))
  return { driver, hub, history, r, inst, events, debug }
}

/** type:status of each event (status of the session it carries). */
function summary(events: ServerEvent[]): string[] {
  return events.map((e) => `${e.type}:${'session' in e && e.session ? e.session.status : '-'}`)
}

const ALL_ACTIONS: LifecycleAction[] = LifecycleActionSchema.anyOf.map((s) => s.const)

describe('the action table', () => {
  it('has a rule for every action of the union, and parses only those', () => {
    expect(Object.keys(ACTION_RULES).sort()).toEqual([...ALL_ACTIONS].sort())
    for (const a of ALL_ACTIONS) expect(parseAction(a)).toBe(a)
    expect(parseAction('instance-teleported')).toBeNull()
    expect(parseAction('')).toBeNull()
  })

  // What each action publishes for a running session the cache knows (the Incus state follows
  // the action, as it would in the daemon).
  const expected: Record<string, { incus?: string; events: string[] }> = {
    'instance-started': { events: [] },
    'instance-restarted': { events: ['session.started:running'] },
    'instance-resumed': { events: [] },
    'instance-paused': { incus: 'Frozen', events: ['session.frozen:frozen'] },
    'instance-stopped': { incus: 'Stopped', events: ['session.stopped:stopped'] },
    'instance-shutdown': { incus: 'Stopped', events: ['session.stopped:stopped'] },
    'instance-deleted': {
      incus: 'gone',
      events: ['session.stopped:stopped', 'session.deleted:running'],
    },
    'instance-updated': { events: [] },
    'instance-created': { events: [] },
  }

  it.each(ALL_ACTIONS)('%s on a running session', async (action) => {
    const t = await setup()
    const want = expected[action] ?? { events: [] }
    if (want.incus === 'gone') t.driver.instances.delete(ID)
    else if (want.incus) t.inst.status = want.incus
    t.r.onLifecycle({ action, name: ID, project: 'default', timestamp: new Date().toISOString() })
    await t.r.settled()
    expect(summary(t.events)).toEqual(want.events)
  })

  it('logs an unknown action at debug level and changes nothing', async () => {
    const t = await setup()
    expect(() => {
      t.r.onLifecycle({
        action: 'instance-teleported',
        name: ID,
        project: 'default',
        timestamp: '',
      })
    }).not.toThrow()
    await t.r.settled()
    expect(t.events).toEqual([])
    expect(t.debug).toContainEqual(
      expect.objectContaining({ action: 'instance-teleported', msg: 'lifecycle action ignored' }),
    )
    expect((await t.r.list())[0]?.status).toBe('running')
  })

  it("drops the agent status of what never became a session (a primed member's agent started ahead)", async () => {
    const { r, driver } = await setup()
    const member = 'clincus-w-0123456789'
    const since = new Date().toISOString()
    r.agent(member, { status: 'idle', since })
    r.agent(ID, { status: 'working', since })
    r.forgetAgent(member)
    // A session keeps its own (only the end of its launch drops it).
    r.forgetAgent(ID)
    expect((await r.list()).find((s) => s.id === ID)?.agent).toEqual({ status: 'working', since })
    // The name made a session later starts with no status from the member.
    const inst = driver.addInstance(member, {
      status: 'Running',
      config: {
        [LABEL.managed]: 'true',
        [LABEL.workspace]: '/w',
        [LABEL.tool]: 'claude',
        [LABEL.persistent]: 'false',
      },
    })
    const created = await r.created(inst, {
      sessionId: 's',
      id: member,
      workspace: '/w',
      tool: 'claude',
      persistent: false,
      time: new Date(),
    })
    expect(created?.agent).toBeUndefined()
  })

  it('ignores instances that are not ours by name', async () => {
    const t = await setup()
    t.r.onLifecycle({ action: 'instance-paused', name: 'web-1', project: 'default', timestamp: '' })
    await t.r.settled()
    expect(t.events).toEqual([])
    expect(t.driver.callsOf('getInstance')).toHaveLength(0)
  })
})

describe('transitionEvents', () => {
  it.each<[SessionStatus | undefined, SessionStatus | undefined, string[]]>([
    [undefined, 'running', ['session.created', 'session.started']],
    [undefined, 'stopped', ['session.created']],
    [undefined, 'frozen', ['session.created', 'session.frozen']],
    ['stopped', 'running', ['session.started']],
    ['running', 'frozen', ['session.frozen']],
    ['frozen', 'running', ['session.thawed']],
    ['frozen', 'stopped', ['session.stopped']],
    ['running', 'stopped', ['session.stopped']],
    ['running', 'error', ['session.stopped']],
    ['stopped', 'error', []],
    ['running', 'stopping', []],
    ['stopping', 'stopped', ['session.stopped']],
    ['running', undefined, ['session.stopped', 'session.deleted']],
    ['running', 'running', []],
  ])('%s → %s', (before, after, events) => {
    expect(transitionEvents(before, after)).toEqual(events)
  })
})

describe('SessionReconciler', () => {
  it('pause and resume outside clincus: session.frozen then session.thawed with the session', async () => {
    const t = await setup()
    t.inst.status = 'Frozen'
    t.r.onLifecycle({ action: 'instance-paused', name: ID, project: 'default', timestamp: '' })
    t.inst.status = 'Running'
    t.r.onLifecycle({ action: 'instance-resumed', name: ID, project: 'default', timestamp: '' })
    await t.r.settled()
    expect(t.events).toMatchObject([
      { type: 'session.frozen', id: ID, session: { id: ID, status: 'frozen', workspace: '/w' } },
      { type: 'session.thawed', id: ID, session: { id: ID, status: 'running', workspace: '/w' } },
    ])
    expect((await t.r.list())[0]?.status).toBe('running')
  })

  it('reads a session it does not know before publishing, so the event carries it', async () => {
    const t = await setup()
    t.driver.addInstance('clincus-0123abcd-2', {
      status: 'Stopped',
      config: { [LABEL.managed]: 'true', [LABEL.workspace]: '/w2', [LABEL.tool]: 'claude' },
    })
    t.r.onLifecycle({
      action: 'instance-created',
      name: 'clincus-0123abcd-2',
      project: 'default',
      timestamp: '',
    })
    await t.r.settled()
    expect(t.events).toMatchObject([
      {
        type: 'session.created',
        id: 'clincus-0123abcd-2',
        session: { workspace: '/w2', status: 'stopped' },
      },
    ])
    expect(t.events).toHaveLength(1)
  })

  it('publishes a transition once when a command reports it before the monitor does', async () => {
    const t = await setup()
    t.inst.status = 'Stopped'
    await t.r.stopped(ID)
    t.r.onLifecycle({ action: 'instance-stopped', name: ID, project: 'default', timestamp: '' })
    await t.r.settled()
    expect(summary(t.events)).toEqual(['session.stopped:stopped'])
  })

  it('records history: start on create, end on stop, start and end on resume', async () => {
    const t = await setup()
    const start = { sessionId: 's1', id: ID, workspace: '/w', tool: 'claude', persistent: false }
    await t.r.created(structuredClone(t.inst), { ...start, time: new Date(1000) })
    expect(await t.history.openSessions(ID)).toEqual(['s1'])
    await t.r.resumed(
      ID,
      { ...start, sessionId: 's2', time: new Date(2000) },
      { relaunchOnly: true },
    )
    expect(await t.history.openSessions(ID)).toEqual(['s2'])
    // The container was running: only the tool was relaunched, and that is a start.
    expect(summary(t.events)).toEqual(['session.started:running'])
    t.inst.status = 'Stopped'
    await t.r.stopped(ID)
    expect(await t.history.openSessions(ID)).toEqual([])
  })

  it('a resync publishes what changed while the monitor was down, nothing when nothing did', async () => {
    const t = await setup()
    t.r.setLive(false)
    await t.r.resync()
    expect(t.events).toEqual([])
    t.inst.status = 'Frozen'
    t.driver.addInstance('clincus-0123abcd-3', {
      config: { [LABEL.managed]: 'true', [LABEL.workspace]: '/w3', [LABEL.tool]: 'claude' },
    })
    await t.r.resync()
    expect(t.events.map((e) => `${e.type}:${'id' in e ? e.id : ''}`)).toEqual([
      `session.frozen:${ID}`,
      'session.created:clincus-0123abcd-3',
      'session.started:clincus-0123abcd-3',
    ])
    t.events.length = 0
    t.driver.instances.delete(ID)
    await t.r.resync()
    expect(summary(t.events)).toEqual(['session.stopped:stopped', 'session.deleted:frozen'])
  })

  it('does not let a read older than an event undo the event', async () => {
    const t = await setup()
    // The sync read of `instance-started` sees the instance running, then is held until a
    // pause was applied: what it saw is older than the pause.
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    const real = t.driver.getInstance.bind(t.driver)
    let first = true
    t.driver.getInstance = async (name, opts) => {
      const seen = await real(name, opts)
      if (first) {
        first = false
        await held
      }
      return seen
    }
    t.r.onLifecycle({ action: 'instance-started', name: ID, project: 'default', timestamp: '' })
    await new Promise((r) => setImmediate(r))
    t.inst.status = 'Frozen'
    t.r.onLifecycle({ action: 'instance-paused', name: ID, project: 'default', timestamp: '' })
    await new Promise((r) => setImmediate(r))
    release()
    await t.r.settled()
    expect(summary(t.events)).toEqual(['session.frozen:frozen'])
    expect(t.r.cached(ID)?.status).toBe('frozen')
  })
})
