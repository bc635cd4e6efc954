// Issue 4 acceptance for /ws/terminal and /ws/shell, on the live daemon, through the server.
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CloseCode } from '../../shared/ws/terminal.ts'
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

const BEGIN = '__CLX_BEGIN__'
const END = '__CLX_END__'
/**
 * Runs `command` in the shell with the terminal in raw mode between two markers. Raw mode turns
 * off output processing (no \n → \r\n) and echo, so what arrives between the markers is exactly
 * the bytes the command wrote. The markers are split by quotes on the command line, so the
 * shell's echo of the line itself never contains them.
 */
function rawBetweenMarkers(command: string): string {
  const q = (m: string): string => `'${m.slice(0, 4)}''${m.slice(4)}'`
  return `stty raw -echo; printf %s ${q(BEGIN)}; ${command}; printf %s ${q(END)}; stty sane\r`
}

/** The bytes between the markers, once the end marker arrived. */
function between(out: Buffer): Buffer | undefined {
  const b = out.indexOf(BEGIN)
  if (b < 0) return undefined
  const e = out.indexOf(END, b + BEGIN.length)
  if (e < 0) return undefined
  return out.subarray(b + BEGIN.length, e)
}

async function asCode(...argv: string[]): Promise<{ stdout: string; exitCode: number }> {
  const r = await execArgvAsCode(id, argv, { timeoutMs: 30_000 })
  return { stdout: r.stdout.trim(), exitCode: r.exitCode }
}

function tmux(...args: string[]): Promise<{ stdout: string; exitCode: number }> {
  return asCode('tmux', ...args)
}

/**
 * tmux's first redraw has arrived. (Not a banner: earlier tests' output may have scrolled it
 * off a smaller screen; the tool reads input all along.)
 */
async function attached(t: TerminalClient): Promise<void> {
  await t.opened
  await waitUntil('the first redraw', () => t.bytes > 0)
}

function terminal(
  path: 'terminal' | 'shell',
  opts: { protocol?: 'raw' | 'v1'; autoAck?: boolean; keep?: boolean; query?: string } = {},
): TerminalClient {
  return new TerminalClient(`${server.wsUrl}/ws/${path}/${id}${opts.query ?? ''}`, opts)
}

/** 10,000 lines of emoji (incl. ZWJ sequences and astral code points), box drawing and CJK. */
function utf8Corpus(): Buffer {
  const pieces = [
    '🎉',
    '🚀',
    '👩‍💻',
    '𝄞',
    '┌─┬─┐',
    '│ ╳ │',
    '╚══╝',
    '日本語',
    '漢字',
    '한국어',
    'é',
    'ñ',
    '€',
  ]
  const lines: string[] = []
  for (let i = 0; i < 10_000; i++) {
    const a = pieces[i % pieces.length] ?? ''
    const b = pieces[(i * 7) % pieces.length] ?? ''
    lines.push(`${i} ${a}${b} ${'█▓▒░'.repeat(i % 5)} 終わり ${b}${a}`)
  }
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8')
}

// A real collection before measuring RSS, so garbage from earlier tests does not count.
v8.setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Children of this process that are `incus exec` (node-pty forks them directly). */
async function incusExecChildren(): Promise<number[]> {
  const out: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid !== process.pid) continue
      const cmd = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0')
      if (cmd.includes('exec') && (cmd[0] ?? '').endsWith('incus')) out.push(Number(entry))
    } catch {
      // the process ended while we looked
    }
  }
  return out
}

