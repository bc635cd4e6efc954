// Issue 10 rows 9 (cancellation), 10 (tool config), 11 (default limits) and the id-mapping
// robustness item, against the live Incus daemon through clincus's own HTTP API.
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  describeIncus,
  execAsCode,
  type LiveServer,
  requestJson,
  startLiveServer,
} from '../test/incus-harness.ts'
import { waitUntil } from '../test/ws-client.ts'
import { workspaceHash } from './naming.ts'

interface Session {
  id: string
  workspace: string
  status: string
  id_mapping?: string
}

let server: LiveServer
let home: string
const mounted: string[] = []
let subIdsBackup: { uid: string; gid: string } | null = null

const api = async (method: string, path: string, body?: unknown) =>
  (await requestJson(server.url, method, path, body)) as {
    status: number
    body: Session & { error?: string }
  }

async function names(): Promise<string[]> {
  const { stdout } = await execa('incus', ['list', '--format=json', '--columns=n'], {
    timeout: 30_000,
  })
  return (JSON.parse(stdout) as Array<{ name: string }>).map((i) => i.name)
}

/** Writes the user config (with the harness' image and roots) and reloads it. */
async function userConfig(extra: string): Promise<void> {
  await writeFile(
    server.configFile,
    `${extra}\n[defaults]\nimage = "clincus-test"\n\n[dashboard]\nworkspace_roots = ["${server.root}"]\n`,
  )
  await server.services.config.reload()
}

