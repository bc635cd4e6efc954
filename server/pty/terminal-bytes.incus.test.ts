// Issue 14, byte level through the live bridge (real Incus, the clincus-test image): what the
// project's tmux configuration and the terminal server do to the bytes between a WebSocket
// client and a program in the session's pane. Rows 1, 3, 7, 8 and 9 of the table, and a
// session driven through the original dashboard's JSON framing.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { ackFrame, CloseCode } from '../../shared/ws/terminal.ts'
import { tmuxSessionName } from '../sessions/naming.ts'
import { tmuxStartArgv } from '../sessions/tmux.ts'
import {
  describeIncus,
  execArgvAsCode,
  startLiveServer,
  type LiveServer,
} from '../test/incus-harness.ts'
import { stripAnsi, TerminalClient, waitUntil } from '../test/ws-client.ts'

let server: LiveServer
let home: string
let id: string

async function tmux(...args: string[]): Promise<string> {
  return (await execArgvAsCode(id, ['tmux', ...args], { timeoutMs: 30_000 })).stdout.trim()
}

function paneQuery(format: string): Promise<string> {
  // `=name:` (exact session, its current window): a bare `=name` is no pane target.
  return tmux('display-message', '-p', '-t', `=${tmuxSessionName(id)}:`, format)
}

function agent(opts: { protocol?: 'raw' | 'v1'; autoAck?: boolean } = {}): TerminalClient {
  return new TerminalClient(`${server.wsUrl}/ws/terminal/${id}?cols=120&rows=40`, opts)
}

/** A marker the shell's echo of the command line cannot contain (quotes split it). */
function marker(name: string): { typed: string; seen: string } {
  return { typed: `'${name.slice(0, 2)}''${name.slice(2)}'`, seen: name }
}

/**
 * Acknowledges every frame, but only as fast as a browser that renders `bytesPerSecond` would:
 * a slow viewer keeps the PTY paused for a while after a burst of output.
 */
function ackSlowly(t: TerminalClient, bytesPerSecond: number): void {
  let nextAt = 0
  t.onOutput((c) => {
    nextAt = Math.max(nextAt, performance.now()) + (c.length / bytesPerSecond) * 1000
    setTimeout(() => {
      if (t.ws.readyState === t.ws.OPEN) t.ws.send(ackFrame(c.length))
    }, nextAt - performance.now())
  })
}

/** Resolves on the output event that completes `needle` (no polling: exact for timing). */
function nextOutput(t: TerminalClient, needle: string): Promise<number> {
  let seen = ''
  return new Promise((resolve) => {
    const off = t.onOutput((c) => {
      seen = stripAnsi(seen + c.toString('utf8'))
      if (!seen.includes(needle)) return
      off()
      resolve(performance.now())
    })
  })
}

async function redrawn(t: TerminalClient): Promise<void> {
  await t.opened
  await waitUntil('the first redraw', () => t.bytes > 0)
}

/** Runs a command line in the pane's shell (after the tool has exited) and waits for `done`. */
async function inPane(t: TerminalClient, command: string, done: string): Promise<void> {
  const m = marker(done)
  t.send(`${command}; printf %s ${m.typed}\r`)
  await t.waitFor(m.seen)
}

