// js-peer.mjs against itself: two js-libp2p peers on loopback, one dials the
// other; connect + identify both ways, ping, echo (64 MiB x 1, 1 MiB x 100),
// rtt (1 KiB x 2000), perf both directions, close, quit. Any failure or any
// unexpected error event fails the test (exit 1); exit 77 when the pinned
// packages are not installed (npm-setup.sh did not run).
//
// usage: node js_selftest.mjs [--report FILE] [--quiet]
//   --report FILE  also write the measured figures as one JSON object
//   --quiet        do not echo every event and command
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { spawnSync } from 'node:child_process'

const here = dirname(fileURLToPath(import.meta.url))
const { values: opt } = parseArgs({
  options: { report: { type: 'string' }, quiet: { type: 'boolean', default: false } }
})

const major = Number(process.versions.node.split('.')[0])
if (major < 20) {
  console.log(`SKIP: node ${process.versions.node} < 20`)
  process.exit(77)
}
if (!existsSync(join(here, 'node_modules', 'libp2p', 'package.json'))) {
  console.log('SKIP: node_modules missing (run npm-setup.sh)')
  process.exit(77)
}

const { JsonPeer } = await import('./peer-driver.mjs')
const { EchoData } = await import('./echo-data.mjs')

const MiB = 1 << 20
const PEER = join(here, 'js-peer.mjs')
const S = 1000 // ms

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
}

// Echo payload vectors (README.md): a second, plainly written generator and
// fixed digests, so a change to echo-data.mjs cannot go unnoticed.
function referenceBytes (index, n) {
  let x = Math.imul(index + 1, 0x9E3779B9) >>> 0
  const out = Buffer.alloc(n + 3)
  for (let off = 0; off < n; off += 4) {
    x = (x ^ (x << 13)) >>> 0
    x = (x ^ (x >>> 17)) >>> 0
    x = (x ^ (x << 5)) >>> 0
    out.writeUInt32LE(x, off)
  }
  return out.subarray(0, n)
}
const sha = (b) => createHash('sha256').update(b).digest('hex')
const VECTORS = {
  s0_1MiB: '3e75ec671075e4115fc876c4c55d5abbac3bfe487a67ff4ca2db38386a014f27',
  s1_1MiB: 'ed486ccb7db524a648dccaa271a961155de5b0a53b32c25d93a7d102f4b963d1',
  s0_64MiB: 'c33e4c943c5f403d997a3b93f6b066dcf7bb33567bf59adb76bb9fd92b289842'
}
{
  const g = new EchoData(0)
  const parts = [1, 2, 5, 4096, 3, 65536, MiB - 1 - 2 - 5 - 4096 - 3 - 65536].map((n) => g.next(n))
  check(sha(Buffer.concat(parts)) === VECTORS.s0_1MiB, 'echo data stream 0, odd chunks = vector')
  check(sha(referenceBytes(0, MiB)) === VECTORS.s0_1MiB, 'reference generator stream 0 = vector')
  check(sha(new EchoData(1).next(MiB)) === VECTORS.s1_1MiB, 'echo data stream 1 = vector')
  check(Buffer.from(new EchoData(7).next(1027)).equals(referenceBytes(7, 1027)), 'echo data stream 7 = reference')
}

const dir = mkdtempSync(join(tmpdir(), 'wisp-js-selftest-'))
const peers = []
const figures = {}
function peerProc (name, key) {
  const p = new JsonPeer(name, [process.execPath, PEER, '--key', key, '--listen', '/ip4/127.0.0.1/tcp/0'],
    { log: !opt.quiet })
  peers.push(p)
  return p
}

