/* Request/response framing (codec/rrframe.h): round trips in every split,
 * and the bad input the reader must refuse before it buffers: oversized
 * declared lengths, unknown result codes, frames that are not one zstd
 * frame, more compressed bytes than the declared length allows, content of
 * another length (bombs), error messages that are not UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include <wisp/error.h>

#include "codec/rrframe.h"
#include "codec/varint.h"
#include "runtime/mem.h"

typedef struct fx {
	wisp_pool *pool;
	wisp_zstd *z;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_int_equal(wisp_pool_new(&f->pool, wisp_mem_default(), 64u << 20), WISP_OK);
	f->z = wisp_zstd_new(NULL, 1);
	assert_non_null(f->z);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	wisp_pool_stats st;
	wisp_pool_stats_get(f->pool, &st);
	assert_int_equal(st.in_use, 0); /* every frame given back */
	wisp_zstd_free(f->z);
	wisp_pool_free(f->pool);
	free(f);
	return 0;
}

/* Feed in[0..n) in pieces of `step`, decoding every frame; returns the
 * frames read (contents appended to out) or the first error. */
static int read_all(fx *f, bool response, uint32_t max, const uint8_t *in, size_t n, size_t step, uint8_t *results,
		    uint8_t *out, size_t *outlen)
{
	wisp_rr_reader r;
	wisp_rr_reader_init(&r, f->pool, response, max);
	int frames = 0;
	*outlen = 0;
	for (size_t off = 0; off < n;) {
		size_t k = n - off < step ? n - off : step, used = 0;
		while (k) {
			int rc = wisp_rr_reader_feed(&r, in + off, k, &used);
			off += used;
			k -= used;
			if (rc < 0) {
				wisp_rr_reader_fini(&r);
				return rc;
			}
			if (rc == 1) {
				int err = wisp_rr_decode(f->z, r.result, r.frame->data, r.frame->len, out + *outlen, r.len);
				wisp_buf_unref(r.frame);
				r.frame = NULL;
				if (err) {
					wisp_rr_reader_fini(&r);
					return err;
				}
				*outlen += r.len;
				results[frames++] = r.result;
			}
		}
	}
	bool idle = wisp_rr_reader_idle(&r);
	wisp_rr_reader_fini(&r);
	return idle ? frames : WISP_ERR_TRUNCATED;
}

/* Appends an encoded chunk to buf; returns its length. */
static size_t put(fx *f, uint8_t *buf, int result, const void *p, size_t n)
{
	int err = 0;
	wisp_buf *b = wisp_rr_encode(f->pool, f->z, result, p, n, &err);
	assert_non_null(b);
	memcpy(buf, b->data, b->len);
	size_t len = b->len;
	wisp_buf_unref(b);
	return len;
}

static void test_round_trip(void **state)
{
	fx *f = *state;
	size_t big = 300 * 1024;
	uint8_t *content = malloc(big), *wire = malloc(2 * big + 4096), *out = malloc(2 * big);
	for (size_t i = 0; i < big; i++)
		content[i] = (uint8_t)(wt_rng() >> (i % 7 == 0 ? 0 : 56)); /* partly compressible */
	size_t n = put(f, wire, 0, content, big);
	n += put(f, wire + n, 0, "", 0);
	n += put(f, wire + n, 3, "rate limited", 12);
	static const size_t steps[] = { 1, 2, 3, 7, 64, 4096, 1 << 30 };
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		uint8_t results[8];
		size_t outlen;
		assert_int_equal(read_all(f, true, (uint32_t)big, wire, n, steps[s], results, out, &outlen), 3);
		assert_int_equal(outlen, big + 12);
		assert_memory_equal(out, content, big);
		assert_memory_equal(out + big, "rate limited", 12);
		assert_int_equal(results[0], 0);
		assert_int_equal(results[1], 0);
		assert_int_equal(results[2], 3);
	}
	/* a request: no result byte */
	n = put(f, wire, -1, content, 1000);
	uint8_t results[2];
	size_t outlen;
	assert_int_equal(read_all(f, false, 1000, wire, n, 5, results, out, &outlen), 1);
	assert_int_equal(outlen, 1000);
	assert_memory_equal(out, content, 1000);
	/* the same request against a smaller maximum: refused at the prefix */
	assert_int_equal(read_all(f, false, 999, wire, n, 1 << 30, results, out, &outlen), WISP_ERR_TOO_LARGE);
	/* cut anywhere: truncated */
	for (size_t cut = 1; cut < n; cut += 37)
		assert_int_equal(read_all(f, false, 1000, wire, cut, 1 << 30, results, out, &outlen), WISP_ERR_TRUNCATED);
	free(content);
	free(wire);
	free(out);
}

