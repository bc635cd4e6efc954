// Client routes and URL helpers (pure; the reactive Router lives in router.svelte.ts).

export type Route =
  | { name: 'projects' }
  | { name: 'session'; id: string }
  | { name: 'history' }
  | { name: 'settings' }
  | { name: 'not-found'; path: string }

export function matchRoute(pathname: string): Route {
  const path = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname
  if (path === '/' || path === '') return { name: 'projects' }
  if (path === '/history') return { name: 'history' }
  if (path === '/settings') return { name: 'settings' }
  const m = /^\/sessions\/([^/]+)$/.exec(path)
  if (m?.[1]) {
    try {
      return { name: 'session', id: decodeURIComponent(m[1]) }
    } catch {
      return { name: 'not-found', path }
    }
  }
  return { name: 'not-found', path }
}

export function sessionPath(id: string): string {
  return `/sessions/${encodeURIComponent(id)}`
}

/** The path (with query and hash) of a same-origin URL, or null for another origin. */
export function sameOriginPath(href: string, origin: string): string | null {
  let url: URL
  try {
    url = new URL(href, origin)
  } catch {
    return null
  }
  if (url.origin !== origin) return null
  return url.pathname + url.search + url.hash
}

/** Paths the server answers itself: a click on them must reach the server. */
export function isServerPath(path: string): boolean {
  return /^\/(api|ws)(\/|$|\?)/.test(path)
}
