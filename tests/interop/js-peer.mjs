// js-libp2p reference peer for wisp's interop tests and stream benchmarks.
//
// Driven like `wisp-node --json`: commands as JSON lines on stdin, events as
// JSON lines on stdout. See README.md for the protocol.
//
// usage: node js-peer.mjs [--key FILE] [--listen MA]... [--dial MA]...
//                         [--duration SECONDS] [--json]
//        node js-peer.mjs --gen-key FILE
import './polyfill.mjs'
import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { EchoData } from './echo-data.mjs'

export const ECHO_PROTOCOL = '/wisp/echo/1.0.0'
export const PERF_PROTOCOL = '/perf/1.0.0'
const ECHO_MAX_STREAMS = 1024 // per connection, each direction
const PERF_MAX_STREAMS = 64
const CHUNK = 64 * 1024 // write size for echo and perf payloads

// ---- output ---------------------------------------------------------------

// One JSON object per line. process.stdout is synchronous for files and
// pipes on Linux, so a reader sees each line as soon as it is emitted.
function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function errMessage (err) {
  if (err == null) return 'unknown error'
  const name = err.name != null && err.name !== 'Error' ? `${err.name}: ` : ''
  return name + (err.message ?? String(err))
}

function emitError (kind, fields, err) {
  emit({ event: 'error', kind, ...fields, message: typeof err === 'string' ? err : errMessage(err) })
}

// ---- options ---------------------------------------------------------------

let opt
try {
  opt = parseArgs({
    options: {
      key: { type: 'string' },
      'gen-key': { type: 'string' },
      listen: { type: 'string', multiple: true, default: [] },
      dial: { type: 'string', multiple: true, default: [] },
      duration: { type: 'string' },
      json: { type: 'boolean', default: true },
      help: { type: 'boolean', short: 'h' }
    }
  }).values
} catch (err) {
  console.error(`js-peer: ${err.message}`)
  process.exit(2)
}
if (opt.help) {
  console.log('usage: node js-peer.mjs [--key FILE] [--listen MULTIADDR]... [--dial MULTIADDR]...\n' +
    '                        [--duration SECONDS] [--json]\n' +
    '       node js-peer.mjs --gen-key FILE\n' +
    'Commands are JSON lines on stdin, events JSON lines on stdout (see README.md).')
  process.exit(0)
}

