// What the app-level tests of primed members (primed-app, primed-red, prestart-app, prestart-red)
// share: an app with the fake driver and a `[pool]` config, a create through the API, and waits
// for ready members.
import { writeFile } from 'node:fs/promises'
import { expect, vi } from 'vitest'
import type { ServerEvent } from '../../../shared/schemas/events.ts'
import type { CreatedSession } from '../../../shared/schemas/sessions.ts'
import type { ToolName } from '../../../shared/tools.ts'
import { buildTestApp, json, type TestApp } from '../../test/helpers.ts'
import { LABEL } from '../registry.ts'

export const WAIT = { timeout: 20_000, interval: 20 }

export interface PoolConfig {
  /** `[pool] size` (default 0: no generic members). */
  size?: number
  /** `[pool] primed` (default 1). */
  primed?: number
  /** `[pool] prestart`, written only when given. */
  prestart?: boolean
  /** More TOML after the `[pool]` and `[dashboard]` tables. */
  extra?: string
}

/** Writes the config file with `[pool]` as `c` and the app's workspace root, and reloads it. */
export async function writePoolConfig(t: TestApp, c: PoolConfig = {}): Promise<void> {
  await writeFile(
    t.configFile,
    `[pool]\nsize = ${c.size ?? 0}\nprimed = ${c.primed ?? 1}\n` +
      (c.prestart === undefined ? '' : `prestart = ${String(c.prestart)}\n`) +
      `[dashboard]\nworkspace_roots = ["${t.root}"]\n${c.extra ?? ''}`,
  )
  await t.services.config.reload()
}

/**
 * An app with the warm pool (started empty), then configured as `c`; `events`: what the hub
 * published since. `memoryBytes`: what the fake reports members hold, set before any is made.
 */
export async function primedApp(
  c: PoolConfig & { memoryBytes?: number } = {},
): Promise<TestApp & { events: ServerEvent[] }> {
  const events: ServerEvent[] = []
  const t = await buildTestApp({
    deps: { warmPool: true, monitor: true },
    configText: `[pool]\nsize = 0\nprimed = 0\n`,
  })
  t.services.hub.subscribe((e) => events.push(e.event))
  if (c.memoryBytes !== undefined) t.driver.memoryBytes = c.memoryBytes
  await writePoolConfig(t, c)
  return { ...t, events }
}

/** POST /api/sessions for `workspace` (default: the app's project), expecting 200. */
export async function createSession(
  t: TestApp,
  workspace = t.project,
  tool?: ToolName,
): Promise<CreatedSession> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/sessions',
    ...json({ workspace, ...(tool ? { tool } : {}) }),
  })
  expect(res.statusCode, res.body).toBe(200)
  return res.json<CreatedSession>()
}

/** Until the pool reports `n` ready primed members. */
export function primedReady(t: TestApp, n: number): Promise<void> {
  return vi.waitFor(() => {
    expect(t.services.poolStatus?.().primed?.ready).toBe(n)
  }, WAIT)
}

/** The names of the primed members the fake driver holds. */
export const primedMembers = (t: TestApp): string[] =>
  [...t.driver.instances.values()]
    .filter((i) => i.config[LABEL.pool]?.startsWith('primed:') === true)
    .map((i) => i.name)

/** The frozen (ready) primed member, if any. */
export const frozenMember = (t: TestApp): string | undefined =>
  [...t.driver.instances.values()].find(
    (i) => i.config[LABEL.pool]?.startsWith('primed:') === true && i.status === 'Frozen',
  )?.name
