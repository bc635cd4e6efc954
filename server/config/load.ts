import { parse, TomlError } from 'smol-toml'
import type { Config, Profile } from '../../shared/schemas/config.ts'
import { applyLayer, ConfigError, defaultConfig, type Layer } from './merge.ts'
import { expandHome, type ConfigLocations } from './paths.ts'
import {
  readSmallFile,
  UnsafeFileError,
  WORKSPACE_FILE_MAX_BYTES,
  type SafeReadOptions,
} from './safe-read.ts'

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
  return { config: expandPaths(config, home), sources, envLayer: fromEnv }
}

// A workspace's .clincus.toml comes with the project, so it is not trusted with keys that widen
// what the container can reach on the host (mounts, protection, the Incus identity, the listener).
const WORKSPACE_FORBIDDEN = ['mounts', 'security', 'incus', 'paths', 'dashboard', 'git']

/**
 * The config for sessions of one workspace: the global files, then the workspace's .clincus.toml,
 * then $CLINCUS_CONFIG and the environment (which stay the user's last word), then the profile.
 */
export function configForWorkspace(
  loaded: LoadedConfig,
  workspaceFile: string,
  workspaceLayer: Layer | null,
  home: string,
  locations: ConfigLocations,
): Config {
  let config = defaultConfig()
  const globalSources = loaded.sources.filter((s) => s.file !== locations.extra)
  for (const s of globalSources) config = applyLayer(config, s.layer, s.file)
  if (workspaceLayer) {
    const bad = Object.keys(workspaceLayer).find((k) => WORKSPACE_FORBIDDEN.includes(k))
    if (bad)
      throw new ConfigError(
        workspaceFile,
        bad,
        `[${bad}] is not allowed in a workspace .clincus.toml; set it in your user config`,
      )
    config = applyLayer(config, workspaceLayer, workspaceFile)
  }
  for (const s of loaded.sources.filter((src) => src.file === locations.extra))
    config = applyLayer(config, s.layer, s.file)
  config = applyLayer(config, loaded.envLayer, 'environment (CLINCUS_*)')
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
  return applyLayer(config, layer, `profile "${name}"`)
}
