/* identify message codec: a js-libp2p-shaped message, round trips with
 * every field, bounds, wire-type and protobuf faults, framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdio.h>
#include <string.h>

#include <wisp/error.h>
#include <wisp/identity.h>

#include "codec/frame.h"
#include "codec/multiaddr.h"
#include "codec/pb.h"
#include "net/identify.h"

/* PublicKey of the secret 01 02 .. 20 (tests/unit/test_identity.c). */
#define FIXED_PUB_PB "080212210284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0"

/* An identify response as js-libp2p 2.x writes it: protons encodes the
 * fields in the order of identify's message.proto (5, 6, 1, 2, 4, 3, 8), not
 * by number. Built by hand from that schema:
 *   protocolVersion  "ipfs/0.1.0"
 *   agentVersion     "js-libp2p/2.8.2 UserAgent=v22.12.0"
 *   publicKey        FIXED_PUB_PB
 *   listenAddrs      /ip4/127.0.0.1/tcp/40123, /ip4/127.0.0.1/tcp/40124/ws
 *   observedAddr     /ip4/127.0.0.1/tcp/51234
 *   protocols        /ipfs/id/1.0.0 /ipfs/id/push/1.0.0 /ipfs/ping/1.0.0 /meshsub/1.2.0
 *   signedPeerRecord an Envelope{public_key, payload_type 0x0301, PeerRecord
 *                    {peer_id, seq, addresses}, signature} of 191 bytes at
 *                    offset 193 (the signature bytes are filler). */
static const char js_identify_hex[] =
	"2a0a697066732f302e312e3032226a732d6c69627032702f322e382e3220557365724167"
	"656e743d7632322e31322e300a25080212210284bf7562262bbd6940085748f3be6afa52"
	"ae317155181ece31b66351ccffa4b01208047f000001069cbb120a047f000001069cbcdd"
	"032208047f00000106c8221a0e2f697066732f69642f312e302e301a132f697066732f69"
	"642f707573682f312e302e301a102f697066732f70696e672f312e302e301a0e2f6d6573"
	"687375622f312e322e3042bf010a25080212210284bf7562262bbd6940085748f3be6afa"
	"52ae317155181ece31b66351ccffa4b0120281061a4a0a270025080212210284bf756226"
	"2bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b01080d0fa99b4321a0a"
	"0a08047f000001069cbb1a0c0a0a047f000001069cbcdd032a4630444041424344454647"
	"48494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b"
	"6c6d6e6f707172737475767778797a7b7c7d7e7f80818283";

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	long n = wt_unhex(hex, out, cap);
	assert_true(n >= 0);
	return (size_t)n;
}

static void assert_slice(const wisp_identify_bytes *b, const char *s)
{
	assert_int_equal(b->len, strlen(s));
	assert_memory_equal(b->data, s, b->len);
}

static void assert_addr_text(const wisp_identify_bytes *b, const char *want)
{
	char text[256];
	ssize_t n = wisp_multiaddr_to_text(b->data, b->len, text, sizeof(text));
	assert_true(n > 0);
	assert_string_equal(text, want);
}

static void fixed_pubkey(wisp_pubkey *pub)
{
	uint8_t pb[64];
	size_t n = unhex(FIXED_PUB_PB, pb, sizeof(pb));
	assert_int_equal(wisp_pubkey_decode(pub, pb, n), 0);
}

