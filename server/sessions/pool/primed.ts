// Primed pool members (issue 16): per recent launch request `(workspace, tool, profile)`, one
// container made like a cold create of it up to `ready`/`tmpfs` (workspace, mounts and protection
// attached before the first start, proxy devices, sudoers), then frozen. The tool is started only
// with `[pool] prestart`: agents read the workspace when they start (CLAUDE.md, git status into
// the system prompt), so a claim hands over an agent started ahead only while its view of the
// workspace is unchanged (agent-view.ts); a member whose view changed is stale.
// This module keeps the requests and members (synchronous state, so two creates never claim one
// member); WarmPool (manager.ts) runs the fills, and a Primer (../primed-launch.ts) makes and removes them.
import type { IncusInstance } from '../../incus/schemas.ts'
import { viewChange, type AgentView } from './agent-view.ts'
import { parseProtectLabel, type ProtectionPlan } from '../protect.ts'
import { LABEL } from '../registry.ts'
import { PROTECTION } from '../session-config.ts'
import { canonicalJson, primedMismatch, type PrimedKey, type PrimeRequest } from './primed-key.ts'

/** Why a member whose agent started from another view of the workspace is not claimed. */
export function agentViewStale(then: AgentView, now: AgentView | null): string {
  const what = now ? viewChange(then, now) : null
  return now === null
    ? "primed container stale: the workspace's view could not be taken (a link, or too many entries, where the agent reads)"
    : `primed container stale: ${what ?? 'what the agent read'} changed since its agent started`
}

/** The pool label's value on a primed member: `primed:<key>` (generic members carry their spec key). */
export const PRIMED_PREFIX = 'primed:'

/** What removing a member needs: the workspace and what its protection planned (dirs it made). */
export interface PrimedInfo {
  workspace: string
  protection: ProtectionPlan | null
}

/** A made member: its key, what it holds, and its memory (bytes) measured once frozen. */
export interface PrimedMade extends PrimedInfo {
  key: PrimedKey
  memoryBytes: number
  /**
   * `[pool] prestart`: its agent runs (started under `sessionId`), and `view` is the workspace as
   * the agent saw it when it started (agent-view.ts); null when only the container was primed.
   */
  agent: { sessionId: string; view: AgentView } | null
}

/** Makes and removes primed members; the session side implements it (../primed-launch.ts createPrimer). */
export interface Primer {
  /**
   * Makes member `name` for `req`: plans it fresh, runs the cold steps to `tmpfs`, freezes it.
   * On failure it has removed what it made (as a rollback does) and throws.
   */
  make(name: string, req: PrimeRequest, signal: AbortSignal): Promise<PrimedMade>
  /**
   * Removes a member as a rollback does: the container, its egress and agent channels, and the
   * directories its protection made unless a session of the workspace exists or is being made.
   */
  remove(name: string, info: PrimedInfo | null): Promise<void>
}

/** The removal info of a leftover member, from its labels (null when they are missing). */
export function primedInfoOf(inst: IncusInstance): PrimedInfo | null {
  const workspace = inst.config[LABEL.primedWorkspace]
  if (!workspace) return null
  return { workspace, protection: parseProtectLabel(inst.config[PROTECTION]) }
}

/** Whether an instance's pool label marks a primed member. */
export function isPrimedLabel(value: string | undefined): boolean {
  return value?.startsWith(PRIMED_PREFIX) === true
}

interface Member {
  request: PrimeRequest
  id: string
  epoch: number
  state: 'creating' | 'ready'
  made: PrimedMade | null
  /** Directories a session of the workspace made, handed over while this member holds them. */
  adopted: string[]
}

export type PrimedClaim =
  | { name: string; made: PrimedMade }
  | { stale: { name: string; info: PrimedInfo }; reason: string }
  | { reason: string }
  | null

/** The next thing the pool should do for primed members. */
export type PrimedWork = { remove: string; info: PrimedInfo | null } | { fill: PrimeRequest } | null

/** `made` with `created` added to the directories its protection made (outermost first kept). */
function adopt(made: PrimedMade, created: readonly string[]): PrimedMade {
  if (created.length === 0 || !made.protection) return made
  const all = mergeCreated(made.protection.created, created)
  return { ...made, protection: { ...made.protection, created: all } }
}

/** Two lists of created directories as one, outermost first (removal runs it backwards). */
export function mergeCreated(a: readonly string[], b: readonly string[]): string[] {
  const depth = (rel: string): number => rel.split('/').length
  return [...new Set([...a, ...b])].sort((x, y) => depth(x) - depth(y))
}

const requestId = (r: PrimeRequest): string =>
  canonicalJson([r.workspace, r.tool, r.profile ?? null])

export class PrimedMembers {
  /** Most recent first, distinct. */
  #recent: PrimeRequest[] = []
  readonly #members = new Map<string, Member>()
  /** Bumped when the image, Incus or the config changed under the members: they are rebuilt. */
  #epoch = 0

