// js-libp2p reference peer for wisp's interop tests and stream benchmarks.
//
// Driven like `wisp-node --json`: commands as JSON lines on stdin, events as
// JSON lines on stdout. See README.md for the protocol.
//
// usage: node js-peer.mjs [--key FILE] [--listen MA]... [--dial MA]...
//                         [--duration SECONDS] [--json]
//                         [--topic NAME]... [--sign strict|none] [--msg-id default|content]
//                         [--heartbeat-ms MS] [--max-message-size BYTES] [--fast-msg-id]
//                         [--no-keepalive-abort]
//        node js-peer.mjs --gen-key FILE
import './polyfill.mjs'
import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { RPC } from '@chainsafe/libp2p-gossipsub/message'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
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
      topic: { type: 'string', multiple: true, default: [] },
      sign: { type: 'string', default: 'strict' },
      'msg-id': { type: 'string', default: 'default' },
      'heartbeat-ms': { type: 'string', default: '1000' },
      'max-message-size': { type: 'string', default: String(1 << 20) },
      'fast-msg-id': { type: 'boolean', default: false },
      'no-keepalive-abort': { type: 'boolean', default: false },
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
    '                        [--topic NAME]... [--sign strict|none] [--msg-id default|content]\n' +
    '                        [--heartbeat-ms MS] [--max-message-size BYTES] [--fast-msg-id]\n' +
    '                        [--no-keepalive-abort]\n' +
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
function usageError (msg) {
  console.error(`js-peer: ${msg}`)
  process.exit(2)
}
if (opt.sign !== 'strict' && opt.sign !== 'none') usageError(`--sign takes strict or none, not '${opt.sign}'`)
if (opt['msg-id'] !== 'default' && opt['msg-id'] !== 'content') {
  usageError(`--msg-id takes default or content, not '${opt['msg-id']}'`)
}
const heartbeatMs = Number(opt['heartbeat-ms'])
if (!Number.isSafeInteger(heartbeatMs) || heartbeatMs < 10) usageError(`--heartbeat-ms takes an integer >= 10, not '${opt['heartbeat-ms']}'`)
const maxMessageSize = Number(opt['max-message-size'])
if (!Number.isSafeInteger(maxMessageSize) || maxMessageSize < 1) {
  usageError(`--max-message-size takes an integer >= 1, not '${opt['max-message-size']}'`)
}
for (const t of opt.topic) if (t === '') usageError('--topic takes a non-empty name')

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

// ---- gossipsub settings -----------------------------------------------------

const hex = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('hex')
const sha256 = (u8) => createHash('sha256').update(u8).digest()
const SIGN_POLICY = opt.sign === 'strict' ? 'StrictSign' : 'StrictNoSign'

// js's own message-id functions (what gossipsub uses when msgIdFn is unset):
// StrictSign: PublicKey protobuf of the author || the 8-byte seqno;
// StrictNoSign: SHA-256 of the data. --msg-id content: SHA-256 of the data
// (32 raw bytes) under either policy.
function defaultMsgId (msg) {
  if (SIGN_POLICY === 'StrictSign') {
    if (msg.type !== 'signed') throw new Error('expected a signed message')
    const key = publicKeyToProtobuf(msg.from.publicKey ?? msg.key)
    const seqno = Buffer.from(msg.sequenceNumber.toString(16).padStart(16, '0'), 'hex')
    return Buffer.concat([key, seqno])
  }
  return sha256(msg.data)
}
const baseMsgId = opt['msg-id'] === 'content' ? (msg) => sha256(msg.data) : defaultMsgId

// --fast-msg-id: gossipsub's fastMsgIdFn, computed on the raw RPC message
// before anything else, so duplicates are dropped before their signature is
// verified (stock js verifies every copy; Lodestar sets this). It is the
// message id itself computed from the raw fields: hex(SHA-256(data)) for
// content ids and under StrictNoSign, hex(from || seqno) for StrictSign
// default ids (from = the author's peer id, whose identity multihash holds
// the same key protobuf that the id uses).
function fastMsgIdFn (raw) {
  if (opt['msg-id'] === 'content' || SIGN_POLICY === 'StrictNoSign') return sha256(raw.data ?? new Uint8Array(0)).toString('hex')
  return hex(raw.from ?? new Uint8Array(0)) + hex(raw.seqno ?? new Uint8Array(0))
}

