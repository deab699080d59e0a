// gossipsub self-test of js-peer.mjs: N js-libp2p peers on loopback, peer i
// dials peers i+1 and i+2 (mod N), so with N = 6 every peer has 4 neighbours
// and the message from a peer reaches the one opposite it only by
// forwarding. Every peer subscribes to one topic at start. Per scenario
// (signature policy x message id):
//
//   1. identify lists /meshsub/1.2.0, 1.1.0, 1.0.0; every peer's mesh holds
//      all its neighbours (waited for with deadlines);
//   2. every peer publishes 3 text messages, one hex and one random-bytes
//      message; every other peer must get each one (from, msg_id, size,
//      sha256, data checked; the id against the id rule of the scenario);
//   3. publish_failed: no_peers, too_large, duplicate (for content ids) /
//      a fresh id for the same data (StrictSign default ids);
//   4. publish_bad_sig (wrong, missing and garbage signatures, or a signed
//      message under StrictNoSign) followed by a good message: the good one
//      arrives everywhere, the bad ones nowhere;
//   5. burst: --burst messages of --size random bytes from --publishers
//      peers at once; every subscriber gets every one; measured: deliveries
//      per second and the publish -> delivery latency (p50/p90/p99/max, from
//      the publish command's start to the receiver's message event, both
//      CLOCK_MONOTONIC on this host);
//   6. the last peer unsubscribes; its neighbours see it; a message from
//      peer 0 reaches every other peer but not it;
//   7. at the end: every peer got every message it should have exactly once
//      (counted by msg_id) and nothing else, no error events, quit, exit 0.
//
// Prints one machine-parsable line per burst:
//   row {"bench":"js_gossip_burst","sign":"strict","msg_id":"default",...}
//
// usage: node js_gossip_selftest.mjs [--peers N] [--burst N] [--size BYTES]
//          [--publishers K] [--scenarios strict:default,none:default,strict:content,strict:default:fast]
//          [--report FILE] [--quiet]
// Exit 0 all passed, 1 any failure, 2 usage, 77 skipped (node < 20 or no
// node_modules).
import { createHash } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
let opt
try {
  opt = parseArgs({
    options: {
      peers: { type: 'string', default: '6' },
      burst: { type: 'string', default: '1000' },
      size: { type: 'string', default: '1024' },
      publishers: { type: 'string', default: '1' },
      'burst-timeout': { type: 'string', default: '300' },
      scenarios: { type: 'string', default: 'strict:default,none:default,strict:content,strict:default:fast' },
      report: { type: 'string' },
      quiet: { type: 'boolean', default: false }
    }
  }).values
} catch (err) {
  console.error(`js_gossip_selftest: ${err.message}`)
  process.exit(2)
}
const N = Number(opt.peers)
const BURST = Number(opt.burst)
const SIZE = Number(opt.size)
const PUBLISHERS = Number(opt.publishers)
const SCENARIOS = opt.scenarios.split(',').map((s) => {
  const [sign, msgId, fast, ...rest] = s.split(':')
  return { sign, msgId: msgId ?? 'default', fast: fast === 'fast', bad: rest.length > 0 || (fast != null && fast !== 'fast') }
})
if (!(Number.isSafeInteger(N) && N >= 3 && N <= 32) || !(Number.isSafeInteger(BURST) && BURST >= 0) ||
    !(Number.isSafeInteger(SIZE) && SIZE >= 1 && SIZE <= 1 << 20) ||
    !(Number.isSafeInteger(PUBLISHERS) && PUBLISHERS >= 1 && PUBLISHERS <= N) ||
    SCENARIOS.some((s) => s.bad || !['strict', 'none'].includes(s.sign) || !['default', 'content'].includes(s.msgId))) {
  console.error('js_gossip_selftest: --peers 3..32, --burst >= 0, --size 1..1048576, --publishers 1..peers, ' +
    '--scenarios sign:msgid[:fast],... with sign strict|none and msgid default|content')
  process.exit(2)
}

