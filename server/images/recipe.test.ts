import { describe, expect, it } from 'vitest'
import {
  BASE_PACKAGES,
  incusArchitecture,
  inputHash,
  renderMetadataYaml,
  rootfsCacheKey,
  TEMPLATES,
  type HashInputs,
} from './recipe.ts'

describe('renderMetadataYaml', () => {
  it('writes the fields Incus requires plus properties and templates', () => {
    const yaml = renderMetadataYaml({
      architecture: 'x86_64',
      creationDate: 1_700_000_000,
      properties: { description: 'clincus test image', 'clincus.input-hash': 'abc' },
      templates: { '/etc/hostname': { when: ['create', 'copy'], template: 'hostname.tpl' } },
    })
    expect(yaml).toBe(
      [
        'architecture: "x86_64"',
        'creation_date: 1700000000',
        'properties:',
        '  "description": "clincus test image"',
        '  "clincus.input-hash": "abc"',
        'templates:',
        '  "/etc/hostname":',
        '    when: ["create", "copy"]',
        '    template: "hostname.tpl"',
        '',
      ].join('\n'),
    )
  })

  it('quotes values that YAML would otherwise misread', () => {
    const yaml = renderMetadataYaml({
      architecture: 'x86_64',
      creationDate: 1,
      properties: { release: '12', description: 'a: b # "c"\nd' },
      templates: {},
    })
    expect(yaml).toContain('  "release": "12"\n')
    expect(yaml).toContain('  "description": "a: b # \\"c\\"\\nd"\n')
    expect(yaml).not.toContain('templates:')
  })
})

describe('inputHash', () => {
  const base: HashInputs = {
    kind: 'clincus-test',
    builderVersion: 1,
    suite: 'bookworm',
    packages: ['tmux', 'bash'],
    files: { 'init.sh': '#!/bin/bash\n', 'fake-tool.sh': 'echo\n' },
  }

  it('is a stable sha256 independent of key and package order', () => {
    const hash = inputHash(base)
    expect(hash).toMatch(/^[0-9a-f]{64}$/)
    expect(
      inputHash({
        ...base,
        packages: ['bash', 'tmux', 'bash'],
        files: { 'fake-tool.sh': 'echo\n', 'init.sh': '#!/bin/bash\n' },
      }),
    ).toBe(hash)
  })

  it('changes with every input', () => {
    const hash = inputHash(base)
    const variants: HashInputs[] = [
      { ...base, kind: 'clincus' },
      { ...base, builderVersion: 2 },
      { ...base, suite: 'trixie' },
      { ...base, packages: ['tmux', 'bash', 'git'] },
      { ...base, files: { ...base.files, 'fake-tool.sh': 'echo changed\n' } },
      { ...base, files: { ...base.files, 'extra.tpl': '' } },
    ]
    const hashes = new Set(variants.map(inputHash))
    expect(hashes.size).toBe(variants.length)
    expect(hashes.has(hash)).toBe(false)
  })

  it('cannot be fooled by moving content between file names', () => {
    expect(inputHash({ ...base, files: { a: 'xy', b: '' } })).not.toBe(
      inputHash({ ...base, files: { a: 'x', b: 'y' } }),
    )
  })
})

describe('rootfsCacheKey', () => {
  it('depends on the package set only, not its order', () => {
    const key = rootfsCacheKey('bookworm', 'x86_64', BASE_PACKAGES)
    expect(key).toMatch(/^[0-9a-f]{16}$/)
    expect(rootfsCacheKey('bookworm', 'x86_64', [...BASE_PACKAGES].reverse())).toBe(key)
    expect(rootfsCacheKey('bookworm', 'x86_64', [...BASE_PACKAGES, 'jq'])).not.toBe(key)
    expect(rootfsCacheKey('bookworm', 'aarch64', BASE_PACKAGES)).not.toBe(key)
  })
})

describe('incusArchitecture', () => {
  it('maps Node architecture names to the kernel names Incus uses', () => {
    expect(incusArchitecture('x64')).toBe('x86_64')
    expect(incusArchitecture('arm64')).toBe('aarch64')
    expect(() => incusArchitecture('mips')).toThrow(/unsupported/)
  })
})

describe('TEMPLATES', () => {
  it('names the instance in /etc/hosts so sudo can resolve it', () => {
    expect(TEMPLATES['/etc/hosts']?.content).toContain('127.0.1.1\t{{ instance.name }}')
  })
})
