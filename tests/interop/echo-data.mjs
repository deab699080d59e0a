// The deterministic echo payload shared by js-peer.mjs and wisp's interop and
// benchmark code (the C side implements the same few lines).
//
// Stream i (0-based) of an echo command carries the first N bytes of the byte
// sequence produced by a xorshift32 generator (Marsaglia, shifts 13/17/5):
//
//   uint32 x = (uint32)((i + 1) * 0x9E3779B9)      // never 0 for i < 2^32 - 1
//   repeat: x ^= x << 13; x ^= x >> 17; x ^= x << 5;
//           emit x as 4 bytes, little-endian
//
// The first word is the state after one step (the seed itself is not
// emitted). A length that is not a multiple of 4 ends with the low bytes of the
// last word. The rtt command uses stream 0's sequence, cut into size-byte
// messages. Test vectors (sha256 of the first 1 MiB) are in README.md.
import { endianness } from 'node:os'

const LITTLE = endianness() === 'LE'

export function echoSeed (index) {
  return Math.imul(index + 1, 0x9E3779B9) >>> 0
}

export class EchoData {
  constructor (index) {
    this.x = echoSeed(index)
    this.spare = null // bytes of the last word not yet handed out
  }

  // The next n bytes of the sequence, as a fresh Uint8Array.
  next (n) {
    const out = new Uint8Array(n)
    let off = 0
    if (this.spare != null) {
      const k = Math.min(n, this.spare.length)
      out.set(this.spare.subarray(0, k))
      this.spare = k < this.spare.length ? this.spare.subarray(k) : null
      off = k
    }
    const words = (n - off) >>> 2
    let x = this.x
    if (LITTLE && (off & 3) === 0) {
      const w = new Uint32Array(out.buffer, off, words)
      for (let j = 0; j < words; j++) {
        x ^= x << 13; x ^= x >>> 17; x ^= x << 5
        w[j] = x
      }
    } else {
      const dv = new DataView(out.buffer)
      for (let j = 0; j < words; j++) {
        x ^= x << 13; x ^= x >>> 17; x ^= x << 5
        dv.setUint32(off + 4 * j, x >>> 0, true)
      }
    }
    off += 4 * words
    if (off < n) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5
      const last = new Uint8Array(4)
      new DataView(last.buffer).setUint32(0, x >>> 0, true)
      out.set(last.subarray(0, n - off), off)
      this.spare = last.subarray(n - off)
    }
    this.x = x >>> 0
    return out
  }
}
