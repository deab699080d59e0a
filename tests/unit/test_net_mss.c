#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <string.h>

#include <wisp/error.h>

#include "codec/frame.h"
#include "net/mss.h"

/* The listener in these tests speaks /noise and /yamux/1.0.0. */
static int match(void *ctx, const char *p, size_t len)
{
	(void)ctx;
	static const char *const known[] = { "/noise", "/yamux/1.0.0" };
	for (int i = 0; i < 2; i++)
		if (strlen(known[i]) == len && memcmp(known[i], p, len) == 0)
			return 10 + i;
	return -1;
}

/* Append a multistream message to buf. */
static size_t msg(uint8_t *buf, const char *text)
{
	size_t n = strlen(text);
	ssize_t pre = wisp_frame_put_prefix(buf, 16, n + 1);
	assert_true(pre > 0);
	memcpy(buf + pre, text, n);
	buf[pre + (ssize_t)n] = '\n';
	return (size_t)pre + n + 1;
}

/* Move everything a has queued into b, in pieces of `step` bytes. Returns
 * b's read result for the last piece, and keeps unconsumed bytes in *rest. */
typedef struct pipe {
	uint8_t buf[8192];
	size_t len;
} pipe;

static ssize_t pump(wisp_mss *from, wisp_mss *to, pipe *p, size_t step)
{
	p->len += wisp_mss_write(from, p->buf + p->len, sizeof(p->buf) - p->len);
	size_t have = 0, off = 0;
	ssize_t r = 0;
	while (off + have < p->len && !wisp_mss_done(to)) {
		have += step;
		if (off + have > p->len)
			have = p->len - off;
		r = wisp_mss_read(to, p->buf + off, have);
		if (r < 0)
			return r;
		off += (size_t)r;
		have -= (size_t)r;
	}
	memmove(p->buf, p->buf + off, p->len - off);
	p->len -= off;
	return r;
}

static void test_exact_wire_bytes(void **state)
{
	(void)state;
	const char *protos[] = { "/noise" };
	wisp_mss d;
	assert_int_equal(wisp_mss_dialer_init(&d, protos, 1), WISP_OK);
	uint8_t out[128];
	size_t n = wisp_mss_write(&d, out, sizeof(out));
	/* header and first proposal pipelined, as js-libp2p and go-libp2p send */
	static const char want[] = "\x13/multistream/1.0.0\n\x07/noise\n";
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(out, want, n);
	assert_int_equal(wisp_mss_write(&d, out, sizeof(out)), 0);

	wisp_mss l;
	wisp_mss_listener_init(&l, match, NULL);
	n = wisp_mss_write(&l, out, sizeof(out));
	assert_int_equal(n, 20);
	assert_memory_equal(out, want, 20);
}

static void run_pair(size_t step)
{
	const char *protos[] = { "/tls/1.0.0", "/noise" };
	wisp_mss d, l;
	assert_int_equal(wisp_mss_dialer_init(&d, protos, 2), WISP_OK);
	wisp_mss_listener_init(&l, match, NULL);
	pipe dl = { 0 }, ld = { 0 };
	for (int round = 0; round < 8 && !(wisp_mss_done(&d) && wisp_mss_done(&l)); round++) {
		assert_true(pump(&d, &l, &dl, step) >= 0);
		assert_true(pump(&l, &d, &ld, step) >= 0);
	}
	assert_true(wisp_mss_done(&d));
	assert_true(wisp_mss_done(&l));
	assert_int_equal(wisp_mss_selected(&d), 1);
	assert_int_equal(wisp_mss_selected(&l), 10); /* match() gives "/noise" handle 10 */
	assert_int_equal(dl.len, 0);
	assert_int_equal(ld.len, 0);
}

static void test_na_then_accept_any_split(void **state)
{
	(void)state;
	for (size_t step = 1; step <= 64; step++)
		run_pair(step);
}

static void test_bytes_after_done_are_left(void **state)
{
	(void)state;
	const char *protos[] = { "/noise" };
	wisp_mss d;
	assert_int_equal(wisp_mss_dialer_init(&d, protos, 1), WISP_OK);
	/* listener's answer followed at once by the first Noise bytes */
	uint8_t in[64];
	size_t n = msg(in, WISP_MSS_PROTOCOL);
	n += msg(in + n, "/noise");
	size_t answer = n;
	in[n++] = 0x00;
	in[n++] = 0x20;
	assert_int_equal(wisp_mss_read(&d, in, n), (ssize_t)answer);
	assert_true(wisp_mss_done(&d));
	assert_int_equal(wisp_mss_read(&d, in + answer, 2), WISP_ERR_STATE);
}

static void test_refused(void **state)
{
	(void)state;
	const char *protos[] = { "/tls/1.0.0", "/secio/1.0.0" };
	wisp_mss d;
	assert_int_equal(wisp_mss_dialer_init(&d, protos, 2), WISP_OK);
	uint8_t in[64];
	size_t n = msg(in, WISP_MSS_PROTOCOL);
	n += msg(in + n, "na");
	assert_int_equal(wisp_mss_read(&d, in, n), (ssize_t)n);
	uint8_t out[128];
	size_t o = wisp_mss_write(&d, out, sizeof(out));
	size_t w = msg(in, WISP_MSS_PROTOCOL);
	w += msg(in + w, "/tls/1.0.0");
	size_t second = msg(in + w, "/secio/1.0.0");
	assert_int_equal(o, w + second);
	assert_memory_equal(out + w, in + w, second);
	n = msg(in, "na");
	assert_int_equal(wisp_mss_read(&d, in, n), WISP_ERR_REFUSED);
	/* errors stick */
	assert_int_equal(wisp_mss_read(&d, in, n), WISP_ERR_REFUSED);
}

