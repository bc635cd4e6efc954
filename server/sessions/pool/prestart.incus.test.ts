// Issue 16, `[pool] prestart` on the live daemon: a primed member starts the agent before it is
// frozen; the next create of its request hands that agent over (`agent_start: "prestarted"`, no
// tool step at the click) and it answers `hello` → `hello-BACK` through /ws/terminal; an
// instruction file written between the prime and the claim makes the member stale (the create
// goes on cold, saying why) and that session's agent answers too. The tool's wrapper records its exit in the pane
// option the claim reads (real tmux in the image).
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { PRESTARTED_LAUNCH_STEPS } from '../../../shared/schemas/launch.ts'
import { describeIncus, execAsCode, type LiveServer } from '../../test/incus-harness.ts'
import { ownByUser } from '../../test/owner.ts'
import { liveSessions, startPoolServer, type PoolServer } from '../../test/live-sessions.ts'
import { TerminalClient } from '../../test/ws-client.ts'
import { tmuxSessionName } from '../naming.ts'
import { TOOL_EXIT_OPTION } from '../tools.ts'

const LONG = { timeoutMs: 180_000, intervalMs: 200 }

describeIncus('[pool] prestart on a live Incus daemon', () => {
  let server: LiveServer
  let live: PoolServer

  const { create, remove, primedReady, helloBack } = liveSessions(() => server)

  beforeAll(async () => {
    live = await startPoolServer('prestart', [`[pool]\nsize = 0\nprimed = 1\nprestart = true`])
    server = live.server
  }, 240_000)

  afterAll(async () => {
    await live.close()
  })

  it('hands over the agent started ahead; it answers, and its exit is recorded for the next claim', async ({
    annotate,
  }) => {
    const ws = await server.project('prestart')
    await ownByUser(ws)
    const first = await create(ws)
    await remove(first.id)
    await primedReady()

    const t0 = performance.now()
    const s = await create(ws)
    const ms = performance.now() - t0
    expect(s).toMatchObject({ path: 'warm', warm: 'primed', agent_start: 'prestarted' })
    expect(Object.keys(s.timings)).toEqual([...PRESTARTED_LAUNCH_STEPS])
    await annotate(
      `prestarted POST /api/sessions ${ms.toFixed(0)} ms: ${JSON.stringify(s.timings)}`,
    )
    await helloBack(s.id)

    // What the claim reads to tell a running agent from one that ended: empty while it runs, its
    // exit code once the wrapper saw it end.
    const option = `tmux display-message -p -t '=${tmuxSessionName(s.id)}:' '#{${TOOL_EXIT_OPTION}}'`
    expect((await execAsCode(s.id, option)).stdout.trim()).toBe('')
    const term = new TerminalClient(`${server.wsUrl}/ws/terminal/${s.id}?cols=100&rows=30`)
    await term.opened
    term.send('exit\r')
    await term.waitFor('exited with code 0', LONG.timeoutMs)
    await term.close()
    expect((await execAsCode(s.id, option)).stdout.trim()).toBe('0')
    await remove(s.id)
  })

  it('an instruction file written after the agent started: the member is not claimed', async () => {
    const ws = await server.project('prestart-edit')
    await ownByUser(ws)
    const first = await create(ws)
    await remove(first.id)
    await primedReady()
    await writeFile(join(ws, 'CLAUDE.md'), 'Always answer in French.\n')
    await ownByUser(ws)

    // The agent ran from the old view: the member is stale (removed), the create goes on cold.
    const s = await create(ws)
    expect(s).toMatchObject({
      path: 'cold',
      cold_reason: 'primed container stale: CLAUDE.md changed since its agent started',
    })
    expect(s.agent_start).toBeUndefined()
    await helloBack(s.id)
    await remove(s.id)
  })
})