const major = Number(process.versions.node.split('.')[0])
if (major < 20) {
  console.log(`SKIP: node ${process.versions.node} < 20`)
  process.exit(77)
}
if (!existsSync(join(here, 'node_modules', '@chainsafe', 'libp2p-gossipsub', 'package.json'))) {
  console.log('SKIP: node_modules missing (run npm-setup.sh)')
  process.exit(77)
}

const { JsonPeer } = await import('./peer-driver.mjs')
const { peerIdFromString } = await import('@libp2p/peer-id')
const { publicKeyToProtobuf } = await import('@libp2p/crypto/keys')

const PEER = join(here, 'js-peer.mjs')
const S = 1000 // ms
const TOPIC = 'wisp-selftest'
const MAX_MESSAGE = 1 << 20 // js-peer's --max-message-size default

let failures = 0
let checks = 0
function check (cond, what, detail = '') {
  checks++
  if (cond) {
    console.log(`ok   ${what}`)
  } else {
    failures++
    console.log(`FAIL ${what}${detail ? `: ${detail}` : ''}`)
  }
  return cond
}
const sha = (b) => createHash('sha256').update(b).digest('hex')
const hexKeyOf = (peerId) => Buffer.from(publicKeyToProtobuf(peerIdFromString(peerId).publicKey)).toString('hex')

function percentile (sorted, q) {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[i]
}

// Per-peer index of message events, built incrementally (the burst brings
// thousands of events; never rescan).
class Inbox {
  constructor (peer) {
    this.peer = peer
    this.seen = 0
    this.byId = new Map() // msg_id -> [events]
    this.errors = []
  }

  scan () {
    const evs = this.peer.events
    for (; this.seen < evs.length; this.seen++) {
      const e = evs[this.seen]
      if (e.event === 'message') {
        let l = this.byId.get(e.msg_id)
        if (l == null) this.byId.set(e.msg_id, (l = []))
        l.push(e)
      } else if (e.event === 'error') {
        this.errors.push(e)
      }
    }
  }

  has (id) {
    this.scan()
    return this.byId.has(id)
  }

  get (id) {
    this.scan()
    return this.byId.get(id)?.[0]
  }

  // Waits until every id in ids has arrived.
  async waitAll (ids, timeoutMs, what) {
    let missing = [...ids]
    await this.peer.until(() => {
      this.scan()
      missing = missing.filter((id) => !this.byId.has(id))
      return missing.length === 0
    }, timeoutMs, what)
  }
}

const figures = { peers: N, scenarios: [] }
const allPeers = [] // for cleanup

