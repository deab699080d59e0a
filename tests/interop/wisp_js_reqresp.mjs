// Request/response between wisp-node and js-libp2p on loopback, both ways,
// with the Atlas framing (wisp/wisp.h, codec/rrframe.h) implemented here in
// JavaScript over js-libp2p 2.x streams:
//
//   request         uvarint(content length) || one zstd frame of the content,
//                   then the requester half-closes
//   response chunk  result byte || uvarint(content length) || one zstd frame;
//                   the responder closes after its chunks; a non-zero result
//                   (1 invalid request, 2 server error, 3 resource unavailable)
//                   carries a UTF-8 message of at most 256 bytes and ends it
//
// wisp-node runs `--reqresp /atlas/req/test/1/pb_zstd=echo` (its built-in test
// responder) and `--reqresp /atlas/req/tx/1/pb_zstd=app` (answered here with
// respond commands). This process runs a js-libp2p node that dials it, serves
// /atlas/req/test/1/pb_zstd with the same request convention as wisp's echo
// responder ("chunks=N size=S", "error=R msg=TEXT", anything else echoed; js
// alone also knows "hang": no answer until the stream is reset), and asks wisp.
//
// Every byte wisp sends is checked strictly: the varint must be minimal, a
// declared length within the maximum before anything is buffered, exactly one
// zstd frame walked from its own structure (no skippable frame, no dictionary,
// no reserved bits or block types, blocks within 128 KiB, the frame's content
// size = the declared length, at most ZSTD_compressBound(length) bytes), the
// frame decoded by two decoders (libzstd in wasm, @bokuweb/zstd-wasm, and the
// independent pure-JS fzstd) to exactly the declared length and the same bytes,
// error messages valid UTF-8, nothing after an error chunk or after the
// request, the stream ending only between chunks. Contents are compared by
// SHA-256 with what the convention says.
//
// Steps (each prints PASS/FAIL, every check an ok/FAIL line):
//   1. start, connect, identify (js sees both protocols in wisp's identify);
//   2. wisp -> js: one chunk, 5 chunks, a 1 MiB chunk, 100 small chunks, no
//      chunk, results 1/2/3 with messages, chunks then an error, echoes (text,
//      binary, empty, compressible);
//   3. wisp -> js failures: a protocol js does not serve (refused), cancel,
//      the caller's timeout (js sees its stream reset both times);
//   4. js -> wisp, echo responder: the same cases;
//   5. js -> wisp, max_request: 64 KiB is served; 64 KiB + 1 is refused with
//      one result-1 chunk and the stream closed; the next request works;
//   6. js -> wisp, app responder: three chunks from respond commands (text,
//      echo payload, hex) and respond_end; a result-2 answer; a protocol wisp
//      does not serve is refused in negotiation;
//   7. wisp's stats: every reqresp counter matches what both sides saw;
//   8. js hangs up: wisp's buffers back to where they were before any
//      connection; wisp quits with exit 0 and no error event in the run.
//
// Exit 0 all passed, 1 any failure, 2 usage, 77 (ctest: skipped) when node is
// older than 20 or node_modules is missing (npm-setup.sh did not run).
//
// usage: node wisp_js_reqresp.mjs --wisp-node PATH [--quiet]
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
let opt
try {
  opt = parseArgs({ options: { 'wisp-node': { type: 'string' }, quiet: { type: 'boolean', default: false } } }).values
} catch (err) {
  console.error(`wisp_js_reqresp: ${err.message}`)
  process.exit(2)
}
if (opt['wisp-node'] == null) {
  console.error('usage: node wisp_js_reqresp.mjs --wisp-node PATH [--quiet]')
  process.exit(2)
}
if (Number(process.versions.node.split('.')[0]) < 20) {
  console.log(`SKIP: node ${process.versions.node} < 20`)
  process.exit(77)
}
if (!existsSync(join(here, 'node_modules', 'libp2p', 'package.json')) ||
    !existsSync(join(here, 'node_modules', '@bokuweb', 'zstd-wasm', 'package.json'))) {
  console.log('SKIP: node_modules missing or stale (run npm-setup.sh)')
  process.exit(77)
}

await import('./polyfill.mjs')
const { JsonPeer } = await import('./peer-driver.mjs')
const { EchoData } = await import('./echo-data.mjs')
const zstd = await import('@bokuweb/zstd-wasm')
const fzstd = await import('fzstd')
const varint = await import('uint8-varint')
const { Uint8ArrayList } = await import('uint8arraylist')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { generateKeyPair } = await import('@libp2p/crypto/keys')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { tcp } = await import('@libp2p/tcp')
const { multiaddr } = await import('@multiformats/multiaddr')
const { createLibp2p } = await import('libp2p')
await zstd.init()

const KiB = 1024
const MiB = 1 << 20
const S = 1000
const PROTO = '/atlas/req/test/1/pb_zstd' // wisp: echo responder; js serves it too
const PROTO_APP = '/atlas/req/tx/1/pb_zstd' // wisp: app responder; js does not serve it
const PROTO_NONE = '/atlas/req/none/1/pb_zstd' // nobody serves it
const MAX_REQUEST = 64 * KiB // wisp's default max_request
const MAX_CHUNK = MiB // wisp's default max_chunk
const MAX_CHUNKS = 1024
const MAX_ERRMSG = 256
const JS_ZSTD_LEVEL = 3 // wisp compresses at level 1
const sha = (b) => createHash('sha256').update(b).digest('hex')
const utf8 = new TextEncoder()
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

// ---- results ------------------------------------------------------------------

let failures = 0
let checks = 0

