// Direct Incus calls for the floors and the fixtures: the same CLI the server drives, with argv
// arrays and a timeout on every call.
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { execa, ExecaError, type ResultPromise } from 'execa'
import { LABEL } from '../../server/sessions/registry.ts'
import { parseTimestamp } from './stats.ts'

/** Errors of a daemon that is restarting (it is shared with other work on this machine). */
const DAEMON_DOWN =
  /database is closed|doesn't appear to be started|Shutting down|connection refused|Failed to begin transaction|Daemon still initializing/i

export function daemonDown(err: unknown): boolean {
  return err instanceof ExecaError && DAEMON_DOWN.test(String(err.stderr))
}

export async function waitForDaemon(): Promise<void> {
  await execa('incus', ['admin', 'waitready', '--timeout', '120'], { reject: false })
}

/** The daemon's process id (changes when something restarts the shared daemon). */
export async function daemonPid(): Promise<number> {
  const out = await incus(['query', '/1.0'])
  return (JSON.parse(out) as { environment?: { server_pid?: number } }).environment?.server_pid ?? 0
}

/** One incus call; retried after the daemon is back when it was restarting meanwhile. */
export async function incus(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await execa('incus', [...args], { timeout: timeoutMs, stdin: 'ignore' })
      return r.stdout
    } catch (err) {
      if (attempt >= 3 || !daemonDown(err)) throw err
      await waitForDaemon()
    }
  }
}

/** Runs a command in a container as the code user (uid 1000), like the server's own execs. */
export async function execAsCode(name: string, argv: readonly string[]): Promise<string> {
  return incus([
    'exec',
    name,
    '--user',
    '1000',
    '--group',
    '1000',
    '--env',
    'HOME=/home/code',
    '--',
    ...argv,
  ])
}

/** Names of every instance in the project (all users', not only ours). */
export async function instanceNames(): Promise<string[]> {
  const out = await incus(['query', '/1.0/instances?recursion=0'])
  return (JSON.parse(out) as string[]).map((u) => u.split('/').pop() ?? '')
}

/**
 * Deletes every instance whose name starts with `prefix` (only this run's own). Retries for a
 * while: the daemon may be restarting (it is shared with other work on the machine).
 */
export async function removeByPrefix(prefix: string): Promise<number> {
  let removed = 0
  for (let attempt = 0; attempt < 6; attempt++) {
    try {
      const names = (await instanceNames()).filter((n) => n.startsWith(prefix))
      if (names.length === 0) return removed
      // One `incus delete` per batch: many names in one call is far cheaper than a process each.
      for (let i = 0; i < names.length; i += 25) {
        await execa('incus', ['delete', '--force', ...names.slice(i, i + 25)], {
          timeout: 180_000,
          reject: false,
          stdin: 'ignore',
        })
      }
      removed += names.length
    } catch {
      await waitForDaemon()
    }
  }
  const left = (await instanceNames()).filter((n) => n.startsWith(prefix))
  if (left.length > 0) throw new Error(`could not delete ${left.join(', ')}`)
  return removed
}

/** A random 8-hex workspace hash, so names fit `<prefix><8 hex>-<slot>` (naming.ts). */
export function randomHash(): string {
  return randomBytes(4).toString('hex')
}

/** The labels clincus puts on a session at creation (service.ts), for a given workspace. */
export function sessionLabels(workspace: string, tool = 'claude'): Record<string, string> {
  return {
    [LABEL.managed]: 'true',
    [LABEL.workspace]: workspace,
    [LABEL.tool]: tool,
    [LABEL.persistent]: 'false',
    [LABEL.created]: new Date().toISOString(),
    [LABEL.sessionId]: '00000000-0000-4000-8000-000000000000',
  }
}

export function configArgs(config: Record<string, string>): string[] {
  return Object.entries(config).flatMap(([k, v]) => ['--config', `${k}=${v}`])
}

/**
 * An instance with clincus' labels but no root filesystem (`incus init --empty`): it lists like
 * a stopped session and costs ~50 ms instead of the ~1.4 s of unpacking the image.
 */
export async function createEmptySession(name: string, workspace: string): Promise<void> {
  await incus(['init', '--empty', name, ...configArgs(sessionLabels(workspace))])
}

export interface IncusLifecycle {
  action: string
  name: string
  /** The daemon's event timestamp, epoch ms with sub-ms precision. */
  at: number
}

/**
 * Our own `incus monitor --type=lifecycle`: the daemon's timestamp of every lifecycle event, to
 * set against the moment the same event reaches a /ws/events client.
 */
export class LifecycleRecorder {
  readonly events: IncusLifecycle[] = []
  readonly #child: ResultPromise
  readonly #abort = new AbortController()
  readonly ready: Promise<void>

  constructor() {
    this.#child = execa('incus', ['monitor', '--type=lifecycle', '--format=json'], {
      cancelSignal: this.#abort.signal,
      stdin: 'ignore',
      buffer: false,
      reject: false,
    })
    const stdout = this.#child.stdout
    if (!stdout) throw new Error('incus monitor has no stdout')
    const lines = createInterface({ input: stdout })
    lines.on('line', (line) => {
      const text = line.trim()
      if (text === '') return
      try {
        const e = JSON.parse(text) as {
          timestamp?: string
          metadata?: { action?: string; name?: string; source?: string }
        }
        const name = e.metadata?.name ?? e.metadata?.source?.split('/').pop() ?? ''
        if (!e.timestamp || !e.metadata?.action || !name) return
        this.events.push({ action: e.metadata.action, name, at: parseTimestamp(e.timestamp) })
      } catch {
        // a partial line while the monitor stops
      }
    })
    // The monitor prints nothing until an event: give it a moment to connect to the daemon.
    this.ready = new Promise((resolve) => setTimeout(resolve, 500))
  }

  async stop(): Promise<void> {
    this.#abort.abort()
    await this.#child
  }
}
