import { parse, TomlError } from 'smol-toml'
import { totalmem } from 'node:os'
import type { Config, Limits, Profile } from '../../shared/schemas/config.ts'
import { applyLayer, ConfigError, defaultConfig, isPlainObject, own, type Layer } from './merge.ts'
import { expandHome, type ConfigLocations } from './paths.ts'
import {
  readSmallFile,
  UnsafeFileError,
  WORKSPACE_FILE_MAX_BYTES,
  type SafeReadOptions,
} from './safe-read.ts'
import { tightenLimits, tightenNetwork } from './tighten.ts'

export interface LayerSource {
  file: string
  layer: Layer
}

export interface LoadedConfig {
  config: Config
  /** The files that were present and applied, in merge order. */
  sources: LayerSource[]
  /** Env variables (already parsed) applied last. */
  envLayer: Layer
}

function parseToml(text: string, file: string): Layer {
  try {
    return parse(text)
  } catch (err) {
    if (err instanceof TomlError) {
      throw new ConfigError(
        file,
        '',
        `invalid TOML at line ${err.line}, column ${err.column}: ${err.message.split('\n')[0] ?? ''}`,
      )
    }
    throw new ConfigError(file, '', `invalid TOML: ${String(err)}`)
  }
}

const USER_FILE_MAX_BYTES = 1024 * 1024

async function readTomlFile(file: string, opts: SafeReadOptions): Promise<Layer | null> {
  let text: string | null
  try {
    text = await readSmallFile(file, opts)
  } catch (err) {
    if (err instanceof UnsafeFileError) throw new ConfigError(file, '', err.message)
    throw new ConfigError(file, '', `cannot read: ${(err as Error).message}`)
  }
  return text === null ? null : parseToml(text, file)
}

/**
 * Reads one of the user's TOML files; null when it does not exist. Links are followed (dotfiles
 * managers link config.toml), but a FIFO, a device or a huge file is refused, never waited on.
 */
export async function readLayer(file: string): Promise<Layer | null> {
  return readTomlFile(file, { followLinks: true, maxBytes: USER_FILE_MAX_BYTES })
}

/**
 * Reads a workspace's .clincus.toml, which the repository or the agent controls: no link is
 * followed, only a regular file of at most 64 KiB is read, within 2 s (safe-read.ts).
 */
export async function readWorkspaceLayer(file: string): Promise<Layer | null> {
  return readTomlFile(file, { followLinks: false, maxBytes: WORKSPACE_FILE_MAX_BYTES })
}

type EnvParser = (raw: string, name: string) => unknown

const str: EnvParser = (raw) => raw
const bool: EnvParser = (raw, name) => {
  if (raw === 'true' || raw === '1') return true
  if (raw === 'false' || raw === '0' || raw === '') return false
  throw new ConfigError(
    `environment variable ${name}`,
    '',
    `expected true/false or 1/0, got ${JSON.stringify(raw)}`,
  )
}
const int: EnvParser = (raw, name) => {
  if (!/^\d+$/.test(raw))
    throw new ConfigError(
      `environment variable ${name}`,
      '',
      `expected an integer, got ${JSON.stringify(raw)}`,
    )
  return Number(raw)
}

// CLINCUS_* variables of the original (clincus-behaviour §2.2), plus CLINCUS_PORT.
const ENV_KEYS: Record<string, [string[], EnvParser]> = {
  CLINCUS_IMAGE: [['defaults', 'image'], str],
  CLINCUS_PERSISTENT: [['defaults', 'persistent'], bool],
  CLINCUS_SESSIONS_DIR: [['paths', 'sessions_dir'], str],
  CLINCUS_STORAGE_DIR: [['paths', 'storage_dir'], str],
  CLINCUS_LIMIT_CPU: [['limits', 'cpu', 'count'], str],
  CLINCUS_LIMIT_CPU_ALLOWANCE: [['limits', 'cpu', 'allowance'], str],
  CLINCUS_LIMIT_MEMORY: [['limits', 'memory', 'limit'], str],
  CLINCUS_LIMIT_MEMORY_SWAP: [['limits', 'memory', 'swap'], str],
  CLINCUS_LIMIT_DISK_READ: [['limits', 'disk', 'read'], str],
  CLINCUS_LIMIT_DISK_WRITE: [['limits', 'disk', 'write'], str],
  CLINCUS_LIMIT_DURATION: [['limits', 'runtime', 'max_duration'], str],
  CLINCUS_PORT: [['dashboard', 'port'], int],
}

