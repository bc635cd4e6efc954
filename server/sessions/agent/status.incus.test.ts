// Issue 17, live: the fake tool of the test image drives every agent status through the hooks
// clincus installs (the same channel the real tool uses), and `session.agent` follows within 1 s
// of each change (for `waiting`, of the end of its grace); 30 s of continuous output is one event.
// A hostile container writing garbage, a 1 MiB line and a flood into its channel changes only its
// own session's status: the server keeps answering and the other session hears nothing. The
// channel shares the session's one socket and device with the egress proxy (issue 16): a line
// starting with `{` is the hook channel's, and a flood at the proxy does not keep it out.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { AgentStatus } from '../../../shared/schemas/sessions.ts'
import {
  describeIncus,
  execArgvAsCode,
  execAsCode,
  requestJson,
  startLiveServer,
  type LiveServer,
} from '../../test/incus-harness.ts'
import { EventsClient, waitUntil } from '../../test/ws-client.ts'
import { DEFAULT_MACHINE } from './machine.ts'

let server: LiveServer
let home: string
let events: EventsClient
/** Latencies measured (ms), printed with CLINCUS_IT_REPORT=1. */
const measured: Record<string, number> = {}

/** What the acceptance allows between a change and its event. */
const WITHIN_MS = 1000
const GRACE = DEFAULT_MACHINE.graceMs

/** Types `line` into the tool's pane; the time (performance.now) the keys were sent. */
async function type(id: string, line: string): Promise<number> {
  const r = await execArgvAsCode(id, ['tmux', 'send-keys', '-t', `clincus-${id}:`, line, 'Enter'])
  expect(r.exitCode, r.stderr).toBe(0)
  return performance.now()
}

interface AgentEvent {
  agent: AgentStatus
  at: number
  index: number
}

async function nextAgent(
  id: string,
  match: (a: AgentStatus) => boolean,
  from: number,
  timeoutMs = 30_000,
): Promise<AgentEvent> {
  const { event, at, index } = await events.next(
    (e) => e.type === 'session.agent' && e.id === id && match(e.agent as AgentStatus),
    { from, timeoutMs },
  )
  return { agent: event.agent as AgentStatus, at, index }
}

function agentEvents(id: string, from: number, to = events.events.length): AgentStatus[] {
  return events.events
    .slice(from, to)
    .filter((e) => e.type === 'session.agent' && e.id === id)
    .map((e) => e.agent as AgentStatus)
}

async function agentOf(id: string): Promise<AgentStatus | undefined> {
  const r = await requestJson(server.url, 'GET', '/api/sessions')
  expect(r.status).toBe(200)
  return (r.body as Array<{ id: string; agent?: AgentStatus }>).find((s) => s.id === id)?.agent
}

/** The instance's proxy devices (expanded: a profile's count too), by name. */
async function proxyDevices(id: string): Promise<Record<string, Record<string, string>>> {
  const out = await execa('incus', ['query', `/1.0/instances/${id}`], { timeout: 30_000 })
  const inst = JSON.parse(out.stdout) as {
    expanded_devices: Record<string, Record<string, string>>
  }
  return Object.fromEntries(
    Object.entries(inst.expanded_devices).filter(([, d]) => d.type === 'proxy'),
  )
}

async function remove(id: string): Promise<void> {
  await requestJson(server.url, 'DELETE', `/api/sessions/${id}?force=true`)
}