function check (cond, what, detail = '') {
  checks++
  if (cond) {
    if (!opt.quiet) console.log(`  ok   ${what}`)
  } else {
    failures++
    console.log(`  FAIL ${what}${detail !== '' ? `: ${detail}` : ''}`)
  }
  return cond
}
const eq = (got, want, what) =>
  check(got === want, what, `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)

// A step prints PASS or FAIL; one that throws (a deadline, a peer gone) ends
// the run: later steps depend on the connection.
async function step (name, fn) {
  console.log(`--- ${name}`)
  const before = failures
  const t0 = Date.now()
  try {
    await fn()
  } catch (err) {
    failures++
    console.log(`FAIL ${name}: ${err.stack ?? err.message}`)
    throw err
  }
  console.log(`${failures === before ? 'PASS' : 'FAIL'} ${name} (${Date.now() - t0} ms)`)
}

// ---- the framing, in JavaScript -------------------------------------------------

class FramingError extends Error {}

const concat = (parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let off = 0
  for (const p of parts) { out.set(p, off); off += p.length }
  return out
}

function encodeRequest (content) {
  return concat([varint.encode(content.length), zstd.compress(content, JS_ZSTD_LEVEL)])
}

function encodeChunk (result, content) {
  return concat([Uint8Array.of(result), varint.encode(content.length), zstd.compress(content, JS_ZSTD_LEVEL)])
}

// XXH64 (seed 0), for the content checksum of hand-made frames.
const M64 = (1n << 64n) - 1n
const XP1 = 11400714785074694791n
const XP2 = 14029467366897019727n
const XP3 = 1609587929392839161n
const XP4 = 9650029242287828579n
const XP5 = 2870177450012600261n
const rotl64 = (x, r) => ((x << BigInt(r)) | (x >> BigInt(64 - r))) & M64
const xround = (acc, v) => (rotl64((acc + v * XP2) & M64, 31) * XP1) & M64
const xmerge = (h, v) => (((h ^ xround(0n, v)) * XP1) + XP4) & M64
function xxh64 (buf) {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let p = 0
  let h
  if (buf.length >= 32) {
    const v = [(XP1 + XP2) & M64, XP2, 0n, (M64 + 1n - XP1) & M64]
    for (; p + 32 <= buf.length; p += 32) for (let i = 0; i < 4; i++) v[i] = xround(v[i], dv.getBigUint64(p + 8 * i, true))
    h = (rotl64(v[0], 1) + rotl64(v[1], 7) + rotl64(v[2], 12) + rotl64(v[3], 18)) & M64
    for (const x of v) h = xmerge(h, x)
  } else {
    h = XP5
  }
  h = (h + BigInt(buf.length)) & M64
  for (; p + 8 <= buf.length; p += 8) h = ((rotl64(h ^ xround(0n, dv.getBigUint64(p, true)), 27) * XP1) + XP4) & M64
  if (p + 4 <= buf.length) {
    h = ((rotl64(h ^ ((BigInt(dv.getUint32(p, true)) * XP1) & M64), 23) * XP2) + XP3) & M64
    p += 4
  }
  for (; p < buf.length; p++) h = (rotl64(h ^ ((BigInt(buf[p]) * XP5) & M64), 11) * XP1) & M64
  h ^= h >> 33n
  h = (h * XP2) & M64
  h ^= h >> 29n
  h = (h * XP3) & M64
  return h ^ (h >> 32n)
}

// A zstd frame made by hand, as other encoders may make them (RFC 8878):
// a 2^windowLog window (no single segment), the content size only when fcs,
// a content checksum when checksum, blocks of at most blockSize bytes,
// each raw, or RLE when rle and all its bytes are the same.
function craftFrame (content, { fcs = true, checksum = false, rle = false, blockSize = 128 * KiB, windowLog = 17 } = {}) {
  const parts = [Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, (fcs ? 3 << 6 : 0) | (checksum ? 4 : 0), (windowLog - 10) << 3)]
  if (fcs) {
    const f = new Uint8Array(8)
    new DataView(f.buffer).setBigUint64(0, BigInt(content.length), true)
    parts.push(f)
  }
  let p = 0
  do {
    const block = content.subarray(p, p + blockSize)
    p += block.length
    const same = rle && block.length > 0 && block.every((x) => x === block[0])
    const h = (block.length << 3) | (same ? 1 << 1 : 0) | (p >= content.length ? 1 : 0)
    parts.push(Uint8Array.of(h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff), same ? block.subarray(0, 1) : block)
  } while (p < content.length)
  if (checksum) {
    const c = new Uint8Array(4)
    new DataView(c.buffer).setUint32(0, Number(xxh64(content) & 0xffffffffn), true)
    parts.push(c)
  }
  return concat(parts)
}

// libzstd's ZSTD_COMPRESSBOUND: the most a frame of n content bytes may take.
const compressBound = (n) => n + (n >>> 8) + (n < 128 * KiB ? (128 * KiB - n) >>> 11 : 0)

// A uvarint at b[off..]: { value, size }, or null when more bytes are needed.
// Minimal encodings only (what wisp writes and wisp's reader demands).
function readUvarint (b, off) {
  let value = 0
  for (let i = 0; i < 8; i++) {
    if (off + i >= b.length) return null
    const x = b.get(off + i)
    value += (x & 0x7f) * 2 ** (7 * i)
    if (x < 0x80) {
      if (varint.encodingLength(value) !== i + 1) throw new FramingError(`varint not minimal (${i + 1} bytes for ${value})`)
      if (varint.decode(b.subarray(off, off + i + 1)) !== value) throw new FramingError('varint decoders disagree')
      return { value, size: i + 1 }
    }
  }
  throw new FramingError('varint over 8 bytes')
}

const u32le = (b, p) => (b.get(p) | b.get(p + 1) << 8 | b.get(p + 2) << 16 | b.get(p + 3) << 24) >>> 0

// Walks the zstd frame at b[off..] (RFC 8878) whose content must be len
// bytes: returns where it ends, or null when more bytes are needed. Every
// bound is checked before waiting for the bytes it covers.
function scanZstdFrame (b, off, len) {
  const bound = compressBound(len)
  if (b.length < off + 5) return null
  const magic = u32le(b, off)
  if ((magic & 0xfffffff0) === 0x184d2a50) throw new FramingError('a skippable frame')
  if (magic !== 0xfd2fb528) throw new FramingError(`not a zstd frame (magic ${magic.toString(16)})`)
  const fhd = b.get(off + 4)
  const fcsFlag = fhd >> 6
  const single = (fhd >> 5) & 1
  const checksum = (fhd >> 2) & 1
  const dictFlag = fhd & 3
  if (fhd & 0x08) throw new FramingError('reserved bit set in the frame header')
  const fcsSize = [single ? 1 : 0, 2, 4, 8][fcsFlag]
  const hdrLen = 5 + (single ? 0 : 1) + [0, 1, 2, 4][dictFlag] + fcsSize
  if (b.length < off + hdrLen) return null
  let p = off + 5
  let window = 0
  if (!single) {
    const wd = b.get(p++)
    const base = 2 ** (10 + (wd >> 3))
    window = base + (base / 8) * (wd & 7)
    if (window > 8 * MiB) throw new FramingError(`window ${window} over 8 MiB`)
  }
  let dict = 0
  for (let i = 0; i < [0, 1, 2, 4][dictFlag]; i++) dict += b.get(p++) * 2 ** (8 * i)
  if (dict !== 0) throw new FramingError(`dictionary ${dict}`)
  if (fcsSize > 0) {
    let fcs = 0
    for (let i = 0; i < fcsSize; i++) fcs += b.get(p++) * 2 ** (8 * i)
    if (fcsFlag === 1) fcs += 256
    if (fcs !== len) throw new FramingError(`frame content size ${fcs}, declared length ${len}`)
    if (single) window = fcs
  }
  const blockMax = Math.min(window, 128 * KiB)
  for (;;) {
    if (b.length < p + 3) return null
    const bh = b.get(p) | b.get(p + 1) << 8 | b.get(p + 2) << 16
    const last = bh & 1
    const type = (bh >> 1) & 3
    const size = bh >>> 3
    if (type === 3) throw new FramingError('reserved block type')
    if (size > (type === 2 ? 128 * KiB : blockMax)) throw new FramingError(`block of ${size} bytes (type ${type})`)
    p += 3 + (type === 1 ? 1 : size)
    if (p - off > bound) throw new FramingError(`frame over ZSTD_compressBound(${len}) = ${bound}`)
    if (b.length < p) return null
    if (last) break
  }
  if (checksum) {
    p += 4
    if (p - off > bound) throw new FramingError(`frame over ZSTD_compressBound(${len}) = ${bound}`)
    if (b.length < p) return null
  }
  return p
}

// Reads one request, or response chunks, from bytes in any split.
class RrReader {
  constructor (response, max) {
    this.response = response
    this.max = max
    this.buf = new Uint8ArrayList()
    this.frames = 0
    this.done = false // after the request, or an error chunk
  }

  push (data) { this.buf.append(data) }

  // The next whole frame { result, len, frame }, or null for more bytes.
  next () {
    const b = this.buf
    if (b.length === 0) return null
    if (this.done) throw new FramingError(`${b.length} bytes after ${this.response ? 'an error chunk' : 'the request'}`)
    let off = 0
    let result = 0
    if (this.response) {
      result = b.get(0)
      if (result > 3) throw new FramingError(`result byte ${result}`)
      if (this.frames === MAX_CHUNKS) throw new FramingError(`more than ${MAX_CHUNKS} chunks`)
      off = 1
    }
    const v = readUvarint(b, off)
    if (v == null) return null
    const max = result !== 0 ? MAX_ERRMSG : this.max
    if (v.value > max) throw new FramingError(`declared length ${v.value} over ${max}`)
    off += v.size
    const end = scanZstdFrame(b, off, v.value)
    if (end == null) return null
    const frame = b.subarray(off, end)
    b.consume(end)
    this.frames++
    if (result !== 0 || !this.response) this.done = true
    return { result, len: v.value, frame }
  }

  // At a frame boundary: the stream may end here.
  idle () { return this.buf.length === 0 }
}

// The content of a frame: both decoders, exactly len bytes, the same bytes;
// an error message must be UTF-8.
function decodeFrame ({ result, len, frame }) {
  let a
  try {
    a = zstd.decompress(frame, { defaultHeapSize: Math.max(len, 1) })
  } catch (err) {
    throw new FramingError(`libzstd (wasm) refused the frame: ${err.message}`)
  }
  if (a.length !== len) throw new FramingError(`frame holds ${a.length} bytes, declared ${len}`)
  let f
  try {
    f = fzstd.decompress(frame)
  } catch (err) {
    throw new FramingError(`fzstd refused the frame: ${err.message}`)
  }
  if (Buffer.compare(Buffer.from(a), Buffer.from(f)) !== 0) throw new FramingError('the two zstd decoders disagree')
  if (result !== 0) {
    try {
      utf8Strict.decode(a)
    } catch {
      throw new FramingError('error message is not UTF-8')
    }
  }
  return a
}

// ---- the request convention (wisp-node's echo responder; README) ----------------

// What a responder following the convention answers to content:
// { chunks: [Uint8Array], error: { result, msg: Uint8Array } | null, hang }.
function plan (content) {
  const text = Buffer.from(content).toString('latin1')
  if (text === 'hang') return { chunks: [], error: null, hang: true }
  // js only: one chunk in a hand-made frame (see FRAMES)
  const fm = /^frame=(\w+) size=(\d+)$/.exec(text)
  if (fm != null) {
    const n = Number(fm[2])
    const body = fm[1] === 'rle' ? new Uint8Array(n).fill(0x5a) : new EchoData(0).next(n)
    return { chunks: [body], error: null, frame: FRAMES[fm[1]] }
  }
  if (!text.startsWith('chunks=') && !text.startsWith('error=')) return { chunks: [content], error: null }
  // key=value words; msg= takes the rest (wisp-node's parser, tools/wisp-node.c)
  const out = { chunks: [], error: null }
  const words = Buffer.from(content).toString('utf8')
  const kv = {}
  const re = / *(chunks|size|error)=(\d+)| *msg=(.*)$/sy
  for (let m; re.lastIndex < words.length && (m = re.exec(words)) != null;) {
    if (m[3] != null) kv.msg = m[3]
    else kv[m[1]] = Number(m[2])
  }
  if (re.lastIndex !== words.length) throw new Error(`this test only sends well-formed requests: ${words}`)
  for (let i = 0; i < (kv.chunks ?? 0); i++) out.chunks.push(new EchoData(i).next(kv.size ?? 0))
  if (kv.error != null) out.error = { result: kv.error, msg: utf8.encode(kv.msg ?? '') }
  return out
}

// What a requester expects: [{ result, sha, len }].
function expected (content) {
  const p = plan(content)
  const list = p.chunks.map((c) => ({ result: 0, sha: sha(c), len: c.length }))
  if (p.error) list.push({ result: p.error.result, sha: sha(p.error.msg), len: p.error.msg.length })
  return list
}

// Hand-made frame kinds for "frame=KIND size=N" (js only): valid zstd that
// libzstd at the default settings does not write.
const FRAMES = {
  nofcs: { fcs: false }, // no content size in the header
  checksum: { checksum: true }, // an XXH64 content checksum
  rle: { rle: true, fcs: false, blockSize: 100 * KiB }, // RLE blocks
  small: { blockSize: 1000, checksum: true }, // many small raw blocks
  cli: { fcs: false, checksum: true, windowLog: 21 } // what `zstd` writes on a pipe: a 2 MiB window
}

// The cases run both ways: [name, content].
const text = (s) => utf8.encode(s)
const compressible = text(Array.from({ length: 400 }, (_, i) => `atlas tx ${i % 7} nonce ${i}\n`).join('').slice(0, 12000))
const CASES = [
  ['one chunk', text('chunks=1 size=1000')],
  ['five chunks', text('chunks=5 size=4096')],
  ['a 1 MiB chunk', text('chunks=1 size=1048576')],
  ['100 small chunks', text('chunks=100 size=100')],
  ['no chunk (empty response)', text('chunks=0')],
  ['result 1 with a message', text('error=1 msg=invalid request: unknown block root')],
  ['result 2 with a message', text('error=2 msg=server error: database closed')],
  ['result 3 with a UTF-8 message', text('error=3 msg=resource unavailable: pruned \u2014 try later \u00e9')],
  ['2 chunks then result 3', text('chunks=2 size=300 error=3 msg=rate limited')],
  ['echo of text', text('hello atlas')],
  ['echo of binary', new EchoData(7).next(300)],
  ['echo of an empty request', new Uint8Array(0)],
  ['echo of compressible text', compressible]
]

// ---- the js node ------------------------------------------------------------------

const jsServed = [] // requests the js responder read: { protocol, peer, sha, len, problem, reset, done }

// Waiting for the js responder's progress: jsChanged() after every change
// wakes the conditions waiting in jsUntil().
const jsWaiters = new Set()
const jsChanged = () => { for (const f of jsWaiters) f() }
function jsUntil (cond, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const f = () => {
      if (!cond()) return
      jsWaiters.delete(f)
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      jsWaiters.delete(f)
      reject(new Error(`js: no ${what} within ${timeoutMs} ms`))
    }, timeoutMs)
    jsWaiters.add(f)
    f()
  })
}

// Resolves once the stream is no longer open (reset, closed, aborted) or
// after ms. js-libp2p has no event for a remote reset on a stream whose
// reading is over (the sink's abort cannot end a source that waits), so its
// status is looked at every 10 ms: a state read with a deadline.
function streamGone (stream, ms) {
  return new Promise((resolve) => {
    const end = Date.now() + ms
    const t = setInterval(() => {
      if (stream.status !== 'open' || Date.now() > end) {
        clearInterval(t)
        resolve(stream.status)
      }
    }, 10)
  })
}

async function serve (stream, connection) {
  const rec = { protocol: stream.protocol, peer: connection.remotePeer.toString(), problem: null, reset: false, done: false }
  jsServed.push(rec)
  try {
    const reader = new RrReader(false, MAX_CHUNK)
    let req = null
    for await (const data of stream.source) {
      reader.push(data)
      const f = reader.next()
      if (f != null) req = f
    }
    // the source ended: the requester half-closed
    if (req == null) throw new FramingError(`stream ended ${reader.idle() ? 'without a request' : 'inside the request'}`)
    const content = decodeFrame(req)
    rec.sha = sha(content)
    rec.len = content.length
    jsChanged()
    const p = plan(content)
    if (p.hang) {
      rec.reset = await streamGone(stream, 30 * S) === 'reset'
      return
    }
    await stream.sink((function * () {
      if (p.frame) {
        yield concat([Uint8Array.of(0), varint.encode(p.chunks[0].length), craftFrame(p.chunks[0], p.frame)])
        return
      }
      for (const c of p.chunks) yield encodeChunk(0, c)
      if (p.error) yield encodeChunk(p.error.result, p.error.msg)
    })())
  } catch (err) {
    rec.problem = err.message
    stream.abort(err)
  } finally {
    rec.done = true
    jsChanged()
  }
}

const node = await createLibp2p({
  privateKey: await generateKeyPair('secp256k1'),
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionManager: { allow: ['/ip4/127.0.0.1/ipcidr/32'] },
  services: { identify: identify(), ping: ping() }
})
await node.handle(PROTO, ({ stream, connection }) => { serve(stream, connection) }, { maxInboundStreams: 64 })
await node.start()
const jsId = node.peerId.toString()

// One request from js: resolves to { chunks: [{ result, content }] } after
// the stream ended cleanly, or throws (framing, reset, deadline).
async function jsRequest (conn, protocol, content, { timeoutMs = 20 * S, frame = null } = {}) {
  const signal = AbortSignal.timeout(timeoutMs)
  const stream = await conn.newStream(protocol, { signal })
  const onAbort = () => stream.abort(new Error(`no whole response within ${timeoutMs} ms`))
  signal.addEventListener('abort', onAbort)
  try {
    const request = frame != null ? concat([varint.encode(content.length), craftFrame(content, frame)]) : encodeRequest(content)
    const writing = stream.sink([request]) // then half-closes
    const reader = new RrReader(true, MAX_CHUNK)
    const chunks = []
    for await (const data of stream.source) {
      reader.push(data)
      for (let f; (f = reader.next()) != null;) chunks.push({ result: f.result, content: decodeFrame(f) })
    }
    if (!reader.idle()) throw new FramingError(`stream ended inside a chunk (${reader.buf.length} bytes)`)
    await writing
    return { chunks }
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

// got / want: [{ result, len, sha }]; one check for the whole response.
function checkChunks (got, want, what) {
  const bad = want.findIndex((w, i) => got[i] == null || got[i].result !== w.result || got[i].len !== w.len || got[i].sha !== w.sha)
  const show = (c) => c == null ? 'none' : `result ${c.result} len ${c.len} sha ${c.sha.slice(0, 16)}...`
  check(got.length === want.length && bad < 0, `${what}: ${want.length} chunks, each's result, length and SHA-256`,
    got.length !== want.length ? `got ${got.length} chunks` : `chunk ${bad}: got ${show(got[bad])}, want ${show(want[bad])}`)
}

