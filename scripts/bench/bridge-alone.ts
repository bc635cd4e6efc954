// The bridge alone (issue 14 §c): 64 MiB from an in-memory PTY (4 KiB reads, as the kernel hands
// them out, honouring pause/resume) through TerminalBridge and a loopback WebSocket to this
// process's own client, per protocol, with the server side's CPU time. No incus, no tmux: what
// the bridge itself costs per byte, and where (run under `node --cpu-prof` for a profile).
//
//   tsx scripts/bench/bridge-alone.ts [raw|v1 ...]
//   BRIDGE_PTY="incus exec -t C -- sh -c 'cat F; echo BRIDGE''_END'" tsx … : a real PTY instead
//   tsx scripts/bench/bridge-alone.ts keys : one-byte round trips through a PTY running `cat`,
//     written by node-pty's own write (the floor's client) and by the server's spawner, alternating
import { createServer } from 'node:http'
import * as nodePty from 'node-pty'
import { pino } from 'pino'
import { WebSocketServer } from 'ws'
import { TerminalBridge } from '../../server/pty/bridge.ts'
import { nodePtySpawner, type PtyExit, type PtyProcess } from '../../server/pty/spawner.ts'
import { TERMINAL_SUBPROTOCOL } from '../../shared/ws/terminal.ts'
import { percentile } from './stats.ts'
import { MarkerWatch, WsEndpoint, type Protocol } from './terminal-clients.ts'

const TOTAL = 64 * 1024 * 1024
const READ = 4096

/** node-pty's contract, fed from memory: reads of 4 KiB, none while paused. */
class MemoryPty implements PtyProcess {
  readonly pid = 1
  readonly pendingInput = 0
  #data: ((d: Buffer) => void) | null = null
  #exit: ((e: PtyExit) => void) | null = null
  #paused = false
  #sent = 0
  #scheduled = false
  readonly #chunk = Buffer.alloc(READ, 0x61)

  onData(fn: (d: Buffer) => void): void {
    this.#data = fn
    this.#schedule()
  }
  onExit(fn: (e: PtyExit) => void): void {
    this.#exit = fn
  }
  onInputBelow(_low: number, fn: () => void): () => void {
    fn()
    return () => undefined
  }
  write(): void {}
  resize(): void {}
  kill(): void {
    this.#exit?.({ exitCode: 0, signal: undefined })
  }
  pause(): void {
    this.#paused = true
  }
  resume(): void {
    this.#paused = false
    this.#schedule()
  }
  #schedule(): void {
    if (this.#scheduled || this.#paused) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.#pump()
    })
  }
  #pump(): void {
    // One poll hands out a few reads, as libuv does for a busy fd.
    for (let i = 0; i < 4 && !this.#paused && this.#sent < TOTAL; i++) {
      this.#sent += READ
      // A fresh buffer per read, like node-pty's.
      this.#data?.(Buffer.from(this.#chunk))
    }
    if (this.#sent >= TOTAL) {
      this.#data?.(Buffer.from('\r\nBRIDGE_END\r\n'))
      return
    }
    this.#schedule()
  }
}

async function once(
  protocol: Protocol,
): Promise<{ ms: number; serverCpuMs: number; frames: number }> {
  const http = createServer()
  const wss = new WebSocketServer({
    server: http,
    perMessageDeflate: false,
    handleProtocols: (p) => (p.has(TERMINAL_SUBPROTOCOL) ? TERMINAL_SUBPROTOCOL : false),
  })
  wss.on('connection', (ws) => {
    // @fastify/websocket hands the route this very class (ws's WebSocket); only its types differ.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
    const bridge = new TerminalBridge(ws, {
      protocol: ws.protocol === TERMINAL_SUBPROTOCOL ? 'v1' : 'raw',
      log: pino({ level: 'silent' }),
    })
    const real = process.env.BRIDGE_PTY
    bridge.attach(
      real
        ? nodePtySpawner.spawn('sh', ['-c', real], { cols: 80, rows: 24, name: 'xterm-256color' })
        : new MemoryPty(),
    )
  })
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
  const addr = http.address()
  const port = typeof addr === 'object' && addr ? addr.port : 0
  const ep = new WsEndpoint(protocol, `ws://127.0.0.1:${port}/`, protocol, {})
  const watch = new MarkerWatch('BRIDGE_END')
  let frames = 0
  ep.ws.on('message', () => {
    frames++
  })
  const t0 = performance.now()
  const cpu = process.cpuUsage()
  await new Promise<void>((resolve) => {
    ep.sink = (c) => {
      if (watch.push(c)) resolve()
    }
  })
  const used = process.cpuUsage(cpu)
  const serverMs = (used.user + used.system) / 1000
  const ms = performance.now() - t0
  await ep.close()
  wss.close()
  http.close()
  return { ms, serverCpuMs: serverMs, frames }
}

