/* Noise: the raw Noise_XX layer against published test vectors, then the
 * libp2p handshake between two in-process endpoints, then every way a peer
 * can break it, each with its exact error. Misbehaving peers are built from
 * the raw layer (net/noise_xx.h), which sends any payload we like. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <wisp/error.h>
#include <wisp/identity.h>

#include "codec/pb.h"
#include "net/noise.h"
#include "net/noise_xx.h"

#define WIRE (WISP_NOISE_MAX_WIRE)

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	long n = wt_unhex(hex, out, cap);
	assert_true(n >= 0);
	return (size_t)n;
}

/* ---- OpenSSL allocation counter (installed in main, before any use) ---- */

static unsigned long ossl_allocs;

static void *count_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	ossl_allocs++;
	return malloc(n);
}

static void *count_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	ossl_allocs++;
	return realloc(p, n);
}

static void count_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

/* ---- published vectors for Noise_XX_25519_ChaChaPoly_SHA256 ------------- */

struct vector {
	const char *name;
	const char *prologue, *init_static, *init_ephemeral, *resp_static, *resp_ephemeral;
	const char *handshake_hash; /* NULL when the file gives none */
	const char *msgs[6][2];     /* payload, ciphertext; sender alternates, initiator first */
	int n_msgs;
};

static const struct vector vectors[] = {
	{
		/* cacophony.txt (as shipped in mcginty/snow tests/vectors) */
		.name = "cacophony",
		.prologue = "4a6f686e2047616c74",
		.init_static = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
		.init_ephemeral = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
		.resp_static = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
		.resp_ephemeral = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
		.handshake_hash = "c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e",
		.msgs = {
			{ "4c756477696720766f6e204d69736573",
			  "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
			  "4c756477696720766f6e204d69736573" },
			{ "4d757272617920526f746862617264",
			  "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f"
			  "276e038c48378ffce2b65285e08d6b68aaa3629a5a8639392490e5b9bd5269c2f1e4f488"
			  "ed8831161f19b7815528f8982ffe09be9b5c412f8a0db50f8814c7194e83f23dbd8d162c"
			  "9326ad" },
			{ "462e20412e20486179656b",
			  "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a80ae475b9"
			  "df0f169ae80a89be0865b57f58c9fea0d4ec82a286427402f113e4b6ae769a1d95941d49"
			  "b25030" },
			{ "4361726c204d656e676572", "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df" },
			{ "4a65616e2d426170746973746520536179",
			  "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07f5" },
			{ "457567656e2042f6686d20766f6e2042617765726b",
			  "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3a58502ae3f" },
		},
		.n_msgs = 6,
	},
	{
		/* snow.txt (mcginty/snow tests/vectors) */
		.name = "snow",
		.prologue = "5468657265206973206e6f20726967687420616e642077726f6e672e205468657265"
			    "2773206f6e6c792066756e20616e6420626f72696e672e",
		.init_static = "7dec208517a3b81a2861d7a71266d5d6dc944c5a8816634a86fe63198a0148ee",
		.init_ephemeral = "a32daf21e93c0131495ce1d903181fde81cc46937daaeb990bae7c992709421e",
		.resp_static = "4d0aed5098e3b4ef20357e9f686ce66204c792b358da2e475017d6c485304881",
		.resp_ephemeral = "4eece0f195d026db035ff987597c429d3ad3bcc2944df37d649528951b2a27c5",
		.handshake_hash = NULL,
		.msgs = {
			{ "d03c489139e645d0711a3c9e810d776b46a84912463fafa87b884eebf242dc34",
			  "f9fa868ba97ab8a2686deccfaad5a484ee10a5bb85e3d1dce015a84797f92818"
			  "d03c489139e645d0711a3c9e810d776b46a84912463fafa87b884eebf242dc34" },
			{ "d8190a92f7dc0c93dbea9118ba8055751fb7c6590c416ffbd419964132b99a85",
			  "8c4e6fdb7d09d501a86f7eca5c234522751706ed409182c05cdf5f827d4dae47b81c6c5f"
			  "43b025692c24391eefee725c17d8cb0fbe3e4abb8aedf42c4fd2592d4ea48ac08989d6ae"
			  "8b4adae08b2c34087c808c7aa55a63c02b0fab9e930612336bd43eaea04d3c670a0a1466"
			  "91aa9cc9d357872320dc735dbc48580cffb553db" },
			{ "77891b19dcb92ef7c055b672c4a5aa7fdf1c84146b8b303459022729473ce254",
			  "933ca6b5ed60df3df66121f0ab49a09e49efa45c613a86a3cecbf4c535cef2f83f72b428"
			  "37b18e3572f2fdc2b74c331e2368a545cef54bdca081678ab0e9dd5348122459e0c034c8"
			  "51984d88ce610963d43cde6cfe73a67fbd5a63e8bfca96d0" },
			{ "d7efdf988072881941db045a42882433817555128fbf5663e56081712ec7d212",
			  "54ef0ff0629e1aaa7685a2806ab111cba76b52331f2642276736f415868eacb69ab2577f"
			  "3bda0cbf72f879685f6ed25f" },
			{ "dd7bf01a588bafb52c6cfba952e5d8fe35cc2b3f92b4730ae2474615157345ce",
			  "356be70f110306d5c699bb834bb9d58d909e325924dfbec972e406e6f294dc63e1daebef"
			  "e8a62a334facc8048ab4ad66" },
		},
		.n_msgs = 5,
	},
};

static void run_vector(const struct vector *v)
{
	uint8_t pro[128], is[32], ie[32], rs[32], re[32];
	size_t plen = unhex(v->prologue, pro, sizeof(pro));
	wisp_noise_xx a, b;

	unhex(v->init_static, is, sizeof(is));
	unhex(v->init_ephemeral, ie, sizeof(ie));
	unhex(v->resp_static, rs, sizeof(rs));
	unhex(v->resp_ephemeral, re, sizeof(re));
	assert_int_equal(wisp_noise_xx_init(&a, true, pro, plen, is, ie), 0);
	assert_int_equal(wisp_noise_xx_init(&b, false, pro, plen, rs, re), 0);

	for (int i = 0; i < v->n_msgs; i++) {
		uint8_t p[128], want[256], out[256], *got;
		size_t pl = unhex(v->msgs[i][0], p, sizeof(p));
		size_t wl = unhex(v->msgs[i][1], want, sizeof(want));
		wisp_noise_xx *w = i % 2 == 0 ? &a : &b, *r = i % 2 == 0 ? &b : &a;
		ssize_t n;

		if (i < 3) {
			assert_true(wisp_noise_xx_my_turn(w));
			assert_false(wisp_noise_xx_my_turn(r));
			n = wisp_noise_xx_write(w, out, sizeof(out), p, pl);
			assert_int_equal(n, wl);
			assert_memory_equal(out, want, wl);
			n = wisp_noise_xx_read(r, out, wl, &got);
		} else {
			assert_int_equal(wisp_noise_xx_seal(w, out, p, pl), 0);
			assert_memory_equal(out, want, wl);
			assert_int_equal(wisp_noise_xx_open(r, out, wl), 0);
			got = out;
			n = (ssize_t)(wl - WISP_NOISE_XX_TAGLEN);
		}
		assert_int_equal(n, pl);
		assert_memory_equal(got, p, pl);
	}
	assert_true(wisp_noise_xx_done(&a) && wisp_noise_xx_done(&b));
	assert_memory_equal(wisp_noise_xx_handshake_hash(&a), wisp_noise_xx_handshake_hash(&b), 32);
	if (v->handshake_hash) {
		uint8_t hh[32];
		unhex(v->handshake_hash, hh, sizeof(hh));
		assert_memory_equal(wisp_noise_xx_handshake_hash(&a), hh, 32);
	}
	/* Each side learned the other's static key. */
	assert_memory_equal(wisp_noise_xx_remote_static(&a), wisp_noise_xx_local_static(&b), 32);
	assert_memory_equal(wisp_noise_xx_remote_static(&b), wisp_noise_xx_local_static(&a), 32);
	wisp_noise_xx_fini(&a);
	wisp_noise_xx_fini(&b);
}

