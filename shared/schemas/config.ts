import { Type, type Static, type TArray, type TInteger, type TString } from 'typebox'
import { TOOLS, type ToolName } from '../tools.ts'

/**
 * One of the supported AI tools (shared/tools.ts `TOOLS`, the one list): `tool.name`, a profile's
 * `tool`, the `tool` of `POST /api/sessions`. Its static type is `ToolName`.
 */
const TOOL_EXPECTED = '"claude", "copilot" or "opencode"'
export const ToolNameSchema = Type.Union(
  [Type.Literal(TOOLS[0]), Type.Literal(TOOLS[1]), Type.Literal(TOOLS[2])],
  { 'x-expected': TOOL_EXPECTED },
)
// A tool added to TOOLS and not here (or the reverse) does not compile.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
export type ToolNamesMatch =
  Same<Static<typeof ToolNameSchema>, ToolName> extends true ? true : never
export const toolNamesMatch: ToolNamesMatch = true

// Patterns from the original's limits validator (clincus-behaviour §1.2 step 11), checked at load
// time so a typo is reported with its file and key instead of failing a session later.
const CPU_COUNT = '^(\\d+(-\\d+)?)(,\\d+(-\\d+)?)*$'
const CPU_ALLOWANCE = '^(\\d+%|\\d+ms/\\d+ms)$'
const SIZE = '^\\d+(%|[KMGT]i?B)$'
const DISK_IO = '^(\\d+[KMGT]i?B/s|\\d+iops)$'
const DURATION = '^((\\d+(\\.\\d+)?)(ns|us|µs|ms|s|m|h))+$'
const TMPFS = '^\\d+([KMGT]i?B)?$'
const DISK_SIZE = '^\\d+[KMGT]i?B$'

// Values that end up as argv elements of `incus` or of a command in the container. An image is a
// local alias or fingerprint: never a remote (`images:debian`), never anything that starts like a
// flag (`--vm`). The driver also puts every value after `--`; the pattern is the first wall.
export const IMAGE_ALIAS = '^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$'
const IMAGE_EXPECTED =
  'a local image alias like "clincus" (letters, digits, ".", "_", "-", "/"; no "remote:" and no leading "-")'
export const PROFILE_NAME = '^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$'
const ENV_NAME = '^[A-Za-z_][A-Za-z0-9_]*$'
const BINARY = '^(|[A-Za-z0-9_./][A-Za-z0-9_./+-]*)$'

function imageAlias(opts: { default?: string } = {}): TString {
  return Type.String({ pattern: IMAGE_ALIAS, 'x-expected': IMAGE_EXPECTED, ...opts })
}

function optionalPattern(pattern: string, expected: string, dflt = ''): TString {
  return Type.String({ pattern: `(^$)|${pattern}`, default: dflt, 'x-expected': expected })
}

function priority(): TInteger {
  return Type.Integer({ minimum: 0, maximum: 10, default: 0, 'x-expected': 'an integer 0-10' })
}

