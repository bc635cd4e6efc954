import type { Health, ImageState } from '../shared/schemas/health.ts'
import type { ConfigStore } from './config/store.ts'
import type { DashboardPatch } from './config/toml-edit.ts'
import type { EventHub } from './events/hub.ts'
import type { HistoryStore } from './history/store.ts'
import type { IncusDriver } from './incus/driver.ts'
import type { EgressService } from './network/egress.ts'
import type { SessionReader } from './sessions/reconciler.ts'
import type { SessionService } from './sessions/service.ts'

/** What routes and transports use; built once by buildApp from its dependencies. */
export interface AppServices {
  version: string
  startedAt: number
  driver: IncusDriver
  config: ConfigStore
  /** Read-only view of the sessions (the reconciler writes them). */
  registry: SessionReader
  sessions: SessionService
  history: HistoryStore
  hub: EventHub
  /** Network egress of sessions (issue 12). */
  egress: EgressService
  /** Incus reachability from the lifecycle monitor's connection (cached, never asks incus). */
  incusStatus(): Health['incus']
  /** The warm pool's figures (cached, never asks incus); absent when the server runs none. */
  poolStatus?: () => NonNullable<Health['pool']>
  /** The image's last known state (cached, never asks incus). */
  imageState(alias: string): ImageState
  updateDashboard(patch: DashboardPatch): Promise<void>
}
