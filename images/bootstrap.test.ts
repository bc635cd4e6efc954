import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  aptErrorLines,
  configureScript,
  hostExtraCertificates,
  mmdebstrapArgs,
  shellQuote,
} from './bootstrap.ts'

const plan = {
  suite: 'bookworm',
  archiveUri: 'http://archive.invalid/debian',
  packages: ['bash', 'jq', 'bash'],
  output: '/c/work/1/rootfs.tar',
  debCache: '/c/debs',
  overlay: '/c/work/1/overlay.tar',
  configureScript: '/c/work/1/configure.sh',
}

describe('mmdebstrapArgs', () => {
  it('bootstraps in a user namespace, never a host chroot, and ends with suite, output and mirror', () => {
    const args = mmdebstrapArgs(plan)
    expect(args[0]).toBe('--mode=unshare')
    expect(args).toContain('--variant=minbase')
    expect(args).toContain('--include=bash,jq')
    expect(args.slice(-3)).toEqual(['bookworm', '/c/work/1/rootfs.tar', plan.archiveUri])
    // Special hooks stand alone; the overlay comes in as root's files, configure runs after it.
    const hooks = args.filter((a) => a.startsWith('--customize-hook='))
    expect(hooks).toContain('--customize-hook=tar-in /c/work/1/overlay.tar /')
    const tarIn = hooks.findIndex((h) => h.includes('tar-in'))
    const configure = hooks.findIndex((h) => h.includes('/c/work/1/configure.sh'))
    expect(configure).toBeGreaterThan(tarIn)
    expect(args.some((a) => a.includes('setup.sh'))).toBe(false)
  })

  it('runs the user setup script last, inside the tree, uploaded rather than read from inside', () => {
    const args = mmdebstrapArgs({ ...plan, setupScript: '/c/work/1/setup.sh' })
    const hooks = args.filter((a) => a.startsWith('--customize-hook='))
    const setup = hooks.indexOf('--customize-hook=upload /c/work/1/setup.sh /tmp/clincus-setup.sh')
    expect(setup).toBeGreaterThan(hooks.findIndex((h) => h.includes('configure.sh')))
    expect(hooks[setup + 1]).toBe('--customize-hook=chroot "$1" /bin/sh -e /tmp/clincus-setup.sh')
    expect(hooks[setup + 2]).toBe('--customize-hook=rm -f "$1/tmp/clincus-setup.sh"')
  })
})

describe('shellQuote', () => {
  it('keeps $, spaces, quotes and backticks literal', async () => {
    const { execa } = await import('execa')
    for (const value of ["a'b", '$(id)', '`x` $HOME', 'a b\nc']) {
      const out = await execa('sh', ['-c', `printf %s ${shellQuote(value)}`])
      expect(out.stdout).toBe(value)
    }
  })
})

describe('configureScript', () => {
  it('adds the code user without extra groups, the locales and the time zone', () => {
    const script = configureScript({ timeZone: 'Europe/Paris' })
    expect(script).toContain('useradd --uid 1000 --gid 1000 --home-dir /home/code')
    expect(script).not.toMatch(/-G|--groups|sudo/)
    expect(script).toContain('en_US.UTF-8')
    expect(script).toContain('locale-gen')
    expect(script).toContain("ln -sf '/usr/share/zoneinfo/Europe/Paris' /etc/localtime")
  })

  it('falls back to UTC for a time zone name that is not one', () => {
    expect(configureScript({ timeZone: '../../etc/passwd' })).toContain('zoneinfo/Etc/UTC')
    expect(configureScript({ timeZone: "x'; rm -rf /" })).toContain('zoneinfo/Etc/UTC')
  })
})

describe('aptErrorLines', () => {
  it("keeps apt's own message and drops mmdebstrap's wrappers", () => {
    const output = [
      'I: installing remaining packages inside the chroot...',
      'Reading package lists...',
      'E: Unable to locate package no-such-pkg',
      'E: setup failed: E: apt-get -o Dir::Bin::dpkg=env ... failed',
      'I: removing tempdir /tmp/mmdebstrap.x...',
      'E: mmdebstrap failed to run',
    ].join('\n')
    expect(aptErrorLines(output)).toBe('E: Unable to locate package no-such-pkg')
  })

  it('falls back to the last lines when apt said nothing', () => {
    expect(aptErrorLines('a\nb\n\nE: mmdebstrap failed to run\n')).toBe(
      'a\nb\nE: mmdebstrap failed to run',
    )
  })
})

describe("the host's extra CA certificates", () => {
  const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
  it('takes regular .crt PEM files, in sub-folders too, never links or other files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clincus-ca-'))
    try {
      await mkdir(join(dir, 'corp'))
      await writeFile(join(dir, 'corp', 'proxy.crt'), PEM)
      await writeFile(join(dir, 'mirror.crt'), PEM)
      await writeFile(join(dir, 'notes.txt'), PEM)
      await writeFile(join(dir, 'empty.crt'), 'not a certificate')
      await writeFile(join(dir, 'secret'), 'do not read')
      await symlink(join(dir, 'secret'), join(dir, 'link.crt'))
      expect(await hostExtraCertificates(dir)).toEqual({ 'corp/proxy.crt': PEM, 'mirror.crt': PEM })
      expect(await hostExtraCertificates(join(dir, 'absent'))).toEqual({})
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('are added to the bundle by the configure script', () => {
    expect(configureScript({ timeZone: 'Etc/UTC' })).toContain('update-ca-certificates')
  })
})
