// After a (re)start of the server or of Incus: resync the sessions, delete half-created leftovers
// and re-open each session's channels and deadline.
import type { DeadlineAction } from './deadlines.ts'
import type { LaunchContext } from './launch.ts'
import { parseContainerName } from './naming.ts'
import { parseProtectLabel } from './protect.ts'
import { LABEL, slotOf } from './registry.ts'
import { PROTECTION } from './session-config.ts'

export interface RestoreContext extends LaunchContext {
  prefix: string
  /** When this server started: an unfinished container older than it is a leftover. */
  startedAt: number
  /** Whether a slot is being created now (its container is not a leftover yet). */
  creating(hash: string, slot: number): boolean
}

/**
 * Resyncs the reconciler, then per session container: one not marked ready that is an orphan, has
 * no creation time or predates this server (and is not being created or claimed now) is deleted
 * with the directories its protection made; every other one gets its egress proxy, agent status
 * channel and deadline back. Errors per container are logged, never thrown.
 */
export async function restoreSessions(ctx: RestoreContext): Promise<void> {
  const { driver, reconciler: r, log } = ctx
  await r.resync()
  for (const inst of await r.instances()) {
    const created = Date.parse(inst.config[LABEL.created] ?? '')
    const parsed = parseContainerName(ctx.prefix, inst.name)
    const creating =
      (parsed !== null && ctx.creating(parsed.hash, parsed.slot)) || ctx.claiming.has(inst.name)
    const leftover =
      inst.config[LABEL.ready] !== 'true' &&
      !creating &&
      (ctx.orphans.has(inst.name) || Number.isNaN(created) || created < ctx.startedAt)
    if (leftover) {
      log.warn({ session: inst.name }, 'removing a half-created container')
      try {
        await driver.delete(inst.name, { force: true, timeoutMs: 60_000 })
        ctx.orphans.delete(inst.name)
        await r.deleted(inst.name)
        const ws = inst.config[LABEL.workspace]
        if (ws)
          await ctx.removeCreated(
            ws,
            parseProtectLabel(inst.config[PROTECTION]),
            inst.name,
            slotOf(ctx.prefix, inst),
          )
      } catch (err) {
        log.error({ err, session: inst.name }, 'could not remove a half-created container')
      }
      continue
    }
    await ctx.egress?.attach(inst).catch((err: unknown) => {
      log.warn({ err, session: inst.name }, 'could not open the egress proxy')
    })
    await ctx.agents?.attach(inst).catch((err: unknown) => {
      log.warn({ err, session: inst.name }, 'could not open the agent status channel')
    })
    const deadline = inst.config[LABEL.deadline]
    const action = (inst.config[LABEL.deadlineAction] ?? 'graceful') as DeadlineAction
    if (
      r.cached(inst.name)?.status === 'running' &&
      deadline &&
      !Number.isNaN(Date.parse(deadline))
    )
      ctx.deadlines.schedule(inst.name, new Date(deadline), action)
  }
}