try {
  // Keys in wisp's file format.
  const keys = {}
  for (const n of ['a', 'b']) {
    const file = join(dir, `${n}.key`)
    const r = spawnSync(process.execPath, [PEER, '--gen-key', file], { encoding: 'utf8' })
    check(r.status === 0, `--gen-key ${n}`, r.stderr)
    keys[n] = { file, id: JSON.parse(r.stdout.trim()).peer_id }
  }

  const a = peerProc('A', keys.a.file)
  const b = peerProc('B', keys.b.file)
  const la = await a.expect({ event: 'listening' }, 30 * S, 'A listening')
  const lb = await b.expect({ event: 'listening' }, 30 * S, 'B listening')
  check(la.peer_id === keys.a.id && lb.peer_id === keys.b.id, 'peers run with the generated keys')
  const addrA = la.addrs.find((x) => x.startsWith('/ip4/127.0.0.1/tcp/'))
  check(addrA != null && addrA.endsWith(`/p2p/${keys.a.id}`), 'A listens on 127.0.0.1 with /p2p suffix', JSON.stringify(la.addrs))

  // Bad commands are reported, not fatal.
  a.send({ cmd: 'frobnicate', id: 'bad-1' })
  const bad = await a.expect({ event: 'error', id: 'bad-1' }, 5 * S, 'error for a bad command')
  check(bad.kind === 'command', 'unknown command -> error kind command')
  a.child.stdin.write('not json\n')
  const bad2 = await a.expect((e) => e.event === 'error' && e.line === 'not json', 5 * S, 'error for a non-JSON line')
  check(bad2.kind === 'command', 'non-JSON line -> error kind command')
  a.send({ cmd: 'echo', peer_id: 'nonsense', id: 'bad-3' })
  const bad3 = await a.expect({ event: 'error', id: 'bad-3' }, 5 * S, 'error for a bad peer id')
  check(bad3.kind === 'command', 'bad peer id -> error kind command')
  const expectedErrors = new Set([bad, bad2, bad3])

  // Connect and identify, both directions.
  const dialed = await b.request({ cmd: 'dial', addr: addrA }, 'dialed', 30 * S)
  check(dialed.peer_id === keys.a.id, 'B dialed A')
  const cb = await b.expect({ event: 'connected', peer_id: keys.a.id }, 10 * S, 'B connected to A')
  const ca = await a.expect({ event: 'connected', peer_id: keys.b.id }, 10 * S, 'A connected from B')
  check(cb.direction === 'outbound' && ca.direction === 'inbound', 'directions outbound/inbound')
  check(cb.muxer === '/yamux/1.0.0' && cb.encryption === '/noise', 'noise + yamux', `${cb.encryption} ${cb.muxer}`)
  check(ca.addr.startsWith('/ip4/127.0.0.1/tcp/'), 'A sees a loopback remote addr', ca.addr)
  const ib = await b.expect({ event: 'identify', peer_id: keys.a.id }, 10 * S, 'B identify of A')
  const ia = await a.expect({ event: 'identify', peer_id: keys.b.id }, 10 * S, 'A identify of B')
  for (const [who, ev] of [['A of B', ia], ['B of A', ib]]) {
    for (const p of ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/wisp/echo/1.0.0', '/perf/1.0.0']) {
      check(ev.protocols.includes(p), `identify ${who} lists ${p}`, JSON.stringify(ev.protocols))
    }
    check(/^08021221[0-9a-f]{66}$/.test(ev.public_key ?? ''), `identify ${who}: secp256k1 PublicKey protobuf`, ev.public_key)
    check(typeof ev.agent === 'string' && ev.agent.startsWith('js-libp2p/'), `identify ${who}: agent`, ev.agent)
    check(ev.listen_addrs.length > 0 && ev.observed_addr != null, `identify ${who}: listen and observed addrs`)
  }

  // Ping both ways.
  const pb = await b.request({ cmd: 'ping', peer_id: keys.a.id }, 'ping', 15 * S)
  const pa = await a.request({ cmd: 'ping', peer_id: keys.b.id }, 'ping', 15 * S)
  check(pb.rtt_us > 0 && pa.rtt_us > 0, `ping both ways (${pb.rtt_us} us, ${pa.rtt_us} us)`)
  figures.ping_rtt_us = pb.rtt_us

  // Echo 64 MiB on one stream, then 1 MiB on each of 100 streams.
  const e1 = await b.request({ cmd: 'echo', peer_id: keys.a.id, bytes: 64 * MiB, streams: 1 }, 'echo_done', 300 * S)
  check(e1.ok === true, `echo 64 MiB x 1: ${e1.mib_per_s} MiB/s`, JSON.stringify(e1))
  check(e1.sha256 === VECTORS.s0_64MiB, 'echo 64 MiB payload digest = vector', e1.sha256)
  figures.echo_64MiB_x1 = { mib_per_s: e1.mib_per_s, mbps: e1.mbps, elapsed_us: e1.elapsed_us }
  const e100 = await b.request({ cmd: 'echo', peer_id: keys.a.id, bytes: MiB, streams: 100 }, 'echo_done', 300 * S)
  check(e100.ok === true, `echo 1 MiB x 100: ${e100.mib_per_s} MiB/s`, JSON.stringify(e100))
  check(e100.sha256 === VECTORS.s0_1MiB, 'echo 1 MiB stream 0 digest = vector', e100.sha256)
  figures.echo_1MiB_x100 = { mib_per_s: e100.mib_per_s, mbps: e100.mbps, elapsed_us: e100.elapsed_us }

  // Request/response round trips on one stream.
  const r = await b.request({ cmd: 'rtt', peer_id: keys.a.id, size: 1024, count: 2000 }, 'rtt_done', 300 * S)
  check(r.ok === true && r.count === 2000, `rtt 1 KiB x 2000: p50 ${r.p50_us} us, p99 ${r.p99_us} us, ${r.per_sec}/s`, JSON.stringify(r))
  figures.rtt_1KiB_x2000 = { p50_us: r.p50_us, p99_us: r.p99_us, per_sec: r.per_sec }

  // perf: upload from B, download to B, and the same with A as the client.
  const perfRuns = [
    [b, keys.a.id, 64 * MiB, 0, 'perf B->A upload 64 MiB'],
    [b, keys.a.id, 0, 64 * MiB, 'perf B<-A download 64 MiB'],
    [a, keys.b.id, 64 * MiB, 0, 'perf A->B upload 64 MiB'],
    [a, keys.b.id, 0, 64 * MiB, 'perf A<-B download 64 MiB']
  ]
  figures.perf = []
  for (const [p, id, up, down, what] of perfRuns) {
    const res = await p.request({ cmd: 'perf', peer_id: id, upload: up, download: down }, 'perf_done', 300 * S)
    const rate = up > 0 ? res.upload_mbps : res.download_mbps
    check(res.ok === true && res.upload === up && res.download === down, `${what}: ${rate} Mbit/s`, JSON.stringify(res))
    figures.perf.push({ what, upload: up, download: down, elapsed_us: res.elapsed_us, mbps: rate })
  }

  // Close: B hangs up, both see the disconnect.
  const closed = await b.request({ cmd: 'close', peer_id: keys.a.id }, 'closed', 10 * S)
  check(closed.peer_id === keys.a.id, 'B closed A')
  const db = await b.expect({ event: 'disconnected', peer_id: keys.a.id }, 10 * S, 'B disconnected')
  const da = await a.expect({ event: 'disconnected', peer_id: keys.b.id }, 10 * S, 'A disconnected')
  check(db.reason === 'local', 'B: disconnect reason local', db.reason)
  check(da.reason !== 'local', `A: disconnect reason ${da.reason}`)

  // Quit by command and by stdin EOF; both exit 0.
  a.send({ cmd: 'quit' })
  await a.expect({ event: 'quit' }, 15 * S, 'A quit')
  b.child.stdin.end()
  await b.expect({ event: 'quit' }, 15 * S, 'B quit')
  for (const p of [a, b]) {
    const ex = await p.stop(10 * S)
    check(ex.code === 0, `${p.name} exit status 0`, JSON.stringify(ex))
    const errs = p.errors().filter((e) => !expectedErrors.has(e))
    check(errs.length === 0, `${p.name}: no unexpected error events`, JSON.stringify(errs))
  }
} catch (err) {
  failures++
  console.log(`FAIL ${err.message}`)
} finally {
  for (const p of peers) {
    if (p.exit == null) {
      p.child.stdin.end()
      await p.stop(5 * S)
    }
  }
  rmSync(dir, { recursive: true, force: true })
}

console.log(`figures ${JSON.stringify(figures)}`)
if (opt.report != null) writeFileSync(opt.report, JSON.stringify(figures, null, 2) + '\n')
console.log(`${checks - failures}/${checks} checks passed`)
process.exit(failures === 0 ? 0 : 1)