/* A request whose frame came from a streaming encoder (no content size, a
 * 2 MiB window, a checksum: `printf 'hello atlas' | zstd`) is read whole. */
static void test_streamed_frame(void **state)
{
	fx *f = *state;
	static const uint8_t wire[] = { 11, 0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x59, 0x00, 0x00, 'h', 'e', 'l',
					'l', 'o', ' ', 'a', 't', 'l', 'a', 's', 0xf8, 0x06, 0xff, 0xf4 };
	uint8_t results[2], out[16];
	size_t outlen;
	for (size_t step = 1; step <= sizeof(wire); step++) {
		assert_int_equal(read_all(f, false, 64, wire, sizeof(wire), step, results, out, &outlen), 1);
		assert_int_equal(outlen, 11);
		assert_memory_equal(out, "hello atlas", 11);
	}
}

/* What the reader refuses without decompressing. */
static void test_refused_early(void **state)
{
	fx *f = *state;
	uint8_t wire[4096], results[4], out[4096];
	size_t outlen;
	/* unknown result code */
	uint8_t bad_code[] = { 4, 0 };
	assert_int_equal(read_all(f, true, 100, bad_code, 2, 1, results, out, &outlen), WISP_ERR_UNKNOWN_CODE);
	/* an error message declared over 256 bytes */
	uint8_t long_err[] = { 2, 0x81, 0x02 }; /* 257 */
	assert_int_equal(read_all(f, true, 1 << 20, long_err, 3, 1, results, out, &outlen), WISP_ERR_TOO_LARGE);
	/* a declared length over the maximum, seen from the prefix alone */
	uint8_t huge[] = { 0, 0xff, 0xff, 0xff, 0xff, 0x0f };
	wisp_pool_stats before, after;
	wisp_pool_stats_get(f->pool, &before);
	assert_int_equal(read_all(f, true, 1 << 20, huge, sizeof(huge), 1, results, out, &outlen), WISP_ERR_TOO_LARGE);
	wisp_pool_stats_get(f->pool, &after);
	assert_int_equal(after.high, before.high); /* nothing was allocated for it */
	/* a non-minimal varint */
	uint8_t nonmin[] = { 0, 0x80, 0x00 };
	assert_int_equal(read_all(f, true, 100, nonmin, 3, 1, results, out, &outlen), WISP_ERR_VARINT);
	/* not zstd: another magic, and a skippable frame */
	uint8_t notzstd[] = { 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0 };
	assert_int_equal(read_all(f, true, 100, notzstd, sizeof(notzstd), 1, results, out, &outlen),
			 WISP_ERR_DECOMPRESS);
	uint8_t skippable[] = { 0, 5, 0x50, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, 0 };
	assert_int_equal(read_all(f, true, 100, skippable, sizeof(skippable), 1, results, out, &outlen),
			 WISP_ERR_DECOMPRESS);
	/* a frame header whose content size disagrees with the prefix */
	size_t n = put(f, wire, 0, "0123456789", 10);
	wire[1] = 9; /* prefix says 9, the frame says 10 */
	assert_int_equal(read_all(f, true, 100, wire, n, 1, results, out, &outlen), WISP_ERR_DECOMPRESS);
	/* a reserved block type */
	n = put(f, wire, 0, "0123456789", 10);
	size_t fh = 2 + 4 + 1 + 1; /* result, prefix, magic, descriptor, 1-byte content size (single segment) */
	assert_int_equal(wire[6] & 0x20, 0x20);
	wire[fh] |= 0x06;
	assert_int_equal(read_all(f, true, 100, wire, n, 1, results, out, &outlen), WISP_ERR_DECOMPRESS);
}

/* A frame that claims a small length and runs on: refused once it passes
 * zstd's worst case for that length, before the rest is read. */
static void test_bound(void **state)
{
	fx *f = *state;
	/* A frame without a content size (so the header check passes) whose
	 * raw blocks hold far more than the declared 16 bytes. */
	uint8_t wire[1 << 16];
	size_t n = 0;
	wire[n++] = 0;
	wire[n++] = 16;
	const uint8_t hdr[] = { 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58 }; /* no FCS, window 2^(10+11) */
	memcpy(wire + n, hdr, sizeof(hdr));
	n += sizeof(hdr);
	for (int b = 0; b < 8; b++) {
		uint32_t size = 4096, v = size << 3 | (b == 7 ? 1 : 0); /* raw block */
		wire[n++] = (uint8_t)v;
		wire[n++] = (uint8_t)(v >> 8);
		wire[n++] = (uint8_t)(v >> 16);
		memset(wire + n, 'a', size);
		n += size;
	}
	uint8_t results[2], out[64];
	size_t outlen;
	assert_int_equal(read_all(f, true, 1 << 20, wire, n, 100, results, out, &outlen), WISP_ERR_TOO_LARGE);
}

