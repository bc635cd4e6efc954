// Primed members (issue 16), the pure side: the key (stable, and sensitive to each thing a member
// fixed in its container), the request list (the N most recent, a failed fill drops its request)
// and claims (only on an equal key; a different key gives the member back as stale; one member
// never goes to two creates).
import { describe, expect, it } from 'vitest'
import { defaultConfig } from '../../config/merge.ts'
import { chooseIdMapping } from '../id-mapping.ts'
import type { LaunchPlan } from '../launch-plan.ts'
import { primedKey, primedMismatch, type PrimeRequest } from './primed-key.ts'
import { PrimedMembers, type PrimedMade } from './primed.ts'

function plan(over: Partial<LaunchPlan> = {}): LaunchPlan {
  const config = defaultConfig()
  const owner = { uid: 1000, gid: 1000 }
  return {
    workspace: '/home/u/proj',
    config,
    tool: 'claude',
    persistent: false,
    image: 'clincus',
    profile: undefined,
    owner,
    workspaceId: { dev: 42, ino: 7 },
    mounts: [
      {
        device: 'mount-1',
        source: '/home/u/.gitconfig',
        path: '/home/code/.gitconfig',
        id: { dev: 42, ino: 3 },
      },
    ],
    mapping: chooseIdMapping(owner, 1000),
    rootDisk: {},
    maxDurationMs: null,
    protection: {
      root: { rel: '.', kind: 'dir', dev: 42, ino: 7 },
      created: [],
      devices: [
        {
          device: 'protect-git',
          source: '/home/u/proj/.git',
          path: '/workspace/.git',
          readonly: true,
          expect: { rel: '.git', kind: 'dir', dev: 42, ino: 8 },
        },
      ],
    },
    ...over,
  }
}

const NET = { HTTPS_PROXY: 'http://127.0.0.1:3128' }

describe('primedKey', () => {
  it('is stable: the same plan (planned again, with other launch times) gives the same key', () => {
    const a = primedKey(plan(), NET)
    const b = primedKey(plan({ persistent: true, maxDurationMs: 60_000 }), { ...NET })
    expect(b.key).toBe(a.key)
    expect(a.key).toMatch(/^[a-f0-9]{32}$/)
    // Directories the protection created are not what the container holds: not in the key.
    const p = plan()
    if (p.protection) p.protection.created = ['.git']
    expect(primedKey(p, NET).key).toBe(a.key)
  })

  it('changes with each thing the member fixed in its container, and says which', () => {
    const base = primedKey(plan(), NET)
    const config = defaultConfig()
    const tighter = { ...config, limits: { ...config.limits, cpu: { count: '1' } } }
    const gitSwapped = plan()
    const dev = gitSwapped.protection?.devices[0]
    if (dev) dev.expect = { ...dev.expect, ino: 9 }
    const rootSwapped = plan()
    if (rootSwapped.protection) rootSwapped.protection.root.ino = 99
    const cases: [string, ReturnType<typeof primedKey>, RegExp][] = [
      ['image', primedKey(plan({ image: 'other' }), NET), /image/],
      ['root disk', primedKey(plan({ rootDisk: { size: '5GiB' } }), NET), /root disk/],
      ['workspace', primedKey(plan({ workspace: '/home/u/other' }), NET), /workspace, tool/],
      ['tool', primedKey(plan({ tool: 'opencode' }), NET), /workspace, tool/],
      ['profile', primedKey(plan({ profile: 'p' }), NET), /workspace, tool/],
      ['config', primedKey(plan({ config: tighter as LaunchPlan['config'] }), NET), /config/],
      ['mounts', primedKey(plan({ mounts: [] }), NET), /mounts/],
      [
        'a mounted file replaced',
        primedKey(
          plan({
            mounts: [
              {
                device: 'mount-1',
                source: '/home/u/.gitconfig',
                path: '/home/code/.gitconfig',
                id: { dev: 42, ino: 4 },
              },
            ],
          }),
          NET,
        ),
        /mounts/,
      ],
      ['protected identity', primedKey(gitSwapped, NET), /\.git replaced/],
      ['workspace identity', primedKey(rootSwapped, NET), /protected paths/],
      ['no protection', primedKey(plan({ protection: null }), NET), /protected paths/],
      ['owner', primedKey(plan({ owner: { uid: 1001, gid: 1000 } }), NET), /owner/],
      [
        'id mapping',
        primedKey(plan({ mapping: chooseIdMapping({ uid: 1000, gid: 1000 }, 1001) }), NET),
        /owner/,
      ],
      [
        'network',
        primedKey(plan(), { ...NET, 'user.clincus.network': '{"mode":"none"}' }),
        /network/,
      ],
    ]
    for (const [what, key, words] of cases) {
      expect(key.key, what).not.toBe(base.key)
      expect(primedMismatch(base, key), what).toMatch(words)
    }
  })

  it('red team: changes when the workspace folder is replaced at its path, without protection too', () => {
    const unprotected = primedKey(plan({ protection: null }), NET)
    const replaced = primedKey(plan({ protection: null, workspaceId: { dev: 42, ino: 70 } }), NET)
    expect(replaced.key).not.toBe(unprotected.key)
    expect(primedMismatch(unprotected, replaced)).toMatch(/workspace folder was replaced/)
  })

  it('ignores the pool and dashboard sections and profiles other than the request one', () => {
    const config = defaultConfig()
    const a = primedKey(plan(), NET)
    const other = {
      ...config,
      pool: { size: 0, primed: 3, prestart: true },
      dashboard: { ...config.dashboard, port: 4000 },
    }
    expect(primedKey(plan({ config: other }), NET).key).toBe(a.key)
  })
})

