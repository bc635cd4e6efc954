import { createServer, type Server, type Socket } from 'node:net'
import type { Server as HttpServer } from 'node:http'

/**
 * Owns the TCP listener(s) in front of the app's HTTP server. Connections are handed to the
 * HTTP server with `emit('connection')`, so the listener can move to another port (a config
 * change) without rebuilding the app or dropping sockets that are already open.
 */
export class Listener {
  readonly #http: HttpServer
  #server: Server | null = null
  readonly #sockets = new Set<Socket>()
  #host = '127.0.0.1'

  constructor(http: HttpServer) {
    this.#http = http
  }

  get port(): number {
    const addr = this.#server?.address()
    return typeof addr === 'object' && addr ? addr.port : 0
  }

  get host(): string {
    return this.#host
  }

  async #open(port: number, host: string): Promise<Server> {
    const server = createServer({ noDelay: true }, (socket) => {
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
      this.#http.emit('connection', socket)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ port, host }, () => {
        server.off('error', reject)
        resolve()
      })
    })
    return server
  }

  async listen(port: number, host: string): Promise<number> {
    this.#server = await this.#open(port, host)
    this.#host = host
    return this.port
  }

  /** Opens the new port first; only when that worked is the old one closed. */
  async move(port: number): Promise<number> {
    if (port === this.port) return port
    const next = await this.#open(port, this.#host)
    const prev = this.#server
    this.#server = next
    // Stop accepting on the old port; its open connections keep being served (close's callback
    // would wait for them, up to Fastify's 72 s keep-alive).
    prev?.close()
    return this.port
  }

  /** Stops accepting and drops idle keep-alive connections; busy ones finish their request. */
  close(): Promise<void> {
    this.#server?.close()
    this.#server = null
    this.#http.closeIdleConnections()
    return Promise.resolve()
  }

  destroySockets(): void {
    for (const s of this.#sockets) s.destroy()
    this.#sockets.clear()
  }
}
