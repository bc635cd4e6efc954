// Issue 15 acceptance on the live daemon: a session paused and resumed outside clincus reaches
// /ws/events as session.frozen / session.thawed with the session object, within 1 s of the CLI
// returning; and `[tool] binary` is the command the session's tmux runs.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  describeIncus,
  execArgvAsCode,
  startLiveServer,
  TEST_IMAGE,
  type LiveServer,
} from '../test/incus-harness.ts'
import { EventsClient, waitUntil } from '../test/ws-client.ts'

/** Where the test image installs its fake agent (server/images/rootfs.ts installFakeTool). */
const FAKE_TOOL = '/usr/local/bin/clincus-fake-tool'

let server: LiveServer
let home: string
let events: EventsClient
let id: string

async function incus(...args: string[]): Promise<void> {
  await execa('incus', args, { timeout: 60_000 })
}

async function listed(): Promise<{ id: string; status: string } | undefined> {
  const list = (await (await fetch(`${server.url}/api/sessions`)).json()) as Array<{
    id: string
    status: string
  }>
  return list.find((s) => s.id === id)
}

describeIncus('the session reconciler on a live Incus daemon', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-reconciler-'))
    const root = join(home, 'projects')
    server = await startLiveServer({
      home,
      configText:
        `[defaults]\nimage = "${TEST_IMAGE}"\n\n[dashboard]\nworkspace_roots = ["${root}"]\n\n` +
        `[tool]\nbinary = "${FAKE_TOOL}"\n`,
    })
    events = new EventsClient(`${server.wsUrl}/ws/events`)
    await events.opened
    id = await server.launch('reconciler')
  })

  afterAll(async () => {
    await events.close()
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('`incus pause` / `incus resume` outside clincus → session.frozen / session.thawed with the session within 1 s', async ({
    annotate,
  }) => {
    await events.next((e) => e.type === 'session.started' && e.id === id)
    let from = events.events.length
    const pauseIssued = performance.now()
    await incus('pause', id)
    const paused = performance.now()
    const frozen = await events.next((e) => e.type === 'session.frozen' && e.id === id, { from })
    expect(frozen.event).toMatchObject({
      type: 'session.frozen',
      id,
      session: { id, status: 'frozen', tool: 'claude', workspace: join(server.root, 'reconciler') },
    })
    const frozenMs = frozen.at - paused
    expect(frozenMs).toBeLessThanOrEqual(1000)
    // The cache says what the event said: the list needs no refetch from Incus to be right.
    expect((await listed())?.status).toBe('frozen')

    from = events.events.length
    const resumeIssued = performance.now()
    await incus('resume', id)
    const resumed = performance.now()
    const thawed = await events.next((e) => e.type === 'session.thawed' && e.id === id, { from })
    expect(thawed.event).toMatchObject({
      type: 'session.thawed',
      id,
      session: { id, status: 'running' },
    })
    const thawedMs = thawed.at - resumed
    expect(thawedMs).toBeLessThanOrEqual(1000)
    expect((await listed())?.status).toBe('running')
    // Neither is also reported as a stop or a start.
    expect(
      events.events
        .slice(from)
        .filter(
          (e) => e.id === id && (e.type === 'session.stopped' || e.type === 'session.started'),
        ),
    ).toEqual([])
    // Negative: the event arrived before the CLI returned.
    await annotate(
      `session.frozen ${frozenMs.toFixed(0)} ms after \`incus pause\` returned ` +
        `(${(frozen.at - pauseIssued).toFixed(0)} ms after it was run); session.thawed ` +
        `${thawedMs.toFixed(0)} ms after \`incus resume\` returned ` +
        `(${(thawed.at - resumeIssued).toFixed(0)} ms after it was run)`,
    )
  })

  it('`[tool] binary` is what the tool session runs', async () => {
    // The fake tool prints the name it was started as: its own, not the `claude` link.
    const pane = await waitUntil('the fake tool to be ready', async () => {
      const r = await execArgvAsCode(id, ['tmux', 'capture-pane', '-p', '-t', `clincus-${id}`])
      return r.stdout.includes('ready') ? r.stdout : undefined
    })
    expect(pane).toContain('clincus fake tool (clincus-fake-tool) ready')
  })
})