function made(key: ReturnType<typeof primedKey>): PrimedMade {
  return { key, workspace: '/home/u/proj', protection: null, memoryBytes: 1000, agent: null }
}

const REQ: PrimeRequest = { workspace: '/home/u/proj', tool: 'claude', profile: undefined }

describe('PrimedMembers', () => {
  it('keeps the N most recent distinct requests; a failed fill drops its request', () => {
    const m = new PrimedMembers()
    const r = (w: string): PrimeRequest => ({ workspace: w, tool: 'claude', profile: undefined })
    m.remember(r('/a'), 2)
    m.remember(r('/b'), 2)
    m.remember(r('/a'), 2)
    expect(m.recent().map((x) => x.workspace)).toEqual(['/a', '/b'])
    m.remember(r('/c'), 2)
    expect(m.recent().map((x) => x.workspace)).toEqual(['/c', '/a'])
    expect(m.next(2)).toEqual({ fill: r('/c') })
    m.drop(r('/c'))
    expect(m.recent().map((x) => x.workspace)).toEqual(['/a'])
    // 0 disables: nothing kept, nothing to fill.
    expect(m.next(0)).toBeNull()
    expect(m.recent()).toEqual([])
  })

  it('hands a member to a claim with an equal key only, once', () => {
    const m = new PrimedMembers()
    m.remember(REQ, 1)
    m.begin('w1', REQ)
    const key = primedKey(plan(), NET)
    // Being made: not claimable, and said so.
    expect(m.claim(REQ, key)).toEqual({ reason: 'the primed container is still being made' })
    expect(m.ready('w1', made(key))).toBe(true)
    expect(m.status()).toEqual({ ready: 1, creating: 0, memory_bytes: 1000 })
    expect(m.claim({ ...REQ, tool: 'opencode' }, key)).toBeNull()
    const got = m.claim(REQ, key)
    expect(got).toMatchObject({ name: 'w1' })
    // The second of two racing creates finds nothing (the first took it synchronously).
    expect(m.claim(REQ, key)).toBeNull()
    expect(m.has('w1')).toBe(false)
    // The request stays: the pool primes it again.
    expect(m.next(1)).toEqual({ fill: REQ })
  })

  it('gives a member with another key back as stale, with the reason', () => {
    const m = new PrimedMembers()
    m.remember(REQ, 1)
    m.begin('w1', REQ)
    m.ready('w1', made(primedKey(plan(), NET)))
    const swapped = plan()
    const dev = swapped.protection?.devices[0]
    if (dev) dev.expect = { ...dev.expect, ino: 1234 }
    const got = m.claim(REQ, primedKey(swapped, NET))
    expect(got).toMatchObject({ stale: { name: 'w1' } })
    expect(got && 'reason' in got ? got.reason : '').toMatch(/\.git replaced/)
    expect(m.has('w1')).toBe(false)
  })

  it('rebuilds members of an older epoch and of requests no longer kept', () => {
    const m = new PrimedMembers()
    const key = primedKey(plan(), NET)
    m.remember(REQ, 1)
    m.begin('w1', REQ)
    m.ready('w1', made(key))
    expect(m.next(1)).toBeNull()
    m.invalidate()
    // An invalidated member is never claimed, even with an equal key.
    expect(m.claim(REQ, key)).toMatchObject({ stale: { name: 'w1' } })
    m.begin('w2', REQ)
    m.ready('w2', made(key))
    m.invalidate()
    expect(m.next(1)).toMatchObject({ remove: 'w2' })
    m.begin('w3', REQ)
    m.ready('w3', made(key))
    m.remember({ ...REQ, workspace: '/other' }, 1)
    expect(m.next(1)).toMatchObject({ remove: 'w3' })
    expect(m.next(1)).toEqual({ fill: { ...REQ, workspace: '/other' } })
  })
})

describe('PrimedMembers across a config reload and session ends', () => {
  it('a member whose fill ran across a reload (invalidate) is rebuilt, never claimed', () => {
    const m = new PrimedMembers()
    const key = primedKey(plan(), NET)
    m.remember(REQ, 1)
    m.begin('w1', REQ)
    // The config reloaded while the member was being made.
    m.invalidate()
    expect(m.ready('w1', made(key))).toBe(true)
    expect(m.claim(REQ, key)).toMatchObject({ stale: { name: 'w1' } })
    m.begin('w2', REQ)
    m.invalidate()
    m.ready('w2', made(key))
    expect(m.next(1)).toMatchObject({ remove: 'w2' })
  })

  it('takes over the folders of an ended session of its workspace, and hands them on', () => {
    const m = new PrimedMembers()
    const key = primedKey(plan(), NET)
    m.remember(REQ, 1)
    m.begin('w1', REQ)
    // While being made, and once made: the folders become the member's (deepest last).
    expect(m.adoptCreated(REQ.workspace, ['.git/hooks', '.git'])).toBe(true)
    const p = plan()
    m.ready('w1', { ...made(key), protection: p.protection })
    expect(m.adoptCreated(REQ.workspace, ['.vscode'])).toBe(true)
    // Not for another workspace, nor for the member itself (its own fill failing).
    expect(m.adoptCreated('/elsewhere', ['x'])).toBe(false)
    expect(m.adoptCreated(REQ.workspace, ['y'], 'w1')).toBe(false)
    const got = m.claim(REQ, key)
    expect(got && 'name' in got ? got.made.protection?.created : null).toEqual([
      '.git',
      '.vscode',
      '.git/hooks',
    ])
  })
})
