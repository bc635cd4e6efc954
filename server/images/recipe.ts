// What goes into our images, as data: package lists, the metadata.yaml Incus reads, and the hash
// that tells a later run whether the test image is still current. Pure; build.ts does the work.
import { createHash } from 'node:crypto'

export type ImageKind = 'clincus' | 'clincus-test'

/** Bump when the build steps change in a way the hashed inputs do not show. */
export const BUILDER_VERSION = 2
/** bookworm for both: the real image runs the host's node binary, built against bookworm's glibc. */
export const SUITE = 'bookworm'
export const CODE_USER = { name: 'code', uid: 1000, gid: 1000, home: '/home/code' } as const
export const INPUT_HASH_PROPERTY = 'clincus.input-hash'

/**
 * One package list for both kinds so they share the cached debootstrap tree. minbase already has
 * coreutils, util-linux (su), passwd (useradd) and libstdc++ (node); listing what we rely on keeps
 * that true if minbase ever shrinks.
 */
export const BASE_PACKAGES: readonly string[] = [
  'bash',
  'ca-certificates',
  'coreutils',
  'curl',
  'git',
  'iproute2',
  'less',
  'libstdc++6',
  'passwd',
  'procps',
  'sudo',
  'tmux',
  'util-linux',
]

/** npm packages of the real tools, installed on the host into the image's /usr/local. */
export const TOOL_PACKAGES = [
  { tool: 'claude', npm: '@anthropic-ai/claude-code' },
  { tool: 'copilot', npm: '@github/copilot' },
  { tool: 'opencode', npm: 'opencode-ai' },
] as const

export const FAKE_TOOL_NAMES = ['claude', 'copilot', 'opencode'] as const

/** Incus names architectures the kernel way (`uname -m`), Node the compiler way. */
export function incusArchitecture(nodeArch: string): string {
  const known: Record<string, string> = {
    x64: 'x86_64',
    arm64: 'aarch64',
    arm: 'armv7l',
    ppc64: 'ppc64le',
    s390x: 's390x',
    riscv64: 'riscv64',
  }
  const arch = known[nodeArch]
  if (arch === undefined) throw new Error(`unsupported architecture for images: ${nodeArch}`)
  return arch
}

export interface TemplateRule {
  when: readonly ('create' | 'copy' | 'start')[]
  template: string
}

/** Without these, sudo complains it cannot resolve the container's host name on every call. */
export const TEMPLATES: Readonly<Record<string, { rule: TemplateRule; content: string }>> = {
  '/etc/hostname': {
    rule: { when: ['create', 'copy'], template: 'hostname.tpl' },
    content: '{{ instance.name }}\n',
  },
  '/etc/hosts': {
    rule: { when: ['create', 'copy'], template: 'hosts.tpl' },
    content:
      '127.0.0.1\tlocalhost\n127.0.1.1\t{{ instance.name }}\n' +
      '::1\tlocalhost ip6-localhost ip6-loopback\n',
  },
}

export interface ImageMetadata {
  architecture: string
  /** Seconds since the epoch. */
  creationDate: number
  properties: Readonly<Record<string, string>>
  templates: Readonly<Record<string, TemplateRule>>
}

/** YAML written by hand: JSON strings are valid double-quoted YAML scalars. */
export function renderMetadataYaml(meta: ImageMetadata): string {
  const q = (value: string): string => JSON.stringify(value)
  const lines = [`architecture: ${q(meta.architecture)}`, `creation_date: ${meta.creationDate}`]
  lines.push('properties:')
  for (const [key, value] of Object.entries(meta.properties)) lines.push(`  ${q(key)}: ${q(value)}`)
  const templates = Object.entries(meta.templates)
  if (templates.length > 0) {
    lines.push('templates:')
    for (const [path, rule] of templates) {
      lines.push(`  ${q(path)}:`)
      lines.push(`    when: [${rule.when.map(q).join(', ')}]`)
      lines.push(`    template: ${q(rule.template)}`)
    }
  }
  return `${lines.join('\n')}\n`
}

export interface HashInputs {
  kind: ImageKind
  builderVersion: number
  suite: string
  packages: readonly string[]
  /** File name → content, e.g. the init script and the fake tool. */
  files: Readonly<Record<string, string>>
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/** Stable across key order and package order; any content change gives a new hash. */
export function inputHash(inputs: HashInputs): string {
  const files = Object.keys(inputs.files)
    .sort()
    .map((name) => [name, sha256(inputs.files[name] ?? '')])
  return sha256(
    JSON.stringify({
      kind: inputs.kind,
      builderVersion: inputs.builderVersion,
      suite: inputs.suite,
      packages: [...new Set(inputs.packages)].sort(),
      files,
    }),
  )
}

/** Key of the cached debootstrap tree: only what debootstrap itself sees. */
export function rootfsCacheKey(suite: string, arch: string, packages: readonly string[]): string {
  return sha256(
    JSON.stringify({ suite, arch, variant: 'minbase', packages: [...new Set(packages)].sort() }),
  ).slice(0, 16)
}
