// Browser-side helpers for the `clincus.v1` terminal protocol (shared/ws/terminal.ts): flow-control
// accounting and input chunking (what a paste sends is shared/terminal/paste.ts). Pure, so they
// are tested without a browser.
import { FLOW, Op, frame } from '../../../../shared/ws/terminal.ts'

/**
 * Counts OUTPUT bytes as xterm finishes rendering them (the `write` callback) and says when to
 * acknowledge. An ACK carries the bytes processed since the previous ACK, so the server's count
 * of unacknowledged bytes falls by exactly what we rendered, and stays correct across any number
 * of ACKs (a running total would overflow uint32 after 4 GiB).
 */
export class AckCounter {
  readonly #every: number
  #pending = 0
  #total = 0

  constructor(every: number = FLOW.ACK_EVERY) {
    this.#every = every
  }

  /** Rendered `bytes` more; returns the byte count to ACK now, or 0 when it is not yet time. */
  rendered(bytes: number): number {
    this.#pending += bytes
    this.#total += bytes
    if (this.#pending < this.#every) return 0
    const ack = this.#pending
    this.#pending = 0
    return ack
  }

  /** Whatever is rendered but not yet acknowledged (sent when output goes quiet). */
  flush(): number {
    const ack = this.#pending
    this.#pending = 0
    return ack
  }

  get pending(): number {
    return this.#pending
  }

  get total(): number {
    return this.#total
  }
}

/** Input is sent in frames of at most this many payload bytes (pastes can be megabytes). */
export const INPUT_CHUNK = 4096

/**
 * Splits input bytes into INPUT frames of at most `size` payload bytes. Splitting a multi-byte
 * UTF-8 character across frames is harmless: the server writes the bytes to the pty in order.
 */
export function inputFrames(bytes: Uint8Array, size: number = INPUT_CHUNK): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let i = 0; i < bytes.length; i += size)
    out.push(frame(Op.INPUT, bytes.subarray(i, Math.min(bytes.length, i + size))))
  return out
}
