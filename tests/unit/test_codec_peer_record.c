/* Signed peer records: sealing, opening, every refusal, the dialable
 * addresses. The fixed vector is what js-libp2p (@libp2p/peer-record
 * 8.0.35) seals for the same key, seq and addresses; tests/interop
 * re-checks it live. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <wisp/error.h>
#include <wisp/identity.h>

#include "codec/multiaddr.h"
#include "codec/pb.h"
#include "codec/peer_record.h"
#include "codec/varint.h"

/* secret 01 02 .. 20, seq 1234567890123456789,
 * /ip4/127.0.0.1/tcp/4001 and /ip6/::1/tcp/4002 */
#define FIXED_RECORD                                                                               \
	"0a25080212210284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0120203011a57" \
	"0a270025080212210284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b010958"    \
	"2a6efc79e8491111a0a0a08047f000001060fa11a160a142900000000000000000000000000000001060fa2"    \
	"2a473045022100c8dffa1adc303bc150521e3a569b5dd876f025ac7b1aca20b926aa36a64e23da022005d0"    \
	"7369649bf9c88be358e6860d3924ef49543fe4ebbe9775c9aed73b5649b1"
#define FIXED_SEQ 1234567890123456789ull

static void fixed_key(wisp_privkey *key, uint8_t first)
{
	uint8_t s[WISP_SECRET_LEN];
	for (int i = 0; i < WISP_SECRET_LEN; i++)
		s[i] = (uint8_t)(first + i);
	assert_int_equal(wisp_privkey_from_secret(key, s), 0);
}

static size_t ma(const char *text, uint8_t *out, size_t cap)
{
	ssize_t n = wisp_multiaddr_from_text(text, strlen(text), out, cap);
	assert_true(n > 0);
	return (size_t)n;
}

/* An Envelope with any key, payload type, payload and domain, signed by
 * key: for records no honest sealer makes. */
static size_t envelope(const wisp_privkey *key, const uint8_t *kpb, size_t klen, const uint8_t *type, size_t tlen,
		       const uint8_t *payload, size_t plen, const char *domain, uint8_t *out, size_t cap)
{
	uint8_t sb[WISP_PEER_RECORD_MAX + 64], sig[WISP_SIG_MAX], own[WISP_PUBKEY_PB_LEN];
	size_t at = 0;
	const struct {
		const void *p;
		size_t n;
	} part[] = { { domain, strlen(domain) }, { type, tlen }, { payload, plen } };
	for (int i = 0; i < 3; i++) {
		at += wisp_uvarint_put(sb + at, part[i].n);
		memcpy(sb + at, part[i].p, part[i].n);
		at += part[i].n;
	}
	ssize_t sl = wisp_privkey_sign(key, sb, at, sig, sizeof(sig));
	assert_true(sl > 0);
	if (!kpb) {
		assert_int_equal(wisp_pubkey_encode(wisp_privkey_pubkey(key), own, sizeof(own)), WISP_PUBKEY_PB_LEN);
		kpb = own;
		klen = sizeof(own);
	}
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, out, cap);
	wisp_pb_put_bytes(&w, 1, kpb, klen);
	wisp_pb_put_bytes(&w, 2, type, tlen);
	wisp_pb_put_bytes(&w, 3, payload, plen);
	wisp_pb_put_bytes(&w, 5, sig, (size_t)sl);
	ssize_t n = wisp_pb_writer_finish(&w);
	assert_true(n > 0);
	return (size_t)n;
}

