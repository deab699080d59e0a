// The js-libp2p side of perf/gossip-bench: N js-libp2p gossipsub nodes in
// this one node.js process, on 127.0.0.1, connected along the edges the C
// bench gives (--edges "0-1,0-2,...": the first node of a pair dials), all
// subscribed to one topic; messages are published round robin across the
// nodes, either at --rate per second (paced by timers) or, with --rate 0,
// as fast as possible with at most --inflight messages not yet delivered to
// every other node. Phases: --warmup seconds (JIT, meshes; not counted),
// --duration seconds (the window), then a drain until every message of the
// window has reached every other node, nothing arrives for --quiet seconds,
// or --drain seconds pass.
//
// Prints one line for the bench: "result key=value ..." (keys in
// perf/README.md, the same as the wisp side's), and "# ..." commentary.
//
// It lives beside js-peer.mjs because its packages resolve from the
// node_modules installed here (npm-setup.sh). Node 20 or later.
//
// usage: node gossip-bench-js.mjs --nodes N --edges LIST [--size BYTES] [--sign strict|none]
//          [--rate N] [--inflight K] [--warmup S] [--duration S] [--drain S] [--quiet S]
//          [--heartbeat-ms MS] [--stock]
import './polyfill.mjs'
import { createHash, randomFillSync } from 'node:crypto'
import { parseArgs } from 'node:util'

let opt
try {
  opt = parseArgs({
    options: {
      nodes: { type: 'string', default: '8' },
      edges: { type: 'string' },
      size: { type: 'string', default: '1024' },
      sign: { type: 'string', default: 'strict' },
      rate: { type: 'string', default: '100' },
      inflight: { type: 'string', default: '32' },
      warmup: { type: 'string', default: '2' },
      duration: { type: 'string', default: '5' },
      drain: { type: 'string', default: '20' },
      quiet: { type: 'string', default: '2' },
      'heartbeat-ms': { type: 'string', default: '1000' },
      'max-msgs': { type: 'string', default: '2000000' },
      stock: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' }
    }
  }).values
} catch (err) {
  console.error(`gossip-bench-js: ${err.message}`)
  process.exit(2)
}
if (opt.help) {
  console.log('usage: node gossip-bench-js.mjs --nodes N --edges A-B,... [--size BYTES] [--sign strict|none]\n' +
    '         [--rate N (0: closed loop)] [--inflight K] [--warmup S] [--duration S] [--drain S] [--quiet S]\n' +
    '         [--heartbeat-ms MS] [--max-msgs N] [--stock]\n' +
    'Run by perf/gossip-bench (see perf/README.md); prints "result key=value ...".\n' +
    '--stock: no fastMsgIdFn (stock js verifies the signature of every duplicate copy).')
  process.exit(0)
}

const num = (k, lo, hi) => {
  const v = Number(opt[k])
  if (!(Number.isFinite(v) && v >= lo && v <= hi)) {
    console.error(`gossip-bench-js: --${k} takes a number in [${lo}, ${hi}], not '${opt[k]}'`)
    process.exit(2)
  }
  return v
}
const N = num('nodes', 2, 64)
const SIZE = num('size', 32, 1 << 20)
const RATE = num('rate', 0, 1e6)
const INFLIGHT = num('inflight', 1, 1e6)
const WARMUP = num('warmup', 0, 3600)
const DURATION = num('duration', 0.1, 3600)
const DRAIN = num('drain', 0, 3600)
const QUIET = num('quiet', 0.1, 3600)
const HEARTBEAT = num('heartbeat-ms', 10, 60000)
const MAX_MSGS = num('max-msgs', 1, 1e8)
if (opt.sign !== 'strict' && opt.sign !== 'none') {
  console.error(`gossip-bench-js: --sign takes strict or none, not '${opt.sign}'`)
  process.exit(2)
}
const edges = []
if (opt.edges == null) {
  // the bench's default: i dials i+1, i+2, i+3 (mod N), each pair once
  const seen = new Set()
  for (let i = 0; i < N; i++) {
    for (let k = 1; k <= 3; k++) {
      const j = (i + k) % N
      const key = Math.min(i, j) * N + Math.max(i, j)
      if (j !== i && !seen.has(key)) { seen.add(key); edges.push([i, j]) }
    }
  }
} else {
  for (const e of opt.edges.split(',')) {
    const m = /^(\d+)-(\d+)$/.exec(e)
    if (!m || Number(m[1]) >= N || Number(m[2]) >= N || m[1] === m[2]) {
      console.error(`gossip-bench-js: bad edge '${e}' (A-B with A, B < nodes, A != B)`)
      process.exit(2)
    }
    edges.push([Number(m[1]), Number(m[2])])
  }
}

