// Red team, issue 16 `[pool] prestart`, through the app with the fake driver: what a claim does
// with a member whose agent was started ahead when the config or the workspace changed since, and
// what the agent inside can do to the claim with the pane option its wrapper writes.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { PRESTARTED_LAUNCH_STEPS } from '../../../shared/schemas/launch.ts'
import type { ExecOptions } from '../../incus/driver.ts'
import type { TestApp } from '../../test/helpers.ts'
import { ownByUser } from '../../test/owner.ts'
import { LABEL } from '../registry.ts'
import {
  createSession,
  frozenMember,
  primedApp,
  WAIT,
  writePoolConfig,
} from './primed.test-support.ts'

const prestartApp = () => primedApp({ prestart: true })
const setConfig = (t: TestApp, prestart: boolean) => writePoolConfig(t, { prestart })
const create = (t: TestApp, tool?: 'claude' | 'copilot') => createSession(t, t.project, tool)

/** The member of the project once ready, and the session id its agent was started under. */
async function primedWithAgent(t: TestApp): Promise<{ name: string; agentId: string }> {
  return vi.waitFor(() => {
    expect(t.services.poolStatus?.().primed?.ready).toBe(1)
    const name = frozenMember(t) ?? ''
    const start = t.driver
      .callsOf('exec')
      .filter((c) => c.args[0] === name)
      .map((c) => c.args[1] as string[])
      .find((argv) => argv.includes('--session-id'))
    expect(start).toBeDefined()
    const agentId = start?.[start.indexOf('--session-id') + 1] ?? ''
    return { name, agentId }
  }, WAIT)
}

describe('[pool] prestart red team', () => {
  it('turned off by a config reload: the agent started ahead is never handed over', async () => {
    const t = await prestartApp()
    await create(t)
    const { name, agentId } = await primedWithAgent(t)
    await setConfig(t, false)

    const s = await create(t)
    expect(s.agent_start).toBeUndefined()
    // Whatever served it, not the member whose agent runs, nor that agent's session id.
    expect(s.id).not.toBe(name)
    expect(t.driver.instances.get(s.id)?.config[LABEL.sessionId]).not.toBe(agentId)
    await vi.waitFor(() => {
      expect(t.driver.instances.has(name)).toBe(false)
    }, WAIT)
  })

  it("a create for another tool never gets the member, nor its agent's session id", async () => {
    const t = await prestartApp()
    await create(t)
    const { name, agentId } = await primedWithAgent(t)
    const s = await create(t, 'copilot')
    expect(s.id).not.toBe(name)
    expect(s.agent_start).toBeUndefined()
    expect(t.driver.instances.get(s.id)?.config[LABEL.sessionId]).not.toBe(agentId)
    // The member never became a session (with primed = 1 it makes way for the new request).
    expect(t.driver.instances.get(name)?.config[LABEL.managed]).toBeUndefined()
  })

  it('a changed view: the member whose agent read the old one is removed, never restarted in place', async () => {
    const t = await prestartApp()
    await create(t)
    const { name } = await primedWithAgent(t)
    // The user removes what the agent ran at its start (a project hook) before the click.
    await mkdir(join(t.project, '.claude'), { recursive: true })
    await writeFile(join(t.project, '.claude', 'settings.json'), '{}\n')
    await ownByUser(t.project)

    const s = await create(t)
    expect(s.id).not.toBe(name)
    expect(s.path).toBe('cold')
    // (ownByUser changed every entry's ctime: the first path the walk meets is named)
    expect(s.cold_reason).toMatch(/^primed container stale: .+ changed since its agent started$/)
    expect(s.agent_start).toBeUndefined()
    await vi.waitFor(() => {
      expect(t.driver.instances.has(name)).toBe(false)
    }, WAIT)
  })

  it('a workspace past the view bounds gets no agent started ahead (nothing a claim could compare)', async () => {
    const t = await prestartApp()
    const many = join(t.project, '.claude', 'many')
    await mkdir(many, { recursive: true })
    await Promise.all(Array.from({ length: 1001 }, (_, i) => writeFile(join(many, `f${i}`), '')))
    await ownByUser(t.project)
    await create(t)
    const name = await vi.waitFor(() => {
      expect(t.services.poolStatus?.().primed?.ready).toBe(1)
      return frozenMember(t) ?? ''
    }, WAIT)
    const started = t.driver
      .callsOf('exec')
      .filter((c) => c.args[0] === name)
      .some((c) => (c.args[1] as string[]).includes('--session-id'))
    expect(started).toBe(false)
    const s = await create(t)
    expect(s).toMatchObject({ id: name, warm: 'primed' })
    expect(s.agent_start).toBeUndefined()
  })

  it('an agent that forges or clears its exit option gets itself handed over or started again, nothing else', async () => {
    const t = await prestartApp()
    await create(t)
    const { name, agentId } = await primedWithAgent(t)
    const bounds: (number | undefined)[] = []
    t.driver.gate = (method, args, opts) => {
      const argv = args[1] as string[]
      const o: ExecOptions = opts ?? {}
      if (method === 'exec' && (argv.includes('display-message') || argv.includes('kill-session')))
        bounds.push(o.maxOutputBytes ?? Infinity)
      return Promise.resolve()
    }
    // The agent set the option to a "code" of its own, with a newline and a huge tail.
    t.driver.execHandler = (_n, argv) =>
      argv.includes('display-message')
        ? { stdout: `\n0\n${'x'.repeat(100_000)}`, stderr: '', exitCode: 0 }
        : undefined
    const s = await create(t)
    expect(s).toMatchObject({ id: name, agent_start: 'restarted' })
    expect(Object.keys(s.timings)).toEqual([...PRESTARTED_LAUNCH_STEPS])
    // Started again under a new id, after the old tmux session was ended.
    expect(t.driver.instances.get(name)?.config[LABEL.sessionId]).not.toBe(agentId)
    expect(s.agent_start_reason).toBe('the agent started ahead had ended')
    // What the agent writes there is read within a small bound (not the driver's 64 MiB default).
    expect(bounds.length).toBeGreaterThan(0)
    for (const b of bounds) expect(b).toBeLessThanOrEqual(4096)
  })
})
