// Identity interop: wisp (C tools and helper) against js-libp2p
// (@libp2p/crypto, @libp2p/peer-id at the versions pinned in package.json;
// @libp2p/peer-record as package-lock.json pins it under libp2p) for keys,
// peer ids, signatures and signed peer records.
//
// usage: node identity.mjs --keygen PATH --peerid PATH --helper PATH
//
// Every check runs on both sides; any disagreement fails the test (exit 1).
import './polyfill.mjs'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  generateKeyPair,
  privateKeyFromProtobuf,
  privateKeyToProtobuf,
  publicKeyToProtobuf
} from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { PeerRecord, RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'

const { values: opt } = parseArgs({
  options: {
    keygen: { type: 'string' },
    peerid: { type: 'string' },
    helper: { type: 'string' }
  }
})
for (const k of ['keygen', 'peerid', 'helper']) {
  if (opt[k] == null) {
    console.error(`usage: node identity.mjs --keygen PATH --peerid PATH --helper PATH (missing --${k})`)
    process.exit(2)
  }
}

// The vectors hard-coded in tests/unit/test_identity.c (secret 01 02 .. 20).
const FIXED = {
  pubPb: '080212210284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0',
  b58: '16Uiu2HAm4Ms862Gnqafssgvik4JJ1LuqWMcKNipq4nm2UaoLRbeP',
  cid: 'bafzaajiiaijccauex52wejrlxvuuaccxjdz342x2kkxdc4kvdapm4mnwmni4z75ewa',
  sigWisp: '304502210095e850b46de3a667c55a3fdeca949d621a766ee33e63f499569457d5e21dc344' +
    '02206773ce2f38ca5f96f0eff814dfa7d91002dda1055ce969a9cfad908f145d0141',
  // tests/unit/test_codec_peer_record.c FIXED_RECORD
  recordSeq: 1234567890123456789n,
  record: '0a25080212210284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0120203011a57' +
    '0a270025080212210284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b010958' +
    '2a6efc79e8491111a0a0a08047f000001060fa11a160a142900000000000000000000000000000001060fa2' +
    '2a473045022100c8dffa1adc303bc150521e3a569b5dd876f025ac7b1aca20b926aa36a64e23da022005d0' +
    '7369649bf9c88be358e6860d3924ef49543fe4ebbe9775c9aed73b5649b1'
}
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

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
function eq (got, want, what) {
  check(got === want, what, `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
}

const hex = (u8) => Buffer.from(u8).toString('hex')
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'))

// Runs a wisp binary; returns { status, out: [lines], err }.
function wisp (bin, ...args) {
  const r = spawnSync(bin, args, { encoding: 'utf8' })
  if (r.error) throw r.error
  return { status: r.status, out: r.stdout.trim().split('\n').filter(Boolean), err: r.stderr }
}

async function jsVerifies (publicKey, msg, sig) {
  try {
    return await publicKey.verify(msg, sig)
  } catch {
    return false // malformed signatures throw in js, wisp says BAD_SIGNATURE
  }
}

// DER ECDSA signature with S replaced by n - S.
function highS (der) {
  const rLen = der[3]
  const r = der.subarray(4, 4 + rLen)
  const sLen = der[5 + rLen]
  const s = BigInt('0x' + hex(der.subarray(6 + rLen, 6 + rLen + sLen)))
  let sHex = (N - s).toString(16)
  if (sHex.length % 2) sHex = '0' + sHex
  let sBytes = unhex(sHex)
  if (sBytes[0] & 0x80) sBytes = Uint8Array.of(0, ...sBytes)
  const body = [0x02, r.length, ...r, 0x02, sBytes.length, ...sBytes]
  return Uint8Array.of(0x30, body.length, ...body)
}

function tamper (sig) {
  const t = Uint8Array.from(sig)
  t[t.length - 5] ^= 0x01
  return t
}

const dir = mkdtempSync(join(tmpdir(), 'wisp-interop-'))
try {
  // 1. Fixed secret: js and wisp derive the same key and ids, equal to the
  //    vectors the unit test hard-codes.
  const secret = Uint8Array.from({ length: 32 }, (_, i) => i + 1)
  const fixedKey = privateKeyFromProtobuf(Uint8Array.of(0x08, 0x02, 0x12, 0x20, ...secret))
  const fixedId = peerIdFromPrivateKey(fixedKey)
  eq(hex(publicKeyToProtobuf(fixedKey.publicKey)), FIXED.pubPb, 'js fixed PublicKey protobuf = hard-coded vector')
  eq(fixedId.toString(), FIXED.b58, 'js fixed peer id (base58) = hard-coded vector')
  eq(fixedId.toCID().toString(), FIXED.cid, 'js fixed peer id (CID) = hard-coded vector')
  const w = wisp(opt.helper, 'peerid-secret', hex(secret))
  eq(w.status, 0, 'wisp peerid-secret exit status')
  eq(w.out[0], fixedId.toString(), 'wisp fixed peer id (base58) = js')
  eq(w.out[1], fixedId.toCID().toString(), 'wisp fixed peer id (CID) = js')
  const msg = new TextEncoder().encode('wisp')
  eq(hex(await fixedKey.sign(msg)), FIXED.sigWisp, 'js fixed signature = hard-coded vector')

  // 2. A fresh wisp key file: js reads the same bytes and agrees on the id.
  const wispFile = join(dir, 'wisp.key')
  const kg = wisp(opt.keygen, '--cid', wispFile)
  eq(kg.status, 0, 'wisp-keygen exit status')
  const wispKey = privateKeyFromProtobuf(new Uint8Array(readFileSync(wispFile)))
  const wispKeyId = peerIdFromPrivateKey(wispKey)
  eq(kg.out[0], wispKeyId.toString(), 'wisp-keygen peer id (base58) = js id of the same file')
  eq(kg.out[1], wispKeyId.toCID().toString(), 'wisp-keygen peer id (CID) = js id of the same file')
  const pi = wisp(opt.peerid, '--cid', wispFile)
  eq(pi.status, 0, 'wisp-peerid exit status')
  eq(pi.out.join(' '), kg.out.join(' '), 'wisp-peerid = wisp-keygen')
  // js parses both of wisp's text forms back to the same id.
  check(peerIdFromString(kg.out[0]).equals(wispKeyId), 'js parses wisp base58 id')
  check(peerIdFromString(kg.out[1]).equals(wispKeyId), 'js parses wisp CID id')

  // 3. A js key written as a 0600 libp2p PrivateKey file: wisp reads it.
  const jsKey = await generateKeyPair('secp256k1')
  const jsId = peerIdFromPrivateKey(jsKey)
  const jsFile = join(dir, 'js.key')
  writeFileSync(jsFile, privateKeyToProtobuf(jsKey), { mode: 0o600 })
  chmodSync(jsFile, 0o600)
  const pj = wisp(opt.peerid, '--cid', jsFile)
  eq(pj.status, 0, 'wisp-peerid on the js key file: exit status')
  eq(pj.out[0], jsId.toString(), 'wisp peer id of js key file (base58) = js')
  eq(pj.out[1], jsId.toCID().toString(), 'wisp peer id of js key file (CID) = js')
  // wisp parses js's text forms.
  const wp = wisp(opt.helper, 'parse', jsId.toCID().toString())
  eq(wp.out.join(' '), `${jsId.toString()} ${jsId.toCID().toString()}`, 'wisp parses js CID id')
  // 0644: js wrote it, wisp refuses it.
  chmodSync(jsFile, 0o644)
  const refused = wisp(opt.peerid, jsFile)
  eq(refused.status, 3, 'wisp-peerid refuses a 0644 key file (exit 3)')
  check(/0644/.test(refused.err) && /chmod 600/.test(refused.err), 'refusal names the mode and the fix', refused.err)
  chmodSync(jsFile, 0o600)

  // 4. js signs, wisp verifies (with the key taken from the peer id).
  const data = new TextEncoder().encode('libp2p interop ' + jsId.toString())
  const jsSig = await jsKey.sign(data)
  let v = wisp(opt.helper, 'verify', jsId.toString(), hex(data), hex(jsSig))
  eq(v.status, 0, 'wisp verifies a js signature')
  v = wisp(opt.helper, 'verify', jsId.toCID().toString(), hex(data), hex(tamper(jsSig)))
  check(v.status === 1 && v.out[0] === 'WISP_ERR_BAD_SIGNATURE', 'wisp rejects a tampered js signature', v.out.join(' '))
  check(!(await jsVerifies(jsKey.publicKey, data, tamper(jsSig))), 'js rejects the tampered js signature')
  v = wisp(opt.helper, 'verify', jsId.toString(), hex(data.subarray(1)), hex(jsSig))
  eq(v.status, 1, 'wisp rejects a js signature over another message')
  const hi = highS(jsSig)
  v = wisp(opt.helper, 'verify', jsId.toString(), hex(data), hex(hi))
  check(v.status === 1 && v.out[0] === 'WISP_ERR_BAD_SIGNATURE', 'wisp rejects the high-S twin of a js signature', v.out.join(' '))
  check(!(await jsVerifies(jsKey.publicKey, data, hi)), 'js rejects the high-S twin too')

  // 5. wisp signs (with both key files), js verifies.
  for (const [file, key, id] of [[jsFile, jsKey, jsId], [wispFile, wispKey, wispKeyId]]) {
    const s = wisp(opt.helper, 'sign', file, hex(data))
    eq(s.status, 0, `wisp signs with ${file}`)
    const wSig = unhex(s.out[0] ?? '')
    check(await jsVerifies(id.publicKey, data, wSig), `js verifies the wisp signature (${file})`)
    eq(s.out[0], hex(await key.sign(data)), `wisp and js signatures are identical (RFC 6979, ${file})`)
    check(!(await jsVerifies(id.publicKey, data, tamper(wSig))), `js rejects a tampered wisp signature (${file})`)
    v = wisp(opt.helper, 'verify', id.toString(), hex(data), hex(tamper(wSig)))
    eq(v.status, 1, `wisp rejects a tampered wisp signature (${file})`)
  }

  // 6. The fixed key signs the same bytes on both sides.
  const fixedFile = join(dir, 'fixed.key')
  writeFileSync(fixedFile, privateKeyToProtobuf(fixedKey), { mode: 0o600 })
  const fs = wisp(opt.helper, 'sign', fixedFile, hex(msg))
  eq(fs.out[0], FIXED.sigWisp, 'wisp fixed signature = hard-coded vector')

  // 7. Signed peer records (Envelope{public_key, payload_type, payload,
  //    signature}, domain "libp2p-peer-record"), both ways.
  //    a. The fixed key seals the same record on both sides: byte for byte
  //       (RFC 6979 nonces), equal to the vector tests/unit hard-codes.
  const recAddrs = ['/ip4/127.0.0.1/tcp/4001', '/ip6/::1/tcp/4002']
  const fixedRec = await RecordEnvelope.seal(new PeerRecord({
    peerId: fixedId, seqNumber: FIXED.recordSeq, multiaddrs: recAddrs.map((a) => multiaddr(a))
  }), fixedKey)
  eq(hex(fixedRec.marshal()), FIXED.record, 'js fixed peer record = hard-coded vector')
  const ws = wisp(opt.helper, 'record-seal', fixedFile, String(FIXED.recordSeq), ...recAddrs)
  eq(ws.status, 0, 'wisp seals the fixed peer record')
  eq(ws.out[0], FIXED.record, 'wisp fixed peer record = js (byte for byte)')

  //    b. wisp seals with its key file; js opens and certifies it.
  const wAddrs = ['/ip4/192.0.2.7/tcp/9000', '/ip6/2001:db8::7/tcp/9001', '/dns4/example.com/tcp/9002']
  const wr = wisp(opt.helper, 'record-seal', wispFile, '1700000000000000000', ...wAddrs)
  eq(wr.status, 0, 'wisp seals a record with its key file')
  let opened = null
  try {
    const env = await RecordEnvelope.openAndCertify(unhex(wr.out[0] ?? ''), PeerRecord.DOMAIN)
    opened = PeerRecord.createFromProtobuf(env.payload)
    check(peerIdFromPrivateKey(wispKey).publicKey.equals(env.publicKey), 'js: the wisp record carries the wisp key')
  } catch (e) {
    check(false, 'js opens and certifies the wisp record', String(e))
  }
  if (opened != null) {
    check(opened.peerId.equals(wispKeyId), 'js: wisp record peer id = the key file\'s')
    eq(String(opened.seqNumber), '1700000000000000000', 'js: wisp record seq')
    eq(JSON.stringify(opened.multiaddrs.map(String)), JSON.stringify(wAddrs), 'js: wisp record addresses')
  }
  //    js refuses the wisp record once a signature byte is flipped.
  let jsRefused = false
  try {
    await RecordEnvelope.openAndCertify(tamper(unhex(wr.out[0] ?? '')), PeerRecord.DOMAIN)
  } catch {
    jsRefused = true
  }
  check(jsRefused, 'js refuses a tampered wisp record')

  //    c. js seals with its key (addresses wisp does and does not dial);
  //       wisp opens it.
  const jAddrs = ['/ip4/198.51.100.3/tcp/4001', '/ip4/198.51.100.3/udp/4001/quic-v1',
    '/ip6/2001:db8::3/tcp/4002', '/dns4/example.org/tcp/4003']
  const jsRec = await RecordEnvelope.seal(new PeerRecord({
    peerId: jsId, seqNumber: 42n, multiaddrs: jAddrs.map((a) => multiaddr(a))
  }), jsKey)
  const jsRecHex = hex(jsRec.marshal())
  const wo = wisp(opt.helper, 'record-open', jsRecHex)
  eq(wo.status, 0, 'wisp opens a js record')
  eq(wo.out[0], jsId.toString(), 'wisp: js record peer id')
  eq(wo.out[1], '42', 'wisp: js record seq')
  eq(wo.out[2], jAddrs[0], 'wisp: js record address 1 (tcp)')
  eq(wo.out[3], '?' + hex(multiaddr(jAddrs[1]).bytes), 'wisp: js record address 2 (quic, kept as bytes)')
  eq(wo.out[4], jAddrs[2], 'wisp: js record address 3 (ip6 tcp)')
  eq(wo.out[5], jAddrs[3], 'wisp: js record address 4 (dns)')
  eq(wo.out[6], 'tcp 2', 'wisp: two of the js record\'s addresses are dialable')
  v = wisp(opt.helper, 'record-open', hex(tamper(jsRec.marshal())))
  check(v.status === 1 && v.out[0] === 'WISP_ERR_BAD_SIGNATURE', 'wisp refuses a tampered js record', v.out.join(' '))

  //    d. Records js makes that wisp must refuse: the RFC 0003 domain
  //       ("libp2p-routing-state", which no implementation signs with), a
  //       record js signed for another peer, and an Ed25519 signer.
  const routingState = {
    domain: 'libp2p-routing-state',
    codec: PeerRecord.CODEC,
    marshal: () => new PeerRecord({ peerId: jsId, seqNumber: 1n, multiaddrs: [] }).marshal()
  }
  v = wisp(opt.helper, 'record-open', hex((await RecordEnvelope.seal(routingState, jsKey)).marshal()))
  check(v.status === 1 && v.out[0] === 'WISP_ERR_BAD_SIGNATURE', 'wisp refuses a record signed for another domain', v.out.join(' '))
  const forged = await RecordEnvelope.seal(new PeerRecord({ peerId: wispKeyId, seqNumber: 1n, multiaddrs: [] }), jsKey)
  v = wisp(opt.helper, 'record-open', hex(forged.marshal()))
  check(v.status === 1 && v.out[0] === 'WISP_ERR_PEER_ID', 'wisp refuses a record js signed for another peer id', v.out.join(' '))
  const edKey = await generateKeyPair('Ed25519')
  const edRec = await RecordEnvelope.seal(new PeerRecord({
    peerId: peerIdFromPrivateKey(edKey), seqNumber: 1n, multiaddrs: [multiaddr(jAddrs[0])]
  }), edKey)
  v = wisp(opt.helper, 'record-open', hex(edRec.marshal()))
  check(v.status === 1 && v.out[0] === 'WISP_ERR_UNSUPPORTED', 'wisp refuses an Ed25519 record as unsupported', v.out.join(' '))
} finally {
  rmSync(dir, { recursive: true, force: true })
}

console.log(`${checks - failures}/${checks} checks passed`)
process.exit(failures === 0 ? 0 : 1)