static void test_js_message(void **state)
{
	(void)state;
	static wisp_identify m, again;
	uint8_t in[512], out[512];
	size_t n = unhex(js_identify_hex, in, sizeof(in));
	wisp_pubkey pub;

	assert_int_equal(wisp_identify_decode(&m, in, n), 0);
	assert_slice(&m.protocol_version, "ipfs/0.1.0");
	assert_slice(&m.agent_version, "js-libp2p/2.8.2 UserAgent=v22.12.0");
	assert_true(m.has_protocol_version && m.has_agent_version);
	assert_true(m.has_public_key);
	fixed_pubkey(&pub);
	assert_true(wisp_pubkey_equal(&m.public_key, &pub));
	assert_int_equal(m.n_listen_addrs, 2);
	assert_addr_text(&m.listen_addrs[0], "/ip4/127.0.0.1/tcp/40123");
	/* /ws is not in wisp's multiaddr table: kept raw, the user skips it */
	assert_int_equal(wisp_multiaddr_validate(m.listen_addrs[1].data, m.listen_addrs[1].len),
			 WISP_ERR_UNKNOWN_CODE);
	assert_int_equal(m.listen_addrs[1].len, 10);
	assert_true(m.has_observed_addr);
	assert_addr_text(&m.observed_addr, "/ip4/127.0.0.1/tcp/51234");
	assert_int_equal(m.n_protocols, 4);
	assert_slice(&m.protocols[0], "/ipfs/id/1.0.0");
	assert_slice(&m.protocols[1], "/ipfs/id/push/1.0.0");
	assert_slice(&m.protocols[2], "/ipfs/ping/1.0.0");
	assert_slice(&m.protocols[3], "/meshsub/1.2.0");
	assert_true(m.has_signed_peer_record);
	assert_int_equal(m.signed_peer_record.len, 191);
	assert_ptr_equal(m.signed_peer_record.data, in + 193);
	/* zero-copy: every slice points into the input */
	assert_true(m.agent_version.data > in && m.agent_version.data < in + n);

	/* Re-encoded in field-number order: other bytes, same content, and the
	 * same length (every field is written once, as it came). */
	ssize_t w = wisp_identify_encode(&m, out, sizeof(out));
	assert_int_equal(w, n);
	assert_memory_not_equal(out, in, n);
	assert_int_equal(out[0], 0x0a); /* publicKey first */
	assert_int_equal(wisp_identify_decode(&again, out, (size_t)w), 0);
	assert_int_equal(again.n_protocols, 4);
	assert_int_equal(again.n_listen_addrs, 2);
	assert_memory_equal(again.signed_peer_record.data, m.signed_peer_record.data, 191);
	assert_slice(&again.agent_version, "js-libp2p/2.8.2 UserAgent=v22.12.0");

	/* As a frame: the uvarint prefix, then the message. */
	uint8_t framed[520];
	framed[0] = (uint8_t)(0x80 | (n & 0x7f));
	framed[1] = (uint8_t)(n >> 7);
	memcpy(framed + 2, in, n);
	assert_int_equal(wisp_identify_read_frame(&again, framed, n + 1), 0);
	assert_int_equal(wisp_identify_read_frame(&again, framed, n + 2), n + 2);
	assert_int_equal(again.n_protocols, 4);
}

static void fill_all(wisp_identify *m, uint8_t addrs[3][64], size_t addr_len[3])
{
	static const char *const texts[3] = { "/ip4/10.0.0.1/tcp/9000", "/ip6/::1/tcp/9000/p2p/16Uiu2HAm4Ms862Gnqafssgvik4JJ1LuqWMcKNipq4nm2UaoLRbeP",
					      "/dns4/node.example/tcp/443" };
	memset(m, 0, sizeof(*m));
	fixed_pubkey(&m->public_key);
	m->has_public_key = true;
	for (int i = 0; i < 3; i++) {
		ssize_t n = wisp_multiaddr_from_text(texts[i], strlen(texts[i]), addrs[i], 64);
		assert_true(n > 0);
		addr_len[i] = (size_t)n;
		m->listen_addrs[i].data = addrs[i];
		m->listen_addrs[i].len = addr_len[i];
	}
	m->n_listen_addrs = 3;
	m->protocols[0] = wisp_identify_str("/ipfs/id/1.0.0");
	m->protocols[1] = wisp_identify_str("/meshsub/1.1.0");
	m->protocols[2] = wisp_identify_str(""); /* empty strings are values too */
	m->n_protocols = 3;
	m->observed_addr = m->listen_addrs[0];
	m->has_observed_addr = true;
	m->protocol_version = wisp_identify_str("ipfs/0.1.0");
	m->has_protocol_version = true;
	m->agent_version = wisp_identify_str("wisp/0.1.0");
	m->has_agent_version = true;
	m->signed_peer_record.data = (const uint8_t *)"\x0a\x01\x00";
	m->signed_peer_record.len = 3;
	m->has_signed_peer_record = true;
}

