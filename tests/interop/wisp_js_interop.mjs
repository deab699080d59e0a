// wisp-node against js-libp2p (js-peer.mjs) on loopback, both directions:
//
//   scenario "js->wisp": wisp-node listens, js-peer dials it;
//   scenario "wisp->js": js-peer listens, wisp-node dials it (--dial).
//
// Each scenario: connected (directions, addresses) and identify both ways
// (peer id, agent, protocol version, protocols, listen address, observed
// address, public key = the protobuf PublicKey of the other side's key file),
// ping both ways, echo 64 MiB on one stream both ways (digest = the README
// vector), echo 100 x 256 KiB both ways, rtt 1 KiB x 1000 both ways, perf
// (upload 16 MiB, download 64 MiB) both ways, ~12 s idle during which js's
// keep-alive ping must reach wisp and be answered (no disconnect), close by
// wisp (both see the disconnect), wisp's stats (buffers back to the level
// before any connection, no peer errors), quit (both exit 0), and no error
// event from either peer at any time.
//
// Every step prints PASS or FAIL; the transfer figures are printed at the end
// (they are measurements, not assertions). Exit 0 when everything passed,
// 1 otherwise, 2 usage, 77 (ctest: skipped) when node is older than 20 or
// node_modules is missing (npm-setup.sh did not run).
//
// usage: node wisp_js_interop.mjs --wisp-node PATH --wisp-keygen PATH
//                                 [--quiet] [--report FILE] [--scenario NAME]
//   --quiet          do not echo every event and command
//   --report FILE    also write the figures as JSON
//   --scenario NAME  run only "js->wisp" or "wisp->js"
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
let opt
try {
  opt = parseArgs({
    options: {
      'wisp-node': { type: 'string' },
      'wisp-keygen': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      report: { type: 'string' },
      scenario: { type: 'string' }
    }
  }).values
} catch (err) {
  console.error(`wisp_js_interop: ${err.message}`)
  process.exit(2)
}
if (opt['wisp-node'] == null || opt['wisp-keygen'] == null ||
    (opt.scenario != null && !['js->wisp', 'wisp->js'].includes(opt.scenario))) {
  console.error('usage: node wisp_js_interop.mjs --wisp-node PATH --wisp-keygen PATH [--quiet] [--report FILE] [--scenario js->wisp|wisp->js]')
  process.exit(2)
}

const major = Number(process.versions.node.split('.')[0])
if (major < 20) {
  console.log(`SKIP: node ${process.versions.node} < 20`)
  process.exit(77)
}
if (!existsSync(join(here, 'node_modules', 'libp2p', 'package.json'))) {
  console.log('SKIP: node_modules missing (run npm-setup.sh)')
  process.exit(77)
}

await import('./polyfill.mjs')
const { JsonPeer } = await import('./peer-driver.mjs')
const { EchoData } = await import('./echo-data.mjs')
const { privateKeyFromProtobuf, publicKeyToProtobuf } = await import('@libp2p/crypto/keys')
const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')

const KiB = 1024
const MiB = 1 << 20
const S = 1000 // ms
const JS_PEER = join(here, 'js-peer.mjs')
const WISP_NODE = opt['wisp-node']
const WISP_KEYGEN = opt['wisp-keygen']

// The wisp-node and js-peer protocols this test relies on.
const PROTO = {
  id: '/ipfs/id/1.0.0',
  ping: '/ipfs/ping/1.0.0',
  echo: '/wisp/echo/1.0.0',
  perf: '/perf/1.0.0'
}
const WISP_AGENT = 'wisp/0.1.0'
const PROTOCOL_VERSION = 'ipfs/0.1.0'
const SHA_64MIB_S0 = 'c33e4c943c5f403d997a3b93f6b066dcf7bb33567bf59adb76bb9fd92b289842' // README vector
const sha = (b) => createHash('sha256').update(b).digest('hex')