/* PeerRecord{peer_id = id, seq, one address} */
static size_t payload_for(const wisp_peer_id *id, uint64_t seq, const uint8_t *addr, size_t alen, uint8_t *out,
			  size_t cap)
{
	uint8_t ai[600];
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, ai, sizeof(ai));
	wisp_pb_put_bytes(&w, 1, addr, alen);
	ssize_t al = wisp_pb_writer_finish(&w);
	assert_true(al > 0);
	wisp_pb_writer_init(&w, out, cap);
	wisp_pb_put_bytes(&w, 1, id->bytes, id->len);
	wisp_pb_put_varint(&w, 2, seq);
	wisp_pb_put_bytes(&w, 3, ai, (size_t)al);
	ssize_t n = wisp_pb_writer_finish(&w);
	assert_true(n > 0);
	return (size_t)n;
}

static const uint8_t peer_record_type[2] = { 0x03, 0x01 };

/* ---- tests -------------------------------------------------------------- */

static void test_fixed_vector(void **state)
{
	(void)state;
	wisp_privkey key;
	fixed_key(&key, 1);
	uint8_t a1[64], a2[64], out[WISP_PEER_RECORD_MAX], want[1024];
	wisp_peer_record_addr addrs[2] = { { a1, ma("/ip4/127.0.0.1/tcp/4001", a1, sizeof(a1)) },
					   { a2, ma("/ip6/::1/tcp/4002", a2, sizeof(a2)) } };
	ssize_t n = wisp_peer_record_seal(&key, FIXED_SEQ, addrs, 2, out, sizeof(out));
	long wn = wt_unhex(FIXED_RECORD, want, sizeof(want));
	assert_int_equal(n, wn);
	assert_memory_equal(out, want, (size_t)wn);

	/* and back */
	wisp_peer_record rec;
	assert_int_equal(wisp_peer_record_open(&rec, out, (size_t)n), 0);
	wisp_peer_id id;
	assert_int_equal(wisp_peer_id_from_pubkey(&id, wisp_privkey_pubkey(&key)), 0);
	assert_true(wisp_peer_id_equal(&rec.peer, &id));
	assert_true(wisp_pubkey_equal(&rec.key, wisp_privkey_pubkey(&key)));
	assert_true(rec.seq == FIXED_SEQ);
	assert_int_equal(rec.n_addrs, 2);
	assert_int_equal(rec.addrs[0].len, addrs[0].len);
	assert_memory_equal(rec.addrs[0].data, a1, addrs[0].len);
	assert_memory_equal(rec.addrs[1].data, a2, addrs[1].len);
	/* slices point into the input */
	assert_true(rec.addrs[0].data > out && rec.addrs[0].data < out + n);

	struct sockaddr_storage ss[4];
	socklen_t sl[4];
	assert_int_equal(wisp_peer_record_tcp(&rec, ss, sl, 4), 2);
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss[0];
	assert_int_equal(s4->sin_family, AF_INET);
	assert_int_equal(ntohs(s4->sin_port), 4001);
	assert_int_equal(ntohl(s4->sin_addr.s_addr), INADDR_LOOPBACK);
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss[1];
	assert_int_equal(s6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(s6->sin6_port), 4002);
	assert_int_equal(wisp_peer_record_tcp(&rec, ss, sl, 1), 1); /* cap honoured */
	wisp_privkey_wipe(&key);
}