async function scenario ({ sign, msgId, fast }) {
  const tag = `${sign}/${msgId}${fast ? '/fast' : ''}`
  console.log(`== scenario sign=${sign} msg_id=${msgId}${fast ? ' fast-msg-id' : ''}, ${N} peers`)
  const peers = []
  for (let i = 0; i < N; i++) {
    const p = new JsonPeer(`P${i}`, [process.execPath, PEER, '--listen', '/ip4/127.0.0.1/tcp/0',
      '--topic', TOPIC, '--sign', sign, '--msg-id', msgId, '--heartbeat-ms', '1000', '--no-keepalive-abort', ...(fast ? ['--fast-msg-id'] : [])],
    { log: !opt.quiet })
    peers.push(p)
    allPeers.push(p)
  }
  const inbox = peers.map((p) => new Inbox(p))
  const fig = { sign, msg_id: msgId, fast_msg_id: fast }
  figures.scenarios.push(fig)
  try {
    const ids = []
    const addrs = []
    for (const p of peers) {
      const l = await p.expect({ event: 'listening' }, 30 * S, `${p.name} listening`)
      await p.expect({ event: 'subscribed', topic: TOPIC }, 5 * S, `${p.name} subscribed`)
      ids.push(l.peer_id)
      addrs.push(l.addrs.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/')))
    }
    const indexOf = new Map(ids.map((id, i) => [id, i]))

    // Topology: i dials i+1 and i+2 (mod N); no pair dials twice for N >= 5.
    const nbr = ids.map(() => new Set())
    const dials = []
    for (let i = 0; i < N; i++) {
      for (const d of [1, 2]) {
        const j = (i + d) % N
        if (j === i || nbr[i].has(j)) continue
        nbr[i].add(j)
        nbr[j].add(i)
        dials.push(peers[i].request({ cmd: 'dial', addr: addrs[j] }, 'dialed', 30 * S))
      }
    }
    await Promise.all(dials)
    check(true, `[${tag}] ${dials.length} dials`)

    // identify lists the gossipsub protocols (checked on P0's view of P1)
    const idf = await peers[0].expect({ event: 'identify', peer_id: ids[1] }, 15 * S, 'P0 identify of P1')
    for (const pr of ['/meshsub/1.2.0', '/meshsub/1.1.0', '/meshsub/1.0.0', '/floodsub/1.0.0']) {
      check(idf.protocols.includes(pr), `[${tag}] identify lists ${pr}`, JSON.stringify(idf.protocols))
    }

    // Mesh: every peer has all its neighbours as known subscribers and in
    // its mesh (degree <= Dlo 4 < D 6: the first heartbeat grafts them all).
    const meshes = await Promise.all(peers.map((p, i) => p.request({
      cmd: 'mesh', topic: TOPIC, wait_mesh: nbr[i].size, wait_peers: nbr[i].size, timeout_ms: 20 * S
    }, 'gossip_peers', 30 * S)))
    meshes.forEach((m, i) => {
      const want = [...nbr[i]].map((j) => ids[j]).sort()
      check(m.timed_out !== true && JSON.stringify(m.peers) === JSON.stringify(want) &&
        JSON.stringify(m.mesh) === JSON.stringify(want), `[${tag}] P${i} mesh = peers = its ${want.length} neighbours`,
      JSON.stringify(m))
    })

    // expected[i]: msg_ids peer i must receive (exactly once); forbidden: must not
    const expected = peers.map(() => new Set())
    const forbidden = new Set()
    const expectAllBut = (from, id, except = new Set()) => {
      for (let i = 0; i < N; i++) if (i !== from && !except.has(i)) expected[i].add(id)
    }
    const idRule = (ev, publisher, text) => {
      if (msgId === 'content' || sign === 'none') return ev.msg_id === ev.sha256
      // StrictSign default: PublicKey protobuf of the author || 8-byte seqno
      return ev.msg_id === hexKeyOf(ids[publisher]) + ev.seqno && /^[0-9a-f]{16}$/.test(ev.seqno)
    }

    // 2. Every peer publishes text, hex and random messages.
    const sent = [] // { from, id, text?, sha, size }
    for (let i = 0; i < N; i++) {
      const payloads = [
        { data: `hello ${i}.0 from ${tag}` },
        { data: `héllo ${i}.1 ✓` },
        { data: `hello ${i}.2` },
        { hex: `00ff${i.toString(16).padStart(2, '0')}80` },
        { size: 3000 }
      ]
      for (const pl of payloads) {
        const r = await peers[i].request({ cmd: 'publish', topic: TOPIC, ...pl }, ['published', 'publish_failed'], 30 * S)
        if (!check(r.event === 'published' && typeof r.msg_id === 'string' && r.peers === nbr[i].size,
          `[${tag}] P${i} publish ${JSON.stringify(pl)} -> ${r.peers} peers`, JSON.stringify(r))) continue
        const bytes = pl.data != null ? Buffer.from(pl.data) : pl.hex != null ? Buffer.from(pl.hex, 'hex') : null
        sent.push({ from: i, id: r.msg_id, text: pl.data, sha: bytes && sha(bytes), size: bytes?.length ?? pl.size, t_us: r.t_us })
        expectAllBut(i, r.msg_id)
      }
    }
    await Promise.all(inbox.map((b, i) => b.waitAll(sent.filter((s) => s.from !== i).map((s) => s.id), 30 * S,
      `P${i}: all ${sent.length - 5} messages of the others`)))
    let bad = []
    let forwarded = 0
    for (const s of sent) {
      for (let i = 0; i < N; i++) {
        if (i === s.from) continue
        const ev = inbox[i].get(s.id)
        const ok = ev.topic === TOPIC && ev.size === s.size && (s.sha == null || ev.sha256 === s.sha) &&
          ev.data === (s.text ?? undefined) && (sign === 'strict' ? ev.from === ids[s.from] : ev.from === null) &&
          idRule(ev, s.from) && nbr[i].has(indexOf.get(ev.propagation_source))
        if (!ok) bad.push({ at: i, s, ev })
        if (!nbr[i].has(s.from)) forwarded++
      }
    }
    check(bad.length === 0, `[${tag}] ${sent.length} messages x ${N - 1} receivers: fields, id rule, propagation source`,
      JSON.stringify(bad.slice(0, 3)))
    check(forwarded > 0 || N <= 5, `[${tag}] ${forwarded} deliveries to non-neighbours (by forwarding)`)
    // One message at a time (each publish waited for): the latency of a
    // quiet network, one and two hops.
    if (bad.length === 0 && sent.length > 0) {
      const pubT = new Map(sent.map((s) => [s.id, s.t_us]))
      const lat = []
      for (const s of sent) for (let i = 0; i < N; i++) if (i !== s.from) lat.push(inbox[i].get(s.id).t_us - pubT.get(s.id))
      lat.sort((a, b) => a - b)
      const row = {
        bench: 'js_gossip_idle', sign, msg_id: msgId, fast_msg_id: fast, peers: N, msgs: sent.length,
        deliveries: lat.length, p50_us: percentile(lat, 0.5), p90_us: percentile(lat, 0.9), max_us: lat[lat.length - 1]
      }
      fig.idle = row
      console.log(`row ${JSON.stringify(row)}`)
    }

    // 3. publish_failed
    const np = await peers[0].request({ cmd: 'publish', topic: 'nobody-here', data: 'x' }, ['published', 'publish_failed'], 10 * S)
    check(np.event === 'publish_failed' && np.reason === 'no_peers', `[${tag}] publish to an empty topic: no_peers`, JSON.stringify(np))
    const tl = await peers[0].request({ cmd: 'publish', topic: TOPIC, size: MAX_MESSAGE + 1 }, ['published', 'publish_failed'], 10 * S)
    check(tl.event === 'publish_failed' && tl.reason === 'too_large', `[${tag}] ${MAX_MESSAGE + 1} bytes: too_large`, JSON.stringify(tl))
    const again = await peers[0].request({ cmd: 'publish', topic: TOPIC, data: `hello 0.0 from ${tag}` }, ['published', 'publish_failed'], 10 * S)
    const first = sent.find((s) => s.from === 0 && s.text === `hello 0.0 from ${tag}`)
    if (msgId === 'content' || sign === 'none') {
      check(again.event === 'publish_failed' && again.reason === 'duplicate' && again.msg_id === first?.id,
        `[${tag}] the same data again: duplicate (same content id)`, JSON.stringify(again))
    } else {
      check(again.event === 'published' && again.msg_id !== first?.id,
        `[${tag}] the same data again: published with a fresh seqno id`, JSON.stringify(again))
      if (again.event === 'published') expectAllBut(0, again.msg_id)
    }

    // 4. Bad signatures from P1, then a good message on the same streams.
    const hows = sign === 'strict' ? ['wrong', 'missing', 'garbage'] : ['signed']
    for (const how of hows) {
      const r = await peers[1].request({ cmd: 'publish_bad_sig', topic: TOPIC, data: `bad sig ${how} ${tag}`, how: how === 'signed' ? undefined : how },
        ['published', 'publish_failed'], 10 * S)
      check(r.event === 'published' && r.bad_sig === true && r.peers === nbr[1].size,
        `[${tag}] P1 publish_bad_sig ${how} sent to ${r.peers} peers`, JSON.stringify(r))
      if (r.msg_id != null) forbidden.add(r.msg_id)
    }
    const good = await peers[1].request({ cmd: 'publish', topic: TOPIC, data: `good after bad ${tag}` }, ['published', 'publish_failed'], 10 * S)
    if (check(good.event === 'published', `[${tag}] P1 good message after the bad ones`, JSON.stringify(good))) {
      expectAllBut(1, good.msg_id)
      await Promise.all(inbox.map((b, i) => i === 1 ? null : b.waitAll([good.msg_id], 15 * S, `P${i}: good after bad`)))
      check(inbox.every((b) => [...forbidden].every((id) => !b.has(id))), `[${tag}] no peer delivered a bad-signature message`)
    }

    // 5. Burst
    if (BURST > 0) {
      const pubs = peers.slice(0, PUBLISHERS)
      const perPub = pubs.map((_, k) => Math.floor(BURST / PUBLISHERS) + (k < BURST % PUBLISHERS ? 1 : 0))
      const tags = pubs.map(() => [])
      const t0 = Date.now()
      pubs.forEach((p, k) => {
        const lines = []
        for (let m = 0; m < perPub[k]; m++) {
          const id = `burst-${tag}-${k}-${m}`
          tags[k].push(id)
          lines.push(JSON.stringify({ cmd: 'publish', topic: TOPIC, size: SIZE, id }))
        }
        if (!opt.quiet) console.log(`${p.name}> ${perPub[k]} publish commands (${SIZE} bytes each)`)
        p.child.stdin.write(lines.join('\n') + '\n')
      })
      // published events
      const pubEv = new Map() // msg_id -> { from, t_us }
      let pubFailed = []
      await Promise.all(pubs.map(async (p, k) => {
        const want = new Set(tags[k])
        let seen = 0
        await p.until(() => {
          for (; seen < p.events.length; seen++) {
            const e = p.events[seen]
            if (!want.has(e.id)) continue
            want.delete(e.id)
            if (e.event === 'published') pubEv.set(e.msg_id, { from: k, t_us: e.t_us })
            else pubFailed.push(e)
          }
          return want.size === 0
        }, 300 * S, `${p.name}: ${perPub[k]} burst publish results`)
      }))
      check(pubFailed.length === 0 && pubEv.size === BURST, `[${tag}] burst: ${BURST} published`, JSON.stringify(pubFailed.slice(0, 3)))
      const burstIds = [...pubEv.keys()]
      for (const [id, { from }] of pubEv) expectAllBut(from, id)
      await Promise.all(inbox.map((b, i) => b.waitAll(burstIds.filter((id) => pubEv.get(id).from !== i), Number(opt['burst-timeout']) * S,
        `P${i}: the burst`)))
      const wall = Date.now() - t0
      const lat = []
      let firstPub = Infinity
      let lastDelivery = 0
      for (const [, { t_us: t }] of pubEv) firstPub = Math.min(firstPub, t)
      for (let i = 0; i < N; i++) {
        for (const id of burstIds) {
          const pe = pubEv.get(id)
          if (pe.from === i) continue
          const ev = inbox[i].get(id)
          lat.push(ev.t_us - pe.t_us)
          lastDelivery = Math.max(lastDelivery, ev.t_us)
        }
      }
      lat.sort((a, b) => a - b)
      const spanUs = Math.max(1, lastDelivery - firstPub)
      const row = {
        bench: 'js_gossip_burst',
        sign,
        msg_id: msgId,
        fast_msg_id: fast,
        peers: N,
        degree: Math.max(...nbr.map((s) => s.size)),
        publishers: PUBLISHERS,
        msgs: BURST,
        size: SIZE,
        deliveries: lat.length,
        elapsed_ms: Math.round(spanUs / 100) / 10,
        deliveries_per_s: Math.round(lat.length / (spanUs / 1e6)),
        msgs_per_s: Math.round(BURST / (spanUs / 1e6)),
        p50_us: percentile(lat, 0.5),
        p90_us: percentile(lat, 0.9),
        p99_us: percentile(lat, 0.99),
        max_us: lat[lat.length - 1],
        wall_ms: wall
      }
      fig.burst = row
      console.log(`row ${JSON.stringify(row)}`)
      check(lat.length === BURST * (N - 1) && lat[0] >= 0, `[${tag}] burst: ${lat.length} deliveries, ` +
        `${row.deliveries_per_s}/s, p50 ${(row.p50_us / 1000).toFixed(1)} ms, p99 ${(row.p99_us / 1000).toFixed(1)} ms`)
    }

    // After a burst a peer can still be busy for many seconds with the
    // duplicate copies it queued (StrictSign verifies every copy unless
    // --fast-msg-id), and reads its stdin only then: generous deadlines.
    const LATE = BURST > 0 ? 180 * S : 15 * S

    // 6. The last peer unsubscribes; its neighbours see it.
    const last = N - 1
    await peers[last].request({ cmd: 'unsubscribe', topic: TOPIC }, 'unsubscribed', LATE)
    await Promise.all([...nbr[last]].map((j) => peers[j].expect(
      { event: 'peer_subscription', peer_id: ids[last], topic: TOPIC, subscribe: false }, LATE, `P${j} sees P${last} unsubscribe`)))
    const lm = await peers[last].request({ cmd: 'mesh', topic: TOPIC }, 'gossip_peers', LATE)
    check(lm.subscribed === false && lm.mesh.length === 0, `[${tag}] P${last} unsubscribed, mesh empty`, JSON.stringify(lm))
    const after = await peers[0].request({ cmd: 'publish', topic: TOPIC, data: `after unsubscribe ${tag}` }, ['published', 'publish_failed'], LATE)
    if (check(after.event === 'published' && after.peers === [...nbr[0]].filter((j) => j !== last).length,
      `[${tag}] P0 publishes after P${last} left: ${after.peers} peers`, JSON.stringify(after))) {
      expectAllBut(0, after.msg_id, new Set([last]))
      await Promise.all(inbox.map((b, i) => i === 0 || i === last ? null : b.waitAll([after.msg_id], LATE, `P${i}: message after unsubscribe`)))
    }

    // 7. Exactly once, nothing else; no connection lost; quit.
    for (let i = 0; i < N; i++) {
      const lost = peers[i].events.filter((e) => e.event === 'disconnected')
      check(lost.length === 0, `[${tag}] P${i}: no connection lost`, JSON.stringify(lost.slice(0, 3)))
    }
    for (let i = 0; i < N; i++) {
      inbox[i].scan()
      const dups = [...inbox[i].byId].filter(([, l]) => l.length !== 1).map(([id, l]) => `${id} x${l.length}`)
      const missing = [...expected[i]].filter((id) => !inbox[i].byId.has(id))
      const extra = [...inbox[i].byId.keys()].filter((id) => !expected[i].has(id))
      check(dups.length === 0 && missing.length === 0 && extra.length === 0,
        `[${tag}] P${i}: ${expected[i].size} messages, each exactly once, nothing else`,
        JSON.stringify({ dups: dups.slice(0, 3), missing: missing.slice(0, 3), extra: extra.slice(0, 3) }))
    }
    for (const p of peers) p.send({ cmd: 'quit' })
    for (const p of peers) {
      await p.expect({ event: 'quit' }, LATE, `${p.name} quit`)
      const ex = await p.stop(LATE)
      check(ex.code === 0, `[${tag}] ${p.name} exit status 0`, JSON.stringify(ex))
    }
    for (let i = 0; i < N; i++) {
      inbox[i].scan()
      check(inbox[i].errors.length === 0, `[${tag}] P${i}: no error events`, JSON.stringify(inbox[i].errors.slice(0, 3)))
    }
  } catch (err) {
    failures++
    console.log(`FAIL [${tag}] ${err.message}`)
  } finally {
    for (const p of peers) {
      if (p.exit == null) {
        p.child.stdin.end()
        await p.stop(5 * S)
      }
    }
  }
}

try {
  for (const sc of SCENARIOS) await scenario(sc)
} finally {
  for (const p of allPeers) if (p.exit == null) await p.stop(1000)
}

console.log(`figures ${JSON.stringify(figures)}`)
if (opt.report != null) writeFileSync(opt.report, JSON.stringify(figures, null, 2) + '\n')
console.log(`${checks - failures}/${checks} checks passed`)
process.exit(failures === 0 ? 0 : 1)