describeIncus('terminal bytes through tmux and the bridge (issue 14)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-bytes-'))
    server = await startLiveServer({ home })
    id = await server.launch('bytes')
  })

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('the session runs under the project tmux configuration', async () => {
    expect(await tmux('show-options', '-s', '-v', 'escape-time')).toBe('10')
    expect(await tmux('show-options', '-s', '-v', 'set-clipboard')).toBe('on')
    expect(await tmux('show-options', '-s', '-v', 'extended-keys')).toBe('on')
    expect(await tmux('show-options', '-g', '-v', 'mouse')).toBe('on')
    expect(Number(await tmux('show-options', '-g', '-v', 'history-limit'))).toBeGreaterThanOrEqual(
      50_000,
    )
    expect(await tmux('show-options', '-g', '-v', 'default-terminal')).toBe('tmux-256color')
    expect(await tmux('show-environment', '-g', 'COLORTERM')).toBe('COLORTERM=truecolor')
    // The images ship tmux-256color's terminfo (ncurses-base), so programs in the pane know it.
    const infocmp = await execa('incus', ['exec', id, '--', 'infocmp', 'tmux-256color'], {
      timeout: 30_000,
      reject: false,
    })
    expect(infocmp.exitCode).toBe(0)
    expect(await paneQuery('#{pane_in_mode} #{history_limit}')).toBe('0 50000')
  })

  it('json framing: the original dashboard drives the agent through JSON messages', async () => {
    const ws = new WebSocket(`${server.wsUrl}/ws/terminal/${id}`)
    const messages: Array<{ type: string; data?: string; code?: number; message?: string }> = []
    let binary = 0
    ws.on('message', (d, isBinary) => {
      if (isBinary) binary++
      const text = (Buffer.isBuffer(d) ? d : Buffer.from(d as ArrayBuffer)).toString('utf8')
      try {
        messages.push(JSON.parse(text) as { type: string })
      } catch {
        // Output before the client's first frame comes raw, and again as JSON after it.
      }
    })
    const closed = new Promise<number>((resolve) =>
      ws.once('close', (code) => {
        resolve(code)
      }),
    )
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        resolve()
      })
      ws.once('error', reject)
    })
    ws.send(JSON.stringify({ type: 'resize', cols: 100, rows: 30 }))
    ws.send(JSON.stringify({ type: 'input', data: 'json-probe\r' }))
    const output = (): string =>
      stripAnsi(
        messages
          .filter((m) => m.type === 'output')
          .map((m) => m.data ?? '')
          .join(''),
      )
    await waitUntil('json-probe-BACK in output messages', () =>
      output().includes('json-probe-BACK'),
    )
    ws.send('{"type":"input","data":') // malformed: an error message, the connection lives on
    await waitUntil('an error message', () => messages.some((m) => m.type === 'error'))
    // The JSON resize reached tmux (30 rows, one of them its status line).
    expect(await paneQuery('#{window_width}x#{window_height}')).toBe('100x29')
    expect(binary).toBe(0)
    ws.close()
    await closed
  })

  it('a tool argv reaches the program word for word: no tmux command, format or shell expansion', async () => {
    // The words a hostile config or profile could put in a tool's argv; the tmux command line
    // ends a command at a word ending in ';' and expands #{...} / #(...) in some places.
    const words = [
      ';',
      'a;',
      'b\\;',
      '\\;',
      '#{pane_pid}',
      '#(touch /tmp/pwn-fmt)',
      '$(touch /tmp/pwn-sh)',
      'x\ny',
      '-d',
      "'",
      '',
    ]
    const program = ['sh', '-c', 'printf "%s\\0" "$@" > /tmp/argv.out', 'sh', ...words]
    const argv = tmuxStartArgv('argv-probe', '/tmp', program)
    // Its own tmux server (-L), so the session's server and its options are left alone.
    const r = await execArgvAsCode(id, ['tmux', '-L', 'argv-probe', ...argv.slice(1)])
    expect(r.exitCode, r.stderr).toBe(0)
    const out = await waitUntil('the probe wrote its argv', async () => {
      const got = await execArgvAsCode(id, ['cat', '/tmp/argv.out'])
      return got.exitCode === 0 && got.stdout.endsWith('\0') ? got.stdout : undefined
    })
    expect(out.split('\0').slice(0, -1)).toEqual(words)
    const pwned = await execArgvAsCode(id, ['sh', '-c', 'ls /tmp/pwn-* 2>/dev/null | wc -l'])
    expect(pwned.stdout.trim()).toBe('0')
    await execArgvAsCode(id, ['tmux', '-L', 'argv-probe', 'kill-server'])
  })

  it('row 1: a wheel-up report puts the pane in copy mode; the agent gets no arrow key', async () => {
    const t = agent()
    await redrawn(t)
    // tmux asks the browser for SGR mouse reports, so xterm.js sends the wheel as a report
    // instead of turning it into arrow keys.
    await waitUntil('mouse reporting on', () => t.text.includes('\x1b[?1006h'))
    expect(await paneQuery('#{pane_in_mode}')).toBe('0')
    t.send('\x1b[<64;30;10M')
    await waitUntil('copy mode', async () => (await paneQuery('#{pane_in_mode}')) === '1')
    t.send('q')
    await waitUntil('copy mode to end', async () => (await paneQuery('#{pane_in_mode}')) === '0')
    t.send('\x15wheel-probe\r') // Ctrl+U first: nothing typed earlier joins the line
    await t.waitFor('wheel-probe-BACK')
    const screen = await tmux('capture-pane', '-p', '-t', `=${tmuxSessionName(id)}:`)
    expect(screen.split('\n')).toContain('wheel-probe-BACK')
    expect(screen).not.toContain('^[')
    await t.close()
  })

  it('the tool exits and leaves a shell in the pane (for the rows below)', async () => {
    const t = agent()
    await redrawn(t)
    t.send('\x15exit\r')
    await t.waitFor('[claude exited with code 0]')
    await inPane(t, 'true', 'SHELL_OK')
    await t.close()
  })

  it('row 7: 24-bit colour reaches the client unchanged; COLORTERM is set; redraws use DEC 2026', async () => {
    const t = agent()
    await redrawn(t)
    // tmux wraps a full redraw in synchronized output when the client terminal has `sync`.
    await waitUntil('a synchronized redraw', () => t.text.includes('\x1b[?2026h'))
    t.clear()
    await inPane(
      t,
      `printf '\\e[38;2;215;119;87mX\\e[0m %s %s\\n' "$COLORTERM" "$CLAUDE_CODE_TMUX_TRUECOLOR"`,
      'ROW7',
    )
    expect(t.text).toContain('\x1b[38;2;215;119;87m')
    // eslint-disable-next-line no-control-regex -- matching an escape sequence is the point
    expect(t.text).not.toMatch(/\x1b\[38;5;\d+mX/)
    expect(stripAnsi(t.text)).toContain('X truecolor 1')
    await t.close()
  })

  it('row 3: an OSC 52 write reaches the client; a read is neither forwarded nor answered with content', async () => {
    const t = agent()
    await redrawn(t)
    t.clear()
    // The read first: the reply (if any) and tmux's answer to DSR 5 come back in order, so
    // `read -d n` collects whatever tmux answered to the OSC 52 query, without a timeout.
    await inPane(
      t,
      `stty raw -echo; printf '\\e]52;c;?\\a\\e[5n'; IFS= read -r -d n reply; stty sane; printf %s "$reply" | od -An -c | tr -d ' \\n' > /tmp/osc52-reply`,
      'READ3',
    )
    const reply = await execa('incus', ['exec', id, '--', 'cat', '/tmp/osc52-reply'], {
      timeout: 30_000,
    })
    // Only tmux's own `ESC [ 0` of the DSR answer, at most an empty OSC 52 before it.
    // (od -c writes ESC as 033 and BEL as \a.)
    expect(reply.stdout.trim()).toMatch(/^(033\]52;[a-z0-9]*;(\\a|033\\))?033\[0$/)
    // eslint-disable-next-line no-control-regex -- matching an escape sequence is the point
    expect(t.text).not.toMatch(/\x1b\]52;[a-z0-9]*;\?/)

    t.clear()
    await inPane(t, `printf '\\e]52;c;%s\\a' "$(printf x | base64)"`, 'WRITE3')
    // eslint-disable-next-line no-control-regex -- matching an escape sequence is the point
    expect(t.text).toMatch(/\x1b\]52;[a-z0-9]*;eA==(\x07|\x1b\\)/)
    await t.close()
  })

  it('row 8: one ESC reaches the program in the pane in under 50 ms (round trip)', async ({
    annotate,
  }) => {
    const t = agent()
    await redrawn(t)
    t.clear()
    const rounds = 5
    t.send(
      `stty raw -echo; for i in $(seq ${rounds}); do printf 'R%sY' $i; head -c1 >/dev/null; printf 'G%sT' $i; done; stty sane\r`,
    )
    const times: number[] = []
    for (let i = 1; i <= rounds; i++) {
      await t.waitFor(`R${i}Y`)
      const got = nextOutput(t, `G${i}T`)
      const start = performance.now()
      t.send('\x1b')
      times.push((await got) - start)
    }
    times.sort((a, b) => a - b)
    const median = times[Math.floor(rounds / 2)] ?? Infinity
    await annotate(`ESC round trip through tmux, ms: ${times.map((x) => x.toFixed(1)).join(' ')}`)
    expect(median).toBeLessThan(50)
    await t.close()
  })

  for (const client of ['v1 acking every frame', 'v1 acking slowly', 'raw', 'json'] as const) {
    it(
      `row 9 (shell tab, ${client}): every byte of a large write, then the exit code`,
      { timeout: 60_000 },
      async () => {
        const url = `${server.wsUrl}/ws/shell/${id}?cols=120&rows=40`
        const command =
          "stty -echo; head -c 1070000 /dev/zero | tr '\\0' a; printf '\\nTAIL\\n'; exit\r"
        const chunks: Buffer[] = []
        let exitCode: number | undefined
        let closeInfo: { code: number; reason: string } | undefined
        if (client === 'json') {
          const ws = new WebSocket(url)
          const closed = new Promise<void>((resolve) =>
            ws.once('close', (code, reason) => {
              closeInfo = { code, reason: reason.toString() }
              resolve()
            }),
          )
          ws.on('message', (d) => {
            const text = (Buffer.isBuffer(d) ? d : Buffer.from(d as ArrayBuffer)).toString('utf8')
            let m: { type: string; data?: string; code?: number }
            try {
              m = JSON.parse(text) as typeof m
            } catch {
              return // raw output before our first message: it is repeated as JSON after it
            }
            if (m.type === 'output') chunks.push(Buffer.from(m.data ?? ''))
            if (m.type === 'exit') exitCode = m.code
          })
          await new Promise<void>((resolve) =>
            ws.once('open', () => {
              resolve()
            }),
          )
          ws.send(JSON.stringify({ type: 'input', data: command }))
          await waitUntil('the exit', () => closeInfo, { timeoutMs: 45_000 })
          await closed
        } else {
          const t = new TerminalClient(url, {
            protocol: client === 'raw' ? 'raw' : 'v1',
            autoAck: client === 'v1 acking every frame',
          })
          if (client === 'v1 acking slowly') ackSlowly(t, 64 * 1024)
          await t.opened
          t.send(command)
          closeInfo = await t.closed
          exitCode = t.exitCode
          chunks.push(t.output)
        }
        const out = Buffer.concat(chunks).toString('latin1')
        const run = /a{1000,}/.exec(out)?.[0] ?? ''
        expect(run.length).toBe(1_070_000)
        expect(out).toContain(`${'a'.repeat(100)}\r\nTAIL\r\n`)
        expect(closeInfo).toEqual({ code: CloseCode.EXITED, reason: 'exited with code 0' })
        if (client !== 'raw') expect(exitCode).toBe(0)
      },
    )
  }

  it(
    'row 9 (agent tab): the pane shell exiting ends tmux; the last screen, then the exit code',
    { timeout: 60_000 },
    async () => {
      const t = agent({ protocol: 'v1', autoAck: false })
      ackSlowly(t, 64 * 1024)
      await redrawn(t)
      // tmux draws screens, not every byte, and a session ends with its pane before any client
      // is sent the last screen. So the flood first, then the exit: the client gets the screen
      // with TAIL, tmux's `[exited]`, then the exit code.
      t.send("\x15head -c 1070000 /dev/zero | tr '\\0' a; printf '\\nTA''IL\\n'\r")
      await t.waitFor('TAIL', 60_000)
      t.send('exit\r')
      const closed = await t.closed
      expect(closed).toEqual({ code: CloseCode.EXITED, reason: 'exited with code 0' })
      expect(t.exitCode).toBe(0)
      const text = stripAnsi(t.text)
      expect(text).toContain('TAIL')
      expect(text).toContain('[exited]')
    },
  )
})