static void test_roundtrip_every_field(void **state)
{
	(void)state;
	static wisp_identify m, d, e;
	uint8_t addrs[3][64], buf[1024], buf2[1024];
	size_t alen[3];

	fill_all(&m, addrs, alen);
	ssize_t size = wisp_identify_encoded_size(&m);
	assert_true(size > 0);
	ssize_t n = wisp_identify_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, size);
	assert_int_equal(wisp_identify_decode(&d, buf, (size_t)n), 0);
	assert_true(d.has_public_key && wisp_pubkey_equal(&d.public_key, &m.public_key));
	assert_int_equal(d.n_listen_addrs, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(d.listen_addrs[i].len, alen[i]);
		assert_memory_equal(d.listen_addrs[i].data, addrs[i], alen[i]);
		assert_int_equal(wisp_multiaddr_validate(d.listen_addrs[i].data, d.listen_addrs[i].len), 0);
	}
	assert_int_equal(d.n_protocols, 3);
	assert_slice(&d.protocols[0], "/ipfs/id/1.0.0");
	assert_slice(&d.protocols[1], "/meshsub/1.1.0");
	assert_int_equal(d.protocols[2].len, 0);
	assert_true(d.has_observed_addr);
	assert_int_equal(d.observed_addr.len, alen[0]);
	assert_slice(&d.protocol_version, "ipfs/0.1.0");
	assert_slice(&d.agent_version, "wisp/0.1.0");
	assert_int_equal(d.signed_peer_record.len, 3);

	/* Our encoding is canonical: decode then encode gives the same bytes. */
	assert_int_equal(wisp_identify_encode(&d, buf2, sizeof(buf2)), n);
	assert_memory_equal(buf, buf2, (size_t)n);

	/* Framed both ways, with a frame behind it. */
	ssize_t f = wisp_identify_write_frame(&m, buf2, sizeof(buf2));
	assert_int_equal(f, wisp_frame_size((size_t)n));
	buf2[f] = 0x00; /* the start of an (empty) next frame */
	assert_int_equal(wisp_identify_read_frame(&e, buf2, (size_t)f + 1), f);
	assert_int_equal(e.n_protocols, 3);
	assert_int_equal(wisp_identify_read_frame(&e, buf2 + f, 1), 1); /* empty message */
	assert_false(e.has_public_key || e.has_agent_version);
	assert_int_equal(e.n_protocols, 0);

	/* Output too small: every size below the exact one. */
	for (size_t cap = 0; cap < (size_t)n; cap += 7)
		assert_int_equal(wisp_identify_encode(&m, buf2, cap), WISP_ERR_NOBUF);
	assert_int_equal(wisp_identify_write_frame(&m, buf2, (size_t)n), WISP_ERR_NOBUF);
	assert_int_equal(wisp_identify_write_frame(&m, NULL, 0), WISP_ERR_NOBUF);

	/* Push: only what changed is present. */
	static wisp_identify push;
	memset(&push, 0, sizeof(push));
	push.protocols[0] = wisp_identify_str("/meshsub/1.2.0");
	push.n_protocols = 1;
	n = wisp_identify_encode(&push, buf, sizeof(buf));
	assert_int_equal(n, 2 + 14);
	assert_int_equal(wisp_identify_decode(&d, buf, (size_t)n), 0);
	assert_false(d.has_public_key || d.has_observed_addr || d.has_agent_version ||
		     d.has_protocol_version || d.has_signed_peer_record);
	assert_int_equal(d.n_listen_addrs, 0);
	assert_int_equal(d.n_protocols, 1);
}

/* A message that repeats one field count times with a value of len bytes. */
static size_t repeated(uint8_t *out, size_t cap, uint32_t num, size_t count, size_t len)
{
	uint8_t val[1024];
	wisp_pb_writer w;
	assert_true(len <= sizeof(val));
	memset(val, 'p', len);
	wisp_pb_writer_init(&w, out, cap);
	for (size_t i = 0; i < count; i++)
		wisp_pb_put_bytes(&w, num, val, len);
	ssize_t n = wisp_pb_writer_finish(&w);
	assert_true(n >= 0);
	return (size_t)n;
}

