// Tests only: sessions' sockets as the app has them (issue 16), one unix socket per session in a
// temporary directory, served by a real EgressProxy whose connections starting with `{` go to
// `hooks` (the hook channel, as app.ts routes them). The policy is `none` unless given: every
// HTTP request is refused.
import { mkdtemp, rm } from 'node:fs/promises'
import type net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Policy } from './policy.ts'
import { EgressProxy, type ProxyLimits } from './proxy.ts'

export interface TestSockets {
  proxy: EgressProxy
  /** The socket path of a session (open it first). */
  path: (session: string) => string
  open: (session: string) => Promise<void>
  /** Closes the proxy and removes the directory. */
  dispose: () => Promise<void>
}

export async function testSessionSockets(opts: {
  log: Logger
  hooks: (session: string, socket: net.Socket, head: Buffer) => void
  policy?: Policy
  limits?: Partial<ProxyLimits>
}): Promise<TestSockets> {
  const dir = await mkdtemp(join(tmpdir(), 'clincus-sockets-'))
  const policy: Policy = opts.policy ?? { mode: 'none', entries: [], ownListeners: [] }
  const proxy = new EgressProxy({
    log: opts.log,
    hooks: { policy: () => policy, upstream: () => null, record: () => undefined },
    ...(opts.limits ? { limits: opts.limits } : {}),
    relay: null,
  })
  proxy.routeHooks(opts.hooks)
  const path = (session: string): string => join(dir, `${session}.sock`)
  return {
    proxy,
    path,
    open: (session) => proxy.open(session, path(session)),
    dispose: async () => {
      await proxy.dispose()
      await rm(dir, { recursive: true, force: true })
    },
  }
}
