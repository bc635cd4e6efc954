// The network routes and the egress wiring on the fake driver: the device and environment a new
// session gets (one device in every mode, `none` included), the hot reload of a mode change, the API's shapes.
import { readFile, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { SESSION_DEVICE } from '../network/egress.ts'
import { buildTestApp, json } from '../test/helpers.ts'
import { waitUntil } from '../test/ws-client.ts'

const PROFILE = '\n[profiles.offline]\nnetwork = { mode = "none" }\n'

// Each test builds the whole app and launches a session through every layer, opening the
// session's egress proxy socket; the first of the file also pays for loading those modules: 4.8 s
// at load 12 on two cores, at vitest's default 5 s. A stated budget, not the scheduler's luck.
/** Sends `text` on a unix socket and half-closes; resolves with everything read until close. */
function exchange(path: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(path)
    let out = ''
    c.on('data', (d) => (out += d.toString('latin1')))
    c.on('error', reject)
    c.on('close', () => {
      resolve(out)
    })
    c.end(text)
  })
}

describe('network API and wiring (fake driver)', { timeout: 30_000 }, () => {
  it('gives a new session the proxy device and environment, and reports its network', async () => {
    const t = await buildTestApp()
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    expect(res.statusCode, res.body).toBe(200)
    const { id, network } = res.json<{ id: string; network: unknown }>()
    expect(network).toEqual({ mode: 'allowlist', last_refused_at: null })
    const inst = await t.driver.getInstance(id)
    expect(inst?.devices?.[SESSION_DEVICE]).toMatchObject({
      type: 'proxy',
      listen: 'tcp:127.0.0.1:3128',
      bind: 'instance',
      connect: `unix:${join(t.home, '.clincus', 'run', 'egress', `${id}.sock`)}`,
    })
    expect(inst?.config['environment.HTTPS_PROXY']).toBe('http://127.0.0.1:3128')
    expect(inst?.config['environment.no_proxy']).toBe('localhost,127.0.0.1,::1')
    const net = await t.app.inject({ url: `/api/sessions/${id}/network?limit=5` })
    expect(net.statusCode).toBe(200)
    expect(net.json()).toMatchObject({ mode: 'allowlist', total: 0, connections: [] })
    expect(net.json<{ allow: string[] }>().allow).toContain('api.anthropic.com')
    const list = await t.app.inject({ url: '/api/sessions' })
    expect(list.json<Array<{ network?: unknown }>>()[0]?.network).toEqual(network)
  })

  it('mode none: the one device stays for the hook channel; HTTP over it is refused (403), hooks get through; a reload keeps it', async () => {
    const t = await buildTestApp()
    await writeFile(
      t.configFile,
      `${await readFile(t.configFile, 'utf8')}\n[network]\nmode = "none"\n`,
    )
    await t.services.config.reload()
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    const { id } = res.json<{ id: string }>()
    const inst = await t.driver.getInstance(id)
    expect(Object.values(inst?.devices ?? {}).filter((d) => d.type === 'proxy')).toHaveLength(1)
    const socket = join(t.home, '.clincus', 'run', 'egress', `${id}.sock`)
    expect(inst?.devices?.[SESSION_DEVICE]?.connect).toBe(`unix:${socket}`)
    const answer = await exchange(socket, 'CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(answer).toMatch(/^HTTP\/1\.1 403/)
    expect(answer).toContain('mode = "none"')
    await exchange(socket, '{"hook_event_name":"UserPromptSubmit"}\n')
    await waitUntil('the hook line', () => t.services.agents.counters(id)?.lines === 1)
    const changes = t.driver.callsOf('deviceAdd').length + t.driver.callsOf('deviceRemove').length
    await writeFile(
      t.configFile,
      (await readFile(t.configFile, 'utf8')).replace('mode = "none"', 'mode = "open"'),
    )
    await t.services.config.reload()
    expect((await t.app.inject({ url: `/api/sessions/${id}/network` })).json()).toMatchObject({
      mode: 'open',
    })
    await t.services.egress.settled(id)
    expect(t.driver.callsOf('deviceAdd').length + t.driver.callsOf('deviceRemove').length).toBe(
      changes,
    )
  })

  it('a profile with mode none launches with the one device all the same', async () => {
    const t = await buildTestApp()
    await writeFile(t.configFile, `${await readFile(t.configFile, 'utf8')}${PROFILE}`)
    await t.services.config.reload()
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project, profile: 'offline' }),
    })
    expect(res.statusCode, res.body).toBe(200)
    const { id, network } = res.json<{ id: string; network: unknown }>()
    expect(network).toMatchObject({ mode: 'none' })
    expect(Object.keys((await t.driver.getInstance(id))?.devices ?? {})).toContain(SESSION_DEVICE)
  })
  it('resuming a session made before issue 16 replaces its two devices by the one, still on 3130 for its hooks', async () => {
    const t = await buildTestApp()
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    const { id } = res.json<{ id: string }>()
    const socket = join(t.home, '.clincus', 'run', 'egress', `${id}.sock`)
    expect((await t.app.inject({ method: 'DELETE', url: `/api/sessions/${id}` })).statusCode).toBe(
      204,
    )
    // What an older clincus left: the egress device and the hook channel's own device.
    const inst = t.driver.instances.get(id)
    if (!inst) throw new Error('no instance')
    const devices = Object.fromEntries(
      Object.entries(inst.devices ?? {}).filter(([name]) => name !== SESSION_DEVICE),
    )
    devices['clincus-egress'] = {
      type: 'proxy',
      listen: 'tcp:127.0.0.1:3128',
      connect: `unix:${socket}`,
      bind: 'instance',
    }
    devices['clincus-agent'] = {
      type: 'proxy',
      listen: 'tcp:127.0.0.1:3130',
      connect: `unix:${join(t.home, '.clincus', 'run', 'agent', `${id}.sock`)}`,
      bind: 'instance',
    }
    inst.devices = devices
    const resume = await t.app.inject({ method: 'POST', url: `/api/sessions/${id}/resume` })
    expect(resume.statusCode, resume.body).toBe(200)
    const after = (await t.driver.getInstance(id))?.devices ?? {}
    expect(Object.entries(after).filter(([, d]) => d.type === 'proxy')).toEqual([
      [
        SESSION_DEVICE,
        {
          type: 'proxy',
          listen: 'tcp:127.0.0.1:3128,3130',
          connect: `unix:${socket}`,
          bind: 'instance',
        },
      ],
    ])
  })

  it('at startup a running session made before issue 16 gets the one device in the background', async () => {
    const t = await buildTestApp()
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    const { id } = res.json<{ id: string }>()
    const inst = t.driver.instances.get(id)
    if (!inst) throw new Error('no instance')
    const device = inst.devices?.[SESSION_DEVICE] ?? {}
    inst.devices = Object.fromEntries([
      ...Object.entries(inst.devices ?? {}).filter(([name]) => name !== SESSION_DEVICE),
      ['clincus-egress', device],
      ['clincus-agent', { ...device, listen: 'tcp:127.0.0.1:3130' }],
    ])
    // What startup does for each session it finds (no fix: it must not hold up the start).
    await t.services.egress.attach(inst)
    await t.services.egress.settled(id)
    const after = (await t.driver.getInstance(id))?.devices ?? {}
    expect(Object.keys(after).filter((name) => after[name]?.type === 'proxy')).toEqual([
      SESSION_DEVICE,
    ])
    expect(after[SESSION_DEVICE]?.listen).toBe('tcp:127.0.0.1:3128,3130')
  })

  it('404 for an unknown session, 400 for bad paging', async () => {
    const t = await buildTestApp()
    expect(
      (await t.app.inject({ url: '/api/sessions/clincus-00000000-1/network' })).statusCode,
    ).toBe(404)
    expect((await t.app.inject({ url: '/api/sessions/x/network?limit=0' })).statusCode).toBe(400)
    expect((await t.app.inject({ url: '/api/sessions/x/network?limit=1001' })).statusCode).toBe(400)
  })

  it('POST /api/network/allow writes the normalized entry once, keeps comments, refuses bad ones', async () => {
    const t = await buildTestApp()
    await writeFile(t.configFile, `# mine\n${await readFile(t.configFile, 'utf8')}`)
    const add = await t.app.inject({
      method: 'POST',
      url: '/api/network/allow',
      ...json({ entry: 'Bücher.DE.' }),
    })
    expect(add.statusCode, add.body).toBe(200)
    expect(add.json()).toEqual({ allow: ['xn--bcher-kva.de'] })
    const again = await t.app.inject({
      method: 'POST',
      url: '/api/network/allow',
      ...json({ entry: 'xn--bcher-kva.de' }),
    })
    expect(again.json()).toEqual({ allow: ['xn--bcher-kva.de'] })
    const text = await readFile(t.configFile, 'utf8')
    expect(text.startsWith('# mine\n')).toBe(true)
    expect(t.services.config.current.network.allow).toEqual(['xn--bcher-kva.de'])
    for (const entry of ['http://x.example/', '10.0.0.1', '*.com', 'a b'])
      expect(
        (
          await t.app.inject({ method: 'POST', url: '/api/network/allow', ...json({ entry }) })
        ).json(),
        entry,
      ).toMatchObject({ code: 'invalid_network_entry' })
  })

  it('a flood of refusals is audited whole but sends at most 20 events a second', async () => {
    const t = await buildTestApp()
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project }),
    })
    const { id } = res.json<{ id: string }>()
    const events: unknown[] = []
    const off = t.services.hub.subscribe((e) => {
      if (e.event.type === 'session.network') events.push(e.event)
    })
    const sock = join(t.home, '.clincus', 'run', 'egress', `${id}.sock`)
    const refuse = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const c = net.connect(sock)
        let out = ''
        c.on('data', (d) => (out += d.toString()))
        c.on('error', reject)
        c.on('close', () => {
          resolve(out)
        })
        c.end(`CONNECT flood-${Math.random()}.example:443 HTTP/1.1\r\n\r\n`)
      })
    const started = Date.now()
    const answers = await Promise.all(Array.from({ length: 60 }, refuse))
    off()
    expect(answers.every((a) => a.startsWith('HTTP/1.1 403'))).toBe(true)
    const windows = Math.floor((Date.now() - started) / 1000) + 2
    expect(events.length).toBeGreaterThan(0)
    expect(events.length).toBeLessThanOrEqual(20 * windows)
    const page = await t.app.inject({ url: `/api/sessions/${id}/network?limit=1000` })
    expect(page.json<{ total: number }>().total).toBe(60)
  })
})