describeIncus('session hardening on a live Incus daemon', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-it-'))
    server = await startLiveServer({ home })
  })

  afterAll(async () => {
    await server.close()
    for (const dir of mounted) execFileSync('umount', [dir])
    if (subIdsBackup) {
      await writeFile('/etc/subuid', subIdsBackup.uid)
      await writeFile('/etc/subgid', subIdsBackup.gid)
    }
    await rm(home, { recursive: true, force: true })
  })

  it('gives a default session a process cap and a memory limit (row 11)', async () => {
    const ws = await server.project('limits')
    const res = await api('POST', '/api/sessions', { workspace: ws })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    const id = res.body.id
    // cgroup v1 hybrid: the container's own cgroups, seen from the host
    const pids = (await readFile(`/sys/fs/cgroup/pids/lxc.payload.${id}/pids.max`, 'utf8')).trim()
    expect(pids).toBe('4096')
    const mem = Number(
      (
        await readFile(`/sys/fs/cgroup/memory/lxc.payload.${id}/memory.limit_in_bytes`, 'utf8')
      ).trim(),
    )
    const total =
      Number(/MemTotal:\s+(\d+) kB/.exec(await readFile('/proc/meminfo', 'utf8'))?.[1]) * 1024
    expect(mem).toBeGreaterThan(0)
    expect(mem).toBeLessThanOrEqual(total / 2 + 4096)

    // a fork bomb stops at the cap instead of at the host: a tighter cap keeps the test light
    await writeFile(join(ws, '.clincus.toml'), '[limits.runtime]\nmax_processes = 64\n')
    const small = await api('POST', '/api/sessions', { workspace: ws })
    expect(small.status, JSON.stringify(small.body)).toBe(200)
    const bomb = await execa(
      'incus',
      [
        'exec',
        small.body.id,
        '--user',
        '1000',
        '--group',
        '1000',
        '--',
        'sh',
        '-c',
        'i=0; while [ $i -lt 200 ]; do sleep 60 >/dev/null 2>&1 & i=$((i+1)); done; echo all-forked',
      ],
      { timeout: 60_000, reject: false },
    )
    expect(bomb.stdout).not.toContain('all-forked')
    expect(bomb.stderr).toMatch(/fork/i)
    const pidsFile = `/sys/fs/cgroup/pids/lxc.payload.${small.body.id}`
    expect((await readFile(`${pidsFile}/pids.max`, 'utf8')).trim()).toBe('64')
    expect(Number((await readFile(`${pidsFile}/pids.current`, 'utf8')).trim())).toBeLessThanOrEqual(
      64,
    )
    // the server is fine
    expect((await fetch(`${server.url}/api/health`)).status).toBe(200)
  })

  it('copies the tool config without other projects or settings secrets, 0600 (row 10)', async () => {
    await writeFile(
      join(home, '.claude.json'),
      JSON.stringify({
        oauthAccount: { accountUuid: 'acc-1' },
        hasCompletedOnboarding: true,
        mcpServers: { g: { command: 'x', env: { TOKEN: 'SECRET-GLOBAL-MCP' } } },
        projects: { '/elsewhere': { mcpServers: { db: { env: { PGPASSWORD: 'SECRET-MCP' } } } } },
      }),
    )
    await mkdir(join(home, '.claude', 'projects', 'x'), { recursive: true })
    await writeFile(join(home, '.claude', '.credentials.json'), '{"claudeAiOauth":{}}')
    await writeFile(
      join(home, '.claude', 'settings.json'),
      JSON.stringify({ env: { ANTHROPIC_API_KEY: 'SECRET-ENV', DISABLE_TELEMETRY: '1' } }),
    )
    await writeFile(join(home, '.claude', 'projects', 'x', 's.jsonl'), 'SECRET-TRANSCRIPT')
    try {
      const ws = await server.project('toolcfg')
      const res = await api('POST', '/api/sessions', { workspace: ws })
      expect(res.status, JSON.stringify(res.body)).toBe(200)
      const id = res.body.id
      const all = await execAsCode(
        id,
        'cat ~/.claude.json ~/.claude/settings.json; grep -rl SECRET ~ 2>/dev/null; true',
      )
      expect(all.stdout).toContain('acc-1')
      expect(all.stdout).toContain('DISABLE_TELEMETRY')
      expect(all.stdout).not.toContain('SECRET')
      const modes = await execAsCode(
        id,
        'stat -c "%n %a %u %g" ~/.claude.json ~/.claude/.credentials.json ~/.claude/settings.json ~/.claude; test -e ~/.claude/projects && echo projects-copied; true',
      )
      expect(modes.stdout.split('\n').sort()).toEqual([
        '/home/code/.claude 700 1000 1000',
        '/home/code/.claude.json 600 1000 1000',
        '/home/code/.claude/.credentials.json 600 1000 1000',
        '/home/code/.claude/settings.json 644 1000 1000',
      ])
    } finally {
      await rm(join(home, '.claude'), { recursive: true, force: true })
      await rm(join(home, '.claude.json'), { force: true })
    }
  })

  it('cancels and rolls back a creation whose client disconnects mid-way (row 9)', async () => {
    const ws = await server.project('cancel')
    const hash = workspaceHash(ws)
    for (const abortAt of ['init', 'start']) {
      const steps: string[] = []
      const off = server.services.hub.subscribe((e) => {
        if (e.event.type === 'session.launching' && e.event.id.includes(hash))
          steps.push(e.event.step)
      })
      try {
        const req = request(`${server.url}/api/sessions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          agent: false,
        })
        req.on('error', () => undefined)
        req.end(JSON.stringify({ workspace: ws }))
        await waitUntil(`step ${abortAt}`, () => steps.includes(abortAt), { timeoutMs: 60_000 })
        req.destroy()
        await waitUntil('the rollback', () => steps.includes('failed'), { timeoutMs: 120_000 })
        expect(steps, abortAt).not.toContain('done')
        expect((await names()).filter((n) => n.startsWith(`${server.prefix}${hash}-`))).toEqual([])
      } finally {
        off()
      }
    }
    expect((await fetch(`${server.url}/api/health`)).status).toBe(200)
    const history = (await (await fetch(`${server.url}/api/sessions/history`)).json()) as Array<{
      workspace: string
      ended_at: string | null
    }>
    expect(history.filter((h) => h.workspace === ws && h.ended_at === null)).toEqual([])
    // and the workspace still launches
    const ok = await api('POST', '/api/sessions', { workspace: ws })
    expect(ok.status, JSON.stringify(ok.body)).toBe(200)
  })

  it('maps the owner with raw.idmap (disable_shift is a no-op): /workspace writable, files the owner’s', async () => {
    await userConfig('[incus]\ndisable_shift = true\n')
    try {
      const ws = await server.project('noshift')
      const res = await api('POST', '/api/sessions', { workspace: ws })
      expect(res.status, JSON.stringify(res.body)).toBe(200)
      expect(res.body.id_mapping).toBe('raw.idmap')
      const w = await execAsCode(
        res.body.id,
        'echo hi > /workspace/made-inside && stat -c %U /workspace',
      )
      expect(w.exitCode).toBe(0)
      expect(w.stdout).toBe('code')
      const owner = await stat(join(ws, 'made-inside'))
      const wsOwner = await stat(ws)
      expect([owner.uid, owner.gid]).toEqual([wsOwner.uid, wsOwner.gid])
    } finally {
      await userConfig('')
    }
  })

  it('maps the owner with raw.idmap on a filesystem without idmapped mounts (ramfs)', async () => {
    // raw.idmap of a host id needs root to own it in /etc/subuid and /etc/subgid (setup adds
    // root:1000:1); added again here so the test holds on its own, then restored.
    const uid = await readFile('/etc/subuid', 'utf8')
    const gid = await readFile('/etc/subgid', 'utf8')
    subIdsBackup = { uid, gid }
    await writeFile('/etc/subuid', `${uid}root:1000:1\n`)
    await writeFile('/etc/subgid', `${gid}root:1000:1\n`)
    const ws = join(server.root, 'ramfs')
    await mkdir(ws)
    execFileSync('mount', ['-t', 'ramfs', 'ramfs', ws])
    mounted.push(ws)
    await mkdir(join(ws, '.git', 'hooks'), { recursive: true })
    execFileSync('chown', ['-R', '1000:1000', ws])
    const res = await api('POST', '/api/sessions', { workspace: ws })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(res.body.id_mapping).toBe('raw.idmap')
    const w = await execAsCode(res.body.id, 'echo hi > /workspace/on-ramfs && echo ok')
    expect(w.stdout).toBe('ok')
    expect((await stat(join(ws, 'on-ramfs'))).uid).toBe(1000)
  })
})
