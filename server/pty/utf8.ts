import { isUtf8 } from 'node:buffer'

// The raw protocol sends output as WebSocket text frames, which must hold whole, valid UTF-8
// characters: a character split across two PTY reads would otherwise turn into U+FFFD on both
// sides of the cut, or make a browser fail the socket (peers.md §0.1, rstudio#17941).

const EMPTY = Buffer.alloc(0)

/** Bytes a sequence starting with `lead` needs in total; 1 for ASCII and for invalid leads. */
function sequenceLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2
  if (lead >= 0xe0 && lead <= 0xef) return 3
  if (lead >= 0xf0 && lead <= 0xf4) return 4
  return 1
}

/**
 * How many bytes at the end of `buf` are the start of a UTF-8 sequence that is not complete yet
 * (0-3). Invalid bytes are not held back: they can never become valid by waiting.
 */
export function incompleteUtf8Tail(buf: Uint8Array): number {
  const n = buf.length
  for (let back = 1; back <= Math.min(3, n); back++) {
    const b = buf[n - back] ?? 0
    if ((b & 0xc0) === 0x80) continue
    return sequenceLength(b) > back ? back : 0
  }
  return 0
}

/** Splits a byte stream into chunks that never end inside a UTF-8 character. */
export class Utf8Splitter {
  #held: Buffer = EMPTY

  /** The complete part of what has arrived so far (may be empty); the rest waits for more. */
  push(chunk: Buffer): Buffer {
    const data = this.#held.length > 0 ? Buffer.concat([this.#held, chunk]) : chunk
    const tail = incompleteUtf8Tail(data)
    this.#held = tail > 0 ? Buffer.from(data.subarray(data.length - tail)) : EMPTY
    return tail > 0 ? data.subarray(0, data.length - tail) : data
  }

  /** Whatever is still held back (the stream ended mid-character). */
  flush(): Buffer {
    const rest = this.#held
    this.#held = EMPTY
    return rest
  }

  get held(): number {
    return this.#held.length
  }
}

/**
 * The payload of a text frame for `bytes`: the bytes themselves when they are valid UTF-8 (no
 * copy, byte-identical), otherwise a string with U+FFFD for each invalid sequence, so the frame
 * is always valid.
 */
export function utf8TextPayload(bytes: Buffer): Buffer | string {
  if (isUtf8(bytes)) return bytes
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes)
}
