// Issue 11: the agent never reaches host privileges. Each test is a break from the table,
// attacked live as the code user (and, where the promise covers it, as container root with
// `agent_sudo = true`) through clincus's own HTTP API on the real Incus daemon.
import { spawn, type ChildProcess } from 'node:child_process'
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  describeIncus,
  startLiveServer,
  type LiveServer,
  requestJson,
} from '../test/incus-harness.ts'
import { ownByUser, WORKSPACE_OWNER } from '../test/owner.ts'
import { waitUntil } from '../test/ws-client.ts'

interface Answer {
  id: string
  error?: string
  code?: string
}

let server: LiveServer
let home: string

const api = async (method: string, path: string, body?: unknown) =>
  (await requestJson(server.url, method, path, body)) as { status: number; body: Answer }

async function launch(workspace: string): Promise<string> {
  const res = await api('POST', '/api/sessions', { workspace })
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  return res.body.id
}

async function remove(id: string): Promise<void> {
  const res = await api('DELETE', `/api/sessions/${id}?force=true`)
  expect(res.status, JSON.stringify(res.body)).toBeLessThan(300)
}

/** A shell script in the container as the code user (or as container root). */
async function inside(
  id: string,
  script: string,
  as: 'code' | 'root' = 'code',
): Promise<{ out: string; code: number }> {
  const user =
    as === 'code' ? ['--user', '1000', '--group', '1000', '--env', 'HOME=/home/code'] : []
  const r = await execa(
    'incus',
    ['exec', id, ...user, '--cwd', '/workspace', '--', 'sh', '-c', script],
    {
      timeout: 60_000,
      reject: false,
    },
  )
  return { out: `${r.stdout}\n${r.stderr}`.trim(), code: r.exitCode ?? -1 }
}

/** Writes the user config (with the harness' image and roots) and reloads it. */
async function userConfig(extra = ''): Promise<void> {
  await writeFile(
    server.configFile,
    `${extra}\n[defaults]\nimage = "clincus-test"\n\n[dashboard]\nworkspace_roots = ["${server.root}"]\n`,
  )
  await server.services.config.reload()
}

/** A fresh workspace owned by the normal user. */
async function workspace(name: string): Promise<string> {
  const dir = join(server.root, name)
  await mkdir(dir, { recursive: true })
  await ownByUser(dir)
  return dir
}

/** Host git as the workspace owner (what the user runs after the agent). */
async function hostGit(cwd: string, args: string[]): Promise<{ out: string; code: number }> {
  const r = await execa('git', ['-c', 'protocol.file.allow=always', ...args], {
    cwd,
    reject: false,
    timeout: 60_000,
    uid: WORKSPACE_OWNER.uid,
    gid: WORKSPACE_OWNER.gid,
    env: {
      HOME: join(home, 'git-home'),
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'u',
      GIT_AUTHOR_EMAIL: 'u@example.invalid',
      GIT_COMMITTER_NAME: 'u',
      GIT_COMMITTER_EMAIL: 'u@example.invalid',
    },
    extendEnv: false,
  })
  return { out: `${r.stdout}\n${r.stderr}`.trim(), code: r.exitCode ?? -1 }
}

