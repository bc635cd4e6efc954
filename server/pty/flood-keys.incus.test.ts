// Issue 14, keystrokes during a flood, through the live bridge (real Incus, the clincus-test
// image): the tool's window is split and the other pane floods without end (`yes`), as an agent
// printing a lot does, while a client types into the tool pane, whose tty echoes. Input must never
// wait behind output: a keystroke reaches the pane while the output direction is saturated, paused
// (a v1 client that does not acknowledge) or stalled (a raw client that does not read), and its
// echo comes back while the flood streams, in both protocols. The server's flow-control window is
// 64 KiB here instead of 1 MiB, so that it fills within a second even when tmux, behind on a
// flood, only redraws every 100 ms (a few KiB each time); nothing else depends on its size.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ackFrame } from '../../shared/ws/terminal.ts'
import { tmuxSessionName } from '../sessions/naming.ts'
import {
  describeIncus,
  execArgvAsCode,
  startLiveServer,
  type LiveServer,
} from '../test/incus-harness.ts'
import { TerminalClient, waitUntil } from '../test/ws-client.ts'

let server: LiveServer
let home: string
let id: string
/** The flooding pane and the tool's pane (tmux pane ids, `%N`). */
let flood: string
let tool: string

const WINDOW = { high: 64 * 1024, low: 16 * 1024 }

/** Neither the flood (ASCII) nor an escape sequence contains them. */
const KEYS = 'АБВГДЕЖЗИЙКЛ'
/** On a loaded 2-core CI machine; a quiet one echoes in ~0.1 s (tmux redraws every 100 ms). */
const ECHO_BOUND_MS = 10_000

async function tmux(...args: string[]): Promise<string> {
  return (await execArgvAsCode(id, ['tmux', ...args], { timeoutMs: 30_000 })).stdout.trim()
}

/**
 * A client of the tool's window. `big`: a screen so large that even tmux's slowest mode (it drops
 * frames and redraws the whole screen every 100 ms while the client is behind) sends ~1 MB/s, so
 * the kernel's socket buffers and the server's window fill within seconds.
 */
function agent(
  protocol: 'raw' | 'v1',
  opts: { autoAck?: boolean; big?: boolean } = {},
): TerminalClient {
  const size = opts.big ? 'cols=400&rows=120' : 'cols=120&rows=40'
  return new TerminalClient(`${server.wsUrl}/ws/terminal/${id}?${size}`, {
    protocol,
    autoAck: opts.autoAck ?? true,
    keep: false,
  })
}

/** Resolves (performance.now) when `text` arrives, also when it is split across frames. */
function arrival(t: TerminalClient, text: string, timeoutMs = ECHO_BOUND_MS): Promise<number> {
  const needle = Buffer.from(text)
  let tail = Buffer.alloc(0)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error(`no ${text} within ${timeoutMs} ms (${t.bytes} bytes in)`))
    }, timeoutMs)
    const off = t.onOutput((chunk) => {
      const joined = Buffer.concat([tail, chunk])
      if (joined.indexOf(needle) >= 0) {
        clearTimeout(timer)
        off()
        resolve(performance.now())
        return
      }
      tail = joined.subarray(Math.max(0, joined.length - needle.length + 1))
    })
  })
}

/** Waits until `bytes` more output have arrived on `t` (the flood is streaming to it). */
async function streamed(t: TerminalClient, bytes: number): Promise<void> {
  const from = t.bytes
  await waitUntil(`${bytes} more bytes of the flood`, () => t.bytes - from >= bytes, {
    timeoutMs: 60_000,
  })
}

async function startFlood(): Promise<void> {
  await tmux('respawn-pane', '-k', '-t', flood, "exec yes 'flood 0123456789 ---- ==== ++++'")
}

async function stopFlood(): Promise<void> {
  await tmux('respawn-pane', '-k', '-t', flood, 'exec sleep 1000000')
}

/** The tool pane's screen, as text (what its tty echoed). */
function toolScreen(): Promise<string> {
  return tmux('capture-pane', '-p', '-t', tool)
}