/** `client PORT`: this process's client against a `serve` process, raw and v1 in turn. */
async function client(port: number): Promise<void> {
  for (let rep = 0; rep < 3; rep++)
    for (const p of ['raw', 'v1'] as const) {
      const ep = new WsEndpoint(p, `ws://127.0.0.1:${port}/`, p, {})
      let frames = 0
      ep.ws.on('message', () => {
        frames++
      })
      const w = new MarkerWatch('BRIDGE_END')
      const t0 = performance.now()
      const c0 = process.cpuUsage()
      await new Promise<void>((resolve) => {
        ep.sink = (c) => {
          if (w.push(c)) resolve()
        }
      })
      const ms = performance.now() - t0
      const cu = process.cpuUsage(c0)
      await ep.close()
      console.log(
        `${p}: ${(((TOTAL / ms) * 1000) / 1e6).toFixed(1)} MB/s, client CPU ${Math.round((cu.user + cu.system) / 1000)} ms, ${frames} frames`,
      )
    }
}

/** `serve`: the server side alone, in this process; prints its port, then each run's CPU. */
async function serve(): Promise<void> {
  const http = createServer()
  const wss = new WebSocketServer({
    server: http,
    perMessageDeflate: false,
    handleProtocols: (p) => (p.has(TERMINAL_SUBPROTOCOL) ? TERMINAL_SUBPROTOCOL : false),
  })
  wss.on('connection', (ws) => {
    const cpu = process.cpuUsage()
    // @fastify/websocket hands the route this very class (ws's WebSocket); only its types differ.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
    const bridge = new TerminalBridge(ws, {
      protocol: ws.protocol === TERMINAL_SUBPROTOCOL ? 'v1' : 'raw',
      log: pino({ level: 'silent' }),
    })
    const real = process.env.BRIDGE_PTY ?? ''
    bridge.attach(
      nodePtySpawner.spawn('sh', ['-c', real], { cols: 80, rows: 24, name: 'xterm-256color' }),
    )
    void bridge.done.then(() => {
      const used = process.cpuUsage(cpu)
      console.log(`server-cpu ${Math.round((used.user + used.system) / 1000)}`)
    })
  })
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
  const addr = http.address()
  console.log(`port ${typeof addr === 'object' && addr ? addr.port : 0}`)
}

/**
 * Keystroke round trips through a PTY whose process echoes (`cat` in raw mode), alternating
 * between node-pty's own `write` (an `fs.write` through libuv's thread pool) and the server's
 * spawner (a synchronous write when the queue is idle): what the input side of a PTY costs.
 */
async function keys(rounds = 2000): Promise<void> {
  const script = ['-c', 'stty raw -echo; exec cat']
  const size = { cols: 80, rows: 24 }
  const stock = nodePty.spawn('/bin/sh', script, { ...size, encoding: null })
  const ours = nodePtySpawner.spawn('/bin/sh', script, { ...size, name: 'xterm-256color' })
  let waiter: (() => void) | null = null
  const wake = (): void => {
    const w = waiter
    waiter = null
    w?.()
  }
  stock.onData(wake)
  ours.onData(wake)
  const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
  await pause(500)
  const times = { 'node-pty write': [] as number[], 'spawner write': [] as number[] }
  for (let i = 0; i < 2 * rounds; i++) {
    const got = new Promise<void>((r) => (waiter = r))
    const t0 = performance.now()
    if (i % 2 === 0) stock.write('k')
    else ours.write('k')
    await got
    ;(i % 2 === 0 ? times['node-pty write'] : times['spawner write']).push(performance.now() - t0)
    await pause(2)
  }
  for (const [name, t] of Object.entries(times))
    console.log(
      `${name}: p50 ${percentile(t, 0.5).toFixed(3)} p95 ${percentile(t, 0.95).toFixed(3)} p99 ${percentile(t, 0.99).toFixed(3)} ms (${t.length} round trips)`,
    )
  stock.kill()
  ours.kill('SIGKILL')
}

async function main(): Promise<void> {
  if (process.argv[2] === 'keys') {
    await keys()
    return
  }
  if (process.argv[2] === 'serve') {
    await serve()
    return
  }
  if (process.argv[2] === 'client') {
    await client(Number(process.argv[3]))
    return
  }
  const protocols = (
    process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['raw', 'v1']
  ) as Protocol[]
  for (let rep = 0; rep < 3; rep++)
    for (const p of protocols) {
      const r = await once(p)
      console.log(
        `${p}: ${(((TOTAL / r.ms) * 1000) / 1e6).toFixed(0)} MB/s, CPU (server + client, one process) ${r.serverCpuMs.toFixed(0)} ms per 64 MiB, ${r.frames} frames`,
      )
    }
}

void main()