// The strict reader must read what is valid and refuse what wisp must never
// send: crafted bytes, fed whole and in small pieces, each with its verdict.
function selfCheck () {
  const z = (content) => zstd.compress(content, 1)
  const abc = text('abc')
  // a zstd frame without content size: not single segment, 1 KiB window, one raw last block
  const rawNoFcs = (content) => concat([Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00),
    Uint8Array.of((content.length << 3 | 1) & 0xff, (content.length << 3) >> 8 & 0xff, 0), content])
  const good = [
    ['a request', false, encodeRequest(abc), 1],
    ['an empty request', false, encodeRequest(new Uint8Array(0)), 1],
    ['three chunks then an error', true, concat([encodeChunk(0, abc), encodeChunk(0, new Uint8Array(0)),
      encodeChunk(0, new EchoData(0).next(300000)), encodeChunk(2, text('no'))]), 4],
    ['a frame without content size', false, concat([Uint8Array.of(3), rawNoFcs(abc)]), 1]
  ]
  for (const [kind, f] of Object.entries(FRAMES)) {
    for (const n of [0, 33, 300000]) {
      const body = kind === 'rle' ? new Uint8Array(n).fill(0x5a) : new EchoData(0).next(n)
      good.push([`a hand-made frame (${kind}, ${n} bytes)`, true, concat([Uint8Array.of(0), varint.encode(n), craftFrame(body, f)]), 1])
    }
  }
  const bad = [
    ['bytes after the request', false, concat([encodeRequest(abc), Uint8Array.of(0)])],
    ['a second request', false, concat([encodeRequest(abc), encodeRequest(abc)])],
    ['a chunk after an error chunk', true, concat([encodeChunk(1, text('bad')), encodeChunk(0, abc)])],
    ['result byte 4', true, encodeChunk(4, abc)],
    ['a varint that is not minimal', false, concat([Uint8Array.of(0x83, 0x00), z(abc)])],
    ['a length over the maximum (prefix only)', false, varint.encode(MAX_CHUNK + 1)],
    ['an error message over 256 bytes', true, encodeChunk(3, new Uint8Array(257).fill(0x61))],
    ['a skippable frame', false, concat([Uint8Array.of(3), Uint8Array.of(0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0), abc])],
    ['not zstd', false, concat([Uint8Array.of(3), abc, abc])],
    ['content size other than the length', false, concat([Uint8Array.of(4), z(abc)])],
    ['content shorter than the length (no content size)', false, concat([Uint8Array.of(4), rawNoFcs(abc)])],
    ['a reserved block type', false, concat([Uint8Array.of(3), Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x07, 0, 0)])],
    ['a dictionary id', false, concat([Uint8Array.of(3), Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, 0x01, 0x00, 0x05), rawNoFcs(abc).subarray(6)])],
    ['corrupt compressed data', true, (() => { const c = encodeChunk(0, text('abcabcabcabcabcabcabcabcabcabc')); c[c.length - 2] ^= 0xff; return c })()],
    ['an error message that is not UTF-8', true, encodeChunk(1, Uint8Array.of(0xff, 0xfe))],
    ['a stream that ends inside a chunk', true, encodeChunk(0, abc).subarray(0, 6)]
  ]
  const run = (response, bytes, split) => {
    const r = new RrReader(response, MAX_CHUNK)
    let frames = 0
    // a byte at a time (997 bytes for large inputs: the list's get() walks its pieces)
    const step = split ? (bytes.length < 4096 ? 1 : 997) : bytes.length
    const pieces = []
    for (let i = 0; i < bytes.length; i += step) pieces.push(bytes.subarray(i, i + step))
    for (const piece of pieces) {
      r.push(piece)
      for (let f; (f = r.next()) != null;) { decodeFrame(f); frames++ }
    }
    if (!r.idle()) throw new FramingError('ends inside a frame')
    return frames
  }
  for (const [name, response, bytes, frames] of good) {
    for (const split of [false, true]) {
      let got
      try { got = run(response, bytes, split) } catch (err) { got = err.message }
      eq(got, frames, `reader self-check: ${name}${split ? ', in small pieces' : ''} is read`)
    }
  }
  for (const [name, response, bytes] of bad) {
    for (const split of [false, true]) {
      let err = null
      try { run(response, bytes, split) } catch (e) { err = e }
      check(err instanceof FramingError, `reader self-check: ${name}${split ? ', in small pieces' : ''} is refused` +
        (err != null ? ` (${err.message})` : ''),
        err == null ? 'accepted' : `${err.name}: ${err.message}`)
    }
  }
}