static void test_seal_bounds(void **state)
{
	(void)state;
	wisp_privkey key;
	fixed_key(&key, 1);
	uint8_t a[64], out[WISP_PEER_RECORD_MAX];
	size_t alen = ma("/ip4/10.0.0.1/tcp/1", a, sizeof(a));
	wisp_peer_record_addr many[WISP_PEER_RECORD_MAX_ADDRS + 1];
	for (size_t i = 0; i < WISP_PEER_RECORD_MAX_ADDRS + 1; i++)
		many[i] = (wisp_peer_record_addr){ a, alen };
	assert_true(wisp_peer_record_seal(&key, 1, many, WISP_PEER_RECORD_MAX_ADDRS, out, sizeof(out)) > 0);
	assert_int_equal(wisp_peer_record_seal(&key, 1, many, WISP_PEER_RECORD_MAX_ADDRS + 1, out, sizeof(out)),
			 WISP_ERR_INVALID_ARG);
	wisp_peer_record_addr empty = { a, 0 };
	assert_int_equal(wisp_peer_record_seal(&key, 1, &empty, 1, out, sizeof(out)), WISP_ERR_INVALID_ARG);
	/* 32 addresses of 512 bytes: over the envelope bound */
	static uint8_t big[WISP_PEER_RECORD_MAX_ADDR_LEN];
	memset(big, 0x04, sizeof(big));
	for (size_t i = 0; i < WISP_PEER_RECORD_MAX_ADDRS; i++)
		many[i] = (wisp_peer_record_addr){ big, sizeof(big) };
	assert_int_equal(wisp_peer_record_seal(&key, 1, many, WISP_PEER_RECORD_MAX_ADDRS, out, sizeof(out)),
			 WISP_ERR_INVALID_ARG);
	many[0] = (wisp_peer_record_addr){ big, sizeof(big) + 1 };
	assert_int_equal(wisp_peer_record_seal(&key, 1, many, 1, out, sizeof(out)), WISP_ERR_INVALID_ARG);
	/* too small an output */
	wisp_peer_record_addr one = { a, alen };
	ssize_t n = wisp_peer_record_seal(&key, 1, &one, 1, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(wisp_peer_record_seal(&key, 1, &one, 1, out, (size_t)n - 1), WISP_ERR_NOBUF);
	/* no addresses and seq 0: a valid (empty) record */
	n = wisp_peer_record_seal(&key, 0, NULL, 0, out, sizeof(out));
	assert_true(n > 0);
	wisp_peer_record rec;
	assert_int_equal(wisp_peer_record_open(&rec, out, (size_t)n), 0);
	assert_true(rec.seq == 0 && rec.n_addrs == 0);
	wisp_privkey_wipe(&key);
}

/* Every bit of the fixed record flipped, every truncation: refused with a
 * typed error, never accepted (a flip inside the key still fails the
 * signature or the peer id check). */
static void test_tampering(void **state)
{
	(void)state;
	uint8_t rec_bytes[1024];
	long n = wt_unhex(FIXED_RECORD, rec_bytes, sizeof(rec_bytes));
	wisp_peer_record rec;
	for (long i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			rec_bytes[i] ^= (uint8_t)(1u << bit);
			int rc = wisp_peer_record_open(&rec, rec_bytes, (size_t)n);
			rec_bytes[i] ^= (uint8_t)(1u << bit);
			if (rc == 0) {
				/* only a flip in a varint continuation that still
				 * parses the same could pass: there is none here */
				fail_msg("byte %ld bit %d accepted", i, bit);
			}
			assert_true(rc < 0);
		}
	}
	for (long k = 0; k < n; k++)
		assert_true(wisp_peer_record_open(&rec, rec_bytes, (size_t)k) < 0);
	assert_int_equal(wisp_peer_record_open(&rec, rec_bytes, (size_t)n), 0);
	/* the signature's last byte */
	rec_bytes[n - 1] ^= 1;
	assert_int_equal(wisp_peer_record_open(&rec, rec_bytes, (size_t)n), WISP_ERR_BAD_SIGNATURE);
}