const major = Number(process.versions.node.split('.')[0])
if (major < 20) {
  console.log(`# gossip-bench-js: node ${process.versions.node} < 20`)
  process.exit(77)
}

const { gossipsub } = await import('@chainsafe/libp2p-gossipsub')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { generateKeyPair } = await import('@libp2p/crypto/keys')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { tcp } = await import('@libp2p/tcp')
const { createLibp2p } = await import('libp2p')

const TOPIC = 'gossip-bench'
const STRICT = opt.sign === 'strict'
const MAGIC = 0x67626e68 // "gbnh": our payload header, as the wisp side writes it
const HDR = 24 // magic u32, seq u32, publish time u64 ns, publisher u16, pad

const hrNs = () => process.hrtime.bigint()
const t0Ns = hrNs()
const nowNs = () => Number(hrNs() - t0Ns) // ns since start: exact in a double for 104 days

// ---- latency histogram: 64 sub-buckets per power of two (< 1.6% error), the
// same bucketing as the wisp side, so percentiles compare bucket for bucket.
const SUB = 64
const hist = new Float64Array(64 * SUB)
let histN = 0
function histAdd (ns) {
  let v = Math.max(0, Math.floor(ns))
  let e = 0
  while (v >= 2 * SUB) { v = Math.floor(v / 2); e++ }
  hist[e * SUB + v]++
  histN++
}
function histValue (i) {
  // the bucket's midpoint
  if (i < 2 * SUB) return i + 0.5 // e = 0: exact values 0..127
  const e = Math.floor(i / SUB) - 1
  const v = i - e * SUB
  return (v + 0.5) * 2 ** e
}
function histQuantile (q) {
  if (histN === 0) return NaN
  const rank = Math.max(1, Math.ceil(q * histN))
  let c = 0
  for (let i = 0; i < hist.length; i++) {
    c += hist[i]
    if (c >= rank) return histValue(i)
  }
  return NaN
}
function histMax () {
  for (let i = hist.length - 1; i >= 0; i--) if (hist[i] > 0) return histValue(i)
  return NaN
}

// Which node got which message: bit (seq * N + node), to find missing and
// repeated deliveries exactly. Allocated and touched before the baseline.
const CAP = RATE > 0 ? Math.min(MAX_MSGS, Math.ceil(RATE * (WARMUP + DURATION) * 1.05) + 64) : MAX_MSGS
const seenBits = new Uint8Array(Math.ceil((CAP * N) / 8)).fill(0)
const count = new Uint8Array(CAP).fill(0) // per seq: nodes that got it
const filler = new Uint8Array(SIZE)
randomFillSync(filler) // incompressible, as the wisp side

const rssBase = process.memoryUsage.rss()

// ---- the nodes ---------------------------------------------------------------

function fastMsgIdFn (raw) {
  // the message id from the raw fields before any validation, so a duplicate
  // is dropped before its signature is checked (what Lodestar configures):
  // from || seqno under StrictSign, the data's SHA-256 under StrictNoSign
  if (STRICT) return Buffer.from(raw.from ?? []).toString('hex') + Buffer.from(raw.seqno ?? []).toString('hex')
  return createHash('sha256').update(raw.data ?? new Uint8Array(0)).digest('base64')
}

const nodes = []
const gss = []
let dups = 0 // duplicate copies received, all nodes
let delivTotal = 0 // message events, all nodes
let benchNs = 0 // time spent in this script's own handlers (not in gossipsub)

for (let i = 0; i < N; i++) {
  const node = await createLibp2p({
    privateKey: await generateKeyPair('secp256k1'), // wisp's key type, signatures alike
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      allow: ['/ip4/127.0.0.0/ipcidr/8'],
      maxConnections: 10_000,
      inboundConnectionThreshold: 10_000,
      maxIncomingPendingConnections: 1_000
    },
    // a saturated event loop must not make js drop its own connections
    connectionMonitor: { abortConnectionOnPingFailure: false },
    services: {
      identify: identify(),
      ping: ping(),
      // Stock gossipsub except: wisp's mesh degrees (D 8, Dlo 6, Dhi 12; js
      // has 6, 4, 12) and IDONTWANT threshold (1024 bytes; js 512), the IP
      // colocation penalty off (every node is on 127.0.0.1), and
      // fastMsgIdFn unless --stock.
      pubsub: gossipsub({
        globalSignaturePolicy: STRICT ? 'StrictSign' : 'StrictNoSign',
        D: 8,
        Dlo: 6,
        Dhi: 12,
        idontwantMinDataSize: 1024,
        heartbeatInterval: HEARTBEAT,
        scoreParams: { IPColocationFactorWeight: 0 },
        ...(opt.stock ? {} : { fastMsgIdFn })
      })
    }
  })
  await node.start()
  const gs = node.services.pubsub
  // gossipsub reports each duplicate copy to its scorer (both the fast-id
  // and the seen-cache path): count them there.
  const dupOf = gs.score.duplicateMessage.bind(gs.score)
  gs.score.duplicateMessage = (...a) => { dups++; return dupOf(...a) }
  gs.subscribe(TOPIC)
  const me = i
  gs.addEventListener('gossipsub:message', (evt) => onMessage(me, evt.detail.msg.data))
  nodes.push(node)
  gss.push(gs)
}

