// The REST layer (incus/rest.ts) and the REST driver against a fake Incus daemon on a unix socket
// in a temp folder: answers, refusals, operations, deadlines, aborts, size caps and the CLI
// fallback when the socket cannot be reached.
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { toErrorReply } from '../server/errors.ts'
import { RestIncusDriver } from '../server/incus/rest-driver.ts'
import { tempDir } from '../server/test/helpers.ts'
import { waitUntil } from '../server/test/ws-client.ts'
import { IncusCommandError } from './cli.ts'
import { findIncusSocket, IncusRest, IncusUnreachableError } from './rest.ts'

const STUB = join(import.meta.dirname, '..', 'server', 'test', 'fixtures', 'bin', 'incus')

interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: Buffer
}

type Handler = (req: Seen, res: ServerResponse) => void

/** A fake daemon on `<tmp>/unix.socket`; records requests and open/closed connections. */
async function fakeDaemon(handler: Handler) {
  const dir = await tempDir()
  const socketPath = join(dir, 'unix.socket')
  const seen: Seen[] = []
  const sockets = new Set<Socket>()
  let closed = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const s = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      }
      seen.push(s)
      handler(s, res)
    })
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => {
      sockets.delete(socket)
      closed++
    })
  })
  server.listen(socketPath)
  await once(server, 'listening')
  onTestFinished(async () => {
    for (const s of sockets) s.destroy()
    if (server.listening) {
      server.close()
      await once(server, 'close')
    }
  })
  const stop = (): void => {
    server.close()
    for (const s of sockets) s.destroy()
  }
  return { socketPath, seen, open: () => sockets.size, closed: () => closed, stop }
}

function json(res: ServerResponse, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'Content-Type': 'application/json', ...headers })
  res.end(JSON.stringify(body))
}

const sync = (metadata: unknown) => ({ type: 'sync', status_code: 200, metadata })
const op = (status_code: number, err = '') => ({
  id: 'op-1',
  status: status_code === 200 ? 'Success' : status_code < 200 ? 'Running' : 'Failure',
  status_code,
  err,
})

