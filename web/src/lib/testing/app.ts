import { render } from '@testing-library/svelte'
import type { Component } from 'svelte'
import { vi } from 'vitest'
import { ApiClient } from '../api.ts'
import type { Session } from '../schemas.ts'
import { AppState } from '../state/app.svelte.ts'
import WithApp from './WithApp.svelte'

export function session(id: string, over: Partial<Session> = {}): Session {
  return {
    id,
    workspace: `/home/u/code/${id}`,
    tool: 'claude',
    slot: 1,
    status: 'running',
    persistent: false,
    ...over,
  }
}

/** An AppState whose API never touches the network: every call must be stubbed by the test. */
export function testApp(): { app: AppState; api: ApiClient } {
  const api = new ApiClient(() => Promise.reject(new TypeError('Failed to fetch')))
  const win = {
    location: { pathname: '/', search: '', hash: '', origin: 'http://127.0.0.1:3000' },
    history: { pushState: vi.fn(), replaceState: vi.fn() },
    addEventListener: vi.fn(),
    removeEventListener: vi.fn(),
  }
  return { app: new AppState({ api, win }), api }
}

/** Renders `component` with `props` under the app context. */
export function renderWithApp<P extends object>(
  app: AppState,
  component: Component<P>,
  props: P,
): ReturnType<typeof render> {
  // The harness is generic; the testing library's typings cannot see through that.
  const harness = WithApp as unknown as Component<{
    app: AppState
    component: Component<P>
    props: P
  }>
  return render(harness, { props: { app, component, props } })
}