static void test_refusals(void **state)
{
	(void)state;
	wisp_privkey a, b;
	fixed_key(&a, 1);
	fixed_key(&b, 7);
	wisp_peer_id ida, idb;
	assert_int_equal(wisp_peer_id_from_pubkey(&ida, wisp_privkey_pubkey(&a)), 0);
	assert_int_equal(wisp_peer_id_from_pubkey(&idb, wisp_privkey_pubkey(&b)), 0);
	uint8_t addr[64], pl[1024], env[2048];
	size_t alen = ma("/ip4/10.1.2.3/tcp/9000", addr, sizeof(addr));
	wisp_peer_record rec;

	/* the helper's honest envelope opens */
	size_t plen = payload_for(&ida, 5, addr, alen, pl, sizeof(pl));
	size_t n = envelope(&a, NULL, 0, peer_record_type, 2, pl, plen, WISP_PEER_RECORD_DOMAIN, env, sizeof(env));
	assert_int_equal(wisp_peer_record_open(&rec, env, n), 0);
	assert_true(rec.seq == 5);

	/* signed by a, but the record names b: whoever relays it cannot pass
	 * a's addresses off as b's */
	plen = payload_for(&idb, 5, addr, alen, pl, sizeof(pl));
	n = envelope(&a, NULL, 0, peer_record_type, 2, pl, plen, WISP_PEER_RECORD_DOMAIN, env, sizeof(env));
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_PEER_ID);

	/* the RFC 0003 domain, which no implementation signs with */
	plen = payload_for(&ida, 5, addr, alen, pl, sizeof(pl));
	n = envelope(&a, NULL, 0, peer_record_type, 2, pl, plen, "libp2p-routing-state", env, sizeof(env));
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_BAD_SIGNATURE);

	/* another payload type, properly signed */
	static const uint8_t other_type[2] = { 0x03, 0x02 };
	n = envelope(&a, NULL, 0, other_type, 2, pl, plen, WISP_PEER_RECORD_DOMAIN, env, sizeof(env));
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_UNKNOWN_CODE);
	static const uint8_t varint_type[2] = { 0x81, 0x06 }; /* 0x0301 as a uvarint */
	n = envelope(&a, NULL, 0, varint_type, 2, pl, plen, WISP_PEER_RECORD_DOMAIN, env, sizeof(env));
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_UNKNOWN_CODE);

	/* an Ed25519 key: well-formed, not ours to verify */
	uint8_t ed[36] = { 0x08, 0x01, 0x12, 0x20 };
	memset(ed + 4, 0x5a, 32);
	n = envelope(&a, ed, sizeof(ed), peer_record_type, 2, pl, plen, WISP_PEER_RECORD_DOMAIN, env, sizeof(env));
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_UNSUPPORTED);
	/* a secp256k1 key that is not a point */
	uint8_t bad[WISP_PUBKEY_PB_LEN];
	assert_int_equal(wisp_pubkey_encode(wisp_privkey_pubkey(&a), bad, sizeof(bad)), WISP_PUBKEY_PB_LEN);
	bad[4] = 0x07;
	n = envelope(&a, bad, sizeof(bad), peer_record_type, 2, pl, plen, WISP_PEER_RECORD_DOMAIN, env, sizeof(env));
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_BAD_KEY);
	/* b's key in the envelope, a's signature */
	assert_int_equal(wisp_pubkey_encode(wisp_privkey_pubkey(&b), bad, sizeof(bad)), WISP_PUBKEY_PB_LEN);
	n = envelope(&a, bad, sizeof(bad), peer_record_type, 2, pl, plen, WISP_PEER_RECORD_DOMAIN, env, sizeof(env));
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_BAD_SIGNATURE);

	/* no peer_id, or one that is not a multihash */
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, pl, sizeof(pl));
	wisp_pb_put_varint(&w, 2, 9);
	plen = (size_t)wisp_pb_writer_finish(&w);
	n = envelope(&a, NULL, 0, peer_record_type, 2, pl, plen, WISP_PEER_RECORD_DOMAIN, env, sizeof(env));
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_PEER_ID);
	wisp_pb_writer_init(&w, pl, sizeof(pl));
	wisp_pb_put_bytes(&w, 1, "\x99\x01", 2);
	plen = (size_t)wisp_pb_writer_finish(&w);
	n = envelope(&a, NULL, 0, peer_record_type, 2, pl, plen, WISP_PEER_RECORD_DOMAIN, env, sizeof(env));
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_PEER_ID);

	/* a payload that is not a protobuf, properly signed */
	static const uint8_t junk[] = { 0x0a, 0x80 };
	n = envelope(&a, NULL, 0, peer_record_type, 2, junk, sizeof(junk), WISP_PEER_RECORD_DOMAIN, env, sizeof(env));
	assert_true(wisp_err_is_peer(wisp_peer_record_open(&rec, env, n)));
	/* seq with the wrong wire type */
	wisp_pb_writer_init(&w, pl, sizeof(pl));
	wisp_pb_put_bytes(&w, 1, ida.bytes, ida.len);
	wisp_pb_put_bytes(&w, 2, "x", 1);
	plen = (size_t)wisp_pb_writer_finish(&w);
	n = envelope(&a, NULL, 0, peer_record_type, 2, pl, plen, WISP_PEER_RECORD_DOMAIN, env, sizeof(env));
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_WIRE_TYPE);

	/* 33 addresses: over the bound, refused rather than cut */
	static uint8_t big[4096];
	wisp_pb_writer_init(&w, big, sizeof(big));
	wisp_pb_put_bytes(&w, 1, ida.bytes, ida.len);
	uint8_t ai[64];
	wisp_pb_writer aw;
	wisp_pb_writer_init(&aw, ai, sizeof(ai));
	wisp_pb_put_bytes(&aw, 1, addr, alen);
	size_t ailen = (size_t)wisp_pb_writer_finish(&aw);
	for (unsigned i = 0; i < WISP_PEER_RECORD_MAX_ADDRS + 1; i++)
		wisp_pb_put_bytes(&w, 3, ai, ailen);
	plen = (size_t)wisp_pb_writer_finish(&w);
	static uint8_t benv[WISP_PEER_RECORD_MAX + 256];
	n = envelope(&a, NULL, 0, peer_record_type, 2, big, plen, WISP_PEER_RECORD_DOMAIN, benv, sizeof(benv));
	assert_int_equal(wisp_peer_record_open(&rec, benv, n), WISP_ERR_TOO_LARGE);

	/* envelope fields missing or of the wrong wire type */
	wisp_pb_writer_init(&w, env, sizeof(env));
	wisp_pb_put_bytes(&w, 2, peer_record_type, 2);
	wisp_pb_put_bytes(&w, 3, pl, plen);
	n = (size_t)wisp_pb_writer_finish(&w);
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_MALFORMED);
	wisp_pb_writer_init(&w, env, sizeof(env));
	wisp_pb_put_varint(&w, 1, 7);
	n = (size_t)wisp_pb_writer_finish(&w);
	assert_int_equal(wisp_peer_record_open(&rec, env, n), WISP_ERR_WIRE_TYPE);
	/* a signature field over its bound, a whole envelope over its bound */
	static uint8_t sig[WISP_PEER_RECORD_MAX_SIG + 1];
	wisp_pb_writer_init(&w, benv, sizeof(benv));
	wisp_pb_put_bytes(&w, 5, sig, sizeof(sig));
	n = (size_t)wisp_pb_writer_finish(&w);
	assert_int_equal(wisp_peer_record_open(&rec, benv, n), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_peer_record_open(&rec, benv, WISP_PEER_RECORD_MAX + 1), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_peer_record_open(&rec, NULL, 0), WISP_ERR_MALFORMED);
	wisp_privkey_wipe(&a);
	wisp_privkey_wipe(&b);
}