// Transfers (the same both ways).
const ECHO_BIG = { bytes: 64 * MiB, streams: 1 }
const ECHO_MANY = { bytes: 256 * KiB, streams: 100 }
const RTT = { size: 1 * KiB, count: 1000 }
const PERF = { upload: 16 * MiB, download: 64 * MiB }
const IDLE_MS = 12 * S // js pings every connection every 10 s
const SHA_MANY_S0 = sha(new EchoData(0).next(ECHO_MANY.bytes))
const SCENARIO_STEPS = 11

// ---- results -----------------------------------------------------------------

let failures = 0
let checks = 0
const steps = [] // { scenario, name, ok, why }
const figures = {}

function check (cond, what, detail = '') {
  checks++
  if (cond) {
    console.log(`  ok   ${what}`)
  } else {
    failures++
    console.log(`  FAIL ${what}${detail !== '' ? `: ${detail}` : ''}`)
  }
  return cond
}
const eq = (got, want, what) =>
  check(got === want, what, `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)

// Runs one step of a scenario; prints PASS/FAIL. A step that throws (a
// deadline passed, a command failed, a peer died) ends its scenario.
async function step (scenario, name, fn) {
  console.log(`--- [${scenario}] ${name}`)
  const before = failures
  try {
    await fn()
  } catch (err) {
    failures++
    console.log(`FAIL [${scenario}] ${name}: ${err.message}`)
    steps.push({ scenario, name, ok: false, why: err.message })
    throw err
  }
  const ok = failures === before
  console.log(`${ok ? 'PASS' : 'FAIL'} [${scenario}] ${name}`)
  steps.push({ scenario, name, ok })
}

// ---- helpers ------------------------------------------------------------------

const stripP2p = (a) => a == null ? a : a.replace(/\/p2p\/[^/]+$/, '')
const tcpPort = (a) => Number(/\/tcp\/(\d+)/.exec(a ?? '')?.[1] ?? NaN)
const sec = (us) => Math.round(us / 1e3) / 1e3

// Resolves after ms, or as soon as pred matches an event of peer p not yet
// taken (to the event). Used to wait out an idle period while watching for
// something that must not happen.
function watch (p, pred, ms) {
  return p.expect(pred, ms, 'watched event').catch((err) => {
    if (/ no watched event within /.test(err.message)) return null
    throw err
  })
}

// Sends stats requests until pred(stats) holds or the deadline passes;
// resolves to { stats, polls }. (wisp frees a closed connection's buffers
// on its worker thread, maybe just after the disconnected event.)
async function statsUntil (w, pred, ms) {
  const end = Date.now() + ms
  let polls = 0
  for (;;) {
    const st = await w.request({ cmd: 'stats' }, 'stats', 10 * S)
    polls++
    if (pred(st) || Date.now() >= end) return { stats: st, polls }
    await new Promise((resolve) => setTimeout(resolve, 20)) // poll interval, not a synchronization
  }
}

function keyInfo (file) {
  const key = privateKeyFromProtobuf(new Uint8Array(readFileSync(file)))
  return {
    file,
    id: peerIdFromPrivateKey(key).toString(),
    pub: Buffer.from(publicKeyToProtobuf(key.publicKey)).toString('hex')
  }
}

// ---- one scenario ---------------------------------------------------------------

async function scenario (name, keys, baseline) {
  const wispDials = name === 'wisp->js'
  const fig = figures[name] = {}
  const peers = []
  const quiet = opt.quiet
  const jsPeer = () => {
    const p = new JsonPeer('js', [process.execPath, JS_PEER, '--key', keys.js.file, '--listen', '/ip4/127.0.0.1/tcp/0'],
      { log: !quiet })
    peers.push(p)
    return p
  }
  const wispPeer = (extra) => {
    const p = new JsonPeer('wisp', [WISP_NODE, '--json', '--key', keys.wisp.file, '--listen', '/ip4/127.0.0.1/tcp/0',
      '--serve', 'echo,perf', ...extra], { log: !quiet })
    peers.push(p)
    return p
  }
  let w, j, lw, lj
  // Sides: { p: JsonPeer, self: key info, other: key info }
  let W, J

  try {
    await step(name, 'start and connect', async () => {
      if (!wispDials) {
        w = wispPeer([])
        lw = await w.expect({ event: 'listening' }, 20 * S, 'wisp listening')
        eq((await w.request({ cmd: 'stats' }, 'stats', 10 * S)).pool_in_use, baseline, 'wisp pool_in_use before any connection')
        j = jsPeer()
        lj = await j.expect({ event: 'listening' }, 60 * S, 'js listening')
      } else {
        j = jsPeer()
        lj = await j.expect({ event: 'listening' }, 60 * S, 'js listening')
        const addrJ = lj.addrs.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))
        if (addrJ == null) throw new Error(`js has no 127.0.0.1 listen addr: ${JSON.stringify(lj.addrs)}`)
        w = wispPeer(['--dial', addrJ.includes('/p2p/') ? addrJ : `${addrJ}/p2p/${lj.peer_id}`])
        lw = await w.expect({ event: 'listening' }, 20 * S, 'wisp listening')
      }
      eq(lw.peer_id, keys.wisp.id, 'wisp runs with key K1 (peer id)')
      eq(lj.peer_id, keys.js.id, 'js runs with its key (peer id)')
      eq(lw.agent, WISP_AGENT, 'wisp listening: agent')
      const addrW = lw.addrs.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))
      const addrJ = lj.addrs.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))
      check(addrW != null && tcpPort(addrW) > 0, 'wisp listens on 127.0.0.1', JSON.stringify(lw.addrs))
      check(addrJ != null && tcpPort(addrJ) > 0, 'js listens on 127.0.0.1', JSON.stringify(lj.addrs))
      W = { p: w, name: 'wisp', self: keys.wisp, other: keys.js, listen: stripP2p(addrW) }
      J = { p: j, name: 'js', self: keys.js, other: keys.wisp, listen: stripP2p(addrJ) }

      if (!wispDials) {
        const d = await j.request({ cmd: 'dial', addr: addrW.includes('/p2p/') ? addrW : `${addrW}/p2p/${lw.peer_id}` },
          'dialed', 30 * S)
        eq(d.peer_id, keys.wisp.id, 'js dialed wisp')
      }
      const cw = await w.expect({ event: 'connected', peer_id: keys.js.id }, 30 * S, 'wisp connected to js')
      const cj = await j.expect({ event: 'connected', peer_id: keys.wisp.id }, 30 * S, 'js connected to wisp')
      W.conn = cw
      J.conn = cj
      eq(cw.direction, wispDials ? 'outbound' : 'inbound', 'wisp connected: direction')
      eq(cj.direction, wispDials ? 'inbound' : 'outbound', 'js connected: direction')
      eq(cj.muxer, '/yamux/1.0.0', 'js connected: muxer')
      eq(cj.encryption, '/noise', 'js connected: encryption')
      // The dialer sees the listener's listen address; the listener sees a
      // loopback address with the dialer's ephemeral port.
      const [dialer, listener] = wispDials ? [W, J] : [J, W]
      eq(stripP2p(dialer.conn.addr), listener.listen, `${dialer.name} connected: remote addr = ${listener.name}'s listen addr`)
      const eph = stripP2p(listener.conn.addr)
      check(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/.test(eph) && tcpPort(eph) !== tcpPort(dialer.listen),
        `${listener.name} connected: remote addr is 127.0.0.1 with the dialer's ephemeral port`, listener.conn.addr)
    })

    await step(name, 'identify both ways', async () => {
      const iw = await w.expect({ event: 'identify', peer_id: keys.js.id }, 30 * S, 'wisp identify of js')
      const ij = await j.expect({ event: 'identify', peer_id: keys.wisp.id }, 30 * S, 'js identify of wisp')
      for (const [side, ev, remote] of [[W, iw, J], [J, ij, W]]) {
        const who = `${side.name}'s identify of ${remote.name}`
        if (remote === J) {
          check(typeof ev.agent === 'string' && ev.agent.startsWith('js-libp2p/'), `${who}: agent js-libp2p/...`, ev.agent)
        } else {
          eq(ev.agent, WISP_AGENT, `${who}: agent`)
        }
        eq(ev.protocol_version, PROTOCOL_VERSION, `${who}: protocol version`)
        const protos = Array.isArray(ev.protocols) ? ev.protocols : []
        const want = remote === W ? [PROTO.id, PROTO.ping, PROTO.echo, PROTO.perf] : [PROTO.ping, PROTO.echo, PROTO.perf]
        for (const p of want) check(protos.includes(p), `${who}: protocols include ${p}`, JSON.stringify(protos))
        const listen = (ev.listen_addrs ?? []).map(stripP2p)
        check(listen.includes(remote.listen), `${who}: listen addrs include ${remote.listen}`, JSON.stringify(ev.listen_addrs))
        eq(ev.public_key, remote.self.pub, `${who}: public key = PublicKey protobuf of ${remote.name}'s key file`)
        // What the remote saw of us: the address our connection has on its side.
        eq(stripP2p(ev.observed_addr), stripP2p(remote.conn.addr), `${who}: observed addr = ${remote.name}'s view of the connection`)
      }
      // Signed peer records both ways: js certified wisp's (its addresses
      // are wisp's listen address), wisp verified js's.
      check(ij.signed_peer_record === true, 'js took the signed peer record in wisp\'s identify', JSON.stringify(ij.signed_peer_record))
      check((ij.record_addrs ?? []).map(stripP2p).includes(W.listen), `js: wisp's record lists ${W.listen}`, JSON.stringify(ij.record_addrs))
      check(/^\d+$/.test(ij.record_seq ?? '') && BigInt(ij.record_seq) > 0n, 'js: wisp\'s record has a seq', ij.record_seq)
      eq(iw.signed_peer_record, 1, 'wisp verified the signed peer record in js\'s identify')
      fig.identify = { js_of_wisp_protocols: ij.protocols, wisp_of_js_protocols: iw.protocols, js_signed_peer_record_from_wisp: ij.signed_peer_record }
    })

    await step(name, 'ping both ways', async () => {
      const pw = await w.request({ cmd: 'ping', peer_id: keys.js.id }, 'ping', 15 * S)
      const pj = await j.request({ cmd: 'ping', peer_id: keys.wisp.id }, 'ping', 15 * S)
      check(pw.rtt_us > 0 && pw.peer_id === keys.js.id, `wisp -> js ping: ${pw.rtt_us} us`, JSON.stringify(pw))
      check(pj.rtt_us > 0 && pj.peer_id === keys.wisp.id, `js -> wisp ping: ${pj.rtt_us} us (stream open ${pj.open_us} us)`, JSON.stringify(pj))
      fig.ping_us = { wisp_to_js: pw.rtt_us, js_to_wisp: pj.rtt_us }
    })

    // Echo, rtt and perf: the client side `from` asks the server side.
    const transfers = [
      ['echo', ECHO_BIG, 'echo_done', `echo ${ECHO_BIG.bytes / MiB} MiB x ${ECHO_BIG.streams} stream`],
      ['echo', ECHO_MANY, 'echo_done', `echo ${ECHO_MANY.bytes / KiB} KiB x ${ECHO_MANY.streams} streams`],
      ['rtt', RTT, 'rtt_done', `rtt ${RTT.size / KiB} KiB x ${RTT.count}`],
      ['perf', PERF, 'perf_done', `perf upload ${PERF.upload / MiB} MiB, download ${PERF.download / MiB} MiB`]
    ]
    for (const [cmd, args, event, label] of transfers) {
      await step(name, `${label}, both ways`, async () => {
        for (const [from, to] of [[W, J], [J, W]]) {
          const what = `${from.name} -> ${to.name} ${label}`
          const r = await from.p.request({ cmd, peer_id: to.self.id, ...args }, event, 240 * S)
          const key = `${cmd}${cmd === 'echo' ? `_${args.streams}x${args.bytes / KiB}KiB` : ''}_${from.name}_to_${to.name}`
          if (cmd === 'echo') {
            const wantSha = args.streams === 1 ? SHA_64MIB_S0 : SHA_MANY_S0
            check(r.ok === true, `${what}: ok (${sec(r.elapsed_us)} s, ${r.mib_per_s} MiB/s one way)`, JSON.stringify(r))
            eq(r.streams, args.streams, `${what}: streams`)
            eq(r.bytes, args.bytes, `${what}: bytes per stream`)
            eq(r.sha256, wantSha, `${what}: stream 0 digest = vector`)
            fig[key] = { elapsed_s: sec(r.elapsed_us), mib_per_s: r.mib_per_s }
          } else if (cmd === 'rtt') {
            check(r.ok === true, `${what}: ok (p50 ${r.p50_us} us, p99 ${r.p99_us} us, ${r.per_sec}/s)`, JSON.stringify(r))
            eq(r.count, args.count, `${what}: count`)
            eq(r.size, args.size, `${what}: size`)
            fig[key] = { elapsed_s: sec(r.elapsed_us), p50_us: r.p50_us, p90_us: r.p90_us, p99_us: r.p99_us, max_us: r.max_us, per_sec: r.per_sec }
          } else {
            check(r.ok === true, `${what}: ok (up ${r.upload_mbps} Mbit/s, down ${r.download_mbps} Mbit/s, ${sec(r.elapsed_us)} s)`, JSON.stringify(r))
            eq(r.upload, args.upload, `${what}: upload bytes`)
            eq(r.download, args.download, `${what}: download bytes`)
            fig[key] = { elapsed_s: sec(r.elapsed_us), upload_mbps: r.upload_mbps, download_mbps: r.download_mbps }
          }
        }
      })
    }

    await step(name, `idle ${IDLE_MS / S} s: js keep-alive ping answered by wisp`, async () => {
      const t0 = Date.now()
      const before = (await w.request({ cmd: 'stats' }, 'stats', 10 * S))
      const mark = j.events.length
      const mw = w.events.length
      // A keep-alive that completes in the first second may have started
      // before the idle period; wait for one that surely started in it.
      const ka = await j.expect((e, i) => e.event === 'keepalive' && e.peer_id === keys.wisp.id &&
        i >= mark && j.times[i] - t0 >= 1 * S, IDLE_MS + 5 * S, 'js keep-alive ping of wisp')
      const kaAt = Date.now() - t0
      // Out the rest of the idle period, watching for a disconnect on either side.
      const left = Math.max(0, IDLE_MS - (Date.now() - t0))
      const gone = await Promise.race([
        watch(j, { event: 'disconnected', peer_id: keys.wisp.id }, left),
        watch(w, { event: 'disconnected', peer_id: keys.js.id }, left)
      ])
      const idle = Date.now() - t0
      check(gone == null, `no disconnect during ${sec(idle * 1e3)} s idle`, JSON.stringify(gone))
      check(true, `js keep-alive ping of wisp answered after ${sec(kaAt * 1e3)} s idle (js measured ${ka.rtt_ms} ms)`)
      const kas = j.events.slice(mark).filter((e) => e.event === 'keepalive' && e.peer_id === keys.wisp.id).length
      const after = await w.request({ cmd: 'stats' }, 'stats', 10 * S)
      const others = w.events.slice(mw).filter((e) => e.event !== 'stats')
      if (others.length > 0) console.log(`  wisp events while idle: ${JSON.stringify(others)}`)
      eq(after.peer_errors, 0, 'wisp: peer_errors 0')
      eq(after.ping_errors, 0, 'wisp: ping_errors 0')
      // Still connected: pings go through both ways.
      const pw = await w.request({ cmd: 'ping', peer_id: keys.js.id }, 'ping', 15 * S)
      const pj = await j.request({ cmd: 'ping', peer_id: keys.wisp.id }, 'ping', 15 * S)
      check(pw.rtt_us > 0 && pj.rtt_us > 0, `still connected after idle: ping both ways (${pw.rtt_us} us, ${pj.rtt_us} us)`)
      fig.idle = {
        idle_s: sec(idle * 1e3),
        keepalives_seen: kas,
        first_keepalive_after_s: sec(kaAt * 1e3),
        keepalive_rtt_ms: ka.rtt_ms,
        wisp_bytes_in: after.bytes_in - before.bytes_in,
        wisp_bytes_out: after.bytes_out - before.bytes_out
      }
    })

    await step(name, 'wisp closes the connection', async () => {
      const closed = await w.request({ cmd: 'close', peer_id: keys.js.id }, 'closed', 10 * S)
      eq(closed.peer_id, keys.js.id, 'wisp closed: peer id')
      const dw = await w.expect({ event: 'disconnected', peer_id: keys.js.id }, 15 * S, 'wisp disconnected')
      const dj = await j.expect({ event: 'disconnected', peer_id: keys.wisp.id }, 15 * S, 'js disconnected')
      eq(dw.reason, 'local', 'wisp disconnected: reason')
      eq(dw.direction, W.conn.direction, 'wisp disconnected: direction')
      eq(dj.reason, 'remote', 'js disconnected: reason')
      eq(dj.direction, J.conn.direction, 'js disconnected: direction')
      for (const side of [W, J]) {
        const n = side.p.events.filter((e) => e.event === 'disconnected').length
        eq(n, 1, `${side.name}: exactly one disconnected event in the whole run`)
        const c = side.p.events.filter((e) => e.event === 'connected').length
        eq(c, 1, `${side.name}: exactly one connected event in the whole run`)
      }
    })

    await step(name, 'wisp stats after close', async () => {
      const want = (st) => st.open === 0 && st.pool_in_use === baseline
      const { stats: st, polls } = await statsUntil(w, want, 5 * S)
      fig.wisp_stats = { ...st, polls_until_released: polls }
      delete fig.wisp_stats.event
      delete fig.wisp_stats.id
      eq(st.open, 0, 'wisp stats: open 0')
      // Not 0: a running node holds one zero-filled perf buffer per worker.
      eq(st.pool_in_use, baseline, `wisp stats: pool_in_use back to ${baseline}, the level of a node that never had a connection` +
        ` (${polls} stats request${polls > 1 ? 's' : ''})`)
      eq(st.conns_in, wispDials ? 0 : 1, 'wisp stats: conns_in')
      eq(st.conns_out, wispDials ? 1 : 0, 'wisp stats: conns_out')
      for (const k of ['peer_errors', 'handshake_failures', 'handshake_timeouts', 'identify_errors', 'ping_errors',
        'peer_record_errors', 'dial_failures', 'slow_closes', 'events_dropped']) {
        eq(st[k], 0, `wisp stats: ${k}`)
      }
      console.log(`  wisp stats: bytes_in ${st.bytes_in}, bytes_out ${st.bytes_out}, resets ${st.resets}, ` +
        `streams_refused ${st.streams_refused}, streams_capped ${st.streams_capped}, mailbox_full ${st.mailbox_full}`)
    })

    await step(name, 'quit both', async () => {
      w.send({ cmd: 'quit' })
      j.send({ cmd: 'quit' })
      const qw = await w.expect({ event: 'quit' }, 15 * S, 'wisp quit')
      const qj = await j.expect({ event: 'quit' }, 15 * S, 'js quit')
      eq(qw.why, 'command', 'wisp quit: why')
      eq(qj.why, 'command', 'js quit: why')
      check(qj.forced !== true, 'js stopped without forcing')
      const ew = await w.stop(15 * S)
      const ej = await j.stop(15 * S)
      eq(ew.code, 0, 'wisp-node exit status')
      eq(ej.code, 0, 'js-peer exit status')
      for (const side of [W, J]) {
        const errs = side.p.errors()
        check(errs.length === 0, `${side.name}: no error events in the whole run`, JSON.stringify(errs))
      }
    })
  } catch {
    // The failing step printed why; report the peers' error events too.
    for (const p of peers) {
      const errs = p.errors()
      if (errs.length > 0) console.log(`  ${p.name} error events: ${JSON.stringify(errs)}`)
      if (p.exit != null) console.log(`  ${p.name} exited: ${JSON.stringify(p.exit)}`)
    }
  } finally {
    for (const p of peers) {
      if (p.exit == null) {
        p.child.stdin.end() // both peers quit at stdin EOF
        const ex = await p.stop(10 * S)
        if (ex.killed) console.log(`  ${p.name} did not exit at stdin EOF: killed`)
      }
    }
  }
}

