// The warm pool as the app runs it: sized and specified from the config (hot reload), filled for
// the global config until a create says better (its workspace may set other root-disk limits).
import type { Logger } from 'pino'
import type { Config } from '../../../shared/schemas/config.ts'
import type { ConfigStore } from '../../config/store.ts'
import type { IncusDriver } from '../../incus/driver.ts'
import { defaultSpec } from './key.ts'
import { WarmPool } from './manager.ts'

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
    defaultSpec: async (signal) =>
      defaultSpec(
        d.config.current,
        await d.driver.rootPoolDriver({ timeoutMs: 10_000, signal }).catch(() => null),
      ),
  })
  const unsubscribe = d.config.subscribe((change) => {
    if (change.type !== 'reloaded') return
    if (specInputs(change.previous) !== specInputs(change.current)) pool.retarget()
    else if (change.previous.pool.size !== change.current.pool.size) pool.resize()
  })
  return {
    pool,
    dispose: async () => {
      unsubscribe()
      await pool.dispose()
    },
  }
}
