// What the terminal benchmarks need inside a session container, and the two ways to reach a
// terminal: a direct PTY around the very argv the server spawns (the floor), or the server's
// WebSocket.
import { CliIncusDriver } from '../../server/incus/cli-driver.ts'
import { tmuxSessionName } from '../../server/sessions/naming.ts'
import { terminalArgv, type TerminalKind } from '../../server/pty/terminals.ts'
import type { BenchContext } from './context.ts'
import { execAsCode, incus } from './incus.ts'
import { MiB, waitFor } from './stats.ts'
import { WettyEndpoint } from './peers.ts'
import { PtyEndpoint, WsEndpoint, type Endpoint, type Protocol } from './terminal-clients.ts'

export const BIG = { path: '/tmp/bench-64m.txt', bytes: 64 * MiB }
export const SMALL = { path: '/tmp/bench-8m.txt', bytes: 8 * MiB }
/** 127 bytes and a newline: 2^26 / 128 lines exactly, so the file ends on a whole line. */
export const LINE_BYTES = 128
export const COLS = 80
export const ROWS = 24

const driver = new CliIncusDriver({ project: 'default' })
const CODE_USER = { uid: 1000, name: 'code' }

/** A line of agent-like output: box drawing, a check mark, accented letters, padded to 127 B. */
export function benchLine(): string {
  const head = 'clincus bench │ ✓ ünïcødé ─── output line '
  const pad = 127 - Buffer.byteLength(head)
  let line = head
  for (let i = 0; i < pad; i++) line += String.fromCharCode(0x61 + (i % 26))
  if (Buffer.byteLength(line) !== 127) throw new Error('bench line is not 127 bytes')
  return line
}

/** The floor's wire bytes for a file of whole lines: the PTY turns each \n into \r\n. */
export function ptyBytes(fileBytes: number): number {
  return fileBytes + fileBytes / LINE_BYTES
}

/**
 * Writes the 64 MiB and 8 MiB files into the container and opens a tmux window running a plain
 * bash, where the /ws/terminal throughput runs `cat` (the tool pane only echoes lines).
 */
export async function prepareSession(id: string): Promise<void> {
  const line = benchLine()
  for (const f of [BIG, SMALL]) {
    await incus([
      'exec',
      id,
      '--',
      'sh',
      '-c',
      'yes "$1" | head -c "$2" > "$3" && chmod 644 "$3"',
      'sh',
      line,
      String(f.bytes),
      f.path,
    ])
  }
}

/** A second tmux window with a bare bash; it becomes the session's current window. */
export async function openBenchWindow(id: string): Promise<void> {
  await execAsCode(id, [
    'tmux',
    'new-window',
    '-t',
    `=${tmuxSessionName(id)}:`,
    '-n',
    'bench',
    'bash --noprofile --norc',
  ])
}

export async function selectWindow(id: string, index: number): Promise<void> {
  await execAsCode(id, ['tmux', 'select-window', '-t', `=${tmuxSessionName(id)}:${index}`])
}

/** Waits until no tmux client is attached (a closed viewer's `incus exec` has gone). */
export async function waitDetached(id: string): Promise<void> {
  await waitFor(
    `the tmux clients of ${id} to detach`,
    async () => {
      const out = await execAsCode(id, ['tmux', 'list-clients', '-t', `=${tmuxSessionName(id)}`])
      return out.trim() === ''
    },
    15_000,
    50,
  )
}

/** The server's own command line for a terminal of `kind` (what the peers run too). */
export function terminalCommand(id: string, kind: TerminalKind): string[] {
  return [driver.binary, ...terminalArgv(driver, id, kind, CODE_USER)]
}

export function directPty(id: string, kind: TerminalKind): PtyEndpoint {
  const label = kind === 'attach' ? 'direct PTY tmux attach' : 'direct PTY bash'
  return new PtyEndpoint(
    label,
    driver.binary,
    terminalArgv(driver, id, kind, CODE_USER),
    COLS,
    ROWS,
  )
}

export function wsTerminal(
  ctx: BenchContext,
  id: string,
  kind: TerminalKind,
  protocol: Protocol,
): WsEndpoint {
  const path = kind === 'attach' ? 'terminal' : 'shell'
  return new WsEndpoint(
    `/ws/${path} ${protocol}`,
    `${ctx.server.wsUrl}/ws/${path}/${id}?cols=${COLS}&rows=${ROWS}`,
    protocol,
    ctx.server.headers,
  )
}

export async function opened(ep: Endpoint): Promise<void> {
  if (ep instanceof WsEndpoint || ep instanceof WettyEndpoint) await ep.opened
}