static void test_xx_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		printf("# vector %s\n", vectors[i].name);
		run_vector(&vectors[i]);
	}
}

/* The raw layer on its own: turn order, in-place payloads, sizes, errors. */
static void test_xx_rules(void **state)
{
	(void)state;
	wisp_noise_xx a, b;
	uint8_t buf[256], *p;

	assert_int_equal(wisp_noise_xx_init(&a, true, NULL, 0, NULL, NULL), 0);
	assert_int_equal(wisp_noise_xx_init(&b, false, NULL, 0, NULL, NULL), 0);
	assert_int_equal(wisp_noise_xx_write(&b, buf, sizeof(buf), NULL, 0), WISP_ERR_STATE);
	assert_int_equal(wisp_noise_xx_read(&a, buf, 32, &p), WISP_ERR_STATE);
	assert_int_equal(wisp_noise_xx_seal(&a, buf, NULL, 0), WISP_ERR_STATE);
	assert_int_equal(wisp_noise_xx_write(&a, buf, 31, NULL, 0), WISP_ERR_NOBUF);
	assert_int_equal(wisp_noise_xx_write(&a, buf, sizeof(buf), NULL, WISP_NOISE_XX_MAX_MSG),
			 WISP_ERR_NOBUF);
	assert_int_equal(wisp_noise_xx_write(&a, buf, sizeof(buf), NULL, 0), 32);
	assert_int_equal(wisp_noise_xx_read(&b, buf, 32, &p), 0);
	/* message 2 with its payload built in place at the head offset */
	memcpy(buf + wisp_noise_xx_msg_head(1), "hello", 5);
	assert_int_equal(wisp_noise_xx_write(&b, buf, sizeof(buf), buf + wisp_noise_xx_msg_head(1), 5),
			 96 + 5);
	assert_int_equal(wisp_noise_xx_read(&a, buf, 96 + 5, &p), 5);
	assert_memory_equal(p, "hello", 5);
	/* message 3 with the payload at the start of out: moved, not lost */
	memcpy(buf, "world!", 6);
	assert_int_equal(wisp_noise_xx_write(&a, buf, sizeof(buf), buf, 6), 64 + 6);
	assert_int_equal(wisp_noise_xx_read(&b, buf, 64 + 6, &p), 6);
	assert_memory_equal(p, "world!", 6);
	assert_true(wisp_noise_xx_done(&a) && wisp_noise_xx_done(&b));
	assert_int_equal(wisp_noise_xx_write(&a, buf, sizeof(buf), NULL, 0), WISP_ERR_STATE);
	assert_int_equal(wisp_noise_xx_open(&b, buf, 15), WISP_ERR_TRUNCATED);
	wisp_noise_xx_fini(&a);
	wisp_noise_xx_fini(&b);
	/* fini twice, and on a zeroed struct, is harmless */
	wisp_noise_xx_fini(&a);
}

/* ---- libp2p endpoints ----------------------------------------------------- */

static void make_key(wisp_privkey *k, uint8_t first)
{
	uint8_t s[WISP_SECRET_LEN];
	for (int i = 0; i < WISP_SECRET_LEN; i++)
		s[i] = (uint8_t)(first + i);
	assert_int_equal(wisp_privkey_from_secret(k, s), 0);
}

static wisp_privkey key_a, key_b, key_c;
static wisp_peer_id id_a, id_b, id_c;

static int setup_keys(void **state)
{
	(void)state;
	make_key(&key_a, 0x01);
	make_key(&key_b, 0x21);
	make_key(&key_c, 0x41);
	if (wisp_peer_id_from_pubkey(&id_a, wisp_privkey_pubkey(&key_a)) ||
	    wisp_peer_id_from_pubkey(&id_b, wisp_privkey_pubkey(&key_b)) ||
	    wisp_peer_id_from_pubkey(&id_c, wisp_privkey_pubkey(&key_c)))
		return -1;
	return 0;
}

static const char *const muxers_yamux[] = { "/yamux/1.0.0" };

static wisp_noise *endpoint(bool initiator, const wisp_privkey *key, const wisp_peer_id *expect,
			    const char *const *muxers, size_t n_muxers)
{
	wisp_noise *n = NULL;
	wisp_noise_config cfg = {
		.identity = key,
		.expect_remote = expect,
		.muxers = muxers,
		.n_muxers = n_muxers,
	};
	assert_int_equal(wisp_noise_new(&n, wisp_mem_default(), initiator, &cfg), 0);
	assert_non_null(n);
	return n;
}

/* Moves one handshake frame from a to b, if a has one. Returns the bytes
 * moved (0: a had nothing to say). */
static size_t transmit(wisp_noise *a, wisp_noise *b)
{
	static uint8_t buf[WIRE];
	ssize_t w = wisp_noise_handshake_write(a, buf, sizeof(buf));
	assert_true(w >= 0);
	if (w == 0)
		return 0;
	assert_int_equal(wisp_noise_handshake_read(b, buf, (size_t)w), w);
	return (size_t)w;
}

static void pump(wisp_noise *i, wisp_noise *r)
{
	for (int turns = 0; turns < 8 && !(wisp_noise_done(i) && wisp_noise_done(r)); turns++) {
		transmit(i, r);
		transmit(r, i);
	}
	assert_true(wisp_noise_done(i));
	assert_true(wisp_noise_done(r));
}

/* Seals len bytes of a pattern from a, opens at b, checks them. */
static void send_frame(wisp_noise *a, wisp_noise *b, size_t len)
{
	static uint8_t plain[WISP_NOISE_MAX_PLAINTEXT], wire[WIRE];
	uint8_t *got;
	size_t glen;

	for (size_t i = 0; i < len; i++)
		plain[i] = (uint8_t)(i * 7 + len);
	ssize_t w = wisp_noise_seal(a, wire, sizeof(wire), len ? plain : NULL, len);
	assert_int_equal(w, 2 + len + 16);
	assert_int_equal((size_t)wire[0] << 8 | wire[1], len + 16);
	assert_int_equal(wisp_noise_open(b, wire, (size_t)w, &got, &glen), w);
	assert_int_equal(glen, len);
	assert_ptr_equal(got, wire + 2);
	if (len)
		assert_memory_equal(got, plain, len);
}