describeIncus('containment: the agent never reaches host privileges (issue 11)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-contain-'))
    await mkdir(join(home, 'git-home'))
    await ownByUser(join(home, 'git-home'))
    await chmod(home, 0o755)
    server = await startLiveServer({ home })
    await userConfig()
  })

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('row 1: refuses root-owned workspaces and extra mounts, with the fix', async () => {
    const ws = join(server.root, 'rooted')
    await mkdir(ws)
    const res = await api('POST', '/api/sessions', { workspace: ws })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe('root_owned_folder')
    expect(res.body.error).toContain(`chown -R <you>:<your group> ${ws}`)

    const extra = join(home, 'root-extra')
    await mkdir(extra)
    await userConfig(`[[mounts.default]]\nhost = "${extra}"\ncontainer = "/extra"\n`)
    try {
      const ok = await workspace('with-extra')
      const bad = await api('POST', '/api/sessions', { workspace: ok })
      expect(bad.status).toBe(400)
      expect(bad.body.error).toMatch(/mounts\.default\[0\]\.host .* owned by the root user/)
    } finally {
      await userConfig()
    }
  })

  it('rows 1–2, 7: setuid files are the owner’s, no sudo by default, container root unprivileged, no guest API', async () => {
    const ws = await workspace('setuid')
    const id = await launch(ws)
    const planted = await inside(
      id,
      'cp /bin/bash /workspace/sh && chmod 4755 /workspace/sh && echo ok',
    )
    expect(planted.out).toBe('ok')
    const sh = await stat(join(ws, 'sh'))
    expect([sh.uid, sh.gid]).toEqual([WORKSPACE_OWNER.uid, WORKSPACE_OWNER.gid])
    // no passwordless sudo, no extra group to chgrp to
    expect((await inside(id, 'sudo -n true')).code).not.toBe(0)
    expect((await inside(id, 'id -G')).out).toBe('1000')
    expect((await inside(id, 'test -e /dev/incus/sock')).code).not.toBe(0)
    await remove(id)

    await userConfig('[security]\nagent_sudo = true\n')
    try {
      const rid = await launch(ws)
      expect((await inside(rid, 'sudo -n id -u')).out).toBe('0')
      const r = await inside(
        rid,
        'sudo cp /bin/bash /workspace/rootsh && sudo chmod 4755 /workspace/rootsh && ' +
          'sudo cp /bin/bash /workspace/disksh && sudo chgrp disk /workspace/disksh && ' +
          'sudo chmod 2755 /workspace/disksh && sudo chown 0:0 /workspace/sh; echo done',
      )
      expect(r.out).toContain('done')
      // whatever container root makes is an unprivileged host id (1000000+), never host root
      for (const f of ['rootsh', 'disksh']) {
        const st = await stat(join(ws, f))
        expect(st.uid).toBeGreaterThanOrEqual(1_000_000)
        expect(st.gid).toBeGreaterThanOrEqual(1_000_000)
      }
      // and that id is this session's alone: another session's container root is another id
      const other = await launch(await workspace('setuid-other'))
      await inside(other, 'touch /workspace/mine', 'root')
      const otherRoot = (await stat(join(server.root, 'setuid-other', 'mine'))).uid
      expect(otherRoot).toBeGreaterThanOrEqual(1_000_000)
      expect(otherRoot).not.toBe((await stat(join(ws, 'rootsh'))).uid)
      await remove(other)
      const chowned = await stat(join(ws, 'sh'))
      expect(chowned.uid === 1000 || chowned.uid >= 1_000_000).toBe(true)
      // the guest API is off: even container root gets nothing from /dev/incus
      const guest = await inside(
        rid,
        'curl -s --unix-socket /dev/incus/sock http://incus/1.0/config/user.clincus.workspace 2>&1 || ls -l /dev/incus/sock',
        'root',
      )
      expect(guest.out).not.toContain(ws)
      expect((await inside(rid, 'test -e /dev/incus/sock', 'root')).code).not.toBe(0)
      await remove(rid)
    } finally {
      await userConfig()
    }
  })

  it('rows 3–4: nothing the agent does makes host git status/checkout/commit run its program', async () => {
    const ws = await workspace('repo')
    const sub = await workspace('subsrc')
    const marker = join(home, 'marker')
    await mkdir(marker)
    await chmod(marker, 0o777)
    expect((await hostGit(sub, ['init', '-q'])).code).toBe(0)
    await hostGit(sub, ['commit', '-q', '--allow-empty', '-m', 'sub'])
    expect((await hostGit(ws, ['init', '-q'])).code).toBe(0)
    await hostGit(ws, ['commit', '-q', '--allow-empty', '-m', 'first'])
    const added = await hostGit(ws, ['submodule', 'add', '-q', sub, 'sub'])
    expect(added.code, added.out).toBe(0)
    await hostGit(ws, ['commit', '-q', '-m', 'sub'])
    const wt = await hostGit(ws, ['worktree', 'add', '-q', 'wt', '-b', 'wtb'])
    expect(wt.code, wt.out).toBe(0)

    const id = await launch(ws)
    const hook = `#!/bin/sh\ntouch ${marker}/ran-$(basename $0)\n`
    const fsmonitor = `touch ${marker}/fsmonitor`
    const attacks: Record<string, string> = {
      'rename .git': 'mv .git .git-orig && cp -a .git-orig .git',
      // a new user namespace gives no power over the mounts it inherits (they are locked)
      'unmount from a new namespace': `unshare -Urm sh -c "umount -l /workspace/.git && printf '${hook}' > /workspace/.git/hooks/post-checkout"`,
      'post-checkout hook': `printf '${hook}' > .git/hooks/post-checkout && chmod +x .git/hooks/post-checkout`,
      'pre-commit hook': `printf '${hook}' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit`,
      'config fsmonitor': `git config core.fsmonitor '${fsmonitor}'`,
      commondir: `mkdir -p /workspace/evil && git init -q /workspace/evil && git -C /workspace/evil config core.fsmonitor '${fsmonitor}' && echo /workspace/evil/.git > .git/commondir`,
      'config.worktree': `printf '[core]\\n\\tfsmonitor = ${fsmonitor}\\n' > .git/config.worktree`,
      'module config': `git config -f .git/modules/sub/config core.fsmonitor '${fsmonitor}'`,
      'worktree metadata': `echo /workspace/evil/.git > .git/worktrees/wt/commondir`,
      'info/attributes': `echo '* filter=x' > .git/info/attributes`,
      'submodule gitfile': `echo 'gitdir: /workspace/evil/.git' > sub/.git`,
      'rename submodule':
        'mv sub sub-orig && mkdir sub && echo "gitdir: /workspace/evil/.git" > sub/.git',
      'worktree gitfile': `echo 'gitdir: /workspace/evil/.git' > wt/.git`,
      'rename worktree': 'mv wt wt-orig',
      'vscode task': 'mkdir -p .vscode && echo "{}" > .vscode/tasks.json',
      'husky hook': `mkdir -p .husky && printf '${hook}' > .husky/pre-commit`,
    }
    for (const [name, script] of Object.entries(attacks)) {
      const r = await inside(id, script)
      expect(r.code, `${name} succeeded: ${r.out}`).not.toBe(0)
    }
    // reading history works; writing it does not (review and commit on the host)
    expect((await inside(id, 'git log --oneline | wc -l')).out).toBe('2')
    expect((await inside(id, 'git commit -q --allow-empty -m agent')).code).not.toBe(0)

    // the host's git, as the owner, in the workspace and its worktree
    for (const args of [
      ['status'],
      ['checkout', '-q', '-b', 'x'],
      ['commit', '-q', '--allow-empty', '-m', 'x'],
    ]) {
      const r = await hostGit(ws, args)
      expect(r.code, `git ${args.join(' ')}: ${r.out}`).toBe(0)
    }
    await hostGit(join(ws, 'wt'), ['status'])
    await hostGit(join(ws, 'sub'), ['status'])
    expect(await readdir(marker)).toEqual([])
    await remove(id)
    expect(await readdir(marker)).toEqual([])
  })

  it('rows 3–4: a registered submodule never cloned gets no .git from the agent for host git to run', async () => {
    const src = await workspace('gl-src')
    const parent = await workspace('gl-parent')
    const ws = await workspace('gl-clone')
    const marker = join(home, 'marker-gitlink')
    await mkdir(marker)
    await chmod(marker, 0o777)
    expect((await hostGit(src, ['init', '-q'])).code).toBe(0)
    await hostGit(src, ['commit', '-q', '--allow-empty', '-m', 'src'])
    expect((await hostGit(parent, ['init', '-q'])).code).toBe(0)
    for (const path of ['sub', 'vendor/lib']) {
      const added = await hostGit(parent, ['submodule', 'add', '-q', src, path])
      expect(added.code, added.out).toBe(0)
    }
    await hostGit(parent, ['commit', '-q', '-m', 'subs'])
    // `git clone` without --recurse-submodules: gitlinks in the index, no .git/modules, empty dirs
    const cloned = await hostGit(ws, ['clone', '-q', parent, '.'])
    expect(cloned.code, cloned.out).toBe(0)
    expect(await readdir(join(ws, 'sub'))).toEqual([])
    await rm(join(ws, 'vendor'), { recursive: true }) // and one whose folder is missing

    const id = await launch(ws)
    const fsmonitor = `touch ${marker}/fsmonitor`
    const evil =
      'git init -q /workspace/evil && cd /workspace/evil && echo x > f && git add f && ' +
      `git -c user.name=a -c user.email=a@b commit -qm x && git config core.fsmonitor '${fsmonitor}'`
    expect((await inside(id, evil)).code).toBe(0)
    // in this order, each attack that succeeded leaves the planted .git in place for host git
    const attacks: Record<string, string> = {
      'rename the folder': 'mv sub sub-orig && mkdir sub',
      'rename its parent': 'mkdir -p vendor/lib && mv vendor vendor-orig && mkdir -p vendor/lib',
      'replace the folder': 'rmdir sub && mkdir sub',
      'git init': 'git init -q sub && rm -rf sub/.git',
      'a gitfile': 'echo "gitdir: ../evil/.git" > sub/.git',
      'a .git directory where the folder was missing': 'cp -a /workspace/evil/.git vendor/lib/.git',
    }
    for (const [name, script] of Object.entries(attacks)) {
      const r = await inside(id, script)
      expect(r.code, `${name} succeeded: ${r.out}`).not.toBe(0)
    }
    const status = await hostGit(ws, ['status'])
    expect(status.code, status.out).toBe(0)
    expect(await readdir(marker)).toEqual([])
    await remove(id)
    // the folder made for the missing submodule goes with the session
    expect((await readdir(ws)).sort()).toEqual(['.git', '.gitmodules', 'evil', 'sub'])
  })

  it('row 5: a symlinked .git, a gitfile pointing outside, a symlinked protected path refuse the launch', async () => {
    const ws = await workspace('links')
    await rm(join(ws, '.git'), { recursive: true, force: true })
    await symlink('/etc', join(ws, '.git'))
    let res = await api('POST', '/api/sessions', { workspace: ws })
    expect(res.status).toBe(400)
    expect(res.body.error).toContain('.git in the workspace is a symlink')
    await rm(join(ws, '.git'))
    await writeFile(join(ws, '.git'), `gitdir: ${home}/elsewhere/.git\n`)
    res = await api('POST', '/api/sessions', { workspace: ws })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe('gitfile_outside')
    await rm(join(ws, '.git'))
    await mkdir(join(ws, 'a'))
    await symlink('/root', join(ws, 'a', '.vscode'))
    await userConfig('[security]\nadditional_protected_paths = ["a/.vscode"]\n')
    try {
      res = await api('POST', '/api/sessions', { workspace: ws })
      expect(res.status).toBe(400)
      expect(res.body.error).toContain('a/.vscode in the workspace is a symlink')
    } finally {
      await userConfig()
    }
  })

  it('row 5: absent .vscode/.husky/.git are protected (the agent cannot create them) and gone after delete', async () => {
    const ws = await workspace('absent')
    await rm(join(ws, '.git'), { recursive: true, force: true })
    expect(await readdir(ws)).toEqual([])
    const id = await launch(ws)
    for (const script of [
      'echo "{}" > .vscode/tasks.json',
      'echo x > .husky/pre-commit',
      'git init -q .',
      'rmdir .vscode',
      'mv .vscode .vscode2',
    ]) {
      expect((await inside(id, script)).code, script).not.toBe(0)
    }
    expect((await inside(id, 'echo ok > /workspace/ok && echo fine')).out).toBe('fine')
    await remove(id)
    expect((await readdir(ws)).sort()).toEqual(['ok'])
  })

  it('row 6 on resume: a protected path swapped while the session was stopped refuses the resume', async () => {
    const ws = await workspace('resume-swap')
    await mkdir(join(ws, '.vscode'))
    await ownByUser(ws)
    const id = await launch(ws)
    expect((await api('DELETE', `/api/sessions/${id}`)).status).toBeLessThan(300)
    // another directory in its place: mounted by Incus, caught by the check after start
    await rename(join(ws, '.vscode'), join(ws, '.vscode-old'))
    await mkdir(join(ws, '.vscode'))
    const changed = await api('POST', `/api/sessions/${id}/resume`)
    expect(changed.status, JSON.stringify(changed.body)).toBe(409)
    expect(changed.body.code).toBe('protected_path_changed')
    await waitUntil('the refused session to be stopped', async () => {
      const r = await execa('incus', ['list', id, '--format=csv', '--columns=s'])
      return r.stdout.trim() === 'STOPPED' ? true : undefined
    })
    // a link in its place
    await rm(join(ws, '.vscode'), { recursive: true })
    await symlink(home, join(ws, '.vscode'))
    const res = await api('POST', `/api/sessions/${id}/resume`)
    expect(res.status, JSON.stringify(res.body)).not.toBe(200)
    expect(res.status).toBeGreaterThanOrEqual(400)
    // whatever Incus did with the link (LXC refuses a symlinked target; a swapped source is caught
    // by the check after start), no agent runs with it: the session ends up stopped
    await waitUntil('the refused session to be stopped', async () => {
      const r = await execa('incus', ['list', id, '--format=csv', '--columns=s'])
      return r.stdout.trim() === 'STOPPED' ? true : undefined
    })
    await remove(id)
  })

  it('row 3 with agent_sudo: container root can unmount the protection (not promised)', async () => {
    const ws = await workspace('sudo-umount')
    await userConfig('[security]\nagent_sudo = true\n')
    try {
      const id = await launch(ws)
      const r = await inside(id, 'sudo umount /workspace/.git && echo unmounted')
      // Documented in SECURITY.md: with agent_sudo the protected paths do not hold against
      // container root. The test pins what is true today so a change is noticed.
      expect(r.out).toContain('unmounted')
      await remove(id)
    } finally {
      await userConfig()
    }
  })
})

