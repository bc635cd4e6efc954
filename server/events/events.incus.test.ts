// Issue 4 acceptance for /ws/events, GET /api/events and config hot reload, on the live daemon.
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { spawn } from 'node:child_process'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CloseCode } from '../../shared/ws/terminal.ts'
import { describeIncus, startLiveServer, type LiveServer } from '../test/incus-harness.ts'
import { alive } from '../test/process-harness.ts'
import { EventsClient, SseClient, TerminalClient, waitUntil } from '../test/ws-client.ts'

let server: LiveServer
let home: string
let id: string
let events: EventsClient

async function incus(...args: string[]): Promise<string> {
  return (await execa('incus', args, { timeout: 60_000 })).stdout
}

async function sessionStatus(): Promise<string | undefined> {
  const res = await fetch(`${server.url}/api/sessions`)
  const list = (await res.json()) as Array<{ id: string; status: string }>
  return list.find((s) => s.id === id)?.status
}

interface Daemon {
  pid: number
  argv: string[]
  path: string
}

/** The Incus daemon itself (not the `[lxc monitor]` processes, whose comm is also incusd). */
async function findDaemon(): Promise<Daemon | undefined> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => ''))
      .split('\0')
      .filter((a) => a !== '')
    if (!(argv[0] ?? '').endsWith('/incusd') || (argv[1] ?? '').startsWith('fork')) continue
    const env = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '')
    const path = env
      .split('\0')
      .find((v) => v.startsWith('PATH='))
      ?.slice(5)
    return { pid: Number(entry), argv, path: path ?? '/usr/sbin:/usr/bin:/sbin:/bin' }
  }
  return undefined
}

/**
 * Starts the daemon again exactly as it ran before (no init system here: setup started it in
 * the background the same way), detached so it outlives this test process.
 */
async function startDaemon(d: Daemon): Promise<void> {
  const [file, ...args] = d.argv
  const child = spawn(file ?? 'incusd', args, {
    detached: true,
    stdio: 'ignore',
    env: { PATH: d.path },
  })
  child.unref()
  await execa('incus', ['admin', 'waitready', '--timeout', '60'], { timeout: 70_000 })
}