export function envLayer(env: Record<string, string | undefined>): Layer {
  const layer: Layer = {}
  for (const [name, [path, parser]] of Object.entries(ENV_KEYS)) {
    const raw = env[name]
    if (raw === undefined) continue
    let node = layer
    for (const part of path.slice(0, -1)) {
      node[part] ??= {}
      node = node[part] as Layer
    }
    node[path.at(-1) as string] = parser(raw, name)
  }
  return layer
}

function expandPaths(config: Config, home: string): Config {
  const p = config.paths
  return {
    ...config,
    paths: {
      ...p,
      sessions_dir: expandHome(p.sessions_dir, home),
      storage_dir: expandHome(p.storage_dir, home),
      logs_dir: expandHome(p.logs_dir, home),
    },
  }
}

/** defaults → /etc → user → $CLINCUS_CONFIG → CLINCUS_* env. Throws ConfigError naming the culprit. */
export async function loadConfig(
  locations: ConfigLocations,
  env: Record<string, string | undefined>,
  home: string,
): Promise<LoadedConfig> {
  let config = defaultConfig()
  const sources: LayerSource[] = []
  const files = [locations.system, locations.user, locations.extra].filter(
    (f): f is string => f !== undefined,
  )
  for (const file of [...new Set(files)]) {
    const layer = await readLayer(file)
    if (layer === null) continue
    config = applyLayer(config, layer, file)
    sources.push({ file, layer })
  }
  const fromEnv = envLayer(env)
  config = applyLayer(config, fromEnv, 'environment (CLINCUS_*)')
  checkProfiles(config, sources)
  return { config: expandPaths(config, home), sources, envLayer: fromEnv }
}

/**
 * Applies every `[profiles.<name>]` once, so a profile whose keys (its `limits` above all, which
 * the schema leaves open) would not make a valid config is refused when its file is loaded, named
 * with that file and the key, rather than failing a launch later.
 */
function checkProfiles(config: Config, sources: readonly LayerSource[]): void {
  for (const name of Object.keys(config.profiles)) {
    try {
      applyProfile(config, name)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      // The last file that defines the profile: a profile is replaced whole by a later file.
      const file =
        sources.findLast((s) => {
          const profiles = own(s.layer, 'profiles')
          return isPlainObject(profiles) && Object.hasOwn(profiles, name)
        })?.file ?? err.file
      throw new ConfigError(file, `profiles.${name}.${err.key}`, err.detail)
    }
  }
}

// A workspace's .clincus.toml comes with the project (or from the agent), so it is not trusted
// with keys that widen what the container can reach on the host (mounts, protection, the Incus
// identity, the listener) nor with what runs (profiles, the image): those are refused with an
// error naming the key, so the user sees why. Its limits only tighten the user's (tighten.ts).
const WORKSPACE_FORBIDDEN = [
  'mounts',
  'security',
  'incus',
  'paths',
  'dashboard',
  'git',
  'profiles',
  // What the image contains runs as root at build time (issue 13).
  'image',
]
const WORKSPACE_FORBIDDEN_KEYS: Array<[string, string, string]> = [
  ['defaults', 'image', 'images come only from your user config'],
  // The program started as the tool, with the profile's environment (its API keys): a repository
  // or the agent would otherwise pick what runs at the next launch or resume.
  ['tool', 'binary', 'what runs as the tool comes only from your user config'],
]

function checkWorkspaceLayer(file: string, layer: Layer): void {
  const bad = Object.keys(layer).find((k) => WORKSPACE_FORBIDDEN.includes(k))
  if (bad)
    throw new ConfigError(
      file,
      bad,
      `[${bad}] is not allowed in a workspace .clincus.toml; set it in your user config`,
    )
  for (const [section, key, why] of WORKSPACE_FORBIDDEN_KEYS) {
    const table = own(layer, section)
    if (isPlainObject(table) && Object.hasOwn(table, key))
      throw new ConfigError(
        file,
        `${section}.${key}`,
        `not allowed in a workspace .clincus.toml (${why}); remove it from this file`,
      )
  }
}