describeIncus('containment: no check-then-use gap (issue 11 row 6)', () => {
  let flipper: ChildProcess | null = null
  let rhome: string
  let rserver: LiveServer

  beforeAll(async () => {
    rhome = await mkdtemp(join(tmpdir(), 'clincus-race-'))
    rserver = await startLiveServer({ home: rhome })
    await writeFile(
      rserver.configFile,
      `[defaults]\nimage = "clincus-test"\n\n[dashboard]\nworkspace_roots = ["${rserver.root}"]\n` +
        // (the launches outpace the default request rate limit)
        `rate_limit_per_minute = 100000\n\n[security]\nprotected_paths = [".vscode"]\n`,
    )
    await rserver.services.config.reload()
  })

  afterAll(async () => {
    flipper?.kill('SIGKILL')
    await rserver.close()
    await rm(rhome, { recursive: true, force: true })
  })

  it('flipping .vscode with a symlink to a root-only directory never mounts it, over 50–200 racing launches', async () => {
    const ws = join(rserver.root, 'race')
    await mkdir(join(ws, '.vscode'), { recursive: true })
    await mkdir(join(ws, '.git'))
    await writeFile(join(ws, '.vscode', 'real'), 'real\n')
    await ownByUser(ws)
    const secret = join(rhome, 'secret')
    await mkdir(secret, { mode: 0o700 })
    await writeFile(join(secret, 'token'), 'secret\n', { mode: 0o600 })
    await symlink(secret, join(ws, '.vscode-link'))
    // renameat2(RENAME_EXCHANGE) in a tight loop: .vscode is the real dir or the link, atomically
    // (perl's syscall() needs variables: it may write through its string arguments)
    const flip =
      'my ($a, $b) = (".vscode", ".vscode-link"); ' +
      'while (1) { syscall(316, -100, $a, -100, $b, 2) == 0 or die "renameat2: $!" }'
    flipper = spawn('perl', ['-e', flip], { cwd: ws, stdio: 'ignore' })
    const flips = flipper
    const exited = new Promise<number | null>((resolve) => flips.once('exit', resolve))

    const TOTAL = 200
    const PARALLEL = 4
    // Bounded in time as well: a launch that gets through costs an `incus init`, seconds on a
    // busy machine's dir pool, so a slow run makes fewer attempts (at least MIN_ATTEMPTS).
    const MIN_ATTEMPTS = 50
    const deadline = Date.now() + 300_000
    const outcomes: Record<string, number> = {}
    const foreign: string[] = []
    const reasons = new Set<string>()
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < TOTAL && Date.now() < deadline) {
        next++
        const res = await fetch(`${rserver.url}/api/sessions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ workspace: ws }),
        })
        const body = (await res.json()) as Answer
        const key = res.status === 200 ? 'launched' : `${res.status} ${body.code ?? ''}`
        outcomes[key] = (outcomes[key] ?? 0) + 1
        if (res.status !== 200) {
          if (res.status >= 500 && reasons.size < 5) reasons.add(body.error ?? '')
          continue
        }
        // The secret's token visible, or its directory among the container's mounts. (The host's
        // flips go on after the launch: renaming the mount point on the host detaches the mount in
        // the container, so .vscode may show the link by now; that is no foreign mount.)
        const seen = await inside(
          body.id,
          `ls -A /workspace/.vscode/; grep -c ${secret} /proc/1/mountinfo`,
          'root',
        )
        if (seen.out.includes('token') || !/^0$/m.test(seen.out))
          foreign.push(`${body.id}: ${seen.out}`)
        await fetch(`${rserver.url}/api/sessions/${body.id}?force=true`, { method: 'DELETE' })
      }
    }
    await Promise.all(Array.from({ length: PARALLEL }, worker))
    // the flipper ran the whole time (it dies on the first failed exchange)
    expect(flips.exitCode).toBeNull()
    flips.kill('SIGKILL')
    await exited
    flipper = null
    const total = Object.values(outcomes).reduce((a, b) => a + b, 0)
    process.stdout.write(
      `race outcomes: ${JSON.stringify(outcomes)} ${JSON.stringify([...reasons])}\n`,
    )
    expect(foreign).toEqual([])
    expect(total).toBeGreaterThanOrEqual(MIN_ATTEMPTS)
    // the flips really raced: some launches were refused, some got through with the real dir
    expect(outcomes.launched ?? 0).toBeGreaterThan(0)
    expect(total - (outcomes.launched ?? 0)).toBeGreaterThan(0)
    // refusals are the user's 4xx or Incus failing on a swapped source, never a crash
    for (const key of Object.keys(outcomes)) expect(key).not.toMatch(/^5(?!02)/)
  }, 420_000)
})