static void test_decode_bounds(void **state)
{
	(void)state;
	static wisp_identify m;
	static uint8_t buf[WISP_IDENTIFY_MAX_MSG + 64];
	size_t n;

	/* counts: at the bound, then one over */
	n = repeated(buf, sizeof(buf), 2, WISP_IDENTIFY_MAX_ADDRS, 8);
	assert_int_equal(wisp_identify_decode(&m, buf, n), 0);
	assert_int_equal(m.n_listen_addrs, WISP_IDENTIFY_MAX_ADDRS);
	n = repeated(buf, sizeof(buf), 2, WISP_IDENTIFY_MAX_ADDRS + 1, 8);
	assert_int_equal(wisp_identify_decode(&m, buf, n), WISP_ERR_TOO_LARGE);
	n = repeated(buf, sizeof(buf), 3, WISP_IDENTIFY_MAX_PROTOCOLS, 20);
	assert_int_equal(wisp_identify_decode(&m, buf, n), 0);
	assert_int_equal(m.n_protocols, WISP_IDENTIFY_MAX_PROTOCOLS);
	n = repeated(buf, sizeof(buf), 3, WISP_IDENTIFY_MAX_PROTOCOLS + 1, 20);
	assert_int_equal(wisp_identify_decode(&m, buf, n), WISP_ERR_TOO_LARGE);

	/* lengths: at the bound, then one over */
	static const struct {
		uint32_t num;
		size_t max;
	} lens[] = {
		{ 2, WISP_IDENTIFY_MAX_ADDR_LEN },     { 4, WISP_IDENTIFY_MAX_ADDR_LEN },
		{ 3, WISP_IDENTIFY_MAX_PROTOCOL_LEN }, { 5, WISP_IDENTIFY_MAX_VERSION_LEN },
		{ 6, WISP_IDENTIFY_MAX_VERSION_LEN },
	};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		n = repeated(buf, sizeof(buf), lens[i].num, 1, lens[i].max);
		assert_int_equal(wisp_identify_decode(&m, buf, n), 0);
		n = repeated(buf, sizeof(buf), lens[i].num, 1, lens[i].max + 1);
		assert_int_equal(wisp_identify_decode(&m, buf, n), WISP_ERR_TOO_LARGE);
	}

	/* the whole message: 8 KiB is fine, one byte more is not */
	memset(buf, 0, sizeof(buf));
	n = repeated(buf, sizeof(buf), 8, 1, 1000);
	size_t pad = WISP_IDENTIFY_MAX_MSG - n;
	/* an unknown field 9 pads the message to exactly the bound */
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, buf + n, pad);
	static uint8_t filler[WISP_IDENTIFY_MAX_MSG];
	wisp_pb_put_bytes(&w, 9, filler, pad - 3);
	assert_int_equal(wisp_pb_writer_finish(&w), pad);
	assert_int_equal(wisp_identify_decode(&m, buf, WISP_IDENTIFY_MAX_MSG), 0);
	assert_int_equal(m.signed_peer_record.len, 1000);
	assert_int_equal(wisp_identify_decode(&m, buf, WISP_IDENTIFY_MAX_MSG + 1), WISP_ERR_TOO_LARGE);

	/* a frame prefix over the bound is refused before its payload */
	uint8_t prefix[4];
	ssize_t hl = wisp_frame_put_prefix(prefix, sizeof(prefix), WISP_IDENTIFY_MAX_MSG + 1);
	assert_int_equal(hl, 2);
	assert_int_equal(wisp_identify_read_frame(&m, prefix, (size_t)hl), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_identify_read_frame(&m, (const uint8_t *)"\xff", 1), 0); /* 255+ : wait */
	assert_int_equal(wisp_identify_read_frame(&m, (const uint8_t *)"\xff\xff", 2), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_identify_read_frame(&m, (const uint8_t *)"\x80\x00", 2), WISP_ERR_VARINT);
	assert_int_equal(wisp_identify_read_frame(&m, NULL, 0), 0);
}

static void expect_decode(const char *hex, int err)
{
	static wisp_identify m;
	uint8_t b[256];
	size_t n = unhex(hex, b, sizeof(b));
	assert_int_equal(wisp_identify_decode(&m, b, n), err);
}

