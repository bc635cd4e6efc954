import { isAbsolute, join, resolve } from 'node:path'

/** Expands a leading `~` or `~/` to `home`; `~user` is not supported and left as is. */
export function expandHome(path: string, home: string): string {
  if (path === '~') return home
  if (path.startsWith('~/')) return join(home, path.slice(2))
  return path
}

/** Expands `~` and makes the path absolute (relative paths are taken from `home`, never the cwd). */
export function expandPath(path: string, home: string): string {
  const expanded = expandHome(path, home)
  return isAbsolute(expanded) ? resolve(expanded) : resolve(home, expanded)
}

export interface ConfigLocations {
  system: string
  user: string
  /** $CLINCUS_CONFIG, when set. */
  extra: string | undefined
  /** Where the API and the workspace-root endpoints persist changes. */
  writable: string
}

export function configLocations(
  env: Record<string, string | undefined>,
  home: string,
): ConfigLocations {
  const xdg =
    env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME)
      ? env.XDG_CONFIG_HOME
      : join(home, '.config')
  const user = join(xdg, 'clincus', 'config.toml')
  return {
    system: env.CLINCUS_SYSTEM_CONFIG ?? '/etc/clincus/config.toml',
    user,
    extra: env.CLINCUS_CONFIG ? expandPath(env.CLINCUS_CONFIG, home) : undefined,
    writable: user,
  }
}