describe('IncusRest', () => {
  it('reads a sync answer with its ETag, the project in the query string', async () => {
    const d = await fakeDaemon((_req, res) => {
      json(res, sync({ name: 'a' }), { ETag: '"abc"' })
    })
    const rest = new IncusRest({ socketPath: d.socketPath })
    const answer = await rest.call('/1.0/instances/a?project=my%20proj', { verb: 'query' })
    expect(answer).toEqual({ metadata: { name: 'a' }, etag: '"abc"' })
    expect(d.seen[0]?.url).toBe('/1.0/instances/a?project=my%20proj')
    expect(d.seen[0]?.method).toBe('GET')
  })

  it("keeps Incus' own message on a refusal, which the API answers with 502", async () => {
    const d = await fakeDaemon((_req, res) => {
      res.writeHead(404, { 'Content-Type': 'application/json' })
      res.end(
        JSON.stringify({
          type: 'error',
          error_code: 404,
          error: 'Failed to fetch instance "x" in project "default": Instance not found',
        }),
      )
    })
    const rest = new IncusRest({ socketPath: d.socketPath })
    const err = await rest.call('/1.0/instances/x', { verb: 'config' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(IncusCommandError)
    const e = err as IncusCommandError
    expect(e.message).toBe('Failed to fetch instance "x" in project "default": Instance not found')
    expect(e.isNotFound).toBe(true)
    expect(e.httpStatus).toBe(404)
    expect(toErrorReply(e)).toMatchObject({
      status: 502,
      body: { error: e.message, code: 'incus_error' },
    })
  })

  it('waits for an async operation with a bounded wait, then resolves', async () => {
    let waits = 0
    const d = await fakeDaemon((req, res) => {
      if (req.method === 'PUT') {
        json(res, {
          type: 'async',
          status_code: 100,
          operation: '/1.0/operations/op-1',
          metadata: op(103),
        })
        return
      }
      waits++
      json(res, sync(op(waits < 2 ? 103 : 200)))
    })
    const rest = new IncusRest({ socketPath: d.socketPath })
    await rest.call('/1.0/instances/a/state', {
      verb: 'start',
      method: 'PUT',
      body: { action: 'start', timeout: -1 },
      timeoutMs: 20_000,
    })
    expect(JSON.parse(d.seen[0]?.body.toString() ?? '')).toEqual({ action: 'start', timeout: -1 })
    const wait = d.seen.slice(1).map((s) => new URL(s.url, 'http://x'))
    expect(wait).toHaveLength(2)
    expect(wait[0]?.pathname).toBe('/1.0/operations/op-1/wait')
    const t = Number(wait[0]?.searchParams.get('timeout'))
    expect(t).toBeGreaterThan(0)
    expect(t).toBeLessThanOrEqual(20)
  })

  it("rejects with the operation's error, whether the wait answers a failed operation or an error", async () => {
    for (const failure of [
      sync(op(400, 'The instance is already running')),
      { type: 'error', error_code: 500, error: 'The instance is already running' },
    ]) {
      const d = await fakeDaemon((req, res) => {
        if (req.method === 'PUT')
          json(res, { type: 'async', operation: '/1.0/operations/op-1', metadata: op(103) })
        else json(res, failure)
      })
      const rest = new IncusRest({ socketPath: d.socketPath })
      const err = await rest
        .call('/1.0/instances/a/state', { verb: 'start', method: 'PUT', body: {} })
        .catch((e: unknown) => e)
      expect((err as Error).message).toBe('The instance is already running')
    }
  })

  it('never reports "unreachable" (the CLI fallback) once the call was sent', async () => {
    let stop = (): void => undefined
    const d = await fakeDaemon((_req, res) => {
      json(res, { type: 'async', operation: '/1.0/operations/op-1', metadata: op(103) })
      stop()
    })
    stop = d.stop
    const rest = new IncusRest({ socketPath: d.socketPath })
    const err = await rest
      .call('/1.0/instances/a/state', { verb: 'start', method: 'PUT', body: {} })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(IncusCommandError)
    expect(err).not.toBeInstanceOf(IncusUnreachableError)
    expect((err as Error).message).toContain('lost the Incus socket while waiting')
  })

  it('ends a call at its deadline and closes the socket', async () => {
    const d = await fakeDaemon(() => {
      // never answers
    })
    const rest = new IncusRest({ socketPath: d.socketPath })
    const err = await rest
      .call('/1.0/instances/a/state', { verb: 'start', method: 'PUT', body: {}, timeoutMs: 200 })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(IncusCommandError)
    expect((err as IncusCommandError).code).toBe('incus_timeout')
    expect((err as IncusCommandError).message).toBe('incus start timed out')
    await waitUntil('the fake daemon', () => d.open() === 0 && d.closed() === 1, {
      timeoutMs: 10_000,
    })
  })

  it('ends a call on its abort signal and closes the socket', async () => {
    const d = await fakeDaemon(() => {
      // never answers
    })
    const rest = new IncusRest({ socketPath: d.socketPath })
    const ac = new AbortController()
    const pending = rest.call('/1.0/instances', { verb: 'query', signal: ac.signal })
    await waitUntil('the fake daemon', () => d.seen.length === 1, { timeoutMs: 10_000 })
    ac.abort()
    const err = await pending.catch((e: unknown) => e)
    expect((err as IncusCommandError).message).toBe('incus query was cancelled')
    await waitUntil('the fake daemon', () => d.open() === 0, { timeoutMs: 10_000 })
    // an already aborted signal sends nothing
    await expect(rest.call('/1.0', { verb: 'query', signal: ac.signal })).rejects.toThrow(
      'cancelled',
    )
    expect(d.seen).toHaveLength(1)
  })

  it('refuses an answer over the size cap, declared or streamed', async () => {
    const big = JSON.stringify(sync({ blob: 'x'.repeat(4096) }))
    for (const chunked of [false, true]) {
      const d = await fakeDaemon((_req, res) => {
        if (chunked) {
          res.writeHead(200, { 'Content-Type': 'application/json' })
          res.write(big.slice(0, 2000))
          res.write(big.slice(2000))
          res.end()
        } else json(res, JSON.parse(big))
      })
      const rest = new IncusRest({ socketPath: d.socketPath, maxBodyBytes: 1024 })
      await expect(rest.call('/1.0', { verb: 'query' })).rejects.toThrow('exceeds 1024 bytes')
      await waitUntil('the fake daemon', () => d.open() === 0, { timeoutMs: 10_000 })
    }
  })

  it('refuses an answer that is not JSON or not an Incus envelope', async () => {
    for (const body of ['<html>', '{"type":"weird"}']) {
      const d = await fakeDaemon((_req, res) => {
        res.writeHead(200)
        res.end(body)
      })
      const rest = new IncusRest({ socketPath: d.socketPath })
      await expect(rest.call('/1.0', { verb: 'query' })).rejects.toBeInstanceOf(IncusCommandError)
    }
  })

  it('says the socket is unreachable (nothing sent) when it does not exist', async () => {
    const dir = await tempDir()
    const rest = new IncusRest({ socketPath: join(dir, 'unix.socket') })
    const err = await rest.call('/1.0', { verb: 'query' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(IncusUnreachableError)
    expect((err as IncusUnreachableError).errno).toBe('ENOENT')
  })
})

describe('findIncusSocket', () => {
  it("follows the incus client's order: INCUS_SOCKET, INCUS_DIR, the default folder", async () => {
    expect(findIncusSocket({ INCUS_SOCKET: '/x/s' })).toBe('/x/s')
    const dir = await tempDir()
    expect(findIncusSocket({ INCUS_DIR: dir })).toBe(join(dir, 'unix.socket'))
    // only the incus-user socket is writable: that one, as the CLI does
    await writeFile(join(dir, 'unix.socket.user'), '')
    expect(findIncusSocket({ INCUS_DIR: dir })).toBe(join(dir, 'unix.socket.user'))
    expect(findIncusSocket({})).toMatch(/^\/(run|var\/lib)\/incus\/unix\.socket(\.user)?$/)
  })
})

describe('RestIncusDriver', () => {
  it('encodes user values and sends the project on every call', async () => {
    const d = await fakeDaemon((req, res) => {
      if (req.method === 'GET')
        json(res, sync({ name: 'a b', status: 'Stopped', config: {}, devices: {} }), {
          ETag: '"e1"',
        })
      else json(res, sync({}))
    })
    const driver = new RestIncusDriver({ project: 'p/1', socketPath: d.socketPath })
    await driver.deviceAdd('a b', 'ws', { source: '/h/x', path: '/workspace' })
    await driver.configSet('a b', { 'user.k': 'v' })
    expect(d.seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'GET /1.0/instances/a%20b?project=p%2F1',
      'PATCH /1.0/instances/a%20b?project=p%2F1',
      'PATCH /1.0/instances/a%20b?project=p%2F1',
    ])
    expect(d.seen[1]?.headers['if-match']).toBe('"e1"')
    expect(JSON.parse(d.seen[1]?.body.toString() ?? '')).toEqual({
      devices: { ws: { type: 'disk', source: '/h/x', path: '/workspace' } },
    })
  })

  it('pushes a file with its owner and mode headers, the path encoded', async () => {
    const d = await fakeDaemon((_req, res) => {
      json(res, sync({}))
    })
    const driver = new RestIncusDriver({ project: 'default', socketPath: d.socketPath })
    await driver.filePush('c', 'line\n', '/etc/sudoers.d/a&b', { uid: 0, gid: 0, mode: '0440' })
    const s = d.seen[0]
    expect(s?.url).toBe('/1.0/instances/c/files?path=%2Fetc%2Fsudoers.d%2Fa%26b&project=default')
    expect(s?.headers).toMatchObject({
      'x-incus-uid': '0',
      'x-incus-gid': '0',
      'x-incus-mode': '0440',
    })
    expect(s?.body.toString()).toBe('line\n')
    await expect(driver.filePush('c', 'x', '/a', { mode: '7; rm' })).rejects.toThrow('octal')
  })

  it('runs the call through the CLI when the socket is missing', async () => {
    const dir = await tempDir()
    const log = join(dir, 'argv.log')
    const replies = join(dir, 'replies.json')
    await writeFile(
      replies,
      JSON.stringify([
        { match: 'query /1.0/instances/a', stdout: '{"name":"a","status":"Running","config":{}}' },
      ]),
    )
    const driver = new RestIncusDriver({
      project: 'default',
      socketPath: join(dir, 'no.socket'),
      binary: STUB,
      env: { INCUS_STUB_LOG: log, INCUS_STUB_REPLIES: replies },
    })
    expect(await driver.getInstance('a')).toMatchObject({ name: 'a', status: 'Running' })
    await driver.freeze('a')
    const argvs = (await readFile(log, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as string[])
    expect(argvs).toEqual([
      ['query', '/1.0/instances/a?project=default'],
      ['--project', 'default', 'pause', '--', 'a'],
    ])
  })
})
