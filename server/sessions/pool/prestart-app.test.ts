// `[pool] prestart` through the app with the fake driver (issue 16): a primed member starts its
// agent before it is frozen; a claim whose view of the workspace is unchanged hands that agent
// over (thaw, verify, agent: no tool started at the click, the session id the agent runs under);
// a changed instruction file makes the member stale (removed, the create goes on cold), an agent
// that ended is started again, saying why; and a workspace file cannot turn prestart on.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { PRESTARTED_LAUNCH_STEPS, PRIMED_LAUNCH_STEPS } from '../../../shared/schemas/launch.ts'
import type { TestApp } from '../../test/helpers.ts'
import { ownByUser } from '../../test/owner.ts'
import { LABEL } from '../registry.ts'
import { createSession as create, frozenMember, primedApp, WAIT } from './primed.test-support.ts'

const prestartApp = (prestart = true) => primedApp({ prestart })

function primedReady(t: TestApp): Promise<string> {
  return vi.waitFor(() => {
    expect(t.services.poolStatus?.().primed?.ready).toBe(1)
    const name = frozenMember(t)
    expect(name).toBeDefined()
    return name ?? ''
  }, WAIT)
}

/** The tmux commands run in `name`: 'new-session' (a start, with its --session-id), 'kill-session'… */
function tmuxCalls(t: TestApp, name: string): { verb: string; sessionId: string | null }[] {
  return t.driver
    .callsOf('exec')
    .filter((c) => c.args[0] === name)
    .map((c) => c.args[1] as string[])
    .filter((argv) => argv.includes('tmux') || argv.includes('new-session'))
    .map((argv) => {
      const verb = argv.includes('new-session')
        ? 'new-session'
        : (argv[argv.indexOf('tmux') + 1] ?? '')
      const at = argv.indexOf('--session-id')
      return { verb, sessionId: at >= 0 ? (argv[at + 1] ?? null) : null }
    })
}

describe('[pool] prestart', () => {
  it('starts the agent in the member, and a claim hands it over as it runs', async () => {
    const t = await prestartApp()
    await create(t)
    const name = await primedReady(t)
    // Started before the freeze, under a session id of its own.
    const before = tmuxCalls(t, name)
    expect(before.map((c) => c.verb)).toEqual(['new-session'])
    const agentId = before[0]?.sessionId
    expect(agentId).toMatch(/^[0-9a-f-]{36}$/)

    const s = await create(t)
    expect(s).toMatchObject({ id: name, path: 'warm', warm: 'primed', agent_start: 'prestarted' })
    expect(s.agent_start_reason).toBeUndefined()
    expect(Object.keys(s.timings)).toEqual([...PRESTARTED_LAUNCH_STEPS])
    // Nothing started at the click: one look at the agent (still running), no new tmux session.
    expect(tmuxCalls(t, name).map((c) => c.verb)).toEqual(['new-session', 'display-message'])
    const inst = t.driver.instances.get(name)
    expect(inst?.config[LABEL.sessionId]).toBe(agentId)
    expect(inst?.config[LABEL.ready]).toBe('true')
    expect(inst?.config[LABEL.managed]).toBe('true')
    const done = t.events.find(
      (e) => e.type === 'session.launching' && e.id === name && e.step === 'done',
    )
    expect(done).toMatchObject({ path: 'warm', warm: 'primed', agent_start: 'prestarted' })
  })

  it('does not claim the member when an instruction file changed since its agent started', async () => {
    const t = await prestartApp()
    await create(t)
    const name = await primedReady(t)
    await writeFile(join(t.project, 'CLAUDE.md'), 'Use tabs.\n')
    await ownByUser(t.project)

    // The agent ran in it from the old view (its start-up hooks too): no restart in place gives a
    // fresh start, so the member is stale (removed) and the create goes on without it.
    const s = await create(t)
    expect(s).toMatchObject({
      path: 'cold',
      cold_reason: 'primed container stale: CLAUDE.md changed since its agent started',
    })
    expect(s.id).not.toBe(name)
    expect(s.agent_start).toBeUndefined()
    await vi.waitFor(() => {
      expect(t.driver.instances.has(name)).toBe(false)
    }, WAIT)
  })

  it('starts the agent again when it ended while primed', async () => {
    const t = await prestartApp()
    await create(t)
    const name = await primedReady(t)
    // The wrapper recorded the tool's exit code (it could not reach its API, say).
    t.driver.execHandler = (_n, argv) =>
      argv.includes('display-message') ? { stdout: '1\n', stderr: '', exitCode: 0 } : undefined

    const s = await create(t)
    expect(s).toMatchObject({ id: name, agent_start: 'restarted' })
    expect(s.agent_start_reason).toBe('the agent started ahead had ended')
    expect(Object.keys(s.timings)).toEqual([...PRESTARTED_LAUNCH_STEPS])
    const calls = tmuxCalls(t, name)
    expect(calls.map((c) => c.verb)).toEqual([
      'new-session',
      'display-message',
      'kill-session',
      'new-session',
    ])
    expect(t.driver.instances.get(name)?.config[LABEL.sessionId]).toBe(calls[3]?.sessionId)
    expect(calls[3]?.sessionId).not.toBe(calls[0]?.sessionId)
  })

  it('is off by default, and a workspace file cannot turn it on', async () => {
    const t = await prestartApp(false)
    await writeFile(join(t.project, '.clincus.toml'), '[pool]\nprestart = true\n')
    await ownByUser(t.project)
    await create(t)
    const name = await primedReady(t)
    expect(tmuxCalls(t, name)).toEqual([])
    const s = await create(t)
    expect(s.agent_start).toBeUndefined()
    expect(Object.keys(s.timings)).toEqual([...PRIMED_LAUNCH_STEPS])
  })
})