const nbr = nodes.map(() => new Set())
for (const [a, b] of edges) { nbr[a].add(b); nbr[b].add(a) }
const t = Date.now()
await Promise.all(edges.map(([a, b]) => nodes[a].dial(nodes[b].getMultiaddrs()[0])))
// ready when every node knows each neighbour subscribes (its gossip peers)
for (;;) {
  if (gss.every((gs, i) => gs.getSubscribers(TOPIC).length >= nbr[i].size)) break
  if (Date.now() - t > 30_000) {
    console.log(`# gossip-bench-js: topic peers not up after 30 s: ${gss.map((gs) => gs.getSubscribers(TOPIC).length)}`)
    process.exit(1)
  }
  await new Promise((resolve) => setTimeout(resolve, 20))
}
console.log(`# gossip-bench-js: ${N} nodes, ${edges.length} connections up in ${Date.now() - t} ms`)

// ---- the run -------------------------------------------------------------------

const W = { warm: 0, window: 1, drain: 2, done: 3 }
let phase = W.warm
let seq = 0 // messages published (and the next one's number)
let pubFailed = 0
let appDups = 0 // a node got the same message twice (gossipsub must never do that)
let stalls = 0
let complete = 0 // messages delivered to every other node
let writtenOff = 0 // closed loop: messages given up on after a stall
let winFirst = -1 // first seq of the window
let winEnd = -1 // seq counter when the window closed
let got = 0 // deliveries of window messages
let lastDelivery = 0
let lastWriteOff = 0
const tWarm = nowNs()
const tStart = tWarm + WARMUP * 1e9
const tEnd = tStart + DURATION * 1e9
let cpuStart, dupStart, delivStart, delivAtEnd, benchStart
let rr = 0

const buf = filler
function publishOne () {
  const b0 = hrNs()
  const node = rr
  rr = (rr + 1) % N
  const data = new Uint8Array(SIZE) // gossipsub keeps it (message cache): one per message
  data.set(buf)
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength)
  dv.setUint32(0, MAGIC, true)
  dv.setUint32(4, seq, true)
  dv.setUint16(16, node, true)
  const s = seq++
  const b1 = hrNs()
  dv.setBigUint64(8, b1 - t0Ns, true) // the publish time: signing and sending come after it
  gss[node].publish(TOPIC, data).catch((err) => {
    pubFailed++
    writtenOff++ // it will never complete
    if (pubFailed <= 3) console.log(`# gossip-bench-js: publish ${s} from node ${node} failed: ${err.message}`)
  })
  benchNs += Number(b1 - b0)
}

function onMessage (me, data) {
  const b0 = hrNs()
  const t = Number(b0 - t0Ns)
  delivTotal++
  lastDelivery = t
  if (data.length >= HDR) {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength)
    if (dv.getUint32(0, true) === MAGIC) {
      const s = dv.getUint32(4, true)
      if (s < CAP) {
        const bit = s * N + me
        const byte = bit >> 3
        const mask = 1 << (bit & 7)
        if (seenBits[byte] & mask) {
          appDups++
        } else {
          seenBits[byte] |= mask
          if (++count[s] === N - 1) complete++
          if (winFirst >= 0 && s >= winFirst) {
            got++
            histAdd(t - Number(dv.getBigUint64(8, true)))
          }
        }
      }
    }
  }
  benchNs += Number(hrNs() - b0)
  if (RATE === 0) schedulePump()
}

// closed loop: publish while fewer than INFLIGHT messages are not yet
// delivered to every other node (a window of messages: one slow node holds it)
let pumpQueued = false
function schedulePump () {
  if (!pumpQueued) {
    pumpQueued = true
    setImmediate(pump)
  }
}
function outstanding () {
  return Math.max(0, seq - complete - writtenOff)
}
function pump () {
  pumpQueued = false
  if (phase > W.window) return
  while (outstanding() < INFLIGHT && seq < CAP) publishOne()
}