static void test_handshake_and_transport(void **state)
{
	(void)state;
	wisp_noise *i = endpoint(true, &key_a, &id_b, muxers_yamux, 1);
	wisp_noise *r = endpoint(false, &key_b, NULL, muxers_yamux, 1);
	uint8_t buf[WIRE];
	const char *mux[4];

	/* Nothing to read before anything was written; responder is silent. */
	assert_false(wisp_noise_done(i));
	assert_null(wisp_noise_remote_key(i));
	assert_int_equal(wisp_noise_handshake_write(r, buf, sizeof(buf)), 0);
	assert_int_equal(wisp_noise_handshake_read(i, buf, 0), 0);

	assert_int_equal(transmit(i, r), 34); /* 2 + e */
	assert_int_equal(transmit(i, r), 0);  /* initiator waits now */
	size_t m2 = transmit(r, i);
	assert_true(m2 > 2 + 96);
	/* The initiator knows the responder once message 2 is verified. */
	assert_false(wisp_noise_done(i));
	assert_non_null(wisp_noise_remote_key(i));
	assert_true(wisp_pubkey_equal(wisp_noise_remote_key(i), wisp_privkey_pubkey(&key_b)));
	assert_int_equal(wisp_noise_remote_muxers(i, mux, 4), 0); /* not before done */
	assert_null(wisp_noise_remote_key(r));
	transmit(i, r);
	assert_true(wisp_noise_done(i) && wisp_noise_done(r));
	assert_int_equal(wisp_noise_handshake_write(i, buf, sizeof(buf)), 0);
	assert_int_equal(wisp_noise_handshake_read(r, buf, 0), 0);

	assert_true(wisp_pubkey_equal(wisp_noise_remote_key(r), wisp_privkey_pubkey(&key_a)));
	assert_true(wisp_peer_id_equal(wisp_noise_remote_id(r), &id_a));
	assert_true(wisp_peer_id_equal(wisp_noise_remote_id(i), &id_b));
	assert_int_equal(wisp_noise_remote_muxers(i, mux, 4), 1);
	assert_string_equal(mux[0], "/yamux/1.0.0");
	assert_int_equal(wisp_noise_remote_muxers(r, mux, 0), 1);
	assert_string_equal(wisp_noise_muxer(i), "/yamux/1.0.0");
	assert_string_equal(wisp_noise_muxer(r), "/yamux/1.0.0");

	static const size_t sizes[] = { 0, 1, 2, 15, 16, 17, 1000, 16384, WISP_NOISE_MAX_PLAINTEXT };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		send_frame(i, r, sizes[k]);
		send_frame(r, i, sizes[k]);
	}

	/* In place: plaintext at buf + 2, sealed there, opened there. */
	memcpy(buf + 2, "in place", 8);
	assert_int_equal(wisp_noise_seal(r, buf, 2 + 8 + 16, buf + 2, 8), 26);
	assert_memory_not_equal(buf + 2, "in place", 8);
	uint8_t *got;
	size_t glen;
	assert_int_equal(wisp_noise_open(i, buf, 26, &got, &glen), 26);
	assert_int_equal(glen, 8);
	assert_memory_equal(got, "in place", 8);

	/* Several frames in one buffer, read one at a time; a partial frame
	 * waits for its remaining bytes. */
	size_t off = 0;
	for (int k = 0; k < 3; k++) {
		uint8_t b = (uint8_t)('a' + k);
		ssize_t w = wisp_noise_seal(i, buf + off, sizeof(buf) - off, &b, 1);
		assert_int_equal(w, 19);
		off += (size_t)w;
	}
	assert_int_equal(wisp_noise_open(r, buf, 1, &got, &glen), 0);
	assert_int_equal(wisp_noise_open(r, buf, 18, &got, &glen), 0);
	for (int k = 0; k < 3; k++) {
		assert_int_equal(wisp_noise_open(r, buf + 19 * k, off - 19 * (size_t)k, &got, &glen), 19);
		assert_int_equal(glen, 1);
		assert_int_equal(got[0], 'a' + k);
	}
	wisp_noise_free(i);
	wisp_noise_free(r);
	wisp_noise_free(NULL);
}

/* The initiator's first transport frame right behind message 3, and every
 * handshake frame delivered one byte at a time. */
static void test_pipelined_and_bytewise(void **state)
{
	(void)state;
	wisp_noise *i = endpoint(true, &key_a, NULL, NULL, 0);
	wisp_noise *r = endpoint(false, &key_b, NULL, NULL, 0);
	static uint8_t buf[WIRE], copy[WIRE];
	uint8_t *got;
	size_t glen;

	for (int msg = 0; msg < 2; msg++) {
		wisp_noise *from = msg == 0 ? i : r, *to = msg == 0 ? r : i;
		ssize_t w = wisp_noise_handshake_write(from, buf, sizeof(buf));
		assert_true(w > 0);
		memcpy(copy, buf, (size_t)w);
		for (size_t k = 0; k < (size_t)w; k++) {
			assert_int_equal(wisp_noise_handshake_read(to, buf, k), 0);
			assert_memory_equal(buf, copy, (size_t)w); /* untouched while waiting */
		}
		assert_int_equal(wisp_noise_handshake_read(to, buf, (size_t)w), w);
	}
	ssize_t m3 = wisp_noise_handshake_write(i, buf, sizeof(buf));
	assert_true(m3 > 0);
	assert_true(wisp_noise_done(i));
	ssize_t t = wisp_noise_seal(i, buf + m3, sizeof(buf) - (size_t)m3, (const uint8_t *)"early", 5);
	assert_int_equal(t, 23);
	size_t total = (size_t)(m3 + t);
	assert_int_equal(wisp_noise_handshake_read(r, buf, total), m3);
	assert_true(wisp_noise_done(r));
	assert_int_equal(wisp_noise_handshake_read(r, buf + m3, (size_t)t), 0);
	assert_int_equal(wisp_noise_open(r, buf + m3, (size_t)t, &got, &glen), t);
	assert_int_equal(glen, 5);
	assert_memory_equal(got, "early", 5);
	/* No muxers listed on either side: negotiate them the usual way. */
	assert_null(wisp_noise_muxer(i));
	assert_null(wisp_noise_muxer(r));
	assert_int_equal(wisp_noise_remote_muxers(r, NULL, 0), 0);
	wisp_noise_free(i);
	wisp_noise_free(r);
}

/* inlined-muxer-negotiation.md: the first of the initiator's list that the
 * responder supports; both listed and disjoint fails; one side silent
 * leaves it to multistream-select. */