static void test_decode_faults(void **state)
{
	(void)state;
	static wisp_identify m;

	/* known fields with another wire type */
	expect_decode("0801", WISP_ERR_WIRE_TYPE);     /* publicKey as varint */
	expect_decode("1501020304", WISP_ERR_WIRE_TYPE); /* listenAddrs as fixed32 */
	expect_decode("1801", WISP_ERR_WIRE_TYPE);     /* protocols as varint */
	expect_decode("410102030405060708", WISP_ERR_WIRE_TYPE); /* signedPeerRecord as fixed64 */
	/* protobuf faults */
	expect_decode("1a05616263", WISP_ERR_TRUNCATED);
	expect_decode("1a", WISP_ERR_TRUNCATED);
	expect_decode("1a8000", WISP_ERR_VARINT);
	expect_decode("0b", WISP_ERR_WIRE_TYPE); /* group */
	expect_decode("0200", WISP_ERR_MALFORMED); /* field 0 */
	/* publicKey that is not a secp256k1 key */
	expect_decode("0a24" "0801" "1220" "5555555555555555555555555555555555555555555555555555555555555555",
		      WISP_ERR_UNKNOWN_CODE); /* Ed25519 */
	expect_decode("0a25" "0802" "1221" "05" "84bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0",
		      WISP_ERR_BAD_KEY); /* not a compressed point prefix */
	expect_decode("0a02" "0802", WISP_ERR_MALFORMED); /* no Data */
	/* unknown fields of every wire type are skipped */
	expect_decode("3801" "4d01020304" "490102030405060708" "a2060161" "1a0161", 0);
	/* empty input, NULL included */
	assert_int_equal(wisp_identify_decode(&m, NULL, 0), 0);
	assert_int_equal(m.n_protocols, 0);
	assert_false(m.has_public_key);

	/* a repeated singular field keeps its last value */
	uint8_t b[64];
	size_t n = unhex("3203616263" "3202787a", b, sizeof(b));
	assert_int_equal(wisp_identify_decode(&m, b, n), 0);
	assert_slice(&m.agent_version, "xz");
	/* a failed decode starts from a clean struct next time */
	expect_decode("3203616263" "0b", WISP_ERR_WIRE_TYPE);
	n = unhex("1a0161", b, sizeof(b));
	assert_int_equal(wisp_identify_decode(&m, b, n), 0);
	assert_false(m.has_agent_version);
	assert_int_equal(m.n_protocols, 1);
}

static void test_encode_bounds(void **state)
{
	(void)state;
	static wisp_identify m;
	static uint8_t buf[WISP_IDENTIFY_MAX_MSG * 2], big[WISP_IDENTIFY_MAX_MSG];

	memset(&m, 0, sizeof(m));
	memset(big, 'x', sizeof(big));
	m.n_protocols = WISP_IDENTIFY_MAX_PROTOCOLS + 1;
	assert_int_equal(wisp_identify_encode(&m, buf, sizeof(buf)), WISP_ERR_INVALID_ARG);
	m.n_protocols = 0;
	m.n_listen_addrs = WISP_IDENTIFY_MAX_ADDRS + 1;
	assert_int_equal(wisp_identify_encoded_size(&m), WISP_ERR_INVALID_ARG);
	m.n_listen_addrs = 1;
	m.listen_addrs[0].data = big;
	m.listen_addrs[0].len = WISP_IDENTIFY_MAX_ADDR_LEN + 1;
	assert_int_equal(wisp_identify_encode(&m, buf, sizeof(buf)), WISP_ERR_INVALID_ARG);
	m.listen_addrs[0].len = WISP_IDENTIFY_MAX_ADDR_LEN;
	assert_true(wisp_identify_encode(&m, buf, sizeof(buf)) > 0);
	m.listen_addrs[0].data = NULL;
	assert_int_equal(wisp_identify_encode(&m, buf, sizeof(buf)), WISP_ERR_INVALID_ARG);
	m.n_listen_addrs = 0;
	m.has_agent_version = true;
	m.agent_version.data = big;
	m.agent_version.len = WISP_IDENTIFY_MAX_VERSION_LEN + 1;
	assert_int_equal(wisp_identify_encode(&m, buf, sizeof(buf)), WISP_ERR_INVALID_ARG);
	m.agent_version.len = 3;
	/* the total over 8 KiB, every field within its own bound */
	m.has_signed_peer_record = true;
	m.signed_peer_record.data = big;
	m.signed_peer_record.len = WISP_IDENTIFY_MAX_MSG - 5;
	assert_int_equal(wisp_identify_encode(&m, buf, sizeof(buf)), WISP_ERR_INVALID_ARG);
	m.signed_peer_record.len = WISP_IDENTIFY_MAX_MSG - 5 - 3; /* key, 2-byte length */
	ssize_t n = wisp_identify_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, WISP_IDENTIFY_MAX_MSG);
	static wisp_identify d;
	assert_int_equal(wisp_identify_decode(&d, buf, (size_t)n), 0);
	assert_int_equal(d.signed_peer_record.len, m.signed_peer_record.len);
	/* an empty message encodes to nothing */
	memset(&m, 0, sizeof(m));
	assert_int_equal(wisp_identify_encode(&m, NULL, 0), 0);
	assert_int_equal(wisp_identify_write_frame(&m, buf, 1), 1);
	assert_int_equal(buf[0], 0);
}