// open loop: every message due by now; a publisher more than a second late
// (a saturated event loop) skips what it missed rather than bursting
const period = RATE > 0 ? 1e9 / RATE : 0
let nextPub = tWarm
let skipped = 0
function tick () {
  const now = nowNs()
  if (now - nextPub > 1e9) {
    const k = Math.floor((now - nextPub) / period)
    skipped += k
    nextPub += k * period
  }
  while (nextPub <= now && seq < CAP) {
    publishOne()
    nextPub += period
  }
}

function phaseStep () {
  const now = nowNs()
  if (phase === W.warm && now >= tStart) {
    phase = W.window
    winFirst = seq
    cpuStart = process.cpuUsage()
    dupStart = dups
    delivStart = delivTotal
    benchStart = benchNs
  }
  if (phase === W.window && now >= tEnd) {
    phase = W.drain
    winEnd = seq
    delivAtEnd = delivTotal
  }
  if (phase <= W.window && RATE === 0 && now - lastDelivery > 1e9 && now - lastWriteOff > 1e9 && outstanding() > 0) {
    // closed loop stuck on deliveries that have not come for a second (lost,
    // or, in the warm-up, published before the meshes formed): let them go;
    // counted in the window only
    if (phase === W.window) stalls++
    writtenOff += outstanding()
    lastWriteOff = now
    schedulePump()
  }
  if (phase === W.drain) {
    const expected = (winEnd - winFirst) * (N - 1)
    if (got >= expected || now - Math.max(lastDelivery, tEnd) > QUIET * 1e9 || now - tEnd > DRAIN * 1e9) {
      phase = W.done
      finish(now)
      return
    }
  }
  if (phase <= W.window) {
    if (RATE > 0) {
      tick()
      setTimeout(phaseStep, Math.max(0, Math.min((nextPub - nowNs()) / 1e6, 50)))
    } else {
      schedulePump()
      setTimeout(phaseStep, 20)
    }
  } else {
    setTimeout(phaseStep, 20)
  }
}

function finish (now) {
  const cpu = process.cpuUsage(cpuStart)
  const cpuS = (cpu.user + cpu.system) / 1e6
  const expected = (winEnd - winFirst) * (N - 1)
  const intervalEnd = Math.max(tEnd, Math.min(lastDelivery, now))
  const spanS = (intervalEnd - tStart) / 1e9
  const deliv = delivTotal - delivStart
  const rss = process.memoryUsage.rss()
  const hwm = process.resourceUsage().maxRSS * 1024
  const kv = {
    impl: 'js',
    nodes: N,
    conns: edges.length,
    size: SIZE,
    sign: opt.sign,
    rate: RATE,
    inflight: RATE === 0 ? INFLIGHT : 0,
    fast_msg_id: opt.stock ? 0 : 1,
    window_s: DURATION,
    published: winEnd - winFirst,
    pub_per_s: (winEnd - winFirst) / DURATION,
    publish_failed: pubFailed,
    skipped,
    expected,
    got,
    missing: expected - got,
    app_dups: appDups,
    stalls,
    deliveries: deliv,
    span_s: spanS,
    delivered_per_s: deliv / spanS,
    window_delivered_per_s: (delivAtEnd - delivStart) / DURATION,
    drain_s: Math.max(0, (Math.min(lastDelivery, now) - tEnd) / 1e9),
    lat_p50_us: histQuantile(0.5) / 1e3,
    lat_p99_us: histQuantile(0.99) / 1e3,
    lat_p999_us: histQuantile(0.999) / 1e3,
    lat_max_us: histMax() / 1e3,
    cpu_s: cpuS,
    cpu_cores: cpuS / spanS,
    cpu_us_per_delivery: deliv > 0 ? cpuS * 1e6 / deliv : NaN,
    dup_per_delivery: deliv > 0 ? (dups - dupStart) / deliv : NaN,
    rss_base_kib: Math.round(rssBase / 1024),
    rss_kib_per_node: (rss - rssBase) / 1024 / N,
    hwm_kib_per_node: (hwm - rssBase) / 1024 / N,
    bench_cpu_share: cpuS > 0 ? (benchNs - benchStart) / 1e9 / cpuS : NaN
  }
  const fmt = (v) => typeof v === 'number' ? (Number.isInteger(v) ? String(v) : Number.isFinite(v) ? v.toPrecision(6) : 'nan') : v
  console.log('result ' + Object.entries(kv).map(([k, v]) => `${k}=${fmt(v)}`).join(' '))
  // no orderly stop of N nodes: the figures are out, the process ends
  process.exit(0)
}

phaseStep()