describeIncus('live events and config reload on a live Incus daemon', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-events-'))
    server = await startLiveServer({ home })
    events = new EventsClient(`${server.wsUrl}/ws/events`)
    await events.opened
    const ws = await server.project('events')
    const res = await fetch(`${server.url}/api/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workspace: ws }),
    })
    const body = (await res.json()) as { id: string }
    expect(res.status, JSON.stringify(body)).toBe(200)
    id = body.id
    await events.next((e) => e.type === 'session.started' && e.id === id)
  })

  afterAll(async () => {
    await events.close()
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('`incus stop` outside clincus → session.stopped on /ws/events within 1 s', async ({
    annotate,
  }) => {
    const from = events.events.length
    const t0 = performance.now()
    await incus('stop', id)
    const t1 = performance.now()
    const got = await events.next((e) => e.type === 'session.stopped' && e.id === id, { from })
    // Issue 15: the event carries the session as it is after the change.
    expect(got.event).toMatchObject({
      type: 'session.stopped',
      id,
      session: { id, status: 'stopped' },
    })
    expect(got.at - t1).toBeLessThan(1000)
    await annotate(
      `session.stopped ${(got.at - t1).toFixed(0)} ms after \`incus stop\` returned (${(t1 - t0).toFixed(0)} ms for the stop itself)`,
    )
    expect(await sessionStatus()).toBe('stopped')

    // A terminal to a stopped session is refused with a reason, not dropped.
    const term = new TerminalClient(`${server.wsUrl}/ws/terminal/${id}`)
    expect(await term.closed).toEqual({
      code: CloseCode.NOT_RUNNING,
      reason: 'session is stopped, not running',
    })

    await incus('start', id)
    await events.next((e) => e.type === 'session.started' && e.id === id, { from })
    expect(await sessionStatus()).toBe('running')
  })

  it('a rename-style save → config.reloaded; broken TOML → config.invalid and the last good config stays', async () => {
    const file = server.configFile
    const original = await readFile(file, 'utf8')
    const save = async (text: string): Promise<void> => {
      // What vim/VS Code do: write a temp file beside it, then rename it over the original.
      const tmp = join(dirname(file), `.config.toml.${process.pid}.tmp`)
      await writeFile(tmp, text)
      await rename(tmp, file)
    }
    const config = async (): Promise<{ defaults: { model: string } }> =>
      (await fetch(`${server.url}/api/config`)).json() as Promise<{ defaults: { model: string } }>

    expect(original).toContain('[defaults]\n')
    let from = events.events.length
    await save(original.replace('[defaults]\n', '[defaults]\nmodel = "reload-test-model"\n'))
    const reloaded = await events.next((e) => e.type === 'config.reloaded', { from })
    expect(Object.keys(reloaded.event).sort()).toEqual(['timestamp', 'type'])
    expect((await config()).defaults.model).toBe('reload-test-model')

    from = events.events.length
    await save('[defaults\nmodel = "broken"\n')
    const invalid = await events.next((e) => e.type === 'config.invalid', { from })
    expect(invalid.event).toMatchObject({ type: 'config.invalid', file })
    expect(String(invalid.event.error)).not.toBe('')
    expect((await config()).defaults.model).toBe('reload-test-model')

    from = events.events.length
    await save(original)
    await events.next((e) => e.type === 'config.reloaded', { from })
    expect((await config()).defaults.model).not.toBe('reload-test-model')
  })

  it('GET /api/events with Last-Event-ID replays exactly the missed events', async () => {
    const url = `${server.url}/api/events`
    // A witness stream stays connected throughout; the other one drops and comes back.
    const witness = new SseClient(url)
    const first = new SseClient(url)
    await waitUntil('both streams', () => witness.status === 200 && first.status === 200)
    await incus('stop', id)
    await waitUntil('session.stopped on the first stream', () =>
      first.events.some((e) => e.data.includes('session.stopped')),
    )
    const lastSeen = first.events.at(-1)?.id
    expect(lastSeen).toBeDefined()
    await first.close()

    // Missed while disconnected: the start, and a config reload.
    await incus('start', id)
    // (a real change: since issue 15 a save that leaves the merged config as it was sends nothing)
    await writeFile(
      server.configFile,
      `${await readFile(server.configFile, 'utf8')}\n[profiles.replay]\ntool = "opencode"\n`,
    )
    const after = (type: string) => (e: { id?: number; data: string }) =>
      (e.id ?? 0) > (lastSeen ?? 0) && e.data.includes(`"${type}"`)
    await waitUntil(
      'the missed events on the witness',
      () =>
        witness.events.some(after('session.started')) &&
        witness.events.some(after('config.reloaded')),
    )
    const missed = witness.events.filter((e) => (e.id ?? 0) > (lastSeen ?? 0))

    const resumed = new SseClient(url, lastSeen)
    await waitUntil('the replay', () => resumed.events.length >= missed.length)
    expect(resumed.events.slice(0, missed.length)).toEqual(missed)
    expect(missed.map((e) => JSON.parse(e.data) as unknown)).toContainEqual(
      expect.objectContaining({ type: 'session.started', id }),
    )
    await resumed.close()
    await witness.close()
  })

  // Last: it restarts the shared daemon.
  it('the daemon restarted → events resume and GET /api/sessions is right afterwards', async ({
    annotate,
  }) => {
    expect(await sessionStatus()).toBe('running')
    const state = JSON.parse(await incus('query', `/1.0/instances/${id}/state`)) as { pid: number }
    // Without this, incusd restarts an instance whose last state was running when it comes back.
    await incus('config', 'set', id, 'boot.autostart', 'false')
    const daemon = await findDaemon()
    if (!daemon) throw new Error('incusd is not running')
    const from = events.events.length

    // SIGTERM stops incusd but leaves the containers running (SIGPWR would shut them down).
    const downAt = performance.now()
    process.kill(daemon.pid, 'SIGTERM')
    try {
      await waitUntil('incusd to exit', () => !alive(daemon.pid), { timeoutMs: 60_000 })
      expect(alive(state.pid)).toBe(true)
      // While the daemon is down, the container stops behind its back: only the resync after
      // the monitor reconnects can tell clients.
      process.kill(state.pid, 'SIGKILL')
      await waitUntil('the container init to die', () => !alive(state.pid))
    } finally {
      // Whatever happened, the shared daemon comes back.
      await startDaemon(daemon)
    }
    // Right away, before the monitor has necessarily reconnected.
    expect(await sessionStatus()).toBe('stopped')
    const stopped = await events.next((e) => e.type === 'session.stopped' && e.id === id, {
      from,
      timeoutMs: 60_000,
    })
    await annotate(
      `session.stopped ${((stopped.at - downAt) / 1000).toFixed(1)} s after incusd was stopped`,
    )

    // Live events flow again.
    const again = events.events.length
    await incus('start', id)
    await events.next((e) => e.type === 'session.started' && e.id === id, { from: again })
    expect(await sessionStatus()).toBe('running')
  })
})