// ---- main ------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'wisp-js-interop-'))
try {
  const keys = {}
  await step('setup', 'keys: K1 by wisp-keygen, js key by js-peer --gen-key', async () => {
    const k1 = join(dir, 'k1.key')
    const kg = spawnSync(WISP_KEYGEN, [k1], { encoding: 'utf8' })
    if (kg.error) throw kg.error
    eq(kg.status, 0, 'wisp-keygen exit status')
    keys.wisp = keyInfo(k1)
    eq(kg.stdout.trim(), keys.wisp.id, 'wisp-keygen peer id = js id of the same file')
    const kj = join(dir, 'js.key')
    const gj = spawnSync(process.execPath, [JS_PEER, '--gen-key', kj], { encoding: 'utf8' })
    eq(gj.status, 0, 'js-peer --gen-key exit status')
    keys.js = keyInfo(kj)
    eq(JSON.parse(gj.stdout.trim()).peer_id, keys.js.id, 'js-peer --gen-key peer id')
    console.log(`  wisp (K1): ${keys.wisp.id} public key ${keys.wisp.pub}`)
    console.log(`  js:        ${keys.js.id} public key ${keys.js.pub}`)
  })
  // The buffers a wisp node holds when it never had a connection (the level
  // pool_in_use must come back to after a close).
  let baseline
  await step('setup', 'wisp-node alone: stats, quit', async () => {
    const w = new JsonPeer('wisp0', [WISP_NODE, '--json', '--key', keys.wisp.file, '--listen', '/ip4/127.0.0.1/tcp/0',
      '--serve', 'echo,perf'], { log: !opt.quiet })
    try {
      await w.expect({ event: 'listening' }, 20 * S, 'wisp listening')
      const st = await w.request({ cmd: 'stats' }, 'stats', 10 * S)
      baseline = st.pool_in_use
      check(Number.isInteger(baseline), `wisp with no connection: pool_in_use ${baseline}`)
      w.send({ cmd: 'quit' })
      await w.expect({ event: 'quit' }, 10 * S, 'wisp quit')
      eq((await w.stop(10 * S)).code, 0, 'wisp-node exit status')
      check(w.errors().length === 0, 'no error events', JSON.stringify(w.errors()))
    } finally {
      if (w.exit == null) {
        w.child.stdin.end()
        await w.stop(5 * S)
      }
    }
  })
  for (const name of ['js->wisp', 'wisp->js']) {
    if (opt.scenario == null || opt.scenario === name) await scenario(name, keys, baseline)
  }
} catch (err) {
  if (!steps.some((s) => !s.ok)) {
    failures++
    console.log(`FAIL ${err.stack ?? err.message}`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}

// ---- summary ------------------------------------------------------------------------

console.log('\n=== figures (measurements, not assertions)')
for (const [name, f] of Object.entries(figures)) {
  console.log(`[${name}]`)
  for (const [k, v] of Object.entries(f)) {
    if (k === 'identify' || k === 'wisp_stats') continue
    console.log(`  ${k.padEnd(34)} ${JSON.stringify(v)}`)
  }
}
if (opt.report != null) writeFileSync(opt.report, JSON.stringify(figures, null, 2) + '\n')
console.log('\n=== steps')
for (const s of steps) console.log(`${s.ok ? 'PASS' : 'FAIL'} [${s.scenario}] ${s.name}${s.why ? `: ${s.why}` : ''}`)
const expectedSteps = 2 + (opt.scenario == null ? 2 : 1) * SCENARIO_STEPS
if (steps.length !== expectedSteps) {
  failures++
  console.log(`FAIL ${expectedSteps - steps.length} steps did not run`)
}
console.log(`${checks - failures >= 0 ? checks - failures : 0}/${checks} checks passed, ` +
  `${steps.filter((s) => s.ok).length}/${expectedSteps} steps passed`)
process.exit(failures === 0 ? 0 : 1)
