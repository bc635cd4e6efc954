import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import {
  parseDeb822Sources,
  parseOneLineSources,
  pickArchive,
  readAptSources,
  renderBackportsSources,
} from './apt-sources.ts'

// Hosts in these samples are placeholders (.invalid, RFC 2606), never real mirrors.
const DEBIAN_SOURCES = `Types: deb
# http://snapshot.example.invalid/archive/debian/20250520T000000Z
URIs: http://mirror.example.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.example.invalid/archive/debian-security/20250520T000000Z
URIs: http://mirror.example.invalid/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`

describe('parseDeb822Sources', () => {
  it('reads stanzas, ignoring comment lines inside them', () => {
    const sources = parseDeb822Sources(DEBIAN_SOURCES, 'debian.sources')
    expect(sources).toEqual([
      {
        file: 'debian.sources',
        types: ['deb'],
        uris: ['http://mirror.example.invalid/debian'],
        suites: ['bookworm', 'bookworm-updates'],
        components: ['main'],
        signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg',
      },
      {
        file: 'debian.sources',
        types: ['deb'],
        uris: ['http://mirror.example.invalid/debian-security'],
        suites: ['bookworm-security'],
        components: ['main'],
        signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg',
      },
    ])
  })

  it('skips disabled stanzas, keeps multiple URIs, and drops inline keys', () => {
    const text = [
      'Types: deb deb-src',
      'URIs: http://a.example.invalid/debian http://b.example.invalid/debian',
      'Suites: bookworm',
      'Components: main contrib',
      'Signed-By:',
      ' -----BEGIN PGP PUBLIC KEY BLOCK-----',
      ' .',
      ' mQINBF...',
      ' -----END PGP PUBLIC KEY BLOCK-----',
      '',
      '',
      'Enabled: no',
      'Types: deb',
      'URIs: http://c.example.invalid/debian',
      'Suites: bookworm',
      '',
    ].join('\r\n')
    const sources = parseDeb822Sources(text, 'x.sources')
    expect(sources).toHaveLength(1)
    expect(sources[0]).toEqual({
      file: 'x.sources',
      types: ['deb', 'deb-src'],
      uris: ['http://a.example.invalid/debian', 'http://b.example.invalid/debian'],
      suites: ['bookworm'],
      components: ['main', 'contrib'],
    })
  })

  it('treats field names case-insensitively', () => {
    const [source] = parseDeb822Sources(
      'types: deb\nuris: file:/srv/mirror\nsuites: bookworm\n',
      'f',
    )
    expect(source?.uris).toEqual(['file:/srv/mirror'])
  })
})

describe('parseOneLineSources', () => {
  it('parses options, comments and deb-src lines', () => {
    const text = [
      '# main archive',
      'deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://m.example.invalid/debian bookworm main non-free-firmware',
      'deb-src http://m.example.invalid/debian bookworm main',
      'deb http://m.example.invalid/debian-security bookworm-security main # security',
      '   ',
      'not a source line',
    ].join('\n')
    expect(parseOneLineSources(text, 'sources.list')).toEqual([
      {
        file: 'sources.list',
        types: ['deb'],
        uris: ['http://m.example.invalid/debian'],
        suites: ['bookworm'],
        components: ['main', 'non-free-firmware'],
        signedBy: '/usr/share/keyrings/k.gpg',
      },
      {
        file: 'sources.list',
        types: ['deb-src'],
        uris: ['http://m.example.invalid/debian'],
        suites: ['bookworm'],
        components: ['main'],
      },
      {
        file: 'sources.list',
        types: ['deb'],
        uris: ['http://m.example.invalid/debian-security'],
        suites: ['bookworm-security'],
        components: ['main'],
      },
    ])
  })

  it('keeps bracketed cdrom URIs whole so they can be skipped', () => {
    const [source] = parseOneLineSources(
      'deb cdrom:[Debian GNU/Linux 12.0.0 _Bookworm_ - Official amd64 DVD]/ bookworm contrib main\n',
      'f',
    )
    expect(source?.uris).toEqual([
      'cdrom:[Debian GNU/Linux 12.0.0 _Bookworm_ - Official amd64 DVD]/',
    ])
    expect(source?.suites).toEqual(['bookworm'])
    expect(pickArchive(source ? [source] : [], 'bookworm')).toBeUndefined()
  })

  it('ignores commented-out entries', () => {
    expect(
      parseOneLineSources('#deb http://x.example.invalid/debian bookworm main\n', 'f'),
    ).toEqual([])
  })
})