/* Only /ip4|ip6/../tcp/.. with nothing after it but our own /p2p. */
static void test_tcp_addrs(void **state)
{
	(void)state;
	wisp_privkey a, b;
	fixed_key(&a, 1);
	fixed_key(&b, 7);
	wisp_peer_id ida, idb;
	assert_int_equal(wisp_peer_id_from_pubkey(&ida, wisp_privkey_pubkey(&a)), 0);
	assert_int_equal(wisp_peer_id_from_pubkey(&idb, wisp_privkey_pubkey(&b)), 0);
	char own[160], other[160], b58[WISP_PEER_ID_TEXT_MAX];
	assert_true(wisp_peer_id_to_base58(&ida, b58, sizeof(b58)) > 0);
	snprintf(own, sizeof(own), "/ip4/10.0.0.2/tcp/2/p2p/%s", b58);
	assert_true(wisp_peer_id_to_base58(&idb, b58, sizeof(b58)) > 0);
	snprintf(other, sizeof(other), "/ip4/10.0.0.3/tcp/3/p2p/%s", b58);
	const char *texts[] = { "/ip4/10.0.0.1/udp/1", "/dns4/example.com/tcp/4", own, other, "/ip6/::1/tcp/5",
				"/ip4/10.0.0.4/tcp/6/tcp/7" };
	uint8_t bin[6][160];
	wisp_peer_record_addr addrs[7];
	for (int i = 0; i < 6; i++)
		addrs[i] = (wisp_peer_record_addr){ bin[i], ma(texts[i], bin[i], sizeof(bin[i])) };
	static const uint8_t garbage[] = { 0x06, 0x01 }; /* tcp, cut */
	addrs[6] = (wisp_peer_record_addr){ garbage, sizeof(garbage) };
	uint8_t env[4096];
	ssize_t n = wisp_peer_record_seal(&a, 3, addrs, 7, env, sizeof(env));
	assert_true(n > 0);
	wisp_peer_record rec;
	assert_int_equal(wisp_peer_record_open(&rec, env, (size_t)n), 0);
	assert_int_equal(rec.n_addrs, 7);
	struct sockaddr_storage ss[8];
	socklen_t sl[8];
	assert_int_equal(wisp_peer_record_tcp(&rec, ss, sl, 8), 2);
	assert_int_equal(ntohs(((const struct sockaddr_in *)&ss[0])->sin_port), 2);
	assert_int_equal(sl[0], sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((const struct sockaddr_in6 *)&ss[1])->sin6_port), 5);
	assert_int_equal(sl[1], sizeof(struct sockaddr_in6));
	wisp_privkey_wipe(&a);
	wisp_privkey_wipe(&b);
}