// publish() does not return the message id (under StrictSign it depends on
// the random seqno gossipsub draws inside publish). gossipsub computes the id
// of a message it publishes with msgIdFn on a Message whose .data is the very
// Uint8Array passed to publish(), so a hook keyed by that array object catches
// it; received messages carry freshly decoded arrays and never match.
const publishIdHooks = new WeakMap()
function msgIdFn (msg) {
  const id = baseMsgId(msg)
  const hook = publishIdHooks.get(msg.data)
  if (hook != null) hook(id)
  return id
}

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
  // js pings every connection every 10 s and aborts it when the ping takes
  // longer than an adaptive timeout (at least 5 s). A js process whose event
  // loop is stalled for seconds (signature checks of a gossip burst) thus
  // drops its connections; --no-keepalive-abort keeps them (the pings still
  // run and still produce keepalive events when they succeed).
  ...(opt['no-keepalive-abort'] ? { connectionMonitor: { abortConnectionOnPingFailure: false } } : {}),
  services: {
    identify: identify(),
    ping: ping(),
    // Stock gossipsub (D 6, Dlo 4, Dhi 12, Dlazy 6, floodPublish, no PX,
    // fallback to floodsub) except: the signature policy and message id
    // from the options, ids as hex strings, the heartbeat interval, and the
    // IP colocation penalty (P6, > 10 peers on one IP) switched off, since
    // every test peer is on 127.0.0.1.
    pubsub: gossipsub({
      globalSignaturePolicy: SIGN_POLICY,
      msgIdFn,
      msgIdToStrFn: hex,
      ...(opt['fast-msg-id'] ? { fastMsgIdFn } : {}),
      heartbeatInterval: heartbeatMs,
      scoreParams: { IPColocationFactorWeight: 0 }
    })
  }
})
const gs = node.services.pubsub

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
    // js verified it against the connection's peer before this event
    signed_peer_record: r.signedPeerRecord != null,
    record_seq: r.signedPeerRecord != null ? String(r.signedPeerRecord.seq) : null,
    record_addrs: r.signedPeerRecord != null ? r.signedPeerRecord.addresses.map(String) : []
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

// ---- gossipsub events -------------------------------------------------------

const DATA_TEXT_MAX = 256 // message events carry "data" up to this many bytes of valid UTF-8
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
function textOf (u8) {
  if (u8.length > DATA_TEXT_MAX) return undefined
  try {
    return utf8.decode(u8)
  } catch {
    return undefined
  }
}

// Every message gossipsub delivers to us (first copy of each id, on a topic
// we are subscribed to; never our own publishes). t_us: CLOCK_MONOTONIC in
// microseconds (process.hrtime), comparable between processes on one host.
gs.addEventListener('gossipsub:message', (evt) => {
  const t = nowUs()
  const { propagationSource, msgId, msg } = evt.detail
  const text = textOf(msg.data)
  emit({
    event: 'message',
    topic: msg.topic,
    from: msg.type === 'signed' ? msg.from.toString() : null,
    msg_id: msgId, // msgIdToStrFn is hex ("id" is the command tag in result events)
    size: msg.data.length,
    sha256: sha256(msg.data).toString('hex'),
    ...(text !== undefined ? { data: text } : {}),
    propagation_source: propagationSource.toString(),
    ...(msg.type === 'signed' ? { seqno: msg.sequenceNumber.toString(16).padStart(16, '0') } : {}),
    t_us: t
  })
})

// A remote's SUBSCRIBE / UNSUBSCRIBE (one event per topic in the RPC).
gs.addEventListener('subscription-change', (evt) => {
  const { peerId, subscriptions } = evt.detail
  for (const { topic, subscribe } of subscriptions) {
    emit({ event: 'peer_subscription', peer_id: peerId.toString(), topic, subscribe })
  }
  checkMeshWaiters()
})

// GRAFT / PRUNE: direction outbound = we sent it, inbound = we received it.
// js dispatches an inbound graft even when it answers with a PRUNE (backoff,
// negative score, Dhi reached for an inbound peer); "in_mesh" tells.
for (const kind of ['graft', 'prune']) {
  gs.addEventListener(`gossipsub:${kind}`, (evt) => {
    const { peerId, topic, direction } = evt.detail
    emit({ event: kind, peer_id: peerId, topic, direction, in_mesh: gs.mesh.get(topic)?.has(peerId) ?? false })
    checkMeshWaiters()
  })
}
gs.addEventListener('gossipsub:heartbeat', () => { checkMeshWaiters() })