// The key file is wisp's format: a libp2p PrivateKey protobuf (the same bytes
// identity.mjs reads with privateKeyFromProtobuf), secp256k1 for wisp nodes.
if (opt['gen-key'] != null) {
  const key = await generateKeyPair('secp256k1')
  try {
    writeFileSync(opt['gen-key'], privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' })
    chmodSync(opt['gen-key'], 0o600)
  } catch (err) {
    console.error(`js-peer: cannot write ${opt['gen-key']}: ${err.message}`)
    process.exit(3)
  }
  emit({ event: 'key', file: opt['gen-key'], peer_id: peerIdFromPrivateKey(key).toString() })
  process.exit(0)
}

let privateKey
if (opt.key != null) {
  try {
    privateKey = privateKeyFromProtobuf(new Uint8Array(readFileSync(opt.key)))
  } catch (err) {
    console.error(`js-peer: cannot load key ${opt.key}: ${err.message}`)
    process.exit(3)
  }
  if (privateKey.type !== 'secp256k1') {
    console.error(`js-peer: ${opt.key} holds a ${privateKey.type} key, wisp uses secp256k1`)
    process.exit(3)
  }
} else {
  privateKey = await generateKeyPair('secp256k1')
}

let duration = null
if (opt.duration != null) {
  duration = Number(opt.duration)
  if (!(duration > 0)) {
    console.error(`js-peer: --duration takes seconds > 0, not '${opt.duration}'`)
    process.exit(2)
  }
}
for (const ma of [...opt.listen, ...opt.dial]) {
  try {
    multiaddr(ma)
  } catch (err) {
    console.error(`js-peer: bad multiaddr '${ma}': ${err.message}`)
    process.exit(2)
  }
}

// ---- the node --------------------------------------------------------------

const LOOPBACK = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']

const node = await createLibp2p({
  privateKey,
  addresses: { listen: opt.listen },
  transports: [tcp({ backlog: 1024 })],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionManager: {
    // Stock js refuses a 6th inbound connection per second from one host,
    // more than 10 pending upgrades and more than 300 connections. Loopback
    // is on the allow list (exempt from all three) and the limits are raised
    // for anything else.
    allow: LOOPBACK,
    maxConnections: 10_000,
    inboundConnectionThreshold: 10_000,
    maxIncomingPendingConnections: 1_000,
    maxParallelDials: 500
  },
  services: {
    identify: identify(),
    ping: ping()
  }
})

// Why each connection ended: 'local' when we closed it, the error when
// something aborted it (js aborts on failed keep-alive pings, muxer errors,
// socket errors), otherwise 'remote' (the remote closed or the socket ended).
let stopping = false // set by quit(); later closes are ours
const closeReason = new Map()
const localClose = new Set() // peer ids we are hanging up on

node.addEventListener('connection:open', (evt) => {
  const conn = evt.detail
  const abort = conn.abort.bind(conn)
  conn.abort = (err) => {
    if (!closeReason.has(conn.id)) closeReason.set(conn.id, `aborted: ${errMessage(err)}`)
    abort(err)
  }
  // Only js's connection monitor (the keep-alive: a /ipfs/ping/1.0.0 round
  // trip on every connection every 10 s, aborting the connection when it
  // fails) sets conn.rtt; report each successful keep-alive ping.
  let rtt
  Object.defineProperty(conn, 'rtt', {
    configurable: true,
    enumerable: true,
    get: () => rtt,
    set: (v) => {
      rtt = v
      emit({ event: 'keepalive', peer_id: conn.remotePeer.toString(), direction: conn.direction, rtt_ms: v })
    }
  })
  emit({
    event: 'connected',
    peer_id: conn.remotePeer.toString(),
    direction: conn.direction,
    addr: conn.remoteAddr.toString(),
    muxer: conn.multiplexer,
    encryption: conn.encryption
  })
})

node.addEventListener('connection:close', (evt) => {
  const conn = evt.detail
  const peer = conn.remotePeer.toString()
  let reason = closeReason.get(conn.id)
  if (stopping || localClose.has(peer)) reason = 'local'
  closeReason.delete(conn.id)
  emit({ event: 'disconnected', peer_id: peer, direction: conn.direction, reason: reason ?? 'remote' })
})

const hex = (u8) => Buffer.from(u8).toString('hex')

node.addEventListener('peer:identify', (evt) => {
  const r = evt.detail
  emit({
    event: 'identify',
    peer_id: r.peerId.toString(),
    agent: r.agentVersion ?? null,
    protocol_version: r.protocolVersion ?? null,
    protocols: r.protocols,
    listen_addrs: r.listenAddrs.map(String),
    observed_addr: r.observedAddr?.toString() ?? null,
    public_key: r.publicKey != null ? hex(r.publicKey) : null,
    signed_peer_record: r.signedPeerRecord != null
  })
})

// ---- stream helpers ---------------------------------------------------------

// Stream sources yield Uint8Array or Uint8ArrayList; walk the byte chunks.
function * pieces (chunk) {
  if (chunk instanceof Uint8Array) {
    yield chunk
  } else {
    for (const buf of chunk) yield buf
  }
}

// A sink source the caller pushes into: push() resolves when the muxer has
// taken the chunk, end() finishes the source (the stream then half-closes).
class Outbox {
  constructor () {
    this.queue = []
    this.ended = false
    this.wake = null
  }

  push (buf) {
    return new Promise((resolve) => {
      this.queue.push({ buf, resolve })
      this.wake?.()
    })
  }

  end () {
    this.ended = true
    this.wake?.()
  }

  async * [Symbol.asyncIterator] () {
    while (true) {
      while (this.queue.length > 0) {
        const { buf, resolve } = this.queue.shift()
        yield buf
        resolve()
      }
      if (this.ended) return
      await new Promise((resolve) => { this.wake = resolve })
      this.wake = null
    }
  }
}

// Reads exact byte counts from a stream source.
class Reader {
  constructor (source) {
    this.it = source[Symbol.asyncIterator]()
    this.bufs = []
    this.have = 0
  }

  // Resolves to n bytes, or to null at a clean end of stream before any byte.
  async read (n) {
    while (this.have < n) {
      const { value, done } = await this.it.next()
      if (done) {
        if (this.have === 0) return null
        throw new Error(`stream ended after ${this.have} of ${n} bytes`)
      }
      for (const b of pieces(value)) {
        if (b.length > 0) { this.bufs.push(b); this.have += b.length }
      }
    }
    const out = new Uint8Array(n)
    let off = 0
    while (off < n) {
      const b = this.bufs[0]
      const k = Math.min(b.length, n - off)
      out.set(b.subarray(0, k), off)
      off += k
      if (k === b.length) this.bufs.shift()
      else this.bufs[0] = b.subarray(k)
    }
    this.have -= n
    return out
  }

  // Drains to the end of the stream; returns the number of bytes discarded.
  async drain () {
    let n = this.have
    this.bufs = []
    this.have = 0
    while (true) {
      const { value, done } = await this.it.next()
      if (done) return n
      for (const b of pieces(value)) n += b.length
    }
  }
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n)

function zeros (n) {
  return n <= ZERO_BLOCK.length ? ZERO_BLOCK.subarray(0, n) : new Uint8Array(n)
}
const ZERO_BLOCK = new Uint8Array(CHUNK)

async function * zeroSource (total) {
  for (let left = total; left > 0; left -= CHUNK) yield zeros(Math.min(CHUNK, left))
}

// ---- protocol handlers ------------------------------------------------------

// /wisp/echo/1.0.0: every byte goes back on the same stream; when the remote
// half-closes, the echo finishes and our side closes too.
await node.handle(ECHO_PROTOCOL, ({ stream, connection }) => {
  stream.sink(stream.source).catch((err) => {
    emitError('echo', { side: 'server', peer_id: connection.remotePeer.toString() }, err)
    stream.abort(err)
  })
}, { maxInboundStreams: ECHO_MAX_STREAMS, maxOutboundStreams: ECHO_MAX_STREAMS, runOnLimitedConnection: true })

// /perf/1.0.0 server (libp2p perf spec): read a big-endian u64 byte count,
// discard everything until the client half-closes, send that many bytes,
// close.
await node.handle(PERF_PROTOCOL, ({ stream, connection }) => {
  (async () => {
    const reader = new Reader(stream.source)
    const head = await reader.read(8)
    if (head == null) throw new Error('perf stream ended before the 8-byte length')
    const send = new DataView(head.buffer).getBigUint64(0, false)
    if (send > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`perf: absurd download size ${send}`)
    await reader.drain()
    await stream.sink(zeroSource(Number(send)))
  })().catch((err) => {
    emitError('perf', { side: 'server', peer_id: connection.remotePeer.toString() }, err)
    stream.abort(err)
  })
}, { maxInboundStreams: PERF_MAX_STREAMS, maxOutboundStreams: PERF_MAX_STREAMS, runOnLimitedConnection: true })

await node.start()

emit({
  event: 'listening',
  peer_id: node.peerId.toString(),
  addrs: node.getMultiaddrs().map(String),
  agent: node.services.identify.host?.agentVersion
})

// ---- commands ---------------------------------------------------------------

// The command's "id", for the events it produces.
const tagOf = (c) => c.id !== undefined ? { id: c.id } : {}

function needPeer (c) {
  if (typeof c.peer_id !== 'string') throw new TypeError('peer_id (string) is required')
  return peerIdFromString(c.peer_id)
}

function needInt (c, field, def, min, max) {
  const v = c[field] ?? def
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new TypeError(`${field} must be an integer in [${min}, ${max}]`)
  }
  return v
}