// ---- the run ----------------------------------------------------------------------------

const watchdog = setTimeout(() => {
  console.log('FAIL: the whole test took over 90 s')
  process.exit(1)
}, 90 * S)

const w = new JsonPeer('wisp', [opt['wisp-node'], '--json', '--listen', '/ip4/127.0.0.1/tcp/0',
  '--reqresp', `${PROTO}=echo`, '--reqresp', `${PROTO_APP}=app`], { log: !opt.quiet })
let wispId
let baseline
let conn
const tally = { out: 0, outOk: 0, chunksIn: 0, bytesIn: 0, in: 0, chunksOut: 0, bytesOut: 0 }

async function wispRequest (fields, timeoutMs = 20 * S) {
  const end = await w.request({ cmd: 'request', peer_id: jsId, ...fields }, 'response_end', timeoutMs)
  const chunks = w.events.filter((e) => e.event === 'response' && e.id === end.id)
  tally.out++
  return { end, chunks }
}

try {
  await step('js framing reader self-check', async () => selfCheck())

  await step('start, connect, identify', async () => {
    const lw = await w.expect({ event: 'listening' }, 20 * S, 'wisp listening')
    wispId = lw.peer_id
    baseline = (await w.request({ cmd: 'stats' }, 'stats', 10 * S)).pool_in_use
    const addr = lw.addrs.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))
    const identified = new Promise((resolve) => {
      node.addEventListener('peer:identify', (evt) => { if (evt.detail.peerId.toString() === wispId) resolve(evt.detail) })
    })
    conn = await node.dial(multiaddr(addr.includes('/p2p/') ? addr : `${addr}/p2p/${wispId}`), { signal: AbortSignal.timeout(20 * S) })
    await w.expect({ event: 'connected', peer_id: jsId }, 20 * S, 'wisp connected to js')
    let timer
    const late = new Promise((resolve, reject) => { timer = setTimeout(reject, 20 * S, new Error('no identify of wisp within 20 s')) })
    const id = await Promise.race([identified, late]).finally(() => clearTimeout(timer))
    for (const p of [PROTO, PROTO_APP]) check(id.protocols.includes(p), `js's identify of wisp lists ${p}`, JSON.stringify(id.protocols))
    check(!id.protocols.includes(PROTO_NONE), `js's identify of wisp does not list ${PROTO_NONE}`)
  })

  await step('wisp -> js: chunks, errors, echoes', async () => {
    for (const [name, content] of CASES) {
      const before = jsServed.length
      // wisp-node's command strings are ASCII without NUL (JSON escapes are fine)
      const ascii = content.every((x) => x >= 1 && x < 0x80)
      const { end, chunks } = await wispRequest({
        protocol: PROTO,
        ...(ascii ? { data: Buffer.from(content).toString('latin1') } : { hex: Buffer.from(content).toString('hex') })
      })
      const want = expected(content)
      eq(end.status, 'ok', `${name}: response_end status`)
      checkChunks(chunks.map((c) => ({ result: c.result, len: c.len, sha: c.sha256 })), want, name)
      check(chunks.every((c, i) => c.index === i && c.request_id === end.request_id && c.peer_id === jsId && c.protocol === PROTO),
        `${name}: chunk indexes 0.., request_id, peer, protocol`)
      const errChunk = chunks.find((c) => c.result !== 0)
      if (errChunk) eq(errChunk.data, Buffer.from(plan(content).error.msg).toString('utf8'), `${name}: the error message as text`)
      eq(end.chunks, want.length, `${name}: response_end chunks`)
      eq(end.bytes, want.reduce((n, c) => n + c.len, 0), `${name}: response_end bytes`)
      eq(end.result, want.length ? want[want.length - 1].result : 0, `${name}: response_end result`)
      const rec = jsServed[before]
      check(jsServed.length === before + 1 && rec.problem == null && rec.sha === sha(content) && rec.len === content.length,
        `${name}: js read wisp's request strictly (${content.length} bytes, then the half-close)`, JSON.stringify(rec))
      tally.outOk++
      tally.chunksIn += want.length
      tally.bytesIn += end.bytes
    }
  })

  await step('wisp -> js: hand-made zstd frames from js', async () => {
    for (const [kind, n] of [['nofcs', 300000], ['nofcs', 0], ['checksum', 5000], ['rle', 250000], ['small', 20000], ['cli', 11]]) {
      const content = text(`frame=${kind} size=${n}`)
      const { end, chunks } = await wispRequest({ protocol: PROTO, data: `frame=${kind} size=${n}` })
      const name = `a ${kind} frame of ${n} bytes`
      eq(end.status, 'ok', `${name}: response_end status`)
      checkChunks(chunks.map((c) => ({ result: c.result, len: c.len, sha: c.sha256 })), expected(content), name)
      tally.outOk++
      tally.chunksIn += 1
      tally.bytesIn += n
    }
  })

  await step('wisp -> js: refused, cancel, timeout', async () => {
    const refused = await wispRequest({ protocol: PROTO_APP, data: 'x' })
    eq(refused.end.status, 'refused', 'a protocol js does not serve: refused')
    eq(refused.chunks.length, 0, 'refused: no chunk')

    let before = jsServed.length
    w.send({ cmd: 'request', peer_id: jsId, protocol: PROTO, data: 'hang', id: 'to-cancel' })
    tally.out++
    await jsUntil(() => jsServed[before]?.sha != null, 10 * S, 'request to cancel read')
    w.send({ cmd: 'cancel', id: 'to-cancel' })
    const canceled = await w.expect({ event: 'response_end', id: 'to-cancel' }, 10 * S, 'response_end of the canceled request')
    eq(canceled.status, 'canceled', 'cancel: response_end status')
    eq(canceled.chunks, 0, 'cancel: no chunk')
    await jsUntil(() => jsServed[before].done, 10 * S, 'end of the canceled stream')
    check(jsServed[before].reset && jsServed[before].problem == null, 'cancel: js saw its stream reset', JSON.stringify(jsServed[before]))

    before = jsServed.length
    const timedOut = await wispRequest({ protocol: PROTO, data: 'hang', timeout_ms: 300 })
    eq(timedOut.end.status, 'timeout', 'timeout_ms 300: response_end status')
    check(timedOut.end.elapsed_ms >= 300 && timedOut.end.elapsed_ms < 5000, 'timeout_ms 300: ended after 300 ms', String(timedOut.end.elapsed_ms))
    await jsUntil(() => jsServed[before]?.done, 10 * S, 'end of the timed-out stream')
    check(jsServed[before].reset && jsServed[before].problem == null, 'timeout: js saw its stream reset', JSON.stringify(jsServed[before]))
  })

  await step('js -> wisp: echo responder', async () => {
    for (const [name, content] of CASES) {
      const want = expected(content)
      const got = await jsRequest(conn, PROTO, content)
      checkChunks(got.chunks.map((c) => ({ result: c.result, len: c.content.length, sha: sha(c.content) })), want, name)
      const rq = await w.expect((e) => e.event === 'request' && e.protocol === PROTO && e.sha256 === sha(content), 10 * S, `wisp request event for ${name}`)
      check(rq.len === content.length && rq.peer_id === jsId && rq.respond === 'echo', `${name}: wisp's request event`, JSON.stringify(rq))
      tally.in++
      tally.chunksOut += got.chunks.length
      tally.bytesOut += got.chunks.reduce((n, c) => n + c.content.length, 0)
    }
  })

  await step('js -> wisp: hand-made zstd frames', async () => {
    for (const [kind, content] of [['nofcs', new EchoData(11).next(60000)], ['checksum', text('hello with a checksum')],
      ['rle', new Uint8Array(50000).fill(0x5a)], ['small', new EchoData(12).next(30000)], ['nofcs', new Uint8Array(0)],
      ['cli', text('hello atlas')]]) {
      const name = `a request in a ${kind} frame of ${content.length} bytes`
      const got = await jsRequest(conn, PROTO, content, { frame: FRAMES[kind] })
      checkChunks(got.chunks.map((c) => ({ result: c.result, len: c.content.length, sha: sha(c.content) })),
        [{ result: 0, len: content.length, sha: sha(content) }], `${name} (echoed)`)
      tally.in++
      tally.chunksOut += got.chunks.length
      tally.bytesOut += got.chunks.reduce((n, c) => n + c.content.length, 0)
    }
  })

  await step('js -> wisp: max_request', async () => {
    const atMax = new EchoData(3).next(MAX_REQUEST)
    const ok = await jsRequest(conn, PROTO, atMax)
    check(ok.chunks.length === 1 && ok.chunks[0].result === 0 && sha(ok.chunks[0].content) === sha(atMax),
      `a request of max_request (${MAX_REQUEST}) bytes is served (echoed)`)
    tally.in++
    tally.chunksOut += ok.chunks.length
    tally.bytesOut += ok.chunks.reduce((n, c) => n + c.content.length, 0)

    const over = new EchoData(4).next(MAX_REQUEST + 1)
    const refused = await jsRequest(conn, PROTO, over)
    eq(refused.chunks.length, 1, `max_request + 1 bytes: one chunk, then wisp closed`)
    const c = refused.chunks[0]
    if (c) {
      eq(c.result, 1, 'max_request + 1 bytes: result 1 (invalid request)')
      const msg = Buffer.from(c.content).toString('utf8')
      check(/^invalid request/.test(msg), 'max_request + 1 bytes: the message says why', msg)
      tally.chunksOut++
      tally.bytesOut += c.content.length
    }
    const after = await jsRequest(conn, PROTO, text('chunks=1 size=10'))
    checkChunks(after.chunks.map((x) => ({ result: x.result, len: x.content.length, sha: sha(x.content) })),
      expected(text('chunks=1 size=10')), 'the next request on the connection')
    tally.in++
    tally.chunksOut += after.chunks.length
    tally.bytesOut += 10
    check(!w.events.some((e) => e.event === 'request' && e.len === MAX_REQUEST + 1), 'wisp did not hand the oversized request to the application')
  })

  await step('js -> wisp: app responder', async () => {
    const pending = jsRequest(conn, PROTO_APP, text('app request 1'))
    const rq = await w.expect({ event: 'request', protocol: PROTO_APP }, 10 * S, 'wisp request event (app)')
    eq(rq.data, 'app request 1', 'app: the request event carries the text')
    eq(rq.respond, 'app', 'app: respond mode')
    eq(rq.peer_id, jsId, 'app: the requester')
    eq(typeof rq.ref, 'string', 'app: ref is a string')
    const parts = [text('first chunk'), new EchoData(5).next(200000), Uint8Array.of(0, 0xff, 0)]
    await w.request({ cmd: 'respond', ref: rq.ref, data: 'first chunk' }, 'responded', 10 * S)
    await w.request({ cmd: 'respond', ref: rq.ref, size: 200000, seq: 5 }, 'responded', 10 * S)
    await w.request({ cmd: 'respond', ref: rq.ref, hex: '00ff00' }, 'responded', 10 * S)
    await w.request({ cmd: 'respond_end', ref: rq.ref }, 'responded', 10 * S)
    const got = await pending
    checkChunks(got.chunks.map((c) => ({ result: c.result, len: c.content.length, sha: sha(c.content) })),
      parts.map((p) => ({ result: 0, len: p.length, sha: sha(p) })), 'app: three chunks then the end')
    tally.in++
    tally.chunksOut += got.chunks.length
    tally.bytesOut += parts.reduce((n, p) => n + p.length, 0)

    const pending2 = jsRequest(conn, PROTO_APP, text('app request 2'))
    const rq2 = await w.expect({ event: 'request', protocol: PROTO_APP, data: 'app request 2' }, 10 * S, 'wisp request event (app 2)')
    const r = await w.request({ cmd: 'respond', ref: rq2.ref, result: 2, data: 'server error: app says no' }, 'responded', 10 * S)
    eq(r.last, true, 'app: an error chunk is the last')
    const got2 = await pending2
    check(got2.chunks.length === 1 && got2.chunks[0].result === 2 &&
      Buffer.from(got2.chunks[0].content).toString() === 'server error: app says no', 'app: result 2 with its message, then the end',
    JSON.stringify(got2.chunks.map((c) => [c.result, Buffer.from(c.content).toString()])))
    tally.in++
    tally.chunksOut++
    tally.bytesOut += got2.chunks[0]?.content.length ?? 0

    let refusedErr = null
    try {
      await jsRequest(conn, PROTO_NONE, text('x'))
    } catch (err) {
      refusedErr = err
    }
    check(refusedErr != null && /protocol/i.test(`${refusedErr.name} ${refusedErr.message}`), 'a protocol wisp does not serve: refused in negotiation',
      refusedErr == null ? 'it was served' : `${refusedErr.name}: ${refusedErr.message}`)
  })

  await step('wisp stats', async () => {
    const st = await w.request({ cmd: 'stats' }, 'stats', 10 * S)
    const rr = st.reqresp
    const want = {
      requests_out: tally.out,
      responses_ok: tally.outOk,
      failed: 3,
      refused: 1,
      canceled: 1,
      timeouts: 1,
      out_limit: 0,
      resets: 0,
      bad_responses: 0,
      chunks_in: tally.chunksIn,
      bytes_in: tally.bytesIn,
      requests_in: tally.in,
      admitted: tally.in,
      busy: 0,
      rate_limited: 0,
      bad_requests: 1,
      respond_timeouts: 0,
      chunks_out: tally.chunksOut,
      bytes_out: tally.bytesOut,
      dropped: 0
    }
    for (const [k, v] of Object.entries(want)) eq(rr[k], v, `reqresp.${k}`)
    eq(st.peer_errors, 1, 'net.peer_errors: the oversized request')
    eq(st.events_dropped, 0, 'events_dropped')
    eq(st.open, 1, 'the connection is still open')
    check(jsServed.every((r) => r.problem == null), 'no framing problem in any request wisp sent',
      JSON.stringify(jsServed.filter((r) => r.problem != null)))
  })

  await step('hang up, quit', async () => {
    await node.hangUp(conn.remotePeer)
    await w.expect({ event: 'disconnected', peer_id: jsId }, 10 * S, 'wisp disconnected')
    // wisp frees a closed connection's buffers on its worker, maybe just
    // after the event: poll (with a deadline) until they are back
    const end = Date.now() + 5 * S
    let st
    for (;;) {
      st = await w.request({ cmd: 'stats' }, 'stats', 10 * S)
      if (st.pool_in_use === baseline || Date.now() > end) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    eq(st.pool_in_use, baseline, 'wisp pool_in_use back to its level before any connection')
    w.send({ cmd: 'quit' })
    await w.expect({ event: 'quit' }, 10 * S, 'wisp quit')
    const exit = await w.stop(10 * S)
    eq(exit.code, 0, 'wisp-node exit code')
    check(w.errors().length === 0, 'no error event from wisp in the whole run', JSON.stringify(w.errors()))
  })
} catch {
  // printed by step(); later steps need what failed
} finally {
  clearTimeout(watchdog)
  await w.stop(5 * S)
  await node.stop()
}

console.log(`${failures === 0 ? 'PASS' : 'FAIL'}: ${checks} checks, ${failures} failed`)
process.exit(failures === 0 ? 0 : 1)