// {"cmd":"mesh"} with wait_mesh / wait_peers answers once the topic's mesh and
// known subscribers reach those sizes (checked on every heartbeat, graft,
// prune and subscription change), or after timeout_ms with "timed_out":true.
const meshWaiters = new Set()
function checkMeshWaiters () {
  for (const w of meshWaiters) w()
}

function gossipPeers (topic) {
  return {
    event: 'gossip_peers',
    topic,
    subscribed: gs.getTopics().includes(topic),
    mesh: gs.getMeshPeers(topic).sort(),
    peers: gs.getSubscribers(topic).map(String).sort(),
    // js's score of every connected gossip peer (0 unless penalized: P7
    // behaviour penalties such as broken IWANT promises or GRAFT during
    // backoff; below 0 no GRAFT, -10 no gossip, -50 no publish, -80 graylisted)
    scores: Object.fromEntries(gs.getPeers().map((p) => [p.toString(), Math.round(gs.getScore(p.toString()) * 1000) / 1000]))
  }
}

for (const topic of opt.topic) {
  gs.subscribe(topic)
  emit({ event: 'subscribed', topic })
}

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

// ---- gossipsub commands -----------------------------------------------------

function needTopic (c) {
  if (typeof c.topic !== 'string' || c.topic === '') throw new TypeError('topic (non-empty string) is required')
  return c.topic
}

async function cmdSubscribe (c) {
  const topic = needTopic(c)
  gs.subscribe(topic)
  return { event: 'subscribed', topic }
}

async function cmdUnsubscribe (c) {
  const topic = needTopic(c)
  gs.unsubscribe(topic)
  return { event: 'unsubscribed', topic }
}

// The payload of publish / publish_bad_sig: "data" (UTF-8 text), "hex", or
// "size" (that many random bytes).
function payloadOf (c) {
  const given = ['data', 'hex', 'size'].filter((k) => c[k] !== undefined)
  if (given.length !== 1) throw new TypeError('exactly one of data, hex, size is required')
  if (c.data !== undefined) {
    if (typeof c.data !== 'string') throw new TypeError('data must be a string')
    return Buffer.from(c.data, 'utf8')
  }
  if (c.hex !== undefined) {
    if (typeof c.hex !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(c.hex)) throw new TypeError('hex must be an even-length hex string')
    return Buffer.from(c.hex, 'hex')
  }
  return randomBytes(needInt(c, 'size', 0, 0, 64 << 20))
}

function publishFailure (err) {
  const m = err?.message ?? String(err)
  if (m.includes('NoPeersSubscribedToTopic')) return 'no_peers'
  if (m.includes('PublishError.Duplicate')) return 'duplicate'
  return `error: ${errMessage(err)}`
}

// {"cmd":"publish","topic":"t","data":"..."}: gossipsub publish (flood
// publish to every known subscriber of the topic above the publish threshold,
// mesh peers included). "allow_no_peers":true publishes even with no peers.
// t_us (CLOCK_MONOTONIC µs) is taken when the command starts, before signing.
async function cmdPublish (c) {
  const t = nowUs()
  const topic = needTopic(c)
  const data = new Uint8Array(payloadOf(c)) // a fresh array: the id hook's key
  if (c.allow_no_peers !== undefined && typeof c.allow_no_peers !== 'boolean') throw new TypeError('allow_no_peers must be a boolean')
  if (data.length > maxMessageSize) {
    return { event: 'publish_failed', topic, reason: 'too_large', size: data.length, max: maxMessageSize }
  }
  let id = null
  publishIdHooks.set(data, (v) => { id = hex(v) })
  try {
    const r = await gs.publish(topic, data, c.allow_no_peers ? { allowPublishToZeroTopicPeers: true } : undefined)
    return { event: 'published', topic, msg_id: id, peers: r.recipients.length, size: data.length, t_us: t }
  } catch (err) {
    return { event: 'publish_failed', topic, reason: publishFailure(err), ...(id != null ? { msg_id: id } : {}), size: data.length }
  } finally {
    publishIdHooks.delete(data)
  }
}

const SIGN_PREFIX = Buffer.from('libp2p-pubsub:')

