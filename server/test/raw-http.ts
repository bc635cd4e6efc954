// A bare HTTP/1.1 client for the attack tests: sends the request target byte for byte (no URL
// normalisation, unlike fetch, inject or curl without --path-as-is) and returns what came back.
import { connect } from 'node:net'

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** One request on its own connection (`Connection: close`); resolves when the server closes. */
export function rawRequest(
  port: number,
  target: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = {
    host: `127.0.0.1:${port}`,
    connection: 'close',
    ...opts.headers,
  }
  if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body))
  const head = [
    `${opts.method ?? 'GET'} ${target} HTTP/1.1`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ].join('\r\n')
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => {
      chunks.push(c)
      // An upgrade request keeps the connection open: stop once the response is complete.
      if (complete(Buffer.concat(chunks))) socket.destroy()
    })
    socket.once('error', reject)
    socket.once('close', () => {
      socket.removeAllListeners('data')
      const text = Buffer.concat(chunks).toString('utf8')
      const split = text.indexOf('\r\n\r\n')
      const lines = (split < 0 ? text : text.slice(0, split)).split('\r\n')
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0)
      const out: Record<string, string> = {}
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':')
        if (i > 0) out[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
      }
      resolve({ status, headers: out, body: split < 0 ? '' : text.slice(split + 4) })
    })
    socket.write(`${head}\r\n\r\n${opts.body ?? ''}`)
  })
}

/** The headers of a WebSocket upgrade request (a browser's, minus cookies). */
export function upgradeHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return {
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-version': '13',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    ...extra,
  }
}

/** Whether `buf` holds a whole response: a 101, or headers plus the body they announce. */
function complete(buf: Buffer): boolean {
  const text = buf.toString('latin1')
  const split = text.indexOf('\r\n\r\n')
  if (split < 0) return false
  const head = text.slice(0, split).toLowerCase()
  if (head.startsWith('http/1.1 101')) return true
  const length = /\r\ncontent-length:\s*(\d+)/.exec(head)?.[1]
  if (length !== undefined) return buf.length - (split + 4) >= Number(length)
  if (/\r\ntransfer-encoding:\s*chunked/.test(head)) return text.endsWith('\r\n0\r\n\r\n')
  return false
}