function percentile (sorted, q) {
  // nearest rank
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[i]
}

async function cmdDial (c) {
  if (typeof c.addr !== 'string') throw new TypeError('addr (string) is required')
  const ma = multiaddr(c.addr)
  try {
    const conn = await node.dial(ma)
    return { event: 'dialed', peer_id: conn.remotePeer.toString(), addr: conn.remoteAddr.toString() }
  } catch (err) {
    emitError('dial', { addr: c.addr, ...tagOf(c) }, err)
    return null
  }
}

const PING_PROTOCOL = '/ipfs/ping/1.0.0'

// A ping on a fresh /ipfs/ping/1.0.0 stream to the stock ping service on the
// other side: rtt_us is one 32-byte round trip (what js's own keep-alive
// measures), open_us the stream open and multistream negotiation before it.
async function cmdPing (c) {
  const peer = needPeer(c)
  let stream
  try {
    const t0 = nowUs()
    stream = await node.dialProtocol(peer, PING_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
    const t1 = nowUs()
    const out = new Outbox()
    const writing = stream.sink(out)
    const reader = new Reader(stream.source)
    const data = randomBytes(32)
    const t = process.hrtime.bigint()
    await out.push(data)
    const back = await reader.read(32)
    const rtt = Number(process.hrtime.bigint() - t) / 1000
    out.end()
    await writing
    await reader.drain()
    if (back == null || !Buffer.from(back).equals(data)) throw new Error('ping: wrong or missing echo of the 32 bytes')
    return { event: 'ping', peer_id: c.peer_id, rtt_us: Math.round(rtt * 10) / 10, open_us: t1 - t0 }
  } catch (err) {
    stream?.abort(err)
    emitError('ping', { peer_id: c.peer_id, ...tagOf(c) }, err)
    return null
  }
}

async function echoOne (peer, index, bytes) {
  const stream = await node.dialProtocol(peer, ECHO_PROTOCOL)
  const gen = new EchoData(index)
  const sent = createHash('sha256')
  const recv = createHash('sha256')
  const writing = stream.sink((async function * () {
    for (let left = bytes; left > 0; left -= CHUNK) {
      const buf = gen.next(Math.min(CHUNK, left))
      sent.update(buf)
      yield buf
    }
  })())
  let got = 0
  const reading = (async () => {
    for await (const chunk of stream.source) {
      for (const b of pieces(chunk)) {
        recv.update(b)
        got += b.length
      }
    }
  })()
  try {
    await Promise.all([writing, reading])
  } catch (err) {
    stream.abort(err)
    throw err
  }
  const s = sent.digest('hex')
  const r = recv.digest('hex')
  return { ok: got === bytes && s === r, sha256: s, echoed_sha256: r, got }
}

async function cmdEcho (c) {
  const peer = needPeer(c)
  const bytes = needInt(c, 'bytes', 1 << 20, 0, 2 ** 40)
  const streams = needInt(c, 'streams', 1, 1, ECHO_MAX_STREAMS)
  const t0 = nowUs()
  let results
  try {
    results = await Promise.all(Array.from({ length: streams }, (_, i) => echoOne(peer, i, bytes)))
  } catch (err) {
    emitError('echo', { peer_id: c.peer_id, streams, bytes, ...tagOf(c) }, err)
    return null
  }
  const elapsed = Math.max(1, nowUs() - t0)
  const total = bytes * streams
  const bad = results.findIndex((r) => !r.ok)
  const out = {
    event: 'echo_done',
    peer_id: c.peer_id,
    streams,
    bytes,
    ok: bad < 0,
    sha256: results[0].sha256, // of stream 0's payload
    elapsed_us: elapsed,
    mbps: Math.round(total * 8 / elapsed * 10) / 10, // payload Mbit/s, one direction
    mib_per_s: Math.round(total / 1048576 / (elapsed / 1e6) * 10) / 10
  }
  if (bad >= 0) {
    out.bad_stream = bad
    out.bad_got = results[bad].got
    out.bad_echoed_sha256 = results[bad].echoed_sha256
  }
  return out
}

async function cmdRtt (c) {
  const peer = needPeer(c)
  const size = needInt(c, 'size', 1024, 1, 16 << 20)
  const count = needInt(c, 'count', 1000, 1, 10_000_000)
  let stream
  try {
    stream = await node.dialProtocol(peer, ECHO_PROTOCOL)
    const out = new Outbox()
    const writing = stream.sink(out)
    const reader = new Reader(stream.source)
    const gen = new EchoData(0)
    const samples = new Float64Array(count)
    let mismatch = -1
    const t0 = nowUs()
    for (let i = 0; i < count; i++) {
      const msg = gen.next(size)
      const t = process.hrtime.bigint()
      await out.push(msg)
      const back = await reader.read(size)
      samples[i] = Number(process.hrtime.bigint() - t) / 1000
      if (back == null) throw new Error(`echo stream ended after ${i} round trips`)
      if (mismatch < 0 && !Buffer.from(back).equals(msg)) mismatch = i
    }
    const elapsed = Math.max(1, nowUs() - t0)
    out.end()
    await writing
    const extra = await reader.drain()
    samples.sort()
    const r1 = (v) => Math.round(v * 10) / 10
    return {
      event: 'rtt_done',
      peer_id: c.peer_id,
      count,
      size,
      ok: mismatch < 0 && extra === 0,
      ...(mismatch >= 0 ? { first_mismatch: mismatch } : {}),
      ...(extra !== 0 ? { extra_bytes: extra } : {}),
      p50_us: r1(percentile(samples, 0.5)),
      p90_us: r1(percentile(samples, 0.9)),
      p99_us: r1(percentile(samples, 0.99)),
      max_us: r1(samples[count - 1]),
      per_sec: Math.round(count / (elapsed / 1e6)),
      elapsed_us: elapsed
    }
  } catch (err) {
    stream?.abort(err)
    emitError('echo', { what: 'rtt', peer_id: c.peer_id, ...tagOf(c) }, err)
    return null
  }
}

async function cmdPerf (c) {
  const peer = needPeer(c)
  const upload = needInt(c, 'upload', 0, 0, Number.MAX_SAFE_INTEGER)
  const download = needInt(c, 'download', 0, 0, Number.MAX_SAFE_INTEGER)
  let stream
  try {
    const t0 = nowUs()
    stream = await node.dialProtocol(peer, PERF_PROTOCOL)
    const head = new Uint8Array(8)
    new DataView(head.buffer).setBigUint64(0, BigInt(download), false)
    const writing = stream.sink((async function * () {
      yield head
      yield * zeroSource(upload)
    })())
    let got = 0
    let firstByte = null
    for await (const chunk of stream.source) {
      if (firstByte == null) firstByte = nowUs()
      for (const b of pieces(chunk)) got += b.length
    }
    await writing
    const end = nowUs()
    const elapsed = Math.max(1, end - t0)
    // upload_us: open to the first downloaded byte (the server only answers
    // after reading everything); download_us: first to last downloaded byte.
    const upUs = Math.max(1, (firstByte ?? end) - t0)
    const downUs = Math.max(1, end - (firstByte ?? end))
    const r1 = (v) => Math.round(v * 10) / 10
    return {
      event: 'perf_done',
      peer_id: c.peer_id,
      upload,
      download: got,
      ok: got === download,
      elapsed_us: elapsed,
      upload_us: upUs,
      download_us: downUs,
      upload_mbps: r1(upload * 8 / upUs),
      download_mbps: r1(download === 0 ? 0 : got * 8 / downUs)
    }
  } catch (err) {
    stream?.abort(err)
    emitError('perf', { peer_id: c.peer_id, ...tagOf(c) }, err)
    return null
  }
}

async function cmdClose (c) {
  const peer = needPeer(c)
  localClose.add(c.peer_id)
  try {
    await node.hangUp(peer)
  } finally {
    localClose.delete(c.peer_id)
  }
  return { event: 'closed', peer_id: c.peer_id }
}

const COMMANDS = {
  dial: cmdDial,
  ping: cmdPing,
  echo: cmdEcho,
  rtt: cmdRtt,
  perf: cmdPerf,
  close: cmdClose,
  quit: async () => { await quit('command'); return null }
}

// Commands run concurrently; each one's result event carries the command's
// "id" if it had one.
function runLine (line) {
  if (line.trim() === '') return
  let c
  try {
    c = JSON.parse(line)
  } catch (err) {
    emitError('command', { line }, `not JSON: ${err.message}`)
    return
  }
  if (c == null || typeof c !== 'object' || Array.isArray(c) || typeof c.cmd !== 'string') {
    emitError('command', { line }, 'expected an object with a string "cmd"')
    return
  }
  const fn = Object.hasOwn(COMMANDS, c.cmd) ? COMMANDS[c.cmd] : null
  const tag = tagOf(c)
  if (fn == null) {
    emitError('command', { cmd: c.cmd, ...tag }, `unknown command '${c.cmd}'`)
    return
  }
  fn(c).then((ev) => {
    if (ev != null) emit({ ...ev, ...tag })
  }, (err) => {
    emitError('command', { cmd: c.cmd, ...tag }, err)
  })
}

// ---- lifetime ---------------------------------------------------------------

async function quit (why) {
  if (stopping) return
  stopping = true
  const force = setTimeout(() => {
    emit({ event: 'quit', why, forced: true })
    process.exit(0)
  }, 5000)
  force.unref()
  try {
    await node.stop()
  } catch (err) {
    emitError('internal', { what: 'stop' }, err)
  }
  emit({ event: 'quit', why })
  process.exit(0)
}

process.on('unhandledRejection', (err) => {
  emitError('internal', { what: 'unhandledRejection' }, err)
})
process.on('uncaughtException', (err) => {
  emitError('internal', { what: 'uncaughtException' }, err)
})
process.on('SIGTERM', () => { quit('SIGTERM') })
process.on('SIGINT', () => { quit('SIGINT') })
// A reader that went away must not take the peer down with EPIPE.
process.stdout.on('error', () => { quit('stdout closed') })

if (duration != null) {
  setTimeout(() => { quit('duration') }, duration * 1000)
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false })
rl.on('line', runLine)
rl.on('close', () => { quit('stdin closed') })

for (const addr of opt.dial) runLine(JSON.stringify({ cmd: 'dial', addr }))