static void test_muxer_agreement(void **state)
{
	(void)state;
	static const char *const client[] = { "/yamux/1.0.0", "/mplex/6.7.0" };
	static const char *const server[] = { "/mplex/6.7.0", "/yamux/1.0.0" };
	static const char *const other[] = { "/other/1.0.0" };

	wisp_noise *i = endpoint(true, &key_a, NULL, client, 2);
	wisp_noise *r = endpoint(false, &key_b, NULL, server, 2);
	pump(i, r);
	assert_string_equal(wisp_noise_muxer(i), "/yamux/1.0.0");
	assert_string_equal(wisp_noise_muxer(r), "/yamux/1.0.0");
	const char *mux[2];
	assert_int_equal(wisp_noise_remote_muxers(r, mux, 1), 2); /* count, even past max */
	assert_string_equal(mux[0], "/yamux/1.0.0");
	wisp_noise_free(i);
	wisp_noise_free(r);

	i = endpoint(true, &key_a, NULL, server, 2);
	r = endpoint(false, &key_b, NULL, client, 2);
	pump(i, r);
	assert_string_equal(wisp_noise_muxer(i), "/mplex/6.7.0");
	assert_string_equal(wisp_noise_muxer(r), "/mplex/6.7.0");
	wisp_noise_free(i);
	wisp_noise_free(r);

	i = endpoint(true, &key_a, NULL, NULL, 0);
	r = endpoint(false, &key_b, NULL, server, 2);
	pump(i, r);
	assert_null(wisp_noise_muxer(i));
	assert_null(wisp_noise_muxer(r));
	assert_int_equal(wisp_noise_remote_muxers(i, mux, 2), 2);
	wisp_noise_free(i);
	wisp_noise_free(r);

	/* Disjoint: the initiator sees it at message 2 and stops. */
	uint8_t buf[WIRE];
	i = endpoint(true, &key_a, NULL, other, 1);
	r = endpoint(false, &key_b, NULL, server, 2);
	transmit(i, r);
	ssize_t w = wisp_noise_handshake_write(r, buf, sizeof(buf));
	assert_int_equal(wisp_noise_handshake_read(i, buf, (size_t)w), WISP_ERR_HANDSHAKE);
	assert_null(wisp_noise_remote_key(i));
	wisp_noise_free(i);
	wisp_noise_free(r);
}

static void test_config_checks(void **state)
{
	(void)state;
	wisp_noise *n = (wisp_noise *)&n; /* must stay untouched on error */
	wisp_noise *const sentinel = n;
	char longname[WISP_NOISE_MUXER_MAX_LEN + 2];
	const char *nine[9], *bad[1];
	wisp_noise_config cfg = { .identity = NULL };

	assert_int_equal(wisp_noise_new(&n, wisp_mem_default(), true, &cfg), WISP_ERR_INVALID_ARG);
	cfg.identity = &key_a;
	for (int k = 0; k < 9; k++)
		nine[k] = "/yamux/1.0.0";
	cfg.muxers = nine;
	cfg.n_muxers = 9;
	assert_int_equal(wisp_noise_new(&n, wisp_mem_default(), true, &cfg), WISP_ERR_INVALID_ARG);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	bad[0] = longname;
	cfg.muxers = bad;
	cfg.n_muxers = 1;
	assert_int_equal(wisp_noise_new(&n, wisp_mem_default(), true, &cfg), WISP_ERR_INVALID_ARG);
	bad[0] = "";
	assert_int_equal(wisp_noise_new(&n, wisp_mem_default(), true, &cfg), WISP_ERR_INVALID_ARG);
	cfg.muxers = NULL;
	assert_int_equal(wisp_noise_new(&n, wisp_mem_default(), true, &cfg), WISP_ERR_INVALID_ARG);
	assert_ptr_equal(n, sentinel);

	/* The largest allowed list works end to end. */
	longname[WISP_NOISE_MUXER_MAX_LEN] = 0;
	for (int k = 0; k < 8; k++)
		nine[k] = k == 7 ? "/yamux/1.0.0" : longname;
	wisp_noise *i = endpoint(true, &key_a, NULL, nine, 8);
	wisp_noise *r = endpoint(false, &key_b, NULL, muxers_yamux, 1);
	pump(i, r);
	/* the initiator's first entry that the responder lists too */
	assert_string_equal(wisp_noise_muxer(i), "/yamux/1.0.0");
	assert_string_equal(wisp_noise_muxer(r), "/yamux/1.0.0");
	wisp_noise_free(i);
	wisp_noise_free(r);
}

/* Fixed keys give byte-identical handshakes (signatures are RFC 6979). */
static void test_fixed_secrets(void **state)
{
	(void)state;
	uint8_t s1[32], e1[32], s2[32], e2[32];
	uint8_t run[2][3][WIRE / 64];
	size_t len[2][3];

	for (int k = 0; k < 32; k++) {
		s1[k] = (uint8_t)(k + 1);
		e1[k] = (uint8_t)(k + 2);
		s2[k] = (uint8_t)(k + 3);
		e2[k] = (uint8_t)(k + 4);
	}
	for (int t = 0; t < 2; t++) {
		wisp_noise *i, *r;
		wisp_noise_config ci = { .identity = &key_a, .static_secret = s1, .ephemeral_secret = e1 };
		wisp_noise_config cr = { .identity = &key_b, .static_secret = s2, .ephemeral_secret = e2 };
		assert_int_equal(wisp_noise_new(&i, wisp_mem_default(), true, &ci), 0);
		assert_int_equal(wisp_noise_new(&r, wisp_mem_default(), false, &cr), 0);
		for (int m = 0; m < 3; m++) {
			wisp_noise *from = m == 1 ? r : i, *to = m == 1 ? i : r;
			ssize_t w = wisp_noise_handshake_write(from, run[t][m], sizeof(run[t][m]));
			assert_true(w > 0);
			len[t][m] = (size_t)w;
			uint8_t tmp[sizeof(run[t][m])];
			memcpy(tmp, run[t][m], (size_t)w);
			assert_int_equal(wisp_noise_handshake_read(to, tmp, (size_t)w), w);
		}
		assert_true(wisp_noise_done(i) && wisp_noise_done(r));
		wisp_noise_free(i);
		wisp_noise_free(r);
	}
	for (int m = 0; m < 3; m++) {
		assert_int_equal(len[0][m], len[1][m]);
		assert_memory_equal(run[0][m], run[1][m], len[0][m]);
	}
}

/* ---- misbehaving peers ---------------------------------------------------- */

/* A NoiseHandshakePayload as a peer might send it. */
struct payload_spec {
	const wisp_privkey *id;      /* provides identity_key (and signs) */
	const wisp_privkey *signer;  /* signs instead, when set */
	const uint8_t *signed_static; /* the static key signed (NULL: the real one) */
	bool no_key, no_sig;
	const char *const *muxers;
	size_t n_muxers;
};

static size_t build_payload(uint8_t *out, size_t cap, const struct payload_spec *s,
			    const uint8_t static_pub[32])
{
	uint8_t msg[24 + 32], key[64], sig[80], ext[2048];
	wisp_pb_writer w, ew;

	memcpy(msg, WISP_NOISE_SIG_PREFIX, 24);
	memcpy(msg + 24, s->signed_static ? s->signed_static : static_pub, 32);
	ssize_t sl = wisp_privkey_sign(s->signer ? s->signer : s->id, msg, sizeof(msg), sig, sizeof(sig));
	ssize_t kl = wisp_pubkey_encode(wisp_privkey_pubkey(s->id), key, sizeof(key));
	assert_true(sl > 0 && kl > 0);
	wisp_pb_writer_init(&ew, ext, sizeof(ext));
	for (size_t k = 0; k < s->n_muxers; k++)
		wisp_pb_put_bytes(&ew, 2, s->muxers[k], strlen(s->muxers[k]));
	wisp_pb_writer_init(&w, out, cap);
	if (!s->no_key)
		wisp_pb_put_bytes(&w, 1, key, (size_t)kl);
	if (!s->no_sig)
		wisp_pb_put_bytes(&w, 2, sig, (size_t)sl);
	if (s->n_muxers)
		wisp_pb_put_bytes(&w, 4, ext, ew.len);
	ssize_t n = wisp_pb_writer_finish(&w);
	assert_true(n >= 0);
	return (size_t)n;
}

