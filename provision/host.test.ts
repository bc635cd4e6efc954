import { describe, expect, it } from 'vitest'
import { isDebianFamily, parseOsRelease } from './host.ts'

describe('parseOsRelease', () => {
  it('reads quoted and unquoted values', () => {
    const os = parseOsRelease(
      'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n',
    )
    expect(os).toEqual({
      id: 'debian',
      idLike: [],
      versionCodename: 'bookworm',
      prettyName: 'Debian GNU/Linux 12 (bookworm)',
    })
    expect(parseOsRelease('ID=linuxmint\nID_LIKE="ubuntu debian"\n').idLike).toEqual([
      'ubuntu',
      'debian',
    ])
  })

  it('tells the Debian family apart', () => {
    expect(isDebianFamily(parseOsRelease('ID=ubuntu\n'))).toBe(true)
    expect(isDebianFamily(parseOsRelease('ID=linuxmint\nID_LIKE="ubuntu debian"\n'))).toBe(true)
    expect(isDebianFamily(parseOsRelease('ID=fedora\n'))).toBe(false)
  })
})
