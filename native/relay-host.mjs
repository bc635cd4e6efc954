// The relay host: a small Node process the egress proxy forks once (child_process.fork, with an
// IPC channel), which receives the two sockets of a tunnel as handles and starts one splice relay
// (splice-relay.c) per tunnel. Starting a process from the server itself would fork the server:
// fork(2) copies its page tables, which costs time in proportion to its memory (20-30 ms for a
// 200 MB process, measured) and stops its event loop meanwhile; forking this process is cheap and
// stops nothing the user sees. Plain JavaScript with no dependencies (it runs beside the bundle).
//
// Messages from the server (server/network/relay.ts):
//   { type: 'start', id, preUp, preDown (base64), idleMs }   then
//   { type: 'client', id } + the client socket, { type: 'target', id } + the target socket
//   { type: 'stop', id }
// Messages to the server:
//   { type: 'started', id, pid }   { type: 'done', id, status }
// When the server goes away (the channel closes), every relay is stopped and this process exits;
// the relays also die with it (PR_SET_PDEATHSIG in splice-relay.c).
import { spawn } from 'node:child_process'
import net from 'node:net'

// A socket received over the channel is a net.Socket that starts reading at once, before this
// process sees the message, and half-open sockets are off: an end of stream read in that window
// would make Node shut down the socket's sending side (for every process holding it), cutting
// the tunnel's other direction. So a socket here never shuts anything down on its own; only one
// this process pipes itself (pipeHere) gets Node's normal end.
const piping = new WeakSet()
const shutdownOnEnd = net.Socket.prototype._final
net.Socket.prototype._final = function final(cb) {
  if (piping.has(this)) return shutdownOnEnd.call(this, cb)
  cb()
}

const binary = process.argv[2] ?? ''
/** id → { start?, client?, target?, stopped? } until the relay runs */
const pending = new Map()
/** id → the relay child process */
const running = new Map()

function send(msg) {
  if (process.connected) process.send(msg)
}

/** Every byte Node already read from the socket and buffered (it is not flowing). */
function drain(socket) {
  const parts = []
  for (let chunk = socket.read(); chunk !== null; chunk = socket.read()) parts.push(chunk)
  return Buffer.concat(parts)
}

function parseStatus(text) {
  try {
    const v = JSON.parse(text.split('\n')[0] ?? '')
    if (v && typeof v === 'object') return v
  } catch {
    // reported as a crash
  }
  return null
}

function maybeStart(id) {
  const p = pending.get(id)
  if (!p || !p.start || !p.client || !p.target) return
  pending.delete(id)
  const { client, target } = p
  client.on('error', () => undefined)
  target.on('error', () => undefined)
  if (p.stopped) {
    client.destroy()
    target.destroy()
    send({ type: 'done', id, status: null })
    return
  }
  // Order: what the server read before sending, then what this process read since.
  // Bytes this process read from the client count as the relay's own (the server counted its).
  const readHere = drain(client)
  const preUp = Buffer.concat([Buffer.from(p.start.preUp, 'base64'), readHere])
  const preDown = Buffer.concat([Buffer.from(p.start.preDown, 'base64'), drain(target)])
  const idle = Number(p.start.idleMs) > 0 ? ['--idle-ms', String(Math.round(p.start.idleMs))] : []
  let child
  try {
    child = spawn(binary, idle, {
      stdio: ['pipe', 'pipe', 'ignore', client, target],
      cwd: '/',
      env: {},
    })
  } catch {
    child = null
  }
  child?.on('error', () => undefined)
  if (!child || child.pid === undefined) {
    // The relay cannot start: carry the tunnel here, in Node, rather than drop it.
    send({ type: 'failed', id })
    pipeHere(id, client, target, preUp, preDown, readHere.length)
    return
  }
  running.set(id, child)
  let out = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (d) => {
    if (out.length < 4096) out += d
  })
  child.stdin.on('error', () => undefined)
  child.stdin.write(`${preUp.length} ${preDown.length}\n`)
  if (preUp.length > 0) child.stdin.write(preUp)
  if (preDown.length > 0) child.stdin.write(preDown)
  child.once('close', (_code, signal) => {
    running.delete(id)
    const status = parseStatus(out)
    if (status && typeof status.up === 'number') status.up += readHere.length
    send({ type: 'done', id, status, signal })
  })
  // The relay holds the sockets now; these are only this process's copies.
  client.destroy()
  target.destroy()
  send({ type: 'started', id, pid: child.pid })
}

function pipeHere(id, client, target, preUp, preDown, readHere) {
  piping.add(client)
  piping.add(target)
  client.allowHalfOpen = true
  target.allowHalfOpen = true
  const up0 = client.bytesRead
  const down0 = client.bytesWritten
  if (preUp.length > 0) target.write(preUp)
  if (preDown.length > 0) client.write(preDown)
  client.pipe(target)
  target.pipe(client)
  client.on('error', () => target.destroy())
  target.on('error', () => client.destroy())
  let closed = 0
  const stop = () => {
    client.destroy()
    target.destroy()
  }
  running.set(id, { kill: stop })
  const onClose = () => {
    if (++closed < 2) return
    running.delete(id)
    send({
      type: 'done',
      id,
      status: {
        up: client.bytesRead - up0 + readHere,
        down: client.bytesWritten - down0,
        end: 'eof',
        errno: 0,
      },
      inNode: true,
    })
  }
  client.once('close', () => {
    if (!target.writableFinished) target.destroy()
    onClose()
  })
  target.once('close', () => {
    if (!client.writableFinished) client.destroy()
    onClose()
  })
}

process.on('message', (msg, handle) => {
  if (!msg || typeof msg !== 'object' || typeof msg.id !== 'number') return
  const id = msg.id
  if (msg.type === 'stop') {
    const p = pending.get(id)
    if (p) p.stopped = true
    const child = running.get(id)
    if (child) {
      child.kill('SIGTERM')
      // The relay reports and exits at once on SIGTERM; one that does not is killed.
      setTimeout(() => child.kill('SIGKILL'), 2000).unref()
    }
    return
  }
  const p = pending.get(id) ?? {}
  pending.set(id, p)
  if (msg.type === 'start') p.start = msg
  else if ((msg.type === 'client' || msg.type === 'target') && handle) p[msg.type] = handle
  maybeStart(id)
})

process.on('disconnect', () => {
  for (const p of pending.values()) {
    p.client?.destroy()
    p.target?.destroy()
  }
  pending.clear()
  for (const child of running.values()) child.kill('SIGTERM')
  if (running.size === 0) process.exit(0)
  // Each relay reports and exits on SIGTERM; the last one's close lets this process end.
  setTimeout(() => process.exit(0), 2000).unref()
})