describe('pickArchive', () => {
  it('picks the bookworm archive, not the security one listed first', () => {
    const sources = [
      ...parseOneLineSources(
        'deb http://m.example.invalid/debian-security bookworm-security main\n',
        'a.list',
      ),
      ...parseDeb822Sources(DEBIAN_SOURCES, 'debian.sources'),
    ]
    expect(pickArchive(sources, 'bookworm')).toEqual({
      uri: 'http://mirror.example.invalid/debian',
      file: 'debian.sources',
      signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg',
    })
  })

  it('skips deb-src-only entries and cdrom URIs, taking the first usable URI', () => {
    const sources = parseDeb822Sources(
      [
        'Types: deb-src',
        'URIs: http://src.example.invalid/debian',
        'Suites: bookworm',
        '',
        'Types: deb',
        'URIs: cdrom:[Debian 12]/ http://a.example.invalid/debian http://b.example.invalid/debian',
        'Suites: bookworm',
      ].join('\n'),
      'f.sources',
    )
    expect(pickArchive(sources, 'bookworm')?.uri).toBe('http://a.example.invalid/debian')
  })

  it('returns undefined when only other suites are configured', () => {
    const sources = parseOneLineSources(
      'deb http://m.example.invalid/debian-security bookworm-security main\n' +
        'deb http://m.example.invalid/debian bookworm-updates main\n',
      'f',
    )
    expect(pickArchive(sources, 'bookworm')).toBeUndefined()
  })
})

describe('renderBackportsSources', () => {
  it('writes a deb822 stanza for the backports suite of the chosen archive', () => {
    const text = renderBackportsSources(
      {
        uri: 'http://m.example.invalid/debian',
        file: '/etc/apt/sources.list.d/debian.sources',
        signedBy: '/k.gpg',
      },
      'bookworm-backports',
    )
    expect(text).toBe(
      '# Written by clincus setup (copied from /etc/apt/sources.list.d/debian.sources) to install Incus from bookworm-backports.\n' +
        'Types: deb\nURIs: http://m.example.invalid/debian\nSuites: bookworm-backports\n' +
        'Components: main\nSigned-By: /k.gpg\n',
    )
    // Round trip: what we write is what apt (and we) read back.
    expect(pickArchive(parseDeb822Sources(text, 'f'), 'bookworm-backports')?.uri).toBe(
      'http://m.example.invalid/debian',
    )
  })
})

describe('readAptSources', () => {
  it('reads sources.list, then .list and .sources files in order, skipping our own file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clincus-apt-'))
    onTestFinished(() => rm(dir, { recursive: true, force: true }))
    await mkdir(join(dir, 'sources.list.d'))
    await writeFile(
      join(dir, 'sources.list'),
      'deb http://one.example.invalid/debian bookworm main\n',
    )
    await writeFile(join(dir, 'sources.list.d', 'b.sources'), DEBIAN_SOURCES)
    await writeFile(
      join(dir, 'sources.list.d', 'a.list'),
      'deb http://two.example.invalid/x stable main\n',
    )
    await writeFile(
      join(dir, 'sources.list.d', 'c.list.disabled'),
      'deb http://no.example.invalid/ bookworm main\n',
    )
    await writeFile(
      join(dir, 'sources.list.d', 'clincus-backports.sources'),
      'Types: deb\nURIs: http://no.example.invalid/debian\nSuites: bookworm-backports\n',
    )
    const sources = await readAptSources(dir)
    expect(sources.map((source) => source.uris[0])).toEqual([
      'http://one.example.invalid/debian',
      'http://two.example.invalid/x',
      'http://mirror.example.invalid/debian',
      'http://mirror.example.invalid/debian-security',
    ])
  })
})
