// The warm pool as the app runs it: sized and specified from the config (hot reload), filled for
// the global config until a create says better (its workspace may set other root-disk limits).
import type { Logger } from 'pino'
import type { Config } from '../../../shared/schemas/config.ts'
import type { ConfigStore } from '../../config/store.ts'
import type { IncusDriver } from '../../incus/driver.ts'
import { defaultSpec } from './key.ts'
import { WarmPool } from './manager.ts'
import { canonicalJson, withoutSections } from './primed-key.ts'

export interface PoolWiringDeps {
  driver: IncusDriver
  config: ConfigStore
  log: Logger
  prefix: string
}

/** The config a pool container's spec depends on (a change rebuilds the pool for the new one). */
function specInputs(c: Config): string {
  return JSON.stringify([c.defaults.image, c.limits.disk, c.incus.storage_pool])
}

/**
 * The config a primed member depends on: all but `[pool]` and `[dashboard]` (see primed-key.ts),
 * and `[pool] prestart` (whether an agent runs in it: turned off, no agent started ahead is left
 * to be handed over; turned on, members are made again with one).
 */
function primedInputs(c: Config): string {
  return canonicalJson([withoutSections(c, ['pool', 'dashboard']), c.pool.prestart])
}

/** Builds the pool and follows config reloads; `dispose` stops following and empties the pool. */
export function createWarmPool(d: PoolWiringDeps): {
  pool: WarmPool
  dispose: () => Promise<void>
} {
  const pool = new WarmPool({
    driver: d.driver,
    log: d.log,
    prefix: d.prefix,
    size: () => d.config.current.pool.size,
    primed: () => d.config.current.pool.primed,
    defaultSpec: async (signal) =>
      defaultSpec(
        d.config.current,
        await d.driver.rootPoolDriver({ timeoutMs: 10_000, signal }).catch(() => null),
      ),
  })
  const unsubscribe = d.config.subscribe((change) => {
    if (change.type !== 'reloaded') return
    const { previous: was, current: now } = change
    // Primed members were made with the old config (limits, mounts, network, protection ...).
    if (primedInputs(was) !== primedInputs(now)) pool.reprime('config changed')
    if (specInputs(was) !== specInputs(now)) pool.retarget()
    else if (was.pool.size !== now.pool.size || was.pool.primed !== now.pool.primed) pool.resize()
  })
  return {
    pool,
    dispose: async () => {
      unsubscribe()
      await pool.dispose()
    },
  }
}