describeIncus('keystrokes while another pane floods (issue 14)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-flood-'))
    server = await startLiveServer({ home, realtime: { terminal: { flow: WINDOW } } })
    id = await server.launch('flood')
    const window = `=${tmuxSessionName(id)}:0`
    flood = await tmux('split-window', '-d', '-v', '-P', '-F', '#{pane_id}', '-t', window)
    await stopFlood()
    tool = await tmux('display-message', '-p', '-t', window, '#{pane_id}')
  })

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  for (const protocol of ['raw', 'v1'] as const) {
    it(
      `${protocol}: each keystroke into the tool pane is echoed while the other pane floods`,
      { timeout: 240_000 },
      async ({ annotate }) => {
        const t = agent(protocol)
        try {
          await t.opened
          await startFlood()
          await streamed(t, 64 * 1024)
          const times: number[] = []
          for (const key of KEYS) {
            const echo = arrival(t, key)
            const t0 = performance.now()
            t.send(key)
            times.push((await echo) - t0)
          }
          // The flood was still streaming after the last echo: every echo came during it.
          await streamed(t, 64 * 1024)
          await annotate(`echo during the flood, ms: ${times.map((x) => x.toFixed(0)).join(' ')}`)
          expect(times).toHaveLength(KEYS.length)
        } finally {
          await stopFlood()
          t.send('\x15')
          await t.close()
        }
      },
    )
  }

  it(
    'v1: a client that stops acknowledging pauses the output; its keystrokes still reach the pane, and the echo follows its ack',
    { timeout: 240_000 },
    async () => {
      const t = agent('v1', { autoAck: false, big: true })
      let unacked = 0
      t.onOutput((c) => (unacked += c.length))
      try {
        await t.opened
        await startFlood()
        // The server stops at its window: WINDOW.high unacknowledged bytes since the client's
        // first frame (the screen tmux drew on attach counts too, so not WINDOW.high more than
        // before the flood: how far the server overshoots depends on its last frame's size).
        await waitUntil('the window to fill', () => unacked >= WINDOW.high, { timeoutMs: 60_000 })
        await waitUntil('the PTY to be paused', () => server.terminals.outputPaused() === 1, {
          timeoutMs: 60_000,
        })
        const key = 'Ж'
        const echo = arrival(t, key, 60_000)
        t.send(key)
        await waitUntil(
          'the key in the tool pane',
          async () => (await toolScreen()).includes(key),
          {
            timeoutMs: ECHO_BOUND_MS,
          },
        )
        // It got there while the output stayed paused.
        expect(server.terminals.outputPaused()).toBe(1)
        t.ws.send(ackFrame(unacked))
        unacked = 0
        // Acking as it reads from now on, the client sees the echo while the flood goes on.
        t.onOutput((c) => {
          t.ws.send(ackFrame(c.length))
        })
        await echo
        await streamed(t, 64 * 1024)
      } finally {
        await stopFlood()
        t.send('\x15')
        await t.close()
      }
    },
  )

  it(
    'raw: a client that stops reading its socket pauses the output; its keystrokes still reach the pane',
    { timeout: 240_000 },
    async () => {
      const t = agent('raw', { big: true })
      try {
        await t.opened
        await startFlood()
        await streamed(t, 64 * 1024)
        t.ws.pause()
        // The kernel's socket buffers fill, then the server's own bound (WINDOW.high).
        await waitUntil('the PTY to be paused', () => server.terminals.outputPaused() === 1, {
          timeoutMs: 120_000,
        })
        const key = 'Й'
        const echo = arrival(t, key, 60_000)
        t.send(key)
        await waitUntil(
          'the key in the tool pane',
          async () => (await toolScreen()).includes(key),
          {
            timeoutMs: ECHO_BOUND_MS,
          },
        )
        expect(server.terminals.outputPaused()).toBe(1)
        t.ws.resume()
        await echo
      } finally {
        await stopFlood()
        t.send('\x15')
        await t.close()
      }
    },
  )
})