export const LimitsSchema = Type.Object(
  {
    cpu: Type.Object(
      {
        count: optionalPattern(CPU_COUNT, 'a CPU count or set like "2", "0-3" or "0,2"'),
        allowance: optionalPattern(CPU_ALLOWANCE, 'a share like "50%" or "25ms/100ms"'),
        priority: priority(),
      },
      { additionalProperties: false, default: {} },
    ),
    memory: Type.Object(
      {
        // Safe defaults (issue 10 row 11): a session can take half the host's memory, no more;
        // "hard" because a soft limit only applies under host memory pressure, too late.
        limit: optionalPattern(SIZE, 'a size like "2GiB", "512MiB" or "50%"', '50%'),
        enforce: Type.Union([Type.Literal('soft'), Type.Literal('hard')], {
          default: 'hard',
          'x-expected': '"soft" or "hard"',
        }),
        swap: Type.Union([Type.Literal('true'), Type.Literal('false')], {
          default: 'true',
          'x-expected': '"true" or "false"',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    disk: Type.Object(
      {
        read: optionalPattern(DISK_IO, 'a rate like "100MiB/s" or "1000iops"'),
        write: optionalPattern(DISK_IO, 'a rate like "100MiB/s" or "1000iops"'),
        max: optionalPattern(DISK_IO, 'a rate like "100MiB/s" or "1000iops"'),
        priority: priority(),
        tmpfs_size: optionalPattern(TMPFS, 'a size like "2GiB" or "512MiB"'),
        // Root-disk quota; applied only on pools that enforce it (btrfs, zfs, lvm, ceph).
        size: optionalPattern(DISK_SIZE, 'a size like "20GiB" or "500MiB"', '20GiB'),
      },
      { additionalProperties: false, default: {} },
    ),
    runtime: Type.Object(
      {
        max_duration: optionalPattern(DURATION, 'a duration like "30m", "2h" or "1h30m"'),
        // Tasks (processes and threads) per session: ends a fork bomb, leaves room for builds.
        max_processes: Type.Integer({
          minimum: 0,
          default: 4096,
          'x-expected': 'an integer >= 0 (0: no cap)',
        }),
        auto_stop: Type.Boolean({ default: true }),
        stop_graceful: Type.Boolean({ default: true }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, default: {} },
)
export type Limits = Static<typeof LimitsSchema>

export const MountSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, 'x-expected': 'a host path' }),
    container: Type.String({ pattern: '^/', 'x-expected': 'an absolute container path' }),
  },
  { additionalProperties: false },
)
export type Mount = Static<typeof MountSchema>

// [network] (issue 12): how sessions reach the outside, through clincus's filtering proxy. The
// entries are checked again, strictly, by server/network/policy.ts (a bad one is reported with
// its file at load time by the proxy's parser; the pattern here is the first wall).
export const NETWORK_ENTRY =
  '^(\\*\\.)?[^\\s/@?#\\\\*\\[\\]]{1,300}$|^\\[[0-9A-Fa-f:.]{2,45}\\]:[0-9]{1,5}$'
const NETWORK_ENTRY_EXPECTED =
  'a host like "example.com", "*.example.com", "host:port", "10.0.0.5:8080" or "[::1]:8080"'
export const NetworkModeSchema = Type.Union(
  [Type.Literal('allowlist'), Type.Literal('open'), Type.Literal('none')],
  { 'x-expected': '"allowlist", "open" or "none"' },
)
export type NetworkModeSetting = Static<typeof NetworkModeSchema>
export function networkAllowSchema(opts: { default?: string[] } = {}) {
  return Type.Array(Type.String({ pattern: NETWORK_ENTRY, 'x-expected': NETWORK_ENTRY_EXPECTED }), {
    maxItems: 1000,
    ...opts,
  })
}
export const NetworkSchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('allowlist'), Type.Literal('open'), Type.Literal('none')], {
      default: 'allowlist',
      'x-expected': '"allowlist", "open" or "none"',
    }),
    allow: networkAllowSchema({ default: [] }),
    // An upstream HTTP proxy (corporate); empty: the host's HTTPS_PROXY, else direct.
    upstream: Type.String({
      default: '',
      pattern: '^(|https?://[^\\s/?#]+/?)$',
      'x-expected': 'an http://host:port URL, or ""',
    }),
  },
  { additionalProperties: false, default: {} },
)
export type NetworkConfig = Static<typeof NetworkSchema>
export const ProfileNetworkSchema = Type.Object(
  { mode: Type.Optional(NetworkModeSchema), allow: Type.Optional(networkAllowSchema()) },
  { additionalProperties: false },
)
// [image] (issue 13): what the user adds to the session image. Debian package names as apt
// knows them; npm specs that cannot start like a flag. Both end up as argv elements after `--`.
export const DEB_PACKAGE = '^[a-z0-9][a-z0-9+.-]{0,127}$'
export const NPM_SPEC =
  '^(@[A-Za-z0-9._~-]+/)?[A-Za-z0-9._~][A-Za-z0-9._~-]{0,213}(@[A-Za-z0-9._~^<>=*|+ -]{1,128})?$'

const debPackages = (): TArray<TString> =>
  Type.Array(
    Type.String({
      pattern: DEB_PACKAGE,
      'x-expected': 'a Debian package name like "postgresql-client"',
    }),
    { default: [], maxItems: 512 },
  )
const npmSpecs = (): TArray<TString> =>
  Type.Array(
    Type.String({
      pattern: NPM_SPEC,
      'x-expected': 'an npm package like "typescript" or "pnpm@9"',
    }),
    { default: [], maxItems: 256 },
  )