// {"cmd":"publish_bad_sig","topic":"t","data":"..."[,"peer_id":"..."][,"how":"wrong"|"missing"|"garbage"]}
// Builds an RPC by hand with gossipsub's own protobuf codec (the RPC export of
// @chainsafe/libp2p-gossipsub/message) and pushes it on gossipsub's existing
// outbound stream to each subscriber of the topic (or to peer_id only):
// OutboundStream.push() adds the uvarint length prefix, exactly as for
// gossipsub's own RPCs. Nothing is signed by gossipsub and nothing enters our
// seen cache or message cache, so the router's state is untouched.
//   StrictSign: from, seqno (8 random bytes), key are correct; the signature
//     is "wrong" (a valid DER signature by our key over the same message with
//     another seqno; default), "missing" (no signature field) or "garbage"
//     (64 random bytes, not DER).
//   StrictNoSign: a message signed as under StrictSign (from, seqno,
//     signature, key present), which StrictNoSign receivers must reject.
// Result: "published" with "bad_sig":true and the id the message would have.
async function cmdPublishBadSig (c) {
  const t = nowUs()
  const topic = needTopic(c)
  const data = payloadOf(c)
  const how = c.how ?? 'wrong'
  if (!['wrong', 'missing', 'garbage'].includes(how)) throw new TypeError('how must be wrong, missing or garbage')
  let targets
  if (c.peer_id !== undefined) {
    needPeer(c)
    targets = [c.peer_id]
  } else {
    targets = gs.getSubscribers(topic).map(String)
  }
  targets = targets.filter((id) => gs.streamsOutbound.has(id))
  if (targets.length === 0) return { event: 'publish_failed', topic, reason: 'no_peers', bad_sig: true }

  const key = publicKeyToProtobuf(privateKey.publicKey)
  const seqno = randomBytes(8)
  const msg = { from: node.peerId.toMultihash().bytes, data, seqno, topic, signature: undefined, key: undefined }
  const signOver = (m) => privateKey.sign(Buffer.concat([SIGN_PREFIX, RPC.Message.encode(m)]))
  if (SIGN_POLICY === 'StrictNoSign' || how === 'wrong') {
    // For StrictNoSign a correct signature is the fault; for StrictSign sign
    // the message with its seqno's last byte flipped.
    const other = Buffer.from(seqno)
    if (SIGN_POLICY === 'StrictSign') other[7] ^= 0xff
    msg.signature = await signOver({ ...msg, seqno: other })
  } else if (how === 'garbage') {
    msg.signature = randomBytes(64)
  }
  msg.key = key
  const id = opt['msg-id'] === 'content' || SIGN_POLICY === 'StrictNoSign'
    ? sha256(data)
    : Buffer.concat([key, seqno])
  const bytes = RPC.encode({ subscriptions: [], messages: [msg] })
  const sent = []
  for (const peer of targets) {
    try {
      gs.streamsOutbound.get(peer).push(bytes)
      sent.push(peer)
    } catch (err) {
      emitError('publish', { what: 'publish_bad_sig', peer_id: peer, ...tagOf(c) }, err)
    }
  }
  return { event: 'published', topic, msg_id: hex(id), peers: sent.length, to: sent, bad_sig: true, how: SIGN_POLICY === 'StrictSign' ? how : 'signed', size: data.length, t_us: t }
}

async function cmdMesh (c) {
  const topic = needTopic(c)
  const wantMesh = needInt(c, 'wait_mesh', 0, 0, 1000)
  const wantPeers = needInt(c, 'wait_peers', 0, 0, 1000)
  const timeoutMs = needInt(c, 'timeout_ms', 10_000, 0, 3_600_000)
  const ready = () => gs.getMeshPeers(topic).length >= wantMesh && gs.getSubscribers(topic).length >= wantPeers
  if (ready()) return gossipPeers(topic)
  return new Promise((resolve) => {
    const w = () => {
      if (!ready()) return
      done()
      resolve(gossipPeers(topic))
    }
    const timer = setTimeout(() => {
      done()
      resolve({ ...gossipPeers(topic), timed_out: true })
    }, timeoutMs)
    const done = () => {
      clearTimeout(timer)
      meshWaiters.delete(w)
    }
    meshWaiters.add(w)
  })
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
  subscribe: cmdSubscribe,
  unsubscribe: cmdUnsubscribe,
  publish: cmdPublish,
  publish_bad_sig: cmdPublishBadSig,
  mesh: cmdMesh,
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
