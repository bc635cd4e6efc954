// Issue 17: the agent status of every session. It owns the hook channel (channel.ts) and the
// Incus `proxy` device that exposes it in each container, turns each line into a signal
// (hooks.ts), debounces per session (machine.ts, one timer each) and hands what is due to the
// reconciler, which alone writes the session cache and publishes `session.agent`. A session's
// state is reset when its launch ends (stop, delete) and dropped with the session.
import type { Logger } from 'pino'
import type { ToolName } from '../../../shared/tools.ts'
import type { IncusDriver } from '../../incus/driver.ts'
import type { IncusInstance } from '../../incus/schemas.ts'
import { deviceWrong, proxyDevice } from '../../network/container.ts'
import type { SessionReconciler } from '../reconciler.ts'
import { HookChannel, type ChannelCounters, type ChannelLimits } from './channel.ts'
import {
  AGENT_DEVICE,
  AGENT_LISTEN,
  agentHookInstall,
  type AgentHookInstall,
} from './hook-files.ts'
import { parseHookLine, type AgentSignal } from './hooks.ts'
import {
  DEFAULT_MACHINE,
  INITIAL,
  signal,
  tick,
  type MachineOptions,
  type MachineState,
  type Step,
} from './machine.ts'

export interface AgentTrackerOptions {
  /** Directory of the per-session sockets (main.ts: <runtime dir>/clincus/agent). */
  runtimeDir: string
  limits?: Partial<ChannelLimits>
  machine?: Partial<MachineOptions>
}

export interface AgentTrackerDeps {
  driver: IncusDriver
  reconciler: SessionReconciler
  log: Logger
  options: AgentTrackerOptions
}

interface Tracked {
  state: MachineState
  timer: NodeJS.Timeout | null
}

export class AgentTracker {
  readonly #d: AgentTrackerDeps
  readonly #channel: HookChannel
  readonly #machine: MachineOptions
  readonly #sessions = new Map<string, Tracked>()
  readonly #unsubscribe: () => void

  constructor(deps: AgentTrackerDeps) {
    this.#d = deps
    this.#machine = { ...DEFAULT_MACHINE, ...deps.options.machine }
    this.#channel = new HookChannel({
      dir: deps.options.runtimeDir,
      log: deps.log,
      limits: deps.options.limits,
      onLine: (id, line) => {
        const sig = parseHookLine(line)
        if (sig) this.signal(id, sig)
      },
    })
    // A launch that ended starts the next one from nothing; a deleted session is forgotten.
    this.#unsubscribe = deps.reconciler.onEnd(async (id, gone) => {
      if (gone) await this.forget(id)
      else this.#reset(id)
    })
  }

  /** What the tool-config copy installs for `tool` (hook script, settings, plugin). */
  hookInstall(tool: ToolName, containerHome: string): AgentHookInstall {
    return agentHookInstall(tool, containerHome)
  }

  /** The proxy device of a session. */
  device(id: string): Record<string, string> {
    return proxyDevice(this.#channel.path(id), AGENT_LISTEN)
  }

  /** Opens the session's socket and adds its device (before the container's first start). */
  async addDevice(id: string, signal?: AbortSignal): Promise<void> {
    await this.#channel.open(id)
    await this.#d.driver.deviceAdd(id, AGENT_DEVICE, this.device(id), signal ? { signal } : {})
  }

  /**
   * An existing session (startup, resume): its socket opened; with `fix`, the device added when
   * missing or pointing elsewhere (sessions made before issue 17, a moved runtime directory).
   */
  async attach(
    inst: IncusInstance,
    opts: { fix?: boolean; signal?: AbortSignal } = {},
  ): Promise<void> {
    await this.#channel.open(inst.name)
    if (!opts.fix) return
    const dev = inst.devices?.[AGENT_DEVICE]
    if (!deviceWrong(true, this.#channel.path(inst.name), dev)) return
    const signal = opts.signal ? { signal: opts.signal } : {}
    if (dev !== undefined) await this.#d.driver.deviceRemove(inst.name, AGENT_DEVICE, signal)
    await this.#d.driver.deviceAdd(inst.name, AGENT_DEVICE, this.device(inst.name), signal)
  }

  /** A signal for a session (the channel's lines; the screen fallback). */
  signal(id: string, sig: AgentSignal): void {
    const t = this.#tracked(id)
    this.#apply(id, t, signal(t.state, sig, Date.now(), this.#machine))
  }

  /** What the channel counted for a session (tests). */
  counters(id: string): ChannelCounters | undefined {
    return this.#channel.counters(id)
  }

  /** A deleted session: its socket closed, its state dropped. */
  async forget(id: string): Promise<void> {
    this.#reset(id)
    await this.#channel.close(id)
  }

  async dispose(): Promise<void> {
    this.#unsubscribe()
    for (const id of [...this.#sessions.keys()]) this.#reset(id)
    await this.#channel.dispose()
  }

  #tracked(id: string): Tracked {
    let t = this.#sessions.get(id)
    if (!t) {
      t = { state: INITIAL, timer: null }
      this.#sessions.set(id, t)
    }
    return t
  }

  #reset(id: string): void {
    const t = this.#sessions.get(id)
    if (t?.timer) clearTimeout(t.timer)
    this.#sessions.delete(id)
  }

  #apply(id: string, t: Tracked, step: Step): void {
    t.state = step.state
    if (t.timer) clearTimeout(t.timer)
    t.timer = null
    if (step.announce) {
      const { status, reason, since } = step.announce
      this.#d.reconciler.agent(id, {
        status,
        ...(reason ? { reason } : {}),
        since: new Date(since).toISOString(),
      })
    }
    if (step.wakeAt !== undefined) {
      t.timer = setTimeout(
        () => {
          if (this.#sessions.get(id) !== t) return
          this.#apply(id, t, tick(t.state, Date.now(), this.#machine))
        },
        Math.max(0, step.wakeAt - Date.now()),
      )
      t.timer.unref()
    }
  }
}