/* A bomb: a tiny frame that decompresses to far more than declared. */
static void test_bomb(void **state)
{
	fx *f = *state;
	size_t big = 4 << 20;
	uint8_t *zeros = calloc(1, big);
	size_t cap = ZSTD_compressBound(big);
	uint8_t *frame = malloc(cap);
	/* without a content size in the header, as a hostile encoder would */
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
	size_t fl = ZSTD_compress2(c, frame, cap, zeros, big);
	ZSTD_freeCCtx(c);
	assert_false(ZSTD_isError(fl));
	uint8_t *wire = malloc(fl + 16);
	size_t n = 0;
	wire[n++] = 0;
	n += wisp_uvarint_put(wire + n, 1000);
	memcpy(wire + n, frame, fl);
	n += fl;
	uint8_t results[2], out[1000];
	size_t outlen;
	assert_int_equal(read_all(f, true, 1 << 20, wire, n, 1 << 30, results, out, &outlen), WISP_ERR_TOO_LARGE);
	/* the content falls short of what the prefix declared */
	n = 0;
	wire[n++] = 0;
	n += wisp_uvarint_put(wire + n, 100);
	fl = ZSTD_compress(frame, cap, zeros, 50, 1);
	memcpy(wire + n, frame, fl);
	n += fl;
	assert_int_equal(read_all(f, true, 1 << 20, wire, n, 1 << 30, results, out, &outlen), WISP_ERR_DECOMPRESS);
	free(zeros);
	free(frame);
	free(wire);
}

static void test_error_messages(void **state)
{
	fx *f = *state;
	uint8_t wire[1024], results[2], out[512];
	size_t outlen;
	size_t n = put(f, wire, 1, "bad \xff\xfe", 6);
	assert_int_equal(read_all(f, true, 100, wire, n, 1, results, out, &outlen), WISP_ERR_MALFORMED);
	n = put(f, wire, 2, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 16);
	assert_int_equal(read_all(f, true, 100, wire, n, 1, results, out, &outlen), 1);
	assert_int_equal(results[0], 2);
	int err = 0;
	char longmsg[300];
	memset(longmsg, 'x', sizeof(longmsg));
	assert_null(wisp_rr_encode(f->pool, f->z, 1, longmsg, sizeof(longmsg), &err));
	assert_int_equal(err, WISP_ERR_INVALID_ARG);
	assert_null(wisp_rr_encode(f->pool, f->z, 4, "x", 1, &err));
	assert_int_equal(err, WISP_ERR_INVALID_ARG);
	assert_true(wisp_utf8_valid((const uint8_t *)"", 0));
	assert_false(wisp_utf8_valid((const uint8_t *)"\xc0\x80", 2));     /* overlong */
	assert_false(wisp_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3)); /* surrogate */
	assert_false(wisp_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	assert_false(wisp_utf8_valid((const uint8_t *)"\xe2\x82", 2));     /* cut */
}

/* The pool has no buffer for the frame: a typed error, nothing kept. */
static void test_nomem(void **state)
{
	(void)state;
	wisp_pool *small;
	assert_int_equal(wisp_pool_new(&small, wisp_mem_default(), 3u << 20), WISP_OK);
	wisp_buf *hold[2] = { wisp_buf_alloc(small, 1 << 20), wisp_buf_alloc(small, 1 << 20) };
	assert_non_null(hold[0]);
	assert_non_null(hold[1]);
	wisp_rr_reader r;
	wisp_rr_reader_init(&r, small, true, 1 << 20);
	uint8_t prefix[5] = { 0 };
	size_t k = 1 + wisp_uvarint_put(prefix + 1, 1 << 20), used;
	assert_int_equal(wisp_rr_reader_feed(&r, prefix, k, &used), WISP_ERR_NOMEM);
	wisp_rr_reader_fini(&r);
	wisp_buf_unref(hold[0]);
	wisp_buf_unref(hold[1]);
	wisp_pool_free(small);
}

int main(void)
{
	wt_rng_seed("rrframe");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streamed_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_early, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bomb, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nomem, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