static void expect_listener_error(const uint8_t *in, size_t n, int err)
{
	wisp_mss l;
	wisp_mss_listener_init(&l, match, NULL);
	assert_int_equal(wisp_mss_read(&l, in, n), err);
	assert_false(wisp_mss_done(&l));
}

static void test_garbage(void **state)
{
	(void)state;
	/* a TLS ClientHello instead of multistream: 0x16 announces 22 bytes */
	static const uint8_t tls[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0xaa,
				       0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55 };
	expect_listener_error(tls, sizeof(tls), WISP_ERR_MALFORMED);
	/* an HTTP request: 'G' (71) announces 71 bytes, 'T' ends it: not a newline */
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n";
	expect_listener_error((const uint8_t *)http, sizeof(http) - 1, WISP_ERR_MALFORMED);
	/* a well-formed message that is not the header */
	uint8_t in[64];
	size_t n = msg(in, "/multistream/2.0.0");
	expect_listener_error(in, n, WISP_ERR_PROTOCOL);
	/* declared length over the bound, refused from the prefix alone */
	uint8_t big[2] = { 0x81, 0x08 }; /* 1025 */
	expect_listener_error(big, 2, WISP_ERR_TOO_LARGE);
	uint8_t endless[3] = { 0xff, 0xff, 0xff };
	expect_listener_error(endless, 3, WISP_ERR_TOO_LARGE);
	/* non-minimal varint */
	uint8_t nonmin[3] = { 0x80, 0x00, 0x0a };
	expect_listener_error(nonmin, 3, WISP_ERR_VARINT);
	/* empty message and control bytes */
	uint8_t empty[2] = { 0x01, '\n' };
	expect_listener_error(empty, 2, WISP_ERR_MALFORMED);
	n = msg(in, "/multi\x01stream");
	expect_listener_error(in, n, WISP_ERR_MALFORMED);
	/* the maximum length itself is allowed */
	char longest[WISP_MSS_MAX_MSG];
	memset(longest, 'a', sizeof(longest) - 1);
	longest[0] = '/';
	longest[sizeof(longest) - 1] = 0;
	uint8_t lbuf[WISP_MSS_MAX_MSG + 64];
	n = msg(lbuf, WISP_MSS_PROTOCOL);
	size_t h = n;
	n += msg(lbuf + n, longest);
	wisp_mss l;
	wisp_mss_listener_init(&l, match, NULL);
	assert_int_equal(wisp_mss_read(&l, lbuf, n), (ssize_t)n);
	uint8_t out[2 * WISP_MSS_MAX_MSG + 64];
	size_t o = wisp_mss_write(&l, out, sizeof(out));
	assert_int_equal(o, 20 + 4);
	assert_memory_equal(out + 20, "\x03na\n", 4);
	(void)h;
}

static void test_proposal_bound(void **state)
{
	(void)state;
	wisp_mss l;
	wisp_mss_listener_init(&l, match, NULL);
	uint8_t in[64], out[4096];
	size_t n = msg(in, WISP_MSS_PROTOCOL);
	assert_int_equal(wisp_mss_read(&l, in, n), (ssize_t)n);
	n = msg(in, "/nope/1.0.0");
	for (unsigned i = 0; i < WISP_MSS_MAX_PROPOSALS; i++) {
		assert_int_equal(wisp_mss_read(&l, in, n), (ssize_t)n);
		wisp_mss_write(&l, out, sizeof(out));
	}
	assert_int_equal(wisp_mss_read(&l, in, n), WISP_ERR_PROTOCOL);
}

static void test_unread_answers_are_bounded(void **state)
{
	(void)state;
	/* A dialer that never reads our answers makes us queue at most the
	 * header and one "na" per allowed proposal. */
	wisp_mss l;
	wisp_mss_listener_init(&l, match, NULL);
	uint8_t in[4096];
	size_t n = msg(in, WISP_MSS_PROTOCOL);
	for (unsigned i = 0; i < WISP_MSS_MAX_PROPOSALS; i++)
		n += msg(in + n, "/nope/1.0.0");
	assert_int_equal(wisp_mss_read(&l, in, n), (ssize_t)n);
	assert_int_equal(wisp_mss_pending(&l), 20 + 4 * WISP_MSS_MAX_PROPOSALS);
	n = msg(in, "/nope/1.0.0");
	assert_int_equal(wisp_mss_read(&l, in, n), WISP_ERR_PROTOCOL);
}

static void test_bad_dialer_args(void **state)
{
	(void)state;
	wisp_mss d;
	const char *nl[] = { "/a\nb" };
	assert_int_equal(wisp_mss_dialer_init(&d, nl, 1), WISP_ERR_INVALID_ARG);
	const char *empty[] = { "" };
	assert_int_equal(wisp_mss_dialer_init(&d, empty, 1), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_mss_dialer_init(&d, nl, 0), WISP_ERR_INVALID_ARG);
	/* the dialer refuses an answer that is neither our proposal nor na */
	const char *protos[] = { "/noise" };
	assert_int_equal(wisp_mss_dialer_init(&d, protos, 1), WISP_OK);
	uint8_t in[64];
	size_t n = msg(in, WISP_MSS_PROTOCOL);
	n += msg(in + n, "/yamux/1.0.0");
	assert_int_equal(wisp_mss_read(&d, in, n), WISP_ERR_PROTOCOL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_wire_bytes),
		cmocka_unit_test(test_na_then_accept_any_split),
		cmocka_unit_test(test_bytes_after_done_are_left),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_proposal_bound),
		cmocka_unit_test(test_unread_answers_are_bounded),
		cmocka_unit_test(test_bad_dialer_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