export interface WorkspaceConfigOptions {
  /** A `[profiles.<name>]` of the user's files; an unknown name makes the result null. */
  profile?: string | undefined
  /** For memory limits given as a percentage; the host's memory by default. */
  hostMemoryBytes?: number
}

/**
 * The config for sessions of one workspace: the user's files ($CLINCUS_CONFIG and the CLINCUS_*
 * environment included, the user's last word) with the workspace's other keys between the global
 * files and $CLINCUS_CONFIG, then the profile, then the workspace's limits, which can only make
 * the result stricter. Null when the profile does not exist.
 */
export function configForWorkspace(
  loaded: LoadedConfig,
  workspaceFile: string,
  workspaceLayer: Layer | null,
  home: string,
  locations: ConfigLocations,
  opts: WorkspaceConfigOptions = {},
): Config | null {
  let config = defaultConfig()
  const globalSources = loaded.sources.filter((s) => s.file !== locations.extra)
  for (const s of globalSources) config = applyLayer(config, s.layer, s.file)
  let wsLimits: { raw: unknown; typed: Limits } | null = null
  let wsNetwork: { raw: unknown; typed: Config['network'] } | null = null
  if (workspaceLayer) {
    checkWorkspaceLayer(workspaceFile, workspaceLayer)
    // Validated alone first, so a mistake is reported against the workspace file.
    const validated = applyLayer(defaultConfig(), workspaceLayer, workspaceFile)
    // [limits] and [network] only narrow the user's (tighten.ts); the rest applies as written.
    const rest = Object.fromEntries(
      Object.entries(workspaceLayer).filter(([k]) => k !== 'limits' && k !== 'network'),
    )
    config = applyLayer(config, rest, workspaceFile)
    if (Object.hasOwn(workspaceLayer, 'limits'))
      wsLimits = { raw: own(workspaceLayer, 'limits'), typed: validated.limits }
    if (Object.hasOwn(workspaceLayer, 'network'))
      wsNetwork = { raw: own(workspaceLayer, 'network'), typed: validated.network }
  }
  for (const s of loaded.sources.filter((src) => src.file === locations.extra))
    config = applyLayer(config, s.layer, s.file)
  config = applyLayer(config, loaded.envLayer, 'environment (CLINCUS_*)')
  if (opts.profile !== undefined) {
    const applied = applyProfile(config, opts.profile)
    if (!applied) return null
    config = applied
  }
  if (wsLimits) {
    const limits = tightenLimits(config.limits, wsLimits.raw, wsLimits.typed, {
      hostMemoryBytes: opts.hostMemoryBytes ?? totalmem(),
    })
    config = { ...config, limits }
  }
  if (wsNetwork)
    config = { ...config, network: tightenNetwork(config.network, wsNetwork.raw, wsNetwork.typed) }
  return expandPaths(config, home)
}

/** The user's `[profiles.<name>]`, looked up as an own property. */
export function findProfile(config: Config, name: string): Profile | undefined {
  return Object.hasOwn(config.profiles, name) ? config.profiles[name] : undefined
}

/** Applies `[profiles.<name>]` to a config; unknown names are the caller's 400. */
export function applyProfile(config: Config, name: string): Config | null {
  // Own properties only: "__proto__" or "constructor" must not name a profile nobody defined.
  const profile = findProfile(config, name)
  if (!profile) return null
  const layer: Layer = { defaults: {} }
  const defaults = layer.defaults as Layer
  if (profile.image !== undefined) defaults.image = profile.image
  if (profile.persistent !== undefined) defaults.persistent = profile.persistent
  if (profile.tool !== undefined) layer.tool = { name: profile.tool }
  if (profile.limits !== undefined) layer.limits = profile.limits
  // A profile's network replaces the global mode and allow list (the upstream stays global).
  if (profile.network !== undefined) layer.network = { ...profile.network }
  return applyLayer(config, layer, `profile "${name}"`)
}
