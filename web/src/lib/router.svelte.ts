// Hash-free client routes over the History API. The server answers every non-API path with
// index.html, so a reload or a pasted link lands on the same view (the original used #/ routes).
import { isServerPath, matchRoute, sameOriginPath, type Route } from './routes.ts'

export { matchRoute, sessionPath, type Route } from './routes.ts'

/** The subset of window the router needs, so tests can give it a fake one. */
export interface RouterWindow {
  location: { pathname: string; search: string; hash: string; origin: string }
  history: Pick<History, 'pushState' | 'replaceState'>
  addEventListener(type: 'popstate', fn: () => void): void
  removeEventListener(type: 'popstate', fn: () => void): void
}

export class Router {
  path = $state('/')
  readonly route: Route = $derived(matchRoute(this.path))
  readonly #win: RouterWindow
  readonly #onPop = (): void => {
    this.path = this.#win.location.pathname
  }

  constructor(win: RouterWindow = window) {
    this.#win = win
    this.path = win.location.pathname
    win.addEventListener('popstate', this.#onPop)
  }

  navigate(to: string, opts: { replace?: boolean } = {}): void {
    const loc = this.#win.location
    const target = sameOriginPath(to, loc.origin)
    if (target === null) return
    if (target !== loc.pathname + loc.search + loc.hash) {
      if (opts.replace) this.#win.history.replaceState(null, '', target)
      else this.#win.history.pushState(null, '', target)
    }
    this.path = target.replace(/[?#].*$/, '')
  }

  /**
   * Turns clicks on same-origin `<a href>` into client navigation. Modified clicks (new tab,
   * download), other targets and other origins keep the browser's behaviour.
   */
  handleClick = (e: MouseEvent): void => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey)
      return
    const el = e.target
    if (!(el instanceof Element)) return
    const a = el.closest('a')
    if (!a || a.hasAttribute('download') || (a.target && a.target !== '_self')) return
    const href = a.getAttribute('href')
    if (!href || href.startsWith('#')) return
    const target = sameOriginPath(href, this.#win.location.origin)
    if (target === null || isServerPath(target)) return
    e.preventDefault()
    this.navigate(target)
  }

  dispose(): void {
    this.#win.removeEventListener('popstate', this.#onPop)
  }
}
