import { describe, expect, it, vi } from 'vitest'
import { Router, type RouterWindow } from './router.svelte.ts'
import { matchRoute, sameOriginPath } from './routes.ts'

function fakeWindow(path = '/'): RouterWindow & { pop: (to: string) => void; stack: string[] } {
  let pop: (() => void) | null = null
  const w = {
    location: { pathname: path, search: '', hash: '', origin: 'http://127.0.0.1:3000' },
    stack: [path],
    history: {
      pushState: vi.fn((_s: unknown, _t: string, url: string) => {
        w.stack.push(url)
        w.location.pathname = url
      }),
      replaceState: vi.fn((_s: unknown, _t: string, url: string) => {
        w.stack[w.stack.length - 1] = url
        w.location.pathname = url
      }),
    },
    addEventListener: (_t: 'popstate', fn: () => void) => {
      pop = fn
    },
    removeEventListener: () => {
      pop = null
    },
    pop: (to: string) => {
      w.location.pathname = to
      pop?.()
    },
  }
  return w
}

describe('matchRoute', () => {
  it.each([
    ['/', { name: 'projects' }],
    ['/history', { name: 'history' }],
    ['/history/', { name: 'history' }],
    ['/settings', { name: 'settings' }],
    ['/sessions/clincus-85918044-1', { name: 'session', id: 'clincus-85918044-1' }],
    ['/sessions/a%20b', { name: 'session', id: 'a b' }],
    ['/sessions/%E0%A4%A', { name: 'not-found', path: '/sessions/%E0%A4%A' }],
    ['/sessions', { name: 'not-found', path: '/sessions' }],
    ['/nope', { name: 'not-found', path: '/nope' }],
  ])('%s', (path, route) => {
    expect(matchRoute(path)).toEqual(route)
  })

  it('sameOriginPath keeps only our own origin', () => {
    expect(sameOriginPath('/a?b#c', 'http://h')).toBe('/a?b#c')
    expect(sameOriginPath('http://other/a', 'http://h')).toBeNull()
  })
})

describe('Router', () => {
  it('starts from the location and follows navigate() with pushState', () => {
    const w = fakeWindow('/settings')
    const r = new Router(w)
    expect(r.route).toEqual({ name: 'settings' })
    r.navigate('/sessions/c1')
    expect(r.route).toEqual({ name: 'session', id: 'c1' })
    expect(w.stack).toEqual(['/settings', '/sessions/c1'])
    r.navigate('/sessions/c1')
    expect(w.history.pushState).toHaveBeenCalledTimes(1)
    r.navigate('/', { replace: true })
    expect(w.stack).toEqual(['/settings', '/'])
  })

  it('follows the back button', () => {
    const w = fakeWindow('/')
    const r = new Router(w)
    w.pop('/history')
    expect(r.route).toEqual({ name: 'history' })
  })

  it('turns plain clicks on internal links into navigation, and leaves the rest alone', () => {
    const w = fakeWindow('/')
    const r = new Router(w)
    document.body.innerHTML = `
      <a id="in" href="/settings"><span id="inner">Settings</span></a>
      <a id="api" href="/api/openapi.json">API</a>
      <a id="out" href="https://example.invalid/">Out</a>
      <a id="blank" href="/history" target="_blank">New tab</a>`
    // The handler is called directly: a dispatched click the router lets through would make
    // happy-dom navigate for real.
    const click = (id: string, init: MouseEventInit = {}): MouseEvent => {
      const e = new MouseEvent('click', { bubbles: true, cancelable: true, button: 0, ...init })
      const el = document.getElementById(id)?.firstElementChild ?? document.getElementById(id)
      Object.defineProperty(e, 'target', { value: el })
      r.handleClick(e)
      return e
    }
    expect(click('inner').defaultPrevented).toBe(true)
    expect(r.route).toEqual({ name: 'settings' })
    expect(click('api').defaultPrevented).toBe(false)
    expect(click('out').defaultPrevented).toBe(false)
    expect(click('blank').defaultPrevented).toBe(false)
    expect(click('in', { ctrlKey: true }).defaultPrevented).toBe(false)
    r.dispose()
  })
})