/* Writes the raw peer's next message with payload as a frame. */
static size_t evil_write(wisp_noise_xx *x, uint8_t *out, size_t cap, const uint8_t *pl, size_t plen)
{
	ssize_t m = wisp_noise_xx_write(x, out + 2, cap - 2, pl, plen);
	assert_true(m > 0);
	out[0] = (uint8_t)(m >> 8);
	out[1] = (uint8_t)m;
	return (size_t)m + 2;
}

/* A real initiator against a raw responder that answers message 1 with
 * payload; returns what the initiator's read of message 2 returned.
 * mutate, if set, edits the frame before delivery. */
static ssize_t msg2_with(const uint8_t *pl, size_t plen, const wisp_peer_id *expect,
			 void (*mutate)(uint8_t *frame, size_t len), wisp_noise **keep)
{
	static uint8_t buf[WIRE];
	wisp_noise *i = endpoint(true, &key_a, expect, NULL, 0);
	wisp_noise_xx evil;
	uint8_t *p;

	assert_int_equal(wisp_noise_xx_init(&evil, false, NULL, 0, NULL, NULL), 0);
	ssize_t w = wisp_noise_handshake_write(i, buf, sizeof(buf));
	assert_int_equal(w, 34);
	assert_int_equal(wisp_noise_xx_read(&evil, buf + 2, 32, &p), 0);
	size_t len = evil_write(&evil, buf, sizeof(buf), pl, plen);
	if (mutate)
		mutate(buf, len);
	ssize_t rc = wisp_noise_handshake_read(i, buf, len);
	wisp_noise_xx_fini(&evil);
	if (keep)
		*keep = i;
	else
		wisp_noise_free(i);
	return rc;
}

/* A real responder against a raw initiator whose message 3 carries pl. */
static ssize_t msg3_with(const uint8_t *pl, size_t plen, void (*mutate)(uint8_t *frame, size_t len))
{
	static uint8_t buf[WIRE];
	wisp_noise *r = endpoint(false, &key_b, NULL, NULL, 0);
	wisp_noise_xx evil;
	uint8_t *p;

	assert_int_equal(wisp_noise_xx_init(&evil, true, NULL, 0, NULL, NULL), 0);
	size_t len = evil_write(&evil, buf, sizeof(buf), NULL, 0);
	assert_int_equal(wisp_noise_handshake_read(r, buf, len), len);
	ssize_t w = wisp_noise_handshake_write(r, buf, sizeof(buf));
	assert_true(w > 0);
	assert_true(wisp_noise_xx_read(&evil, buf + 2, (size_t)w - 2, &p) > 0);
	len = evil_write(&evil, buf, sizeof(buf), pl, plen);
	if (mutate)
		mutate(buf, len);
	ssize_t rc = wisp_noise_handshake_read(r, buf, len);
	if (rc < 0)
		assert_false(wisp_noise_done(r));
	wisp_noise_xx_fini(&evil);
	wisp_noise_free(r);
	return rc;
}

/* The raw peer signs its own static key only when it knows it: for message
 * 2 the payload is built before the raw responder exists, so these helpers
 * take the payload spec and build it against the right static key. */
static ssize_t msg2_spec(const struct payload_spec *s, const wisp_peer_id *expect)
{
	static uint8_t buf[WIRE], pl[4096];
	wisp_noise *i = endpoint(true, &key_a, expect, NULL, 0);
	wisp_noise_xx evil;
	uint8_t *p;

	assert_int_equal(wisp_noise_xx_init(&evil, false, NULL, 0, NULL, NULL), 0);
	assert_int_equal(wisp_noise_handshake_write(i, buf, sizeof(buf)), 34);
	assert_int_equal(wisp_noise_xx_read(&evil, buf + 2, 32, &p), 0);
	size_t plen = build_payload(pl, sizeof(pl), s, wisp_noise_xx_local_static(&evil));
	size_t len = evil_write(&evil, buf, sizeof(buf), pl, plen);
	ssize_t rc = wisp_noise_handshake_read(i, buf, len);
	if (rc > 0) {
		assert_int_equal(rc, len);
		assert_non_null(wisp_noise_remote_key(i));
	} else {
		assert_null(wisp_noise_remote_key(i));
	}
	wisp_noise_xx_fini(&evil);
	wisp_noise_free(i);
	return rc;
}

