/* libFuzzer target: the Noise handshake and transport fed arbitrary bytes.
 *
 * The first byte picks where the bytes go; every party uses fixed keys so a
 * run is reproducible (and the seeds in corpus/noise are valid messages):
 *   0  a responder expecting message 1 (then it writes message 2);
 *   1  an initiator expecting message 2;
 *   2  a responder expecting message 3;
 *   3  a finished pair: transport frames to the responder's open();
 *   4  a raw Noise responder encrypts the bytes as the message 2 payload
 *      for a real initiator, so the payload decoder sees them in the clear;
 *   5  the same for the message 3 payload and a real responder;
 *   6  a finished pair: the bytes are plaintext chunks, sealed by one side
 *      and opened by the other, which must give them back.
 * Every error must be a peer fault (never a local or fatal code), must stick
 * (the next call returns it again), and nothing may leak.
 */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>
#include <wisp/identity.h>

#include "net/noise.h"
#include "net/noise_xx.h"

#define CHECK(c)                                                                                 \
	do {                                                                                     \
		if (!(c))                                                                        \
			abort();                                                                 \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wisp_privkey id_i, id_r;
static uint8_t s_i[32], e_i[32], s_r[32], e_r[32];
static const char *const muxers[] = { "/yamux/1.0.0", "/mplex/6.7.0" };

static void init_once(void)
{
	static int done;
	uint8_t a[32], b[32];

	if (done)
		return;
	for (int k = 0; k < 32; k++) {
		a[k] = (uint8_t)(0x01 + k);
		b[k] = (uint8_t)(0x21 + k);
		s_i[k] = 0x11;
		e_i[k] = 0x12;
		s_r[k] = 0x21;
		e_r[k] = 0x22;
	}
	CHECK(wisp_privkey_from_secret(&id_i, a) == 0);
	CHECK(wisp_privkey_from_secret(&id_r, b) == 0);
	done = 1;
}

static wisp_noise *party(bool initiator)
{
	wisp_noise *n = NULL;
	wisp_noise_config cfg = {
		.identity = initiator ? &id_i : &id_r,
		.muxers = muxers,
		.n_muxers = initiator ? 2 : 1,
		.static_secret = initiator ? s_i : s_r,
		.ephemeral_secret = initiator ? e_i : e_r,
	};
	CHECK(wisp_noise_new(&n, wisp_mem_default(), initiator, &cfg) == 0);
	return n;
}

/* One handshake frame from a to b (which must accept it). */
static void deliver(wisp_noise *a, wisp_noise *b)
{
	static uint8_t buf[WISP_NOISE_MAX_WIRE];
	ssize_t w = wisp_noise_handshake_write(a, buf, sizeof(buf));
	CHECK(w > 0);
	CHECK(wisp_noise_handshake_read(b, buf, (size_t)w) == w);
}

static void check_error(wisp_noise *n, ssize_t rc)
{
	uint8_t b[4] = { 0 }, *p;
	size_t pl;

	CHECK(wisp_err_is_peer((int)rc));
	CHECK(!wisp_noise_done(n));
	CHECK(wisp_noise_remote_key(n) == NULL);
	CHECK(wisp_noise_handshake_read(n, b, sizeof(b)) == rc);
	CHECK(wisp_noise_handshake_write(n, b, sizeof(b)) == rc);
	CHECK(wisp_noise_open(n, b, sizeof(b), &p, &pl) == rc);
	CHECK(wisp_noise_seal(n, b, sizeof(b), NULL, 0) == rc);
}

/* Feeds buf as everything received: handshake frames while there are any,
 * then transport frames. */
static void feed(wisp_noise *n, uint8_t *buf, size_t len)
{
	size_t off = 0;
	ssize_t r;
	uint8_t *p;
	size_t pl;

	while ((r = wisp_noise_handshake_read(n, buf + off, len - off)) > 0) {
		CHECK((size_t)r <= len - off);
		off += (size_t)r;
		/* Our turn now? Answer, as a connection would. */
		static uint8_t out[WISP_NOISE_MAX_WIRE];
		ssize_t w = wisp_noise_handshake_write(n, out, sizeof(out));
		if (w < 0) {
			check_error(n, w);
			return;
		}
	}
	if (r < 0) {
		check_error(n, r);
		return;
	}
	if (!wisp_noise_done(n))
		return;
	while ((r = wisp_noise_open(n, buf + off, len - off, &p, &pl)) > 0) {
		CHECK(p == buf + off + 2 && pl + 18 == (size_t)r);
		off += (size_t)r;
	}
	if (r < 0)
		check_error(n, r);
}

/* A raw peer (fixed keys) carrying payload in message 2 or 3. */
static void raw_payload(bool msg3, uint8_t *payload, size_t plen)
{
	static uint8_t buf[WISP_NOISE_MAX_WIRE];
	wisp_noise_xx x;
	wisp_noise *n = party(msg3 ? false : true);
	uint8_t *p;
	ssize_t w;

	if (plen > WISP_NOISE_MAX_FRAME - 96)
		plen = WISP_NOISE_MAX_FRAME - 96;
	CHECK(wisp_noise_xx_init(&x, msg3, NULL, 0, msg3 ? s_i : s_r, msg3 ? e_i : e_r) == 0);
	if (msg3) {
		w = wisp_noise_xx_write(&x, buf + 2, sizeof(buf) - 2, NULL, 0);
		CHECK(w == 32);
		buf[0] = 0;
		buf[1] = 32;
		CHECK(wisp_noise_handshake_read(n, buf, 34) == 34);
	}
	w = wisp_noise_handshake_write(n, buf, sizeof(buf));
	CHECK(w > 2);
	CHECK(wisp_noise_xx_read(&x, buf + 2, (size_t)w - 2, &p) >= 0);
	w = wisp_noise_xx_write(&x, buf + 2, sizeof(buf) - 2, payload, plen);
	CHECK(w > 0);
	buf[0] = (uint8_t)(w >> 8);
	buf[1] = (uint8_t)w;
	ssize_t r = wisp_noise_handshake_read(n, buf, (size_t)w + 2);
	if (r < 0)
		check_error(n, r);
	else
		CHECK(r == w + 2 && wisp_noise_remote_key(n) != NULL);
	wisp_noise_xx_fini(&x);
	wisp_noise_free(n);
}

static void round_trip(wisp_noise *i, wisp_noise *r, const uint8_t *data, size_t size)
{
	static uint8_t wire[WISP_NOISE_MAX_WIRE];
	size_t off = 0;
	int turn = 0;

	while (off < size) {
		/* chunk length from the data itself, so the fuzzer picks sizes */
		size_t len = data[off++];
		if (len > size - off)
			len = size - off;
		wisp_noise *a = turn ? r : i, *b = turn ? i : r;
		ssize_t w = wisp_noise_seal(a, wire, sizeof(wire), data + off, len);
		CHECK(w == (ssize_t)(len + 18));
		uint8_t *p;
		size_t pl;
		CHECK(wisp_noise_open(b, wire, (size_t)w, &p, &pl) == w);
		CHECK(pl == len && (len == 0 || memcmp(p, data + off, len) == 0));
		off += len;
		turn ^= 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	wisp_noise *i = NULL, *r = NULL;
	uint8_t *buf;

	if (size < 1)
		return 0;
	init_once();
	unsigned mode = data[0] % 7;
	data++;
	size--;
	/* open() and handshake_read() decrypt in place: a private copy. */
	buf = malloc(size ? size : 1);
	CHECK(buf != NULL);
	if (size)
		memcpy(buf, data, size);

	switch (mode) {
	case 0:
		r = party(false);
		feed(r, buf, size);
		break;
	case 1:
		i = party(true);
		{
			uint8_t m1[64];
			CHECK(wisp_noise_handshake_write(i, m1, sizeof(m1)) == 34);
		}
		feed(i, buf, size);
		break;
	case 2:
		i = party(true);
		r = party(false);
		deliver(i, r);
		deliver(r, i);
		feed(r, buf, size);
		break;
	case 3:
	case 6:
		i = party(true);
		r = party(false);
		deliver(i, r);
		deliver(r, i);
		deliver(i, r);
		CHECK(wisp_noise_done(i) && wisp_noise_done(r));
		if (mode == 3)
			feed(r, buf, size);
		else
			round_trip(i, r, data, size);
		break;
	case 4:
	case 5:
		raw_payload(mode == 5, buf, size);
		break;
	}
	wisp_noise_free(i);
	wisp_noise_free(r);
	free(buf);
	return 0;
}
