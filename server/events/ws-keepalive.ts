import type { WebSocket } from '@fastify/websocket'

export const DEFAULT_PING_INTERVAL_MS = 30_000

export interface KeepAlive {
  /** Records that the peer is alive without a pong (it took data, or sent a frame). */
  readonly touch: () => void
  readonly stop: () => void
}

/**
 * Pings the client every `intervalMs` and terminates the socket when a whole interval passed
 * without a sign of life: a peer that vanished (laptop closed, network gone) never sends a close
 * frame, and its terminal or subscription would otherwise live for ever. A pong is not the only
 * sign: behind megabytes of queued output a pong comes late although the client is reading, so
 * incoming frames and `touch()` (output the kernel accepted) count too.
 */
export function keepAlive(ws: WebSocket, intervalMs: number = DEFAULT_PING_INTERVAL_MS): KeepAlive {
  let alive = true
  const touch = (): void => {
    alive = true
  }
  ws.on('pong', touch)
  ws.on('message', touch)
  const timer = setInterval(() => {
    // A socket we stopped reading (terminal input backpressure) cannot show us its pongs: the
    // client is not at fault, so the verdict waits until we read again.
    if (ws.isPaused) {
      alive = true
      return
    }
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
    ws.off('pong', touch)
    ws.off('message', touch)
  }
  ws.once('close', stop)
  return { touch, stop }
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
