// Waiting for a client WebSocket to open, for the daemon-exec terminal (exec-terminal.ts).
import type { WebSocket } from 'ws'

/**
 * Resolves once `ws` is open; rejects when it fails (in a message that never holds the address,
 * whose query carries the operation's secret), closes first, or `signal` aborts.
 */
export function opened(ws: WebSocket, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      ws.off('open', onOpen)
      ws.off('error', onError)
      ws.off('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    const onOpen = (): void => {
      cleanup()
      resolve()
    }
    // The address (which holds the secret) is never part of the message.
    const onError = (err: Error): void => {
      cleanup()
      reject(new Error(`incus exec: the terminal's WebSocket failed: ${err.message}`))
    }
    const onClose = (): void => {
      cleanup()
      reject(new Error("incus exec: the terminal's WebSocket closed before it opened"))
    }
    const onAbort = (): void => {
      cleanup()
      reject(new Error('incus exec was cancelled'))
    }
    ws.on('open', onOpen)
    ws.on('error', onError)
    ws.on('close', onClose)
    if (signal?.aborted) onAbort()
    else signal?.addEventListener('abort', onAbort, { once: true })
  })
}