describeIncus('terminals on a live Incus daemon', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-term-'))
    server = await startLiveServer({ home })
    id = await server.launch('term')
  })

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('raw protocol: a plain WebSocket client types hello and reads hello-BACK', async ({
    annotate,
  }) => {
    const t = terminal('terminal', { query: '?cols=100&rows=30' })
    await t.opened
    await t.waitFor('clincus fake tool (claude) ready')
    t.send('hello\r')
    await t.waitFor('hello-BACK')
    expect(t.textFrames).toBe(t.frames)

    // Echo latency of single keystrokes (the pane's tty echoes each one through tmux).
    const samples: number[] = []
    for (let i = 0; i < 100; i++) {
      const echoed = new Promise<void>((resolve) => {
        // The frame that carries the echoed character (not a late tail of the previous one).
        const off = t.onOutput((chunk) => {
          if (!chunk.includes(0x6b)) return
          off()
          resolve()
        })
      })
      const t0 = performance.now()
      t.send('k')
      await echoed
      samples.push(performance.now() - t0)
    }
    t.send('\r')
    await t.waitFor('kkkkk-BACK')
    samples.sort((a, b) => a - b)
    const p = (q: number): string => (samples[Math.floor(q * (samples.length - 1))] ?? 0).toFixed(2)
    await annotate(`keystroke echo through /ws/terminal: p50 ${p(0.5)} ms, p99 ${p(0.99)} ms`)
    await t.close()
  })

  it('passes UTF-8 through tmux intact (tmux -u, LANG=C.UTF-8)', async () => {
    const t = terminal('terminal')
    await t.opened
    await attached(t)
    t.send('héllo→🎉 日本\r')
    await t.waitFor('héllo→🎉 日本-BACK')
    await t.close()
  })

  for (const protocol of ['raw', 'v1'] as const) {
    it(`UTF-8: 10,000 lines of emoji, box drawing and CJK arrive byte-identical (${protocol})`, async () => {
      // Through /ws/shell with the terminal in raw mode: tmux re-renders its pane (cursor moves,
      // line clears), so only a plain PTY running `cat` gives bytes to compare 1:1.
      const corpus = utf8Corpus()
      await server.driver.filePush(id, corpus, '/home/code/utf8.txt', {
        uid: 1000,
        gid: 1000,
        mode: '0644',
      })
      const t = terminal('shell', { protocol })
      await t.opened
      t.send(rawBetweenMarkers('cat /home/code/utf8.txt'))
      const got = await waitUntil('the end marker', () => between(t.output), { timeoutMs: 60_000 })
      const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
      expect(got.length).toBe(corpus.length)
      expect(sha(got)).toBe(sha(corpus))
      if (protocol === 'raw') expect(t.textFrames).toBe(t.frames)
      await t.close()
    })
  }

  it('clincus.v1: a resize reaches tmux', async () => {
    const t = terminal('terminal', { protocol: 'v1', query: '?cols=80&rows=24' })
    await t.opened
    await attached(t)
    // tmux gives the status line one row of the client's height when it is on.
    const status = (await tmux('show-options', '-gv', 'status')).stdout
    const bar = status === 'off' ? 0 : 1
    // A pane target needs the trailing colon for an exact session match (`=name:`).
    const target = `=clincus-${id}:`
    const size = async (): Promise<string> =>
      (await tmux('display-message', '-p', '-t', target, '#{window_width}x#{window_height}')).stdout
    try {
      await waitUntil('80x24 in tmux', async () => (await size()) === `80x${24 - bar}`)
      t.resize(132, 43)
      await waitUntil('132x43 in tmux', async () => (await size()) === `132x${43 - bar}`)
    } finally {
      await t.close()
    }
  })

  it('three viewers see the same echo; after they leave the session lives on and a new viewer sees the screen', async () => {
    const viewers = [
      terminal('terminal'),
      terminal('terminal'),
      terminal('terminal', { protocol: 'v1' }),
    ]
    await Promise.all(viewers.map((v) => v.opened))
    await Promise.all(viewers.map((v) => attached(v)))
    viewers[0]?.send('triple\r')
    await Promise.all(viewers.map((v) => v.waitFor('triple-BACK')))
    const closed = await Promise.all(viewers.map((v) => v.close()))
    expect(closed.map((c) => c.code)).toEqual([1000, 1000, 1000])
    await waitUntil('no tmux client left', async () => (await tmux('list-clients')).stdout === '')
    expect((await tmux('has-session', '-t', `=clincus-${id}`)).exitCode).toBe(0)
    await waitUntil('the terminals to be released', () => server.terminals.count(id) === 0)

    const late = terminal('terminal')
    await late.opened
    await late.waitFor('triple-BACK')
    await late.close()
  })

  it('the tool exiting shows its exit code and leaves a shell in the pane', async () => {
    const t = terminal('terminal')
    await t.opened
    await attached(t)
    t.send('exit\r')
    await t.waitFor('[claude exited with code 0]')
    t.send('echo clx-$((6*7))-ok\r')
    await t.waitFor('clx-42-ok')
    expect((await tmux('has-session', '-t', `=clincus-${id}`)).exitCode).toBe(0)
    await t.close()
  })

  it('flood: 64 MiB to a client that stops reading for 10 s keeps RSS bounded, then every byte arrives', async ({
    annotate,
  }) => {
    const total = 64 * 1024 * 1024
    const t = terminal('shell', { keep: false })
    await t.opened
    // Count the payload ('x' only; the markers have no lowercase x) between the markers.
    let state: 'before' | 'in' | 'after' = 'before'
    let carry = Buffer.alloc(0)
    let counted = 0
    const countX = (b: Buffer): number => {
      let n = 0
      for (let i = b.indexOf(0x78); i >= 0; i = b.indexOf(0x78, i + 1)) n++
      return n
    }
    t.onOutput((chunk) => {
      if (state === 'after') return
      const data = Buffer.concat([carry, chunk])
      if (state === 'before') {
        const b = data.indexOf(BEGIN)
        if (b < 0) {
          carry = data.subarray(Math.max(0, data.length - BEGIN.length))
          return
        }
        state = 'in'
        carry = Buffer.alloc(0)
        chunk = data.subarray(b + BEGIN.length)
        if (chunk.length === 0) return
      }
      const window = Buffer.concat([carry, chunk])
      const e = window.indexOf(END)
      if (e >= 0) {
        counted += countX(chunk.subarray(0, Math.max(0, e + END.length - carry.length)))
        state = 'after'
        return
      }
      counted += countX(chunk)
      carry = window.subarray(Math.max(0, window.length - END.length))
    })
    gc()
    const ab0 = process.memoryUsage().arrayBuffers
    const rss0 = process.memoryUsage().rss
    let peak = rss0
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss)
    }, 50)
    try {
      t.send(rawBetweenMarkers(`head -c ${total} /dev/zero | tr '\\0' x`))
      await waitUntil('the flood to start', () => state !== 'before', { timeoutMs: 20_000 })
      const stalledAt = performance.now()
      t.ws.pause()
      await new Promise((r) => setTimeout(r, 10_000)) // the stall itself is what is under test
      const stallPeak = peak - rss0
      // What is still referenced once the garbage of the first megabytes is collected: the
      // bytes held for the stalled client (node's socket buffer, the coalescer).
      gc()
      const heldForClient = process.memoryUsage().arrayBuffers - ab0
      const receivedDuringStall = t.bytes
      t.ws.resume()
      await waitUntil('the end marker', () => state === 'after', { timeoutMs: 120_000 }).catch(
        (err: unknown) => {
          const progress = { state, counted, received: t.bytes, closed: t.closedWith }
          throw new Error(`${String(err)}: ${JSON.stringify(progress)}`)
        },
      )
      const seconds = (performance.now() - stalledAt) / 1000 - 10
      expect(counted).toBe(total)
      expect(stallPeak).toBeLessThan(32 * 1024 * 1024)
      await annotate(
        `flood: RSS +${(stallPeak / 2 ** 20).toFixed(1)} MiB while stalled (+${((peak - rss0) / 2 ** 20).toFixed(1)} MiB peak overall), ` +
          `${(heldForClient / 2 ** 20).toFixed(1)} MiB of buffers live at the end of the stall, ` +
          `${(receivedDuringStall / 2 ** 20).toFixed(1)} MiB delivered before the stall, ` +
          `rest drained in ${seconds.toFixed(1)} s (${((total - receivedDuringStall) / 2 ** 20 / seconds).toFixed(1)} MiB/s), ` +
          `${t.frames} frames, ${(t.bytes / t.frames / 1024).toFixed(1)} KiB each on average`,
      )
    } finally {
      clearInterval(sampler)
      await t.close()
    }
  })

  it('refuses what is not a running session of ours with a close code and a reason', async () => {
    const notOurs = new TerminalClient(`${server.wsUrl}/ws/terminal/not-a-session`)
    expect(await notOurs.closed).toEqual({ code: CloseCode.NOT_FOUND, reason: 'session not found' })
    const unknown = new TerminalClient(`${server.wsUrl}/ws/shell/${server.prefix}00000000-1`, {
      protocol: 'v1',
    })
    expect((await unknown.closed).code).toBe(CloseCode.NOT_FOUND)
    expect(unknown.errors).toEqual(['session not found'])
    const badSize = terminal('terminal', { query: '?cols=0&rows=24' })
    expect((await badSize.closed).code).toBe(CloseCode.BAD_REQUEST)
  })

  it('app close ends every terminal: clients get 1001, nothing of theirs is left in the container, no host process ever ran', async () => {
    const a = terminal('terminal')
    const b = terminal('shell', { protocol: 'v1' })
    await Promise.all([a.opened, b.opened])
    // Output on both proves both run (earlier tests' terminals may still be on their way out).
    await waitUntil('output on both terminals', () => a.bytes > 0 && b.bytes > 0)
    // The shell tab's job: the kernel hangs it up when its terminal goes.
    b.send('exec sleep 4242.5\r')
    const sleeper = (): Promise<{ stdout: string; exitCode: number }> =>
      asCode('pgrep', '-f', '^sleep 4242.5$')
    await waitUntil('the shell tab to run its job', async () => (await sleeper()).exitCode === 0)
    const clients = async (): Promise<number> =>
      (await tmux('list-clients', '-t', `=${tmuxSessionName(id)}`)).stdout
        .split('\n')
        .filter(Boolean).length
    expect(await clients()).toBeGreaterThanOrEqual(1)
    // Terminals are execs of the Incus daemon, streamed over its WebSockets: no `incus exec`
    // process on the host, and no host PTY (issue 14).
    expect(server.terminals.count(id)).toBeGreaterThanOrEqual(2)
    expect(server.terminals.pids()).toEqual([])
    expect(await incusExecChildren()).toEqual([])
    await server.app.close()
    expect((await a.closed).code).toBe(CloseCode.GOING_AWAY)
    expect((await b.closed).code).toBe(CloseCode.GOING_AWAY)
    expect(server.terminals.count()).toBe(0)
    expect((await sleeper()).exitCode).toBe(1)
    expect(await clients()).toBe(0)
  })
})