// A shell script run as root inside the image at the end of the build: a path (absolute or "~/",
// one line) to a script file, or the script itself.
const setupScript = (): TString => Type.String({ default: '', maxLength: 65536 })

export const ImageExtrasSchema = Type.Object(
  { packages: debPackages(), npm: npmSpecs(), setup: setupScript() },
  { additionalProperties: false, default: {} },
)
/** `[profiles.x.image_extras]`: the same keys, each optional (profiles get no defaults filled). */
export const ProfileImageExtrasSchema = Type.Object(
  {
    packages: Type.Optional(debPackages()),
    npm: Type.Optional(npmSpecs()),
    setup: Type.Optional(setupScript()),
  },
  { additionalProperties: false },
)
export type ImageExtrasConfig = Static<typeof ImageExtrasSchema>

export const ProfileSchema = Type.Object(
  {
    image: Type.Optional(imageAlias()),
    persistent: Type.Optional(Type.Boolean()),
    environment: Type.Optional(
      // Record keys are only checked when other keys are refused (TypeBox emits
      // patternProperties alone otherwise).
      Type.Record(Type.String({ pattern: ENV_NAME }), Type.String(), {
        additionalProperties: false,
      }),
    ),
    tool: Type.Optional(ToolNameSchema),
    limits: Type.Optional(Type.Unknown()),
    network: Type.Optional(ProfileNetworkSchema),
    // Extras for the profile's own image (`image` above), on top of [image]. Not `[profiles.x.image]`:
    // `image` is already the alias string, and TOML cannot make one key both.
    image_extras: Type.Optional(ProfileImageExtrasSchema),
  },
  { additionalProperties: false },
)
export type Profile = Static<typeof ProfileSchema>