static void test_bad_payloads_msg2(void **state)
{
	(void)state;
	static const uint8_t other_static[32] = { 1, 2, 3 };
	struct payload_spec good = { .id = &key_b };
	struct payload_spec s;

	assert_true(msg2_spec(&good, NULL) > 0);
	assert_true(msg2_spec(&good, &id_b) > 0);
	/* the key of key_b, signed by key_c */
	s = good;
	s.signer = &key_c;
	assert_int_equal(msg2_spec(&s, NULL), WISP_ERR_BAD_SIGNATURE);
	/* signed by key_b but over another static key */
	s = good;
	s.signed_static = other_static;
	assert_int_equal(msg2_spec(&s, NULL), WISP_ERR_BAD_SIGNATURE);
	/* a valid payload from the wrong peer */
	assert_int_equal(msg2_spec(&good, &id_c), WISP_ERR_PEER_ID);
	s = good;
	s.no_sig = true;
	assert_int_equal(msg2_spec(&s, NULL), WISP_ERR_HANDSHAKE);
	s = good;
	s.no_key = true;
	assert_int_equal(msg2_spec(&s, NULL), WISP_ERR_HANDSHAKE);
	/* muxer bounds: nine entries, one too long, one with a NUL */
	static const char *const nine[9] = { "/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h", "/i" };
	s = good;
	s.muxers = nine;
	s.n_muxers = 8;
	assert_true(msg2_spec(&s, NULL) > 0);
	s.n_muxers = 9;
	assert_int_equal(msg2_spec(&s, NULL), WISP_ERR_TOO_LARGE);
	char longname[WISP_NOISE_MUXER_MAX_LEN + 2];
	memset(longname, 'm', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	const char *one[1] = { longname };
	s.muxers = one;
	s.n_muxers = 1;
	assert_int_equal(msg2_spec(&s, NULL), WISP_ERR_TOO_LARGE);
	longname[WISP_NOISE_MUXER_MAX_LEN] = 0;
	assert_true(msg2_spec(&s, NULL) > 0);
}

/* Payloads that are not what they should be, as raw bytes. */
static void test_garbage_payloads(void **state)
{
	(void)state;
	uint8_t pl[256];
	size_t n;

	/* empty payload: no identity at all */
	assert_int_equal(msg2_with(NULL, 0, NULL, NULL, NULL), WISP_ERR_HANDSHAKE);
	assert_int_equal(msg3_with(NULL, 0, NULL), WISP_ERR_HANDSHAKE);
	/* not protobuf: a group start (wire type 3) */
	assert_int_equal(msg2_with((const uint8_t *)"\x0b\x00", 2, NULL, NULL, NULL), WISP_ERR_WIRE_TYPE);
	/* a LEN field running past the end */
	assert_int_equal(msg2_with((const uint8_t *)"\x0a\x05\x01", 3, NULL, NULL, NULL), WISP_ERR_TRUNCATED);
	assert_int_equal(msg3_with((const uint8_t *)"\x0a\x05\x01", 3, NULL), WISP_ERR_TRUNCATED);
	/* identity_key as a varint */
	assert_int_equal(msg2_with((const uint8_t *)"\x08\x01", 2, NULL, NULL, NULL), WISP_ERR_WIRE_TYPE);
	/* a non-minimal varint key */
	assert_int_equal(msg2_with((const uint8_t *)"\x8a\x00\x00", 3, NULL, NULL, NULL), WISP_ERR_VARINT);
	/* field number 0 */
	assert_int_equal(msg2_with((const uint8_t *)"\x02\x00", 2, NULL, NULL, NULL), WISP_ERR_MALFORMED);
	/* extensions that are not a message */
	assert_int_equal(msg2_with((const uint8_t *)"\x22\x01\x0b", 3, NULL, NULL, NULL), WISP_ERR_WIRE_TYPE);
	/* stream_muxers as a varint */
	assert_int_equal(msg2_with((const uint8_t *)"\x22\x02\x10\x01", 4, NULL, NULL, NULL),
			 WISP_ERR_WIRE_TYPE);
	/* a muxer with a NUL inside */
	assert_int_equal(msg2_with((const uint8_t *)"\x22\x04\x12\x02\x61\x00", 6, NULL, NULL, NULL),
			 WISP_ERR_MALFORMED);

	/* An Ed25519 identity (type 1, 32 bytes) with some signature. */
	n = 0;
	pl[n++] = 0x0a;
	pl[n++] = 36;
	pl[n++] = 0x08;
	pl[n++] = 0x01;
	pl[n++] = 0x12;
	pl[n++] = 32;
	memset(pl + n, 0x55, 32);
	n += 32;
	pl[n++] = 0x12;
	pl[n++] = 64;
	memset(pl + n, 0x66, 64);
	n += 64;
	assert_int_equal(msg2_with(pl, n, NULL, NULL, NULL), WISP_ERR_UNKNOWN_CODE);
	assert_int_equal(msg3_with(pl, n, NULL), WISP_ERR_UNKNOWN_CODE);
	/* An unknown key type number. */
	pl[3] = 9;
	assert_int_equal(msg2_with(pl, n, NULL, NULL, NULL), WISP_ERR_UNKNOWN_CODE);
	/* A secp256k1 type with 32 bytes of data: not a compressed point. */
	pl[3] = 2;
	assert_int_equal(msg2_with(pl, n, NULL, NULL, NULL), WISP_ERR_BAD_KEY);
}

/* A raw initiator whose message 3 payload is a correctly built spec. */
static ssize_t msg3_good(const struct payload_spec *s, const char *const *resp_muxers, size_t n_resp,
			 const char **agreed)
{
	static uint8_t buf[WIRE], pl[4096];
	wisp_noise *r = endpoint(false, &key_b, NULL, resp_muxers, n_resp);
	wisp_noise_xx evil;
	uint8_t *p;

	assert_int_equal(wisp_noise_xx_init(&evil, true, NULL, 0, NULL, NULL), 0);
	size_t len = evil_write(&evil, buf, sizeof(buf), NULL, 0);
	assert_int_equal(wisp_noise_handshake_read(r, buf, len), len);
	ssize_t w = wisp_noise_handshake_write(r, buf, sizeof(buf));
	assert_true(w > 0);
	assert_true(wisp_noise_xx_read(&evil, buf + 2, (size_t)w - 2, &p) > 0);
	size_t plen = build_payload(pl, sizeof(pl), s, wisp_noise_xx_local_static(&evil));
	len = evil_write(&evil, buf, sizeof(buf), pl, plen);
	ssize_t rc = wisp_noise_handshake_read(r, buf, len);
	if (rc > 0) {
		assert_true(wisp_noise_done(r));
		assert_true(wisp_peer_id_equal(wisp_noise_remote_id(r), &id_a));
		if (agreed) {
			const char *m = wisp_noise_muxer(r);
			*agreed = m ? (strcmp(m, "/yamux/1.0.0") == 0 ? "/yamux/1.0.0" : "?") : NULL;
		}
	} else {
		assert_false(wisp_noise_done(r));
		assert_null(wisp_noise_remote_key(r));
	}
	wisp_noise_xx_fini(&evil);
	wisp_noise_free(r);
	return rc;
}

static void test_bad_payloads_msg3(void **state)
{
	(void)state;
	static const uint8_t other_static[32] = { 7 };
	static const char *const two[] = { "/mplex/6.7.0", "/yamux/1.0.0" };
	static const char *const none_common[] = { "/mplex/6.7.0" };
	struct payload_spec good = { .id = &key_a }, s;
	const char *agreed = "unset";

	assert_true(msg3_good(&good, NULL, 0, &agreed) > 0);
	assert_null(agreed);
	s = good;
	s.muxers = two;
	s.n_muxers = 2;
	assert_true(msg3_good(&s, muxers_yamux, 1, &agreed) > 0);
	assert_string_equal(agreed, "/yamux/1.0.0");
	s.muxers = none_common;
	s.n_muxers = 1;
	assert_int_equal(msg3_good(&s, muxers_yamux, 1, NULL), WISP_ERR_HANDSHAKE);
	s = good;
	s.signed_static = other_static;
	assert_int_equal(msg3_good(&s, NULL, 0, NULL), WISP_ERR_BAD_SIGNATURE);
	s = good;
	s.no_sig = true;
	assert_int_equal(msg3_good(&s, NULL, 0, NULL), WISP_ERR_HANDSHAKE);
	/* a signature by another identity than the key it comes with */
	s = good;
	s.signer = &key_c;
	assert_int_equal(msg3_good(&s, NULL, 0, NULL), WISP_ERR_BAD_SIGNATURE);
}

/* ---- frames that are wrong on the wire ------------------------------------ */

static void flip_e(uint8_t *f, size_t len)
{
	(void)len;
	f[2 + 5] ^= 0x01; /* the ephemeral key: every later tag fails */
}

static void flip_static(uint8_t *f, size_t len)
{
	(void)len;
	f[2 + 32 + 3] ^= 0x80; /* the encrypted static key of message 2 */
}

static void flip_last(uint8_t *f, size_t len)
{
	f[len - 1] ^= 0x01; /* the payload's tag */
}

static void flip_msg3_static(uint8_t *f, size_t len)
{
	(void)len;
	f[2 + 10] ^= 0x04;
}

static void zero_e(uint8_t *f, size_t len)
{
	(void)len;
	memset(f + 2, 0, 32); /* a low-order point: the DH result is all zeros */
}

static void test_tampering(void **state)
{
	(void)state;
	uint8_t pl[1] = { 0 };

	assert_int_equal(msg2_with(pl, 0, NULL, flip_e, NULL), WISP_ERR_DECRYPT);
	assert_int_equal(msg2_with(pl, 0, NULL, flip_static, NULL), WISP_ERR_DECRYPT);
	assert_int_equal(msg2_with(pl, 0, NULL, flip_last, NULL), WISP_ERR_DECRYPT);
	assert_int_equal(msg2_with(pl, 0, NULL, zero_e, NULL), WISP_ERR_HANDSHAKE);
	assert_int_equal(msg3_with(pl, 0, flip_msg3_static), WISP_ERR_DECRYPT);
	assert_int_equal(msg3_with(pl, 0, flip_last), WISP_ERR_DECRYPT);

	/* A low-order ephemeral key in message 1: the responder finds out when
	 * it computes ee for message 2. */
	static uint8_t buf[WIRE];
	wisp_noise *r = endpoint(false, &key_b, NULL, NULL, 0);
	buf[0] = 0;
	buf[1] = 32;
	memset(buf + 2, 0, 32);
	assert_int_equal(wisp_noise_handshake_read(r, buf, 34), 34);
	assert_int_equal(wisp_noise_handshake_write(r, buf, sizeof(buf)), WISP_ERR_HANDSHAKE);
	assert_int_equal(wisp_noise_handshake_write(r, buf, sizeof(buf)), WISP_ERR_HANDSHAKE);
	wisp_noise_free(r);

	/* Transport: one flipped bit fails the tag, and the frame is wiped. */
	wisp_noise *i = endpoint(true, &key_a, NULL, NULL, 0);
	r = endpoint(false, &key_b, NULL, NULL, 0);
	pump(i, r);
	uint8_t f[64], *got;
	size_t glen;
	assert_int_equal(wisp_noise_seal(i, f, sizeof(f), (const uint8_t *)"secret!", 7), 25);
	f[4] ^= 0x20;
	assert_int_equal(wisp_noise_open(r, f, 25, &got, &glen), WISP_ERR_DECRYPT);
	assert_memory_not_equal(f + 2, "secret!", 7);
	assert_int_equal(wisp_noise_open(r, f, 25, &got, &glen), WISP_ERR_DECRYPT);
	wisp_noise_free(i);
	wisp_noise_free(r);

	/* A replayed frame: the nonce moved on, so it does not authenticate. */
	i = endpoint(true, &key_a, NULL, NULL, 0);
	r = endpoint(false, &key_b, NULL, NULL, 0);
	pump(i, r);
	uint8_t g[64], h[64];
	assert_int_equal(wisp_noise_seal(i, g, sizeof(g), (const uint8_t *)"x", 1), 19);
	memcpy(h, g, 19);
	assert_int_equal(wisp_noise_open(r, g, 19, &got, &glen), 19);
	assert_int_equal(wisp_noise_open(r, h, 19, &got, &glen), WISP_ERR_DECRYPT);
	wisp_noise_free(i);
	wisp_noise_free(r);
}

/* Frame lengths refused from the two length bytes alone, and frames shorter
 * than what the message must hold. */
static void test_frame_bounds(void **state)
{
	(void)state;
	static uint8_t buf[WIRE];
	wisp_noise *r, *i;

	/* message 1 longer than e: a plaintext initiator payload */
	r = endpoint(false, &key_b, NULL, NULL, 0);
	buf[0] = 0;
	buf[1] = 33;
	assert_int_equal(wisp_noise_handshake_read(r, buf, 2), WISP_ERR_TOO_LARGE);
	wisp_noise_free(r);
	r = endpoint(false, &key_b, NULL, NULL, 0);
	buf[0] = 0xff;
	buf[1] = 0xff;
	assert_int_equal(wisp_noise_handshake_read(r, buf, 2), WISP_ERR_TOO_LARGE);
	wisp_noise_free(r);
	/* message 1 shorter than e */
	r = endpoint(false, &key_b, NULL, NULL, 0);
	buf[0] = 0;
	buf[1] = 31;
	assert_int_equal(wisp_noise_handshake_read(r, buf, 2), WISP_ERR_TRUNCATED);
	wisp_noise_free(r);
	r = endpoint(false, &key_b, NULL, NULL, 0);
	buf[1] = 0;
	assert_int_equal(wisp_noise_handshake_read(r, buf, 2), WISP_ERR_TRUNCATED);
	wisp_noise_free(r);

	/* message 2 shorter than e + encrypted s + tag (96) */
	for (size_t flen = 0; flen < 96; flen += 19) {
		i = endpoint(true, &key_a, NULL, NULL, 0);
		assert_int_equal(wisp_noise_handshake_write(i, buf, sizeof(buf)), 34);
		buf[0] = 0;
		buf[1] = (uint8_t)flen;
		assert_int_equal(wisp_noise_handshake_read(i, buf, 2), WISP_ERR_TRUNCATED);
		wisp_noise_free(i);
	}
	/* message 2 of exactly 96 bytes of junk: long enough, fails the tag */
	i = endpoint(true, &key_a, NULL, NULL, 0);
	assert_int_equal(wisp_noise_handshake_write(i, buf, sizeof(buf)), 34);
	buf[0] = 0;
	buf[1] = 96;
	for (int k = 0; k < 96; k++)
		buf[2 + k] = (uint8_t)(k + 9);
	assert_int_equal(wisp_noise_handshake_read(i, buf, 2 + 95), 0); /* ends early: wait */
	assert_int_equal(wisp_noise_handshake_read(i, buf, 2 + 96), WISP_ERR_DECRYPT);
	wisp_noise_free(i);

	/* message 3 shorter than encrypted s + tag (64) */
	i = endpoint(true, &key_a, NULL, NULL, 0);
	r = endpoint(false, &key_b, NULL, NULL, 0);
	transmit(i, r);
	assert_true(wisp_noise_handshake_write(r, buf, sizeof(buf)) > 0);
	buf[0] = 0;
	buf[1] = 63;
	assert_int_equal(wisp_noise_handshake_read(r, buf, 2), WISP_ERR_TRUNCATED);
	wisp_noise_free(i);
	wisp_noise_free(r);

	/* transport frame shorter than its tag */
	i = endpoint(true, &key_a, NULL, NULL, 0);
	r = endpoint(false, &key_b, NULL, NULL, 0);
	pump(i, r);
	uint8_t *got;
	size_t glen;
	buf[0] = 0;
	buf[1] = 15;
	assert_int_equal(wisp_noise_open(r, buf, 2, &got, &glen), WISP_ERR_TRUNCATED);
	/* a frame claiming more than is there waits */
	buf[0] = 0xff;
	buf[1] = 0xff;
	assert_int_equal(wisp_noise_open(i, buf, 1000, &got, &glen), 0);
	assert_int_equal(wisp_noise_open(i, buf, 2 + 65534, &got, &glen), 0);
	wisp_noise_free(i);
	wisp_noise_free(r);
}

static void test_nonce_exhaustion(void **state)
{
	(void)state;
	wisp_noise *i = endpoint(true, &key_a, NULL, NULL, 0);
	wisp_noise *r = endpoint(false, &key_b, NULL, NULL, 0);
	uint8_t f[64], *got;
	size_t glen;

	pump(i, r);
	/* The last usable nonce is 2^64 - 2; both sides agree on it. */
	wisp_noise_test_set_nonces(i, UINT64_MAX - 1, 0);
	wisp_noise_test_set_nonces(r, 0, UINT64_MAX - 1);
	send_frame(i, r, 5);
	assert_int_equal(wisp_noise_seal(i, f, sizeof(f), (const uint8_t *)"x", 1), WISP_ERR_LIMIT);
	assert_int_equal(wisp_noise_seal(i, f, sizeof(f), (const uint8_t *)"x", 1), WISP_ERR_LIMIT);
	assert_int_equal(wisp_noise_open(i, f, sizeof(f), &got, &glen), WISP_ERR_LIMIT);
	assert_false(wisp_noise_done(i));
	/* The receiver refuses a frame once its nonce would be 2^64 - 1. */
	memset(f, 0, sizeof(f));
	f[1] = 17;
	assert_int_equal(wisp_noise_open(r, f, 19, &got, &glen), WISP_ERR_LIMIT);
	wisp_noise_free(i);
	wisp_noise_free(r);
}

/* Caller mistakes change nothing; everything else fails the object for good. */
static void test_errors_and_failed_state(void **state)
{
	(void)state;
	static uint8_t buf[WIRE], big[WIRE];
	wisp_noise *i = endpoint(true, &key_a, NULL, muxers_yamux, 1);
	wisp_noise *r = endpoint(false, &key_b, NULL, muxers_yamux, 1);
	uint8_t *got;
	size_t glen;

	assert_int_equal(wisp_noise_seal(i, buf, sizeof(buf), NULL, 0), WISP_ERR_STATE);
	assert_int_equal(wisp_noise_open(i, buf, sizeof(buf), &got, &glen), WISP_ERR_STATE);
	assert_int_equal(wisp_noise_handshake_write(i, buf, 33), WISP_ERR_NOBUF);
	assert_int_equal(wisp_noise_handshake_write(i, NULL, 0), WISP_ERR_NOBUF);
	transmit(i, r);
	assert_int_equal(wisp_noise_handshake_write(r, buf, 100), WISP_ERR_NOBUF);
	pump(i, r);

	assert_int_equal(wisp_noise_seal(i, buf, 2 + 16 + 9, big, 10), WISP_ERR_NOBUF);
	assert_int_equal(wisp_noise_seal(i, big, sizeof(big), big, WISP_NOISE_MAX_PLAINTEXT + 1),
			 WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_noise_seal(i, buf, sizeof(buf), buf + 1, 10), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_noise_seal(i, buf + 4, 100, buf, 10), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_noise_seal(i, buf, sizeof(buf), NULL, 3), WISP_ERR_INVALID_ARG);
	send_frame(i, r, 10); /* nothing above disturbed the nonces */
	send_frame(r, i, 10);

	/* One tag failure: from then on every call says so. */
	assert_int_equal(wisp_noise_seal(i, buf, sizeof(buf), (const uint8_t *)"abc", 3), 21);
	buf[3] ^= 1;
	assert_int_equal(wisp_noise_open(r, buf, 21, &got, &glen), WISP_ERR_DECRYPT);
	assert_false(wisp_noise_done(r));
	assert_null(wisp_noise_remote_key(r));
	assert_null(wisp_noise_remote_id(r));
	assert_null(wisp_noise_muxer(r));
	assert_int_equal(wisp_noise_remote_muxers(r, NULL, 0), 0);
	assert_int_equal(wisp_noise_seal(r, buf, sizeof(buf), (const uint8_t *)"a", 1), WISP_ERR_DECRYPT);
	assert_int_equal(wisp_noise_open(r, buf, 0, &got, &glen), WISP_ERR_DECRYPT);
	assert_int_equal(wisp_noise_handshake_read(r, buf, 0), WISP_ERR_DECRYPT);
	assert_int_equal(wisp_noise_handshake_write(r, buf, sizeof(buf)), WISP_ERR_DECRYPT);
	wisp_noise_free(i);
	wisp_noise_free(r);

	/* A failure during the handshake sticks the same way. */
	r = endpoint(false, &key_b, NULL, NULL, 0);
	buf[0] = 0;
	buf[1] = 40;
	assert_int_equal(wisp_noise_handshake_read(r, buf, 2), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_noise_handshake_read(r, buf, 2), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_noise_handshake_write(r, buf, sizeof(buf)), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_noise_seal(r, buf, sizeof(buf), NULL, 0), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_noise_open(r, buf, 0, &got, &glen), WISP_ERR_TOO_LARGE);
	assert_false(wisp_noise_done(r));
	wisp_noise_free(r);
}

/* Every allocation of wisp_noise_new failed in turn: NOMEM, nothing leaks
 * (cmocka tracks the blocks), and the next attempt works. */
static void test_failing_allocation(void **state)
{
	(void)state;
	wisp_noise_config cfg = { .identity = &key_a, .muxers = muxers_yamux, .n_muxers = 1 };
	unsigned long fail_at;

	for (fail_at = 1;; fail_at++) {
		wt_failmem fm;
		wisp_noise *n = NULL;
		wt_failmem_init(&fm, fail_at);
		int rc = wisp_noise_new(&n, &fm.mem, fail_at % 2 == 0, &cfg);
		if (rc == 0) {
			/* a whole handshake and some frames: no further allocation */
			unsigned long calls = fm.calls;
			wisp_noise *peer = endpoint(fail_at % 2 != 0, &key_b, NULL, NULL, 0);
			if (fail_at % 2 == 0)
				pump(n, peer);
			else
				pump(peer, n);
			send_frame(n, peer, 100);
			send_frame(peer, n, 100);
			assert_int_equal(fm.calls, calls);
			wisp_noise_free(peer);
			wisp_noise_free(n);
			break;
		}
		assert_int_equal(rc, WISP_ERR_NOMEM);
		assert_null(n);
		assert_true(fail_at < 16);
	}
	printf("# wisp_noise_new makes %lu allocation(s) through wisp_mem\n", fail_at - 1);
	assert_int_equal(fail_at - 1, 1);
}

/* The transport path allocates nothing inside OpenSSL either; the handshake
 * count is printed for the record. */
static void test_no_openssl_allocation_per_frame(void **state)
{
	(void)state;
	unsigned long before = ossl_allocs;
	wisp_noise *i = endpoint(true, &key_a, NULL, muxers_yamux, 1);
	wisp_noise *r = endpoint(false, &key_b, NULL, muxers_yamux, 1);
	unsigned long after_new = ossl_allocs;
	pump(i, r);
	unsigned long after_hs = ossl_allocs;
	for (int k = 0; k < 1000; k++) {
		send_frame(i, r, (size_t)k * 13 % 3000);
		send_frame(r, i, (size_t)k * 7 % 3000);
	}
	printf("# OpenSSL allocations: %lu for two new(), %lu in the handshake, %lu in 2000 frames\n",
	       after_new - before, after_hs - after_new, ossl_allocs - after_hs);
	assert_int_equal(ossl_allocs, after_hs);
	wisp_noise_free(i);
	wisp_noise_free(r);
}

int main(void)
{
	/* Before anything touches OpenSSL; fails harmlessly if too late. */
	if (!CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free))
		printf("# could not count OpenSSL allocations\n");

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xx_vectors),
		cmocka_unit_test(test_xx_rules),
		cmocka_unit_test(test_handshake_and_transport),
		cmocka_unit_test(test_pipelined_and_bytewise),
		cmocka_unit_test(test_muxer_agreement),
		cmocka_unit_test(test_config_checks),
		cmocka_unit_test(test_fixed_secrets),
		cmocka_unit_test(test_bad_payloads_msg2),
		cmocka_unit_test(test_garbage_payloads),
		cmocka_unit_test(test_bad_payloads_msg3),
		cmocka_unit_test(test_tampering),
		cmocka_unit_test(test_frame_bounds),
		cmocka_unit_test(test_nonce_exhaustion),
		cmocka_unit_test(test_errors_and_failed_state),
		cmocka_unit_test(test_failing_allocation),
		cmocka_unit_test(test_no_openssl_allocation_per_frame),
	};
	return cmocka_run_group_tests(tests, setup_keys, NULL);
}
