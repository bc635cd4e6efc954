// The glue to proxy-chain (checked in its source, v3.0.1): our subclass of its Server, and the
// rewrite that pins an approved request to what the policy checked before proxy-chain sends it on.
//
// proxy-chain: `prepareRequestFunction` runs before any connection; a thrown RequestError(message,
// status) becomes that status with the message as a text/plain body, and the socket is closed.
// The `dnsLookup` it returns is passed as `lookup` to net.createConnection (CONNECT) and
// http.request (plain HTTP), so the socket connects to what that lookup answers.
import type http from 'node:http'
import net from 'node:net'
import { Server } from 'proxy-chain'

type HandlerOpts = Awaited<ReturnType<Server['prepareRequestHandling']>>

/**
 * proxy-chain's server, with CONNECT tunnels that need no upstream proxy carried by `tunnel`
 * (which answers whether it took the request). The decision runs once per request:
 * prepareRequestHandling is memoised, so a request given back to proxy-chain is not decided (or
 * recorded) twice. Checked against proxy-chain 3.0.1's onConnect: prepare, then chain/direct.
 */
export class TunnelServer extends Server {
  readonly #prepared = new WeakMap<http.IncomingMessage, Promise<HandlerOpts>>()
  tunnel: (request: http.IncomingMessage, socket: net.Socket, head: Buffer) => boolean = () => false

  override prepareRequestHandling(request: http.IncomingMessage): Promise<HandlerOpts> {
    let p = this.#prepared.get(request)
    if (!p) {
      p = super.prepareRequestHandling(request)
      this.#prepared.set(request, p)
    }
    return p
  }

  override async onConnect(
    request: http.IncomingMessage,
    socket: net.Socket,
    head: Buffer,
  ): Promise<void> {
    let opts: HandlerOpts | null = null
    try {
      opts = await this.prepareRequestHandling(request)
    } catch {
      // proxy-chain answers the refusal (the memoised rejection) below.
    }
    if (opts && !opts.upstreamProxyUrlParsed && this.tunnel(request, socket, head)) return
    await super.onConnect(request, socket, head)
  }
}

/**
 * Makes the request say exactly what the policy checked before proxy-chain forwards it: the
 * request target becomes `host:port` (CONNECT) or `http://authority/path?query` (plain HTTP: no
 * userinfo, no fragment, the path as the WHATWG parser read it), and the only Host header is that
 * authority (RFC 9112 §3.2.2: a proxy replaces the Host with the target's). proxy-chain sends
 * `request.url` and `request.rawHeaders` on as they are (to the origin, or to an upstream proxy
 * that may parse `a@b`, `a\@b` or a second Host differently from us), so nothing the agent wrote
 * beyond the checked name and port reaches anyone else as an authority.
 */
export function pinTarget(
  request: http.IncomingMessage,
  isHttp: boolean,
  host: string,
  port: number,
): void {
  const hostText = net.isIP(host) === 6 ? `[${host}]` : host
  if (!isHttp) {
    request.url = `${hostText}:${port}`
    return
  }
  const authority = port === 80 ? hostText : `${hostText}:${port}`
  const parsed = new URL(request.url ?? '')
  request.url = `http://${authority}${parsed.pathname}${parsed.search}`
  const raw: string[] = []
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i] ?? ''
    if (name.toLowerCase() !== 'host') raw.push(name, request.rawHeaders[i + 1] ?? '')
  }
  raw.push('Host', authority)
  request.rawHeaders.splice(0, request.rawHeaders.length, ...raw)
  request.headers.host = authority
}