/* Payloads alone (what the fuzzer reaches past the signature). */
static void test_payload(void **state)
{
	(void)state;
	wisp_privkey a;
	fixed_key(&a, 1);
	wisp_peer_id ida;
	assert_int_equal(wisp_peer_id_from_pubkey(&ida, wisp_privkey_pubkey(&a)), 0);
	uint8_t pl[256];
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, pl, sizeof(pl));
	wisp_pb_put_bytes(&w, 3, "", 0); /* an AddressInfo without multiaddr: empty */
	wisp_pb_put_varint(&w, 9, 1);   /* unknown: skipped */
	wisp_pb_put_bytes(&w, 1, ida.bytes, ida.len);
	size_t pid_end = w.len; /* a prefix without the whole peer_id is refused */
	wisp_pb_put_varint(&w, 2, UINT64_MAX);
	size_t n = (size_t)wisp_pb_writer_finish(&w);
	wisp_peer_record rec;
	assert_int_equal(wisp_peer_record_decode_payload(&rec, pl, n), 0);
	assert_true(rec.seq == UINT64_MAX && rec.n_addrs == 1 && rec.addrs[0].len == 0);
	assert_true(wisp_peer_id_equal(&rec.peer, &ida));
	struct sockaddr_storage ss[1];
	socklen_t sl[1];
	assert_int_equal(wisp_peer_record_tcp(&rec, ss, sl, 1), 0);
	for (size_t k = 0; k < pid_end; k++)
		assert_true(wisp_peer_record_decode_payload(&rec, pl, k) < 0);
	wisp_privkey_wipe(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed_vector), cmocka_unit_test(test_seal_bounds),
		cmocka_unit_test(test_tampering),    cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_tcp_addrs),    cmocka_unit_test(test_payload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
