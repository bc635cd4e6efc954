// A scriptable stand-in for the browser WebSocket: tests open, message and close it by hand.

type Handler<E> = ((e: E) => void) | null

export class FakeWebSocket {
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSING = 2
  static readonly CLOSED = 3
  static instances: FakeWebSocket[] = []

  static reset(): void {
    FakeWebSocket.instances = []
  }

  static last(): FakeWebSocket {
    const ws = FakeWebSocket.instances.at(-1)
    if (!ws) throw new Error('no socket was opened')
    return ws
  }

  readonly url: string
  readonly protocols: string | string[] | undefined
  readyState = FakeWebSocket.CONNECTING
  binaryType: BinaryType = 'blob'
  bufferedAmount = 0
  readonly sent: Array<string | Uint8Array> = []
  closedWith: { code?: number; reason?: string } | null = null
  onopen: Handler<Event> = null
  onmessage: Handler<MessageEvent> = null
  onclose: Handler<CloseEvent> = null
  onerror: Handler<Event> = null

  constructor(url: string, protocols?: string | string[]) {
    this.url = url
    this.protocols = protocols
    FakeWebSocket.instances.push(this)
  }

  send(data: string | Uint8Array): void {
    if (this.readyState !== FakeWebSocket.OPEN) throw new Error('send on a socket that is not open')
    this.sent.push(typeof data === 'string' ? data : new Uint8Array(data))
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason }
    this.readyState = FakeWebSocket.CLOSED
  }

  // --- driven by tests ---

  open(): void {
    this.readyState = FakeWebSocket.OPEN
    this.onopen?.(new Event('open'))
  }

  receive(data: string | Uint8Array): void {
    const payload =
      typeof data === 'string'
        ? data
        : data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)
    this.onmessage?.(new MessageEvent('message', { data: payload }))
  }

  serverClose(code = 1006, reason = ''): void {
    this.readyState = FakeWebSocket.CLOSED
    this.onclose?.(new CloseEvent('close', { code, reason }))
  }

  /** Binary frames sent so far. */
  frames(): Uint8Array[] {
    return this.sent.filter((d): d is Uint8Array => typeof d !== 'string')
  }
}

/** The fake, typed as the constructor the code under test expects. */
export const FakeWebSocketCtor = FakeWebSocket as unknown as typeof WebSocket
