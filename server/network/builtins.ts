// What each tool needs to start and work in `allowlist` mode, as data (README "Network": the
// same table with its sources). Plus the package registries the host itself is configured with
// (read at startup from its apt sources and npm config, never written in the project).
import type { ToolName } from '../../shared/tools.ts'
import { readAptSources } from '../../provision/apt-sources.ts'

/**
 * Built-in allow entries per tool. Sources:
 * - claude: Claude Code "Network access requirements" (code.claude.com/docs/en/network-config):
 *   api.anthropic.com (API), claude.ai (WebFetch safeguards, sign-in), statsig.anthropic.com
 *   (telemetry), sentry.io (error reports); sign-in also goes through console.anthropic.com and
 *   platform.claude.com.
 * - copilot: GitHub's "Copilot allowlist reference" (docs.github.com): github.com and
 *   api.github.com (sign-in, the first request machine-facts saw), *.githubcopilot.com (the
 *   model API), copilot-proxy.githubusercontent.com, origin-tracker.githubusercontent.com,
 *   copilot-telemetry.githubusercontent.com, collector.github.com, default.exp-tas.com.
 * - opencode: machine-facts ("opencode 1.18.33 CONNECT models.opencode.ai:443, then the npm
 *   registry, then the provider's API"); opencode.ai (sign-in, updates), models.dev (the model
 *   list it is built on), and the provider APIs it ships with by default.
 */
export const TOOL_DOMAINS: Readonly<Record<ToolName, readonly string[]>> = {
  claude: [
    'api.anthropic.com',
    'statsig.anthropic.com',
    'console.anthropic.com',
    'platform.claude.com',
    'claude.ai',
    'sentry.io',
  ],
  copilot: [
    'github.com',
    'api.github.com',
    '*.githubcopilot.com',
    'copilot-proxy.githubusercontent.com',
    'origin-tracker.githubusercontent.com',
    'copilot-telemetry.githubusercontent.com',
    'collector.github.com',
    'default.exp-tas.com',
  ],
  opencode: [
    'opencode.ai',
    'models.opencode.ai',
    'models.dev',
    'api.anthropic.com',
    'api.openai.com',
    'generativelanguage.googleapis.com',
    'openrouter.ai',
  ],
}

/** `http(s)://host[:port]/...` → the allow entry for that host ("host" or "host:port"). */
export function entryForUrl(url: string): string | null {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return null
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null
  const host = parsed.hostname
  if (!host) return null
  const defaultPort = parsed.protocol === 'https:' ? '443' : '80'
  // A bare entry allows 443 (CONNECT) and 80 (HTTP): apt over http:// and npm over https:// fit.
  return parsed.port && parsed.port !== defaultPort ? `${host}:${parsed.port}` : host
}

/**
 * The hosts of the machine's apt sources (deb822 and one-line files). Unreadable files give
 * none: the user can still list the host in `[network] allow`.
 */
export async function aptSourceEntries(etcApt = '/etc/apt'): Promise<string[]> {
  let sources
  try {
    sources = await readAptSources(etcApt)
  } catch {
    return []
  }
  const out = new Set<string>()
  for (const s of sources)
    for (const uri of s.uris) {
      const e = entryForUrl(uri)
      if (e) out.add(e)
    }
  return [...out]
}

/**
 * The npm registry the host's npm uses (`npm config get registry`, run in the user's home so no
 * project's .npmrc is read); undefined when npm is missing or says nothing usable.
 */
export async function hostNpmRegistry(
  env: Record<string, string | undefined>,
  home: string,
): Promise<string | undefined> {
  const fromEnv = env.npm_config_registry ?? env.NPM_CONFIG_REGISTRY
  if (fromEnv && entryForUrl(fromEnv)) return fromEnv
  try {
    const { execa } = await import('execa')
    const { stdout } = await execa('npm', ['config', 'get', 'registry'], {
      cwd: home,
      timeout: 10_000,
      reject: true,
      stdin: 'ignore',
    })
    const url = stdout.trim()
    return entryForUrl(url) ? url : undefined
  } catch {
    return undefined
  }
}

/** The host's HTTPS_PROXY (or https_proxy, then HTTP_PROXY): an http:// URL, else undefined. */
export function hostUpstreamProxy(env: Record<string, string | undefined>): string | undefined {
  for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) {
    const v = env[name]?.trim()
    if (v && /^https?:\/\//.test(v) && entryForUrl(v)) return v
  }
  return undefined
}
