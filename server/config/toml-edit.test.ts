import { parse } from 'smol-toml'
import { describe, expect, it } from 'vitest'
import { setDashboardKeys, setNetworkAllow } from './toml-edit.ts'

const HAND_WRITTEN = `# My clincus config
# edited by hand

[defaults]
image = "clincus" # the session image
persistent = true

[dashboard]
# where my projects live
workspace_roots = [
  "~/projects", # main
  "~/work",
]
port = 3000 # default port

[limits.cpu]
count = "2"
`

describe('setDashboardKeys', () => {
  it('keeps comments, ordering and other keys when changing the port', () => {
    const out = setDashboardKeys(HAND_WRITTEN, { port: 3001 })
    expect(out).toBe(
      HAND_WRITTEN.replace('port = 3000 # default port', 'port = 3001 # default port'),
    )
  })

  it('rewrites a multi-line workspace_roots in place', () => {
    const out = setDashboardKeys(HAND_WRITTEN, {
      workspace_roots: ['~/projects', '~/work', '/srv/code'],
    })
    expect(out).toContain(
      '# where my projects live\nworkspace_roots = [\n  "~/projects",\n  "~/work",\n  "/srv/code",\n]\nport = 3000 # default port',
    )
    expect(out).toContain('image = "clincus" # the session image')
    expect(out.startsWith('# My clincus config\n# edited by hand\n')).toBe(true)
    expect(parse(out)).toMatchObject({ limits: { cpu: { count: '2' } }, dashboard: { port: 3000 } })
  })

  it('adds missing keys inside an existing [dashboard] and a missing table at the end', () => {
    const a = setDashboardKeys('[dashboard]\nport = 1\n\n[git]\nwritable_hooks = false\n', {
      workspace_roots: ['/x'],
    })
    expect(a).toBe(
      '[dashboard]\nport = 1\nworkspace_roots = ["/x"]\n\n[git]\nwritable_hooks = false\n',
    )
    const b = setDashboardKeys('# only a comment\n', { port: 4000, workspace_roots: [] })
    expect(b).toBe('# only a comment\n\n[dashboard]\nport = 4000\nworkspace_roots = []\n')
    expect(setDashboardKeys('', { port: 5 })).toBe('[dashboard]\nport = 5\n')
  })

  it('escapes strings and keeps brackets inside strings intact', () => {
    const out = setDashboardKeys('[dashboard]\nworkspace_roots = ["/a]b", \'/c\'] # x\n', {
      workspace_roots: ['/d "quoted"', '/e\\f'],
    })
    expect(parse(out)).toEqual({ dashboard: { workspace_roots: ['/d "quoted"', '/e\\f'] } })
    expect(out).toContain('# x')
  })

  it('refuses to guess when the file defines dashboard keys in a form it cannot edit', () => {
    expect(() => setDashboardKeys('dashboard.port = 1\n', { port: 2 })).toThrow()
  })
})

describe('setNetworkAllow', () => {
  it('adds [network] allow to a file without it, keeping everything else', () => {
    const out = setNetworkAllow(HAND_WRITTEN, ['example.com'])
    expect(out.startsWith(HAND_WRITTEN.trimEnd())).toBe(true)
    expect(parse(out).network).toEqual({ allow: ['example.com'] })
  })

  it('rewrites an existing multi-line list in place, comments around it kept', () => {
    const text =
      '# top\n[network]\nmode = "allowlist" # keep\nallow = [\n  "a.example", # first\n]\n# tail\n'
    const out = setNetworkAllow(text, ['a.example', 'b.example'])
    expect(out).toContain('# top')
    expect(out).toContain('mode = "allowlist" # keep')
    expect(out).toContain('# tail')
    expect(parse(out).network).toEqual({ mode: 'allowlist', allow: ['a.example', 'b.example'] })
  })
})
