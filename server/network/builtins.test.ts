// Built-in allow entries: every tool's table parses, the host's registries become entries, and
// the host's proxy becomes the default upstream.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { TOOLS } from '../../shared/tools.ts'
import { tempDir } from '../test/helpers.ts'
import { aptSourceEntries, entryForUrl, hostUpstreamProxy, TOOL_DOMAINS } from './builtins.ts'
import { parseEntries } from './policy.ts'

describe('built-in network entries', () => {
  it('every tool has a table of valid entries', () => {
    for (const tool of TOOLS) {
      const { entries, invalid } = parseEntries(TOOL_DOMAINS[tool])
      expect(invalid, tool).toEqual([])
      expect(entries.length, tool).toBeGreaterThan(0)
    }
  })

  it('turns registry URLs into entries', () => {
    expect(entryForUrl('https://registry.npmjs.example/')).toBe('registry.npmjs.example')
    expect(entryForUrl('http://mirror.example:8080/debian')).toBe('mirror.example:8080')
    expect(entryForUrl('https://mirror.example:443/x')).toBe('mirror.example')
    expect(entryForUrl('file:///srv/debian')).toBeNull()
    expect(entryForUrl('not a url')).toBeNull()
  })

  it("reads the host's apt sources (deb822 and one-line)", async () => {
    const etc = await tempDir()
    await mkdir(join(etc, 'sources.list.d'), { recursive: true })
    await writeFile(
      join(etc, 'sources.list.d', 'debian.sources'),
      'Types: deb\nURIs: http://deb.mirror.example/debian\nSuites: bookworm\nComponents: main\n',
    )
    await writeFile(
      join(etc, 'sources.list'),
      'deb https://sec.mirror.example/debian-security bookworm-security main\n',
    )
    expect((await aptSourceEntries(etc)).sort()).toEqual([
      'deb.mirror.example',
      'sec.mirror.example',
    ])
  })

  it("takes the host's HTTPS_PROXY as the default upstream", () => {
    expect(hostUpstreamProxy({ HTTPS_PROXY: 'http://proxy.corp:3128' })).toBe(
      'http://proxy.corp:3128',
    )
    expect(hostUpstreamProxy({ https_proxy: 'http://p:1', HTTP_PROXY: 'http://q:2' })).toBe(
      'http://p:1',
    )
    expect(hostUpstreamProxy({ HTTPS_PROXY: 'socks5://x:1' })).toBeUndefined()
    expect(hostUpstreamProxy({})).toBeUndefined()
  })
})