describeIncus('agent status (live, fake tool)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-it-agent-'))
    server = await startLiveServer({ home })
    events = new EventsClient(`${server.wsUrl}/ws/events`)
    await events.opened
  })

  afterAll(async () => {
    if (process.env.CLINCUS_IT_REPORT === '1')
      process.stdout.write(`agent status latencies (ms): ${JSON.stringify(measured)}\n`)
    await events.close()
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('working while it prints, waiting with the question, idle after the answer, exited at the shell', async () => {
    const id = await server.launch('agent-status')
    // The fake tool's SessionStart: at its prompt.
    await waitUntil('idle after the start', async () => (await agentOf(id))?.status === 'idle', {
      timeoutMs: 30_000,
    })

    // work: working at once, idle when it is back at its prompt.
    let from = events.events.length
    let sent = await type(id, 'work 2')
    const working = await nextAgent(id, (a) => a.status === 'working', from)
    measured.working = working.at - sent
    expect(working.at - sent).toBeLessThan(WITHIN_MS)
    const idle = await nextAgent(id, (a) => a.status === 'idle', working.index + 1)
    expect(agentEvents(id, from, idle.index + 1).map((a) => a.status)).toEqual(['working', 'idle'])

    // ask: waiting (after the grace) with the question as reason, then idle once answered.
    from = events.events.length
    sent = await type(id, 'ask Which colour, "red" or blue?')
    const waiting = await nextAgent(id, (a) => a.status === 'waiting', from)
    expect(waiting.agent.reason).toBe('Which colour, "red" or blue?')
    measured.waitingAfterGrace = waiting.at - sent - GRACE
    expect(waiting.at - sent - GRACE).toBeLessThan(WITHIN_MS)
    expect(waiting.at - sent).toBeGreaterThanOrEqual(GRACE - 200)
    expect(await agentOf(id)).toMatchObject({ status: 'waiting', reason: waiting.agent.reason })
    from = events.events.length
    sent = await type(id, 'blue')
    const answered = await nextAgent(id, (a) => a.status === 'idle', from)
    measured.idle = answered.at - sent
    expect(answered.at - sent).toBeLessThan(WITHIN_MS)
    expect(agentEvents(id, from, answered.index + 1).at(-1)?.reason).toBeUndefined()

    // exit: back at the shell.
    from = events.events.length
    sent = await type(id, 'exit')
    const exited = await nextAgent(id, (a) => a.status === 'exited', from)
    measured.exited = exited.at - sent
    expect(exited.at - sent).toBeLessThan(WITHIN_MS)
    expect(await agentOf(id)).toMatchObject({ status: 'exited' })

    // Stop: a session that does not run has no agent status; resumed, the tool reports again.
    expect((await requestJson(server.url, 'DELETE', `/api/sessions/${id}`)).status).toBe(204)
    expect(await agentOf(id)).toBeUndefined()
    from = events.events.length
    expect((await requestJson(server.url, 'POST', `/api/sessions/${id}/resume`)).status).toBe(200)
    await nextAgent(id, (a) => a.status === 'idle', from, 60_000)
    await remove(id)
  }, 240_000)

  it('a tool that dies without its hooks is exited, from the screen (the pane back at the shell)', async () => {
    const id = await server.launch('agent-crash')
    await waitUntil('idle after the start', async () => (await agentOf(id))?.status === 'idle', {
      timeoutMs: 30_000,
    })
    const from = events.events.length
    // SIGKILL: no SessionEnd hook runs; the wrapper prints the exit and execs the shell.
    const killed = await execAsCode(id, "pkill -KILL -f '/usr/local/bin/[c]laude'; true")
    expect(killed.exitCode).toBe(0)
    const sent = performance.now()
    const exited = await nextAgent(id, (a) => a.status === 'exited', from, 30_000)
    // tmux reports the silence after SILENCE_S, then one read of the pane.
    measured.exitedFromScreen = exited.at - sent
    expect(agentEvents(id, from, exited.index + 1).map((a) => a.status)).toEqual(['exited'])
    await remove(id)
  }, 120_000)

  it('30 s of continuous output is one working event', async () => {
    const id = await server.launch('agent-steady')
    await waitUntil('idle after the start', async () => (await agentOf(id))?.status === 'idle', {
      timeoutMs: 30_000,
    })
    const from = events.events.length
    await type(id, 'work 30')
    const idle = await nextAgent(
      id,
      (a) => a.status === 'idle',
      (await nextAgent(id, (a) => a.status === 'working', from)).index + 1,
      90_000,
    )
    expect(agentEvents(id, from, idle.index + 1).map((a) => a.status)).toEqual(['working', 'idle'])
    await remove(id)
  }, 240_000)

  it('a session made before issue 16 (two devices, hooks sending to 3130) gets one device on resume and its hooks still report', async () => {
    const id = await server.launch('agent-legacy')
    await waitUntil('idle after the start', async () => (await agentOf(id))?.status === 'idle', {
      timeoutMs: 30_000,
    })
    // What an older clincus left: hook files sending to 3130, and two proxy devices.
    const moved = await execAsCode(
      id,
      "sed -i 's#/dev/tcp/127.0.0.1/3128#/dev/tcp/127.0.0.1/3130#' ~/.clincus/agent-hook && grep -c '127.0.0.1/3130' ~/.clincus/agent-hook",
    )
    expect(moved.stdout, moved.stderr).toBe('1')
    const socket = (await proxyDevices(id))['clincus-host']?.connect ?? ''
    expect(socket).toMatch(/^unix:\//)
    expect((await requestJson(server.url, 'DELETE', `/api/sessions/${id}`)).status).toBe(204)
    const incus = (...args: string[]) => execa('incus', args, { timeout: 30_000 })
    await incus('config', 'device', 'remove', id, 'clincus-host')
    const proxy = (listen: string, connect: string) => [
      'proxy',
      `listen=tcp:${listen}`,
      `connect=${connect}`,
      'bind=instance',
    ]
    await incus('config', 'device', 'add', id, 'clincus-egress', ...proxy('127.0.0.1:3128', socket))
    const agentSocket = socket.replace(/\/egress\/([^/]+)$/, '/agent/$1')
    await incus(
      'config',
      'device',
      'add',
      id,
      'clincus-agent',
      ...proxy('127.0.0.1:3130', agentSocket),
    )
    expect(Object.keys(await proxyDevices(id)).sort()).toEqual(['clincus-agent', 'clincus-egress'])

    const from = events.events.length
    const res = await requestJson(server.url, 'POST', `/api/sessions/${id}/resume`)
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(await proxyDevices(id)).toEqual({
      'clincus-host': {
        type: 'proxy',
        listen: 'tcp:127.0.0.1:3128,3130',
        connect: socket,
        bind: 'instance',
      },
    })
    // The resumed tool's SessionStart came through the old script, on 3130.
    await nextAgent(id, (a) => a.status === 'idle', from, 60_000)
    await execAsCode(
      id,
      `printf '{"hook_event_name":"Notification","notification_type":"permission_prompt","message":"old port"}\\n' >/dev/tcp/127.0.0.1/3130`,
    )
    await waitUntil('the line on 3130', async () => (await agentOf(id))?.reason === 'old port')
    await remove(id)
  }, 240_000)

  it('a hostile container’s garbage, 1 MiB line and flood change only its own status', async () => {
    const [hostile, other] = await Promise.all([
      server.launch('agent-hostile'),
      server.launch('agent-bystander'),
    ])
    for (const id of [hostile, other])
      await waitUntil('idle after the start', async () => (await agentOf(id))?.status === 'idle', {
        timeoutMs: 30_000,
      })
    const otherBefore = await agentOf(other)
    const from = events.events.length
    // Lines start with `{`: the session's one socket routes those to the hook channel (issue 16).
    const attack = [
      // Garbage, NULs, invalid UTF-8, broken JSON, wrong types.
      `printf '{garbage\\n\\000\\377\\376\\n{"hook_event_name":\\n{"hook_event_name":42}\\n[]\\n' >/dev/tcp/127.0.0.1/3128`,
      // A 1 MiB line (no newline).
      `{ printf '{'; head -c 1048576 /dev/zero | tr '\\000' a; } >/dev/tcp/127.0.0.1/3128 2>/dev/null`,
      // A flood of valid lines, and of connections.
      `yes '{"hook_event_name":"PreToolUse"}' | head -n 200000 >/dev/tcp/127.0.0.1/3128 2>/dev/null`,
      `for i in $(seq 1 200); do (printf '{"hook_event_name":"Stop"}\\n' >/dev/tcp/127.0.0.1/3128) 2>/dev/null & done; wait`,
    ]
    for (const script of attack) await execAsCode(hostile, `${script}; true`)
    // The server answers, and counted what it cut.
    expect((await requestJson(server.url, 'GET', '/api/health')).status).toBe(200)
    const counters = server.services.agents.counters(hostile)
    expect(counters?.tooLong).toBeGreaterThanOrEqual(1)
    expect(counters?.dropped).toBeGreaterThanOrEqual(1)
    expect(counters?.lines).toBeLessThan(1000)
    // The other session heard nothing and kept its status.
    expect(agentEvents(other, from)).toEqual([])
    expect(await agentOf(other)).toEqual(otherBefore)
    // The hostile session's own hooks work again once its rate allows.
    await waitUntil(
      'the hostile session reports again',
      async () => {
        await execAsCode(
          hostile,
          `printf '{"hook_event_name":"SessionEnd"}\\n' >/dev/tcp/127.0.0.1/3128; true`,
        )
        return (await agentOf(hostile))?.status === 'exited'
      },
      { timeoutMs: 30_000, intervalMs: 1000 },
    )
    // 300 connections held at the egress proxy on the same port (past its cap of 256, each with
    // half a request header) do not keep a hook line out: each channel has its own cap.
    await execAsCode(
      hostile,
      `for i in $(seq 1 300); do (printf 'CONNECT refused.example:443 HTTP/1.1\\r\\n'; sleep 5) >/dev/tcp/127.0.0.1/3128 2>/dev/null & done; sleep 1; ` +
        `printf '{"hook_event_name":"Notification","notification_type":"permission_prompt","message":"during the flood"}\\n' >/dev/tcp/127.0.0.1/3128; wait; true`,
    )
    await waitUntil(
      'the hook line during the flood',
      async () => (await agentOf(hostile))?.reason === 'during the flood',
    )
    expect(agentEvents(other, from)).toEqual([])
    await Promise.all([hostile, other].map(remove))
  }, 240_000)
})