  /** A create of `req` succeeded: it becomes the most recent request (the list keeps `limit`). */
  remember(req: PrimeRequest, limit: number): void {
    const id = requestId(req)
    this.#recent = [req, ...this.#recent.filter((r) => requestId(r) !== id)].slice(0, limit)
  }

  /** A fill of `req` failed: it is dropped (a later create of it adds it again). */
  drop(req: PrimeRequest): void {
    const id = requestId(req)
    this.#recent = this.#recent.filter((r) => requestId(r) !== id)
  }

  /** The requests kept, most recent first. */
  recent(): readonly PrimeRequest[] {
    return this.#recent
  }

  invalidate(): void {
    this.#epoch++
  }

  has(name: string): boolean {
    return this.#members.has(name)
  }

  /**
   * A session of `workspace` ended while a member (other than `except`) holds the workspace: the
   * directories its protection made become the member's (removed with it, or handed on to the
   * session that claims it). False when no member holds the workspace.
   */
  adoptCreated(workspace: string, created: readonly string[], except?: string): boolean {
    for (const [name, m] of this.#members) {
      if (name === except || m.request.workspace !== workspace) continue
      if (m.made && !m.made.protection) continue
      if (m.made) m.made = adopt(m.made, created)
      else m.adopted.push(...created)
      return true
    }
    return false
  }

  status(): { ready: number; creating: number; memory_bytes: number } {
    let ready = 0
    let creating = 0
    let memory = 0
    for (const m of this.#members.values()) {
      if (m.state === 'creating') creating++
      else if (m.epoch === this.#epoch) ready++
      memory += m.made?.memoryBytes ?? 0
    }
    return { ready, creating, memory_bytes: memory }
  }

  /**
   * Takes the ready member of `req` when its key is `key` (synchronous: never two creates one
   * member) and, when its agent was started ahead (`[pool] prestart`), when `view` (the agent's
   * view of the workspace now, agent-view.ts; null: none could be taken) is the one the agent
   * started with. A member of `req` with another key or view is taken out too, as `stale` (the
   * caller removes it): an agent that started from an older view ran in it (its start-up hooks
   * and plugins included), so no restart in it gives the session a fresh start. Null when `req`
   * has no member at all.
   */
  claim(req: PrimeRequest, key: PrimedKey, view: AgentView | null = null): PrimedClaim {
    const id = requestId(req)
    let creating = false
    for (const [name, m] of this.#members) {
      if (m.id !== id) continue
      if (m.state === 'creating' || !m.made) {
        creating = true
        continue
      }
      this.#members.delete(name)
      const current = m.epoch === this.#epoch && m.made.key.key === key.key
      const agent = m.made.agent
      if (current && (!agent || (view !== null && view.digest === agent.view.digest)))
        return { name, made: m.made }
      const reason =
        current && agent
          ? agentViewStale(agent.view, view)
          : m.epoch === this.#epoch
            ? primedMismatch(m.made.key, key)
            : 'primed container stale: the image or config changed since it was primed'
      return { stale: { name, info: m.made }, reason }
    }
    return creating ? { reason: 'the primed container is still being made' } : null
  }

  /** Marks `name` as being made for `req`. */
  begin(name: string, req: PrimeRequest): void {
    this.#members.set(name, {
      request: req,
      id: requestId(req),
      epoch: this.#epoch,
      state: 'creating',
      made: null,
      adopted: [],
    })
  }

  /** `name` is made (ready) unless it was dropped meanwhile; false when it was. */
  ready(name: string, made: PrimedMade): boolean {
    const m = this.#members.get(name)
    if (!m) return false
    m.state = 'ready'
    m.made = adopt(made, m.adopted)
    return true
  }

  /** Forgets `name` (removed, failed, or swept). */
  delete(name: string): void {
    this.#members.delete(name)
  }

  /** Whether `name` is being made (the sweep leaves it to its fill). */
  creating(name: string): boolean {
    return this.#members.get(name)?.state === 'creating'
  }

  /**
   * What to do next with `limit` (`[pool] primed`): remove a member of an older epoch or of a
   * request no longer kept, else fill a kept request that has no member; null when all is done.
   */
  next(limit: number): PrimedWork {
    if (this.#recent.length > limit) this.#recent = this.#recent.slice(0, limit)
    const kept = new Set(this.#recent.map(requestId))
    for (const [name, m] of this.#members) {
      if (m.state !== 'ready') continue
      if (m.epoch !== this.#epoch || !kept.has(m.id)) {
        this.#members.delete(name)
        return { remove: name, info: m.made }
      }
    }
    const served = new Set([...this.#members.values()].map((m) => m.id))
    const missing = this.#recent.find((r) => !served.has(requestId(r)))
    return missing ? { fill: missing } : null
  }
}
