import type { WebSocket } from '@fastify/websocket'

export const DEFAULT_PING_INTERVAL_MS = 30_000

/**
 * Pings the client every `intervalMs` and terminates the socket when a whole interval passed
 * without a pong: a peer that vanished (laptop closed, network gone) never sends a close frame,
 * and its terminal or subscription would otherwise live for ever.
 */
export function keepAlive(
  ws: WebSocket,
  intervalMs: number = DEFAULT_PING_INTERVAL_MS,
): () => void {
  let alive = true
  const onPong = (): void => {
    alive = true
  }
  ws.on('pong', onPong)
  const timer = setInterval(() => {
    if (!alive) {
      ws.terminate()
      return
    }
    alive = false
    ws.ping()
  }, intervalMs)
  timer.unref()
  const stop = (): void => {
    clearInterval(timer)
    ws.off('pong', onPong)
  }
  ws.once('close', stop)
  return stop
}

/** A close reason fits in 123 bytes of UTF-8 (RFC 6455 §5.5); longer ones make `ws` throw. */
export function closeReason(reason: string): string {
  const bytes = Buffer.from(reason, 'utf8')
  if (bytes.length <= 123) return reason
  // Cut on a character boundary, then mark the cut.
  let cut = 120
  while (cut > 0 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut--
  return `${bytes.subarray(0, cut).toString('utf8')}...`
}
