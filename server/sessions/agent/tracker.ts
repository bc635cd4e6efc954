// Issue 17: the agent status of every session. It owns the hook channel (channel.ts), whose
// connections come in on the session's one socket and Incus `proxy` device (network/egress.ts
// owns both, issue 16; app.ts routes them to `accept`), turns each line into a signal (hooks.ts)
// or a look at the screen (screen-watch.ts: tmux's alerts come through the same channel),
// debounces per session (machine.ts, one timer each) and hands what is due to the reconciler,
// which alone writes the session cache and publishes `session.agent`. A session's state is reset
// when its launch ends (stop, delete) and dropped with the session.
import type net from 'node:net'
import type { Logger } from 'pino'
import { isToolName, type ToolName } from '../../../shared/tools.ts'
import type { IncusDriver } from '../../incus/driver.ts'
import type { IncusInstance } from '../../incus/schemas.ts'
import type { SessionReconciler } from '../reconciler.ts'
import { HookChannel, type ChannelCounters, type ChannelLimits } from './channel.ts'
import { agentHookInstall, type AgentHookInstall } from './hook-files.ts'
import { eventOf, parseHookPayload, signalOf, type AgentSignal } from './hooks.ts'
import {
  DEFAULT_MACHINE,
  INITIAL,
  signal,
  tick,
  type MachineOptions,
  type MachineState,
  type Step,
} from './machine.ts'
import {
  PANE_READ_MAX_BYTES,
  parsePaneRead,
  readPaneCommand,
  screenSignal,
  screenTrigger,
  TMUX_CONF,
  tmuxConf,
} from './screen-watch.ts'

export interface AgentTrackerOptions {
  limits?: Partial<ChannelLimits>
  machine?: Partial<MachineOptions>
  /** One look at a session's screen at most this often (ms). Default 2000. */
  screenIntervalMs?: number
}

export interface AgentTrackerDeps {
  driver: IncusDriver
  reconciler: SessionReconciler
  log: Logger
  /** The code user the screen is read as (config `[incus] code_uid`, its home). */
  codeUser: () => { uid: number; home: string }
  options: AgentTrackerOptions
}

interface Tracked {
  state: MachineState
  timer: NodeJS.Timeout | null
  /** The tool's hooks spoke in this launch: the screen then only tells `exited`, `idle`, `waiting`. */
  hooks: boolean
  /** A look at the screen is scheduled or running; `again`: a trigger came meanwhile. */
  screen: { busy: boolean; again: boolean; at: number; timer: NodeJS.Timeout | null }
}

export class AgentTracker {
  readonly #d: AgentTrackerDeps
  readonly #channel: HookChannel
  readonly #machine: MachineOptions
  readonly #sessions = new Map<string, Tracked>()
  readonly #unsubscribe: () => void
  /** Aborts the screen reads in flight at dispose. */
  readonly #abort = new AbortController()
  readonly #looks = new Set<Promise<void>>()

  constructor(deps: AgentTrackerDeps) {
    this.#d = deps
    this.#machine = { ...DEFAULT_MACHINE, ...deps.options.machine }
    this.#channel = new HookChannel({
      log: deps.log,
      limits: deps.options.limits,
      onLine: (id, line) => {
        this.#line(id, line)
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
    const base = agentHookInstall(tool, containerHome)
    const conf = { path: TMUX_CONF, content: Buffer.from(tmuxConf(containerHome)), mode: 0o644 }
    return { ...base, files: [...base.files, conf] }
  }

  /**
   * A hook channel connection of session `id` (from its socket: the session is where it came
   * in, never what it says), paused, with the first chunk read from it.
   */
  accept(id: string, socket: net.Socket, head: Buffer): void {
    this.#channel.accept(id, socket, head)
  }

  /**
   * An existing session (startup, resume). At startup (no `fix`) a running session's screen is
   * read once: its status is not known again until the tool next reports. Its device is the
   * egress service's (EgressService.attach replaces the old hook device).
   */
  attach(inst: IncusInstance, opts: { fix?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    if (!opts.fix && inst.status.toLowerCase() === 'running') this.#screen(inst.name)
    return Promise.resolve()
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

  /** A deleted session (or a removed primed member): its socket closed, its state dropped. */
  async forget(id: string): Promise<void> {
    this.#reset(id)
    this.#d.reconciler.forgetAgent(id)
    await this.#channel.close(id)
  }

  async dispose(): Promise<void> {
    this.#unsubscribe()
    this.#abort.abort()
    for (const id of [...this.#sessions.keys()]) this.#reset(id)
    await this.#channel.dispose()
    await Promise.allSettled([...this.#looks])
  }

  #tracked(id: string): Tracked {
    let t = this.#sessions.get(id)
    if (!t) {
      t = {
        state: INITIAL,
        timer: null,
        hooks: false,
        screen: { busy: false, again: false, at: -Infinity, timer: null },
      }
      this.#sessions.set(id, t)
    }
    return t
  }

  #reset(id: string): void {
    const t = this.#sessions.get(id)
    if (t?.timer) clearTimeout(t.timer)
    if (t?.screen.timer) clearTimeout(t.screen.timer)
    this.#sessions.delete(id)
  }

  /** One line of a session's channel: a hook's signal, or a screen trigger. */
  #line(id: string, line: string): void {
    const payload = parseHookPayload(line)
    if (!payload) return
    const trigger = screenTrigger(eventOf(payload))
    if (trigger) {
      this.#screen(id)
      return
    }
    const sig = signalOf(payload)
    if (!sig) return
    this.#tracked(id).hooks = true
    this.signal(id, sig)
  }

  /** Schedules a look at the screen (coalesced: one at a time, one per screenIntervalMs). */
  #screen(id: string): void {
    const t = this.#tracked(id)
    if (t.screen.busy) {
      t.screen.again = true
      return
    }
    t.screen.busy = true
    const interval = this.#d.options.screenIntervalMs ?? 2000
    t.screen.timer = setTimeout(
      () => {
        const look = this.#look(id, t)
        this.#looks.add(look)
        void look.finally(() => this.#looks.delete(look))
      },
      Math.max(0, t.screen.at + interval - Date.now()),
    )
    t.screen.timer.unref()
  }

  async #look(id: string, t: Tracked): Promise<void> {
    t.screen.timer = null
    t.screen.at = Date.now()
    try {
      const tool = this.#d.reconciler.cached(id)?.tool ?? ''
      const cmd = readPaneCommand(id, this.#d.codeUser())
      const res = await this.#d.driver.exec(id, cmd.argv, {
        ...cmd.opts,
        timeoutMs: 5000,
        maxOutputBytes: PANE_READ_MAX_BYTES,
        signal: this.#abort.signal,
      })
      const pane = res.exitCode === 0 ? parsePaneRead(res.stdout) : null
      const sig = pane && isToolName(tool) ? screenSignal(tool, pane, t.hooks) : null
      if (sig && this.#sessions.get(id) === t) this.signal(id, sig)
    } catch (err) {
      this.#d.log.debug({ err, session: id }, 'could not read the screen')
    } finally {
      t.screen.busy = false
      if (t.screen.again && this.#sessions.get(id) === t) {
        t.screen.again = false
        this.#screen(id)
      }
    }
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