export const ConfigSchema = Type.Object(
  {
    defaults: Type.Object(
      {
        image: imageAlias({ default: 'clincus' }),
        persistent: Type.Boolean({ default: false }),
        model: Type.String({ default: 'claude-sonnet-4-5' }),
      },
      { additionalProperties: false, default: {} },
    ),
    paths: Type.Object(
      {
        sessions_dir: Type.String({ default: '~/.clincus/sessions' }),
        storage_dir: Type.String({ default: '~/.clincus/storage' }),
        logs_dir: Type.String({ default: '~/.clincus/logs' }),
        preserve_workspace_path: Type.Boolean({ default: false }),
      },
      { additionalProperties: false, default: {} },
    ),
    incus: Type.Object(
      {
        project: Type.String({ default: 'default', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' }),
        group: Type.String({
          default: 'incus-admin',
          pattern: '^[A-Za-z_][A-Za-z0-9_.-]*$',
          'x-expected': 'a group name',
        }),
        // Issue 16: the storage pool of sessions' root disks. Empty: `clincus` when setup added
        // that copy-on-write pool, else the default profile's.
        storage_pool: Type.String({
          default: '',
          pattern: '^$|^[A-Za-z0-9][A-Za-z0-9_.-]*$',
          'x-expected': 'a storage pool name, or "" for the default',
        }),
        code_uid: Type.Integer({ default: 1000, minimum: 1, maximum: 4294967294 }),
        code_user: Type.String({ default: 'code', pattern: '^[a-z_][a-z0-9_-]*$' }),
        // Kept so existing files still load: sessions never use shift=true mounts any more.
        disable_shift: Type.Boolean({ default: false, description: 'no effect (deprecated)' }),
      },
      { additionalProperties: false, default: {} },
    ),
    // Issue 16: the warm pool. `size` ready containers of the default image wait frozen; a create
    // claims one (path "warm") instead of creating a container (path "cold"). 0 disables it.
    pool: Type.Object(
      {
        size: Type.Integer({
          default: 2,
          minimum: 0,
          maximum: 16,
          description: 'Frozen ready containers kept for creates (0 disables the warm pool)',
        }),
        // Primed members: for each of the `primed` most recent launch requests (workspace, tool,
        // profile) one container made up to the tool (workspace mounted, started) and frozen.
        primed: Type.Integer({
          default: 1,
          minimum: 0,
          maximum: 8,
          description:
            'Recent launch requests kept primed: a started, frozen container per request (0 disables)',
        }),
        // Primed members start the agent too (its pane drawn, then frozen): a click hands over an
        // agent that already runs. Off by default: the agent read the workspace when it started
        // (server/sessions/pool/agent-view.ts says what a claim checks before handing it over).
        prestart: Type.Boolean({
          default: false,
          description:
            'Start the agent in primed containers ahead of the click (a member whose agent saw another workspace than the claim sees is not used)',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    tool: Type.Object(
      {
        name: Type.Union(ToolNameSchema.anyOf, {
          default: 'claude',
          'x-expected': TOOL_EXPECTED,
        }),
        binary: Type.String({
          default: '',
          pattern: BINARY,
          'x-expected': 'a program name or path (no leading "-")',
        }),
        claude: Type.Object(
          {
            effort_level: Type.String({ default: '', pattern: '^(|low|medium|high)$' }),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    mounts: Type.Object(
      { default: Type.Array(MountSchema, { default: [] }) },
      { additionalProperties: false, default: {} },
    ),
    limits: LimitsSchema,
    network: NetworkSchema,
    image: ImageExtrasSchema,
    git: Type.Object(
      { writable_hooks: Type.Boolean({ default: false }) },
      { additionalProperties: false, default: {} },
    ),
    security: Type.Object(
      {
        protected_paths: Type.Array(Type.String({ minLength: 1 }), {
          default: ['.git', '.husky', '.vscode'],
        }),
        additional_protected_paths: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
        disable_protection: Type.Boolean({ default: false }),
        agent_sudo: Type.Boolean({ default: false }),
      },
      { additionalProperties: false, default: {} },
    ),
    profiles: Type.Record(Type.String({ pattern: PROFILE_NAME }), ProfileSchema, {
      additionalProperties: false,
      default: {},
    }),
    dashboard: Type.Object(
      {
        port: Type.Integer({
          minimum: 1,
          maximum: 65535,
          default: 3000,
          'x-expected': 'a port 1-65535',
        }),
        workspace_roots: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
        auth: Type.Union([Type.Literal('token'), Type.Literal('none')], {
          default: 'token',
          'x-expected': '"token" or "none"',
        }),
        allowed_hosts: Type.Array(
          Type.String({ minLength: 1, pattern: '^[A-Za-z0-9.:\\[\\]-]+$' }),
          {
            default: [],
            'x-expected': 'a list of host names',
          },
        ),
        // Origins (scheme://host[:port]) accepted on WebSocket upgrades and mutating requests
        // besides the server's own: for a reverse proxy that keeps the browser's Origin but
        // rewrites Host to the listener's address.
        public_origins: Type.Array(
          Type.String({ minLength: 1, pattern: '^https?://[A-Za-z0-9.\\[\\]:-]+$' }),
          {
            default: [],
            'x-expected': 'a list of origins like "https://dash.example"',
          },
        ),
        rate_limit_per_minute: Type.Integer({
          minimum: 1,
          default: 120,
          'x-expected': 'an integer >= 1',
        }),
        ws_max_message_bytes: Type.Integer({
          minimum: 1024,
          maximum: 64 * 1024 * 1024,
          default: 1024 * 1024,
          'x-expected': 'a byte count from 1024 to 64 MiB',
        }),
        max_terminals_per_session: Type.Integer({
          minimum: 1,
          maximum: 256,
          default: 16,
          'x-expected': 'an integer 1-256',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
)
export type Config = Static<typeof ConfigSchema>

export const ConfigUpdateSchema = Type.Object(
  {
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    workspace_roots: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 4096, pattern: '^[/~]' }), {
        maxItems: 256,
      }),
    ),
  },
  { additionalProperties: false },
)
export type ConfigUpdate = Static<typeof ConfigUpdateSchema>

/**
 * The answer to `PUT /api/config`: the contract's `{"status": "updated"}` plus the merged config
 * after the save (`config`, exactly what `GET /api/config` returns), so a client applies it
 * without fetching again.
 */
export const ConfigUpdateResultSchema = Type.Object(
  { status: Type.Literal('updated'), config: ConfigSchema },
  { additionalProperties: false },
)
export type ConfigUpdateResult = Static<typeof ConfigUpdateResultSchema>