/* Random messages through encode and decode; every cut of an encoding
 * either decodes (a clean field boundary) or fails as truncated. */
static void test_random_roundtrip(void **state)
{
	(void)state;
	static wisp_identify m, d;
	static uint8_t pool[4096], buf[WISP_IDENTIFY_MAX_MSG];

	wt_rng_seed("identify");
	for (size_t i = 0; i < sizeof(pool); i++)
		pool[i] = (uint8_t)wt_rng();
	for (int iter = 0; iter < 500; iter++) {
		memset(&m, 0, sizeof(m));
		m.n_listen_addrs = (size_t)(wt_rng() % 6);
		for (size_t i = 0; i < m.n_listen_addrs; i++) {
			m.listen_addrs[i].len = (size_t)(wt_rng() % 40);
			m.listen_addrs[i].data = pool + wt_rng() % 2048;
		}
		m.n_protocols = (size_t)(wt_rng() % 20);
		for (size_t i = 0; i < m.n_protocols; i++) {
			m.protocols[i].len = (size_t)(wt_rng() % 60);
			m.protocols[i].data = pool + wt_rng() % 2048;
		}
		m.has_agent_version = wt_rng() & 1;
		m.agent_version.len = m.has_agent_version ? (size_t)(wt_rng() % 100) : 0;
		m.agent_version.data = pool;
		m.has_signed_peer_record = wt_rng() & 1;
		m.signed_peer_record.len = m.has_signed_peer_record ? (size_t)(wt_rng() % 300) : 0;
		m.signed_peer_record.data = pool + 100;
		ssize_t n = wisp_identify_encode(&m, buf, sizeof(buf));
		assert_true(n >= 0);
		assert_int_equal(wisp_identify_decode(&d, buf, (size_t)n), 0);
		assert_int_equal(d.n_listen_addrs, m.n_listen_addrs);
		assert_int_equal(d.n_protocols, m.n_protocols);
		for (size_t i = 0; i < m.n_protocols; i++) {
			assert_int_equal(d.protocols[i].len, m.protocols[i].len);
			if (d.protocols[i].len)
				assert_memory_equal(d.protocols[i].data, m.protocols[i].data, d.protocols[i].len);
		}
		assert_int_equal(d.has_agent_version, m.has_agent_version);
		assert_int_equal(d.signed_peer_record.len, m.signed_peer_record.len);
		if (n > 0) {
			size_t cut = (size_t)(wt_rng() % (uint64_t)n);
			int rc = wisp_identify_decode(&d, buf, cut);
			assert_true(rc == 0 || rc == WISP_ERR_TRUNCATED);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_js_message),
		cmocka_unit_test(test_roundtrip_every_field),
		cmocka_unit_test(test_decode_bounds),
		cmocka_unit_test(test_decode_faults),
		cmocka_unit_test(test_encode_bounds),
		cmocka_unit_test(test_random_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
