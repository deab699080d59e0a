#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include <wisp/error.h>

#include "codec/compress.h"
#include "runtime/mem.h"

#define MiB ((size_t)1 << 20)

/* An allocator that records the peak of live bytes, to show what a bomb
 * costs. Each block carries its size in a header. */
typedef struct peakmem {
	wisp_mem mem;
	size_t live, peak;
} peakmem;

static void *pm_malloc(size_t n, void *u)
{
	peakmem *pm = u;
	size_t *p = malloc(n + sizeof(size_t) * 2);
	if (!p)
		return NULL;
	p[0] = n;
	pm->live += n;
	if (pm->live > pm->peak)
		pm->peak = pm->live;
	return p + 2;
}

static void pm_free(void *ptr, void *u)
{
	peakmem *pm = u;
	size_t *p = (size_t *)ptr - 2;
	pm->live -= p[0];
	free(p);
}

static void *pm_calloc(size_t k, size_t n, void *u)
{
	void *p = pm_malloc(k * n, u);
	if (p)
		memset(p, 0, k * n);
	return p;
}

static void *pm_realloc(void *ptr, size_t n, void *u)
{
	if (!ptr)
		return pm_malloc(n, u);
	size_t old = ((size_t *)ptr)[-2];
	void *np = pm_malloc(n, u);
	if (!np)
		return NULL;
	memcpy(np, ptr, old < n ? old : n);
	pm_free(ptr, u);
	return np;
}

static void peakmem_init(peakmem *pm)
{
	memset(pm, 0, sizeof(*pm));
	pm->mem = (wisp_mem){ pm, pm_malloc, pm_free, pm_calloc, pm_realloc };
}

/* zeros bytes of zeros as one zstd frame, streamed so the test never holds
 * them; with_size writes the content size into the frame header. */
static size_t make_bomb(size_t zeros, int with_size, int window_log, uint8_t *out, size_t cap)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	assert_non_null(c);
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, with_size);
	if (window_log)
		ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
	if (with_size)
		ZSTD_CCtx_setPledgedSrcSize(c, zeros);
	uint8_t *chunk = calloc(1, MiB);
	assert_non_null(chunk);
	ZSTD_outBuffer ob = { out, cap, 0 };
	for (size_t done = 0; done < zeros; done += MiB) {
		ZSTD_inBuffer ib = { chunk, MiB, 0 };
		while (ib.pos < ib.size)
			assert_false(ZSTD_isError(ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue)));
	}
	ZSTD_inBuffer empty = { NULL, 0, 0 };
	size_t left;
	do {
		left = ZSTD_compressStream2(c, &ob, &empty, ZSTD_e_end);
		assert_false(ZSTD_isError(left));
	} while (left);
	free(chunk);
	ZSTD_freeCCtx(c);
	return ob.pos;
}

static void check_bomb(size_t blen, const uint8_t *bomb, int expect_declared)
{
	assert_int_equal(ZSTD_getFrameContentSize(bomb, blen) == ZSTD_CONTENTSIZE_UNKNOWN,
			 !expect_declared);
	peakmem pm;
	peakmem_init(&pm);
	wisp_zstd *z = wisp_zstd_new(&pm.mem, 0);
	assert_non_null(z);
	uint8_t *out = malloc(MiB);
	assert_non_null(out);
	assert_int_equal(wisp_zstd_decompress(z, bomb, blen, out, MiB), WISP_ERR_TOO_LARGE);
	uint8_t *p = NULL;
	size_t plen = 0;
	assert_int_equal(wisp_zstd_decompress_alloc(z, bomb, blen, MiB, &p, &plen),
			 WISP_ERR_TOO_LARGE);
	assert_null(p);
	/* the context plus at most the 1 MiB allowed, nowhere near 64 MiB */
	assert_true(pm.peak < 4 * MiB);
	printf("# bomb %zu -> 64 MiB: peak %zu bytes\n", blen, pm.peak);
	/* the same context still works afterwards */
	static const char msg[] = "still usable";
	uint8_t c[128];
	ssize_t cl = wisp_zstd_compress(z, msg, sizeof(msg), c, sizeof(c));
	assert_true(cl > 0);
	assert_int_equal(wisp_zstd_decompress(z, c, (size_t)cl, out, MiB), sizeof(msg));
	assert_memory_equal(out, msg, sizeof(msg));
	free(out);
	wisp_zstd_free(z);
	assert_int_equal(pm.live, 0);
}

static void test_bomb_declared(void **state)
{
	(void)state;
	uint8_t *bomb = malloc(MiB);
	size_t blen = make_bomb(64 * MiB, 1, 0, bomb, MiB);
	assert_true(blen < 16384);
	check_bomb(blen, bomb, 1);
	free(bomb);
}

static void test_bomb_undeclared(void **state)
{
	(void)state;
	uint8_t *bomb = malloc(MiB);
	/* a 128 KiB window is within the 1 MiB limit: the output cap stops it */
	size_t blen = make_bomb(64 * MiB, 0, 17, bomb, MiB);
	assert_true(blen < 16384);
	check_bomb(blen, bomb, 0);
	/* the default (2 MiB) window: decoded in one pass into the 1 MiB
	 * allowed, which runs out */
	blen = make_bomb(64 * MiB, 0, 0, bomb, MiB);
	check_bomb(blen, bomb, 0);
	free(bomb);
}

static void fill(uint8_t *p, size_t n, uint64_t seed, int compressible)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005u + 1442695040888963407u;
		p[i] = compressible ? (uint8_t)("validator"[i % 9] + (seed >> 62)) : (uint8_t)(seed >> 56);
	}
}

static void test_roundtrip(void **state)
{
	(void)state;
	wisp_zstd *z = wisp_zstd_new(NULL, 0);
	assert_non_null(z);
	size_t cap = wisp_zstd_bound(300000);
	uint8_t *in = malloc(300000), *c = malloc(cap), *out = malloc(300000);
	uint64_t seed = wt_now_ns();
	printf("# compress seed %llu\n", (unsigned long long)seed);
	static const size_t sizes[] = { 0, 1, 100, 4096, 4097, 65536, 131073, 300000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int comp = 0; comp < 2; comp++) {
			size_t n = sizes[i];
			fill(in, n, seed + i, comp);
			ssize_t cl = wisp_zstd_compress(z, in, n, c, cap);
			assert_true(cl > 0);
			assert_true((size_t)cl <= wisp_zstd_bound(n));
			assert_true(ZSTD_getFrameContentSize(c, (size_t)cl) == n);
			assert_int_equal(wisp_zstd_decompress(z, c, (size_t)cl, out, n), n);
			assert_memory_equal(out, in, n);
			if (n) {
				assert_int_equal(wisp_zstd_decompress(z, c, (size_t)cl, out, n - 1),
						 WISP_ERR_TOO_LARGE);
				/* truncated frames and trailing bytes are corrupt */
				assert_int_equal(wisp_zstd_decompress(z, c, (size_t)cl - 1, out, n),
						 WISP_ERR_DECOMPRESS);
			}
			c[cl] = 0;
			assert_int_equal(wisp_zstd_decompress(z, c, (size_t)cl + 1, out, n),
					 WISP_ERR_DECOMPRESS);
			uint8_t *p;
			size_t plen;
			assert_int_equal(wisp_zstd_decompress_alloc(z, c, (size_t)cl, n, &p, &plen), 0);
			assert_non_null(p);
			assert_int_equal(plen, n);
			assert_memory_equal(p, in, n);
			wisp_free(wisp_mem_default(), p);
		}
	}
	/* compressing into too small a buffer */
	fill(in, 1000, seed, 0);
	assert_int_equal(wisp_zstd_compress(z, in, 1000, c, 100), WISP_ERR_NOBUF);
	free(in);
	free(c);
	free(out);
	wisp_zstd_free(z);
}

/* Frames without a content size: exact-size output, growth in the alloc path. */
static void test_undeclared_size(void **state)
{
	(void)state;
	size_t n = 200000;
	uint8_t *in = malloc(n), *out = malloc(n);
	size_t cap = ZSTD_compressBound(n);
	uint8_t *c = malloc(cap);
	fill(in, n, 7, 1);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 17);
	ZSTD_inBuffer ib = { in, n, 0 };
	ZSTD_outBuffer ob = { c, cap, 0 };
	assert_int_equal(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end), 0);
	ZSTD_freeCCtx(cc);
	assert_true(ZSTD_getFrameContentSize(c, ob.pos) == ZSTD_CONTENTSIZE_UNKNOWN);

	wt_failmem fm;
	wt_failmem_init(&fm, 0);
	wisp_zstd *z = wisp_zstd_new(&fm.mem, 1);
	assert_non_null(z);
	assert_int_equal(wisp_zstd_decompress(z, c, ob.pos, out, n), n);
	assert_memory_equal(out, in, n);
	assert_int_equal(wisp_zstd_decompress(z, c, ob.pos, out, n - 1), WISP_ERR_TOO_LARGE);
	uint8_t *p;
	size_t plen;
	assert_int_equal(wisp_zstd_decompress_alloc(z, c, ob.pos, n, &p, &plen), 0);
	assert_int_equal(plen, n);
	assert_memory_equal(p, in, n);
	wisp_free(&fm.mem, p);
	assert_int_equal(wisp_zstd_decompress_alloc(z, c, ob.pos, n - 1, &p, &plen),
			 WISP_ERR_TOO_LARGE);
	wisp_zstd_free(z);
	free(in);
	free(out);
	free(c);
}

static void test_not_zstd(void **state)
{
	(void)state;
	wisp_zstd *z = wisp_zstd_new(NULL, 0);
	uint8_t out[64];
	uint8_t *p;
	size_t plen;
	assert_int_equal(wisp_zstd_decompress(z, NULL, 0, out, sizeof(out)), WISP_ERR_DECOMPRESS);
	assert_int_equal(wisp_zstd_decompress(z, "hello world", 11, out, sizeof(out)),
			 WISP_ERR_DECOMPRESS);
	/* magic only: header incomplete */
	assert_int_equal(wisp_zstd_decompress(z, "\x28\xb5\x2f\xfd", 4, out, sizeof(out)),
			 WISP_ERR_DECOMPRESS);
	/* a skippable frame with 4 bytes of content */
	assert_int_equal(wisp_zstd_decompress(z, "\x50\x2a\x4d\x18\x04\x00\x00\x00" "abcd", 12, out,
					      sizeof(out)),
			 WISP_ERR_DECOMPRESS);
	assert_int_equal(wisp_zstd_decompress_alloc(z, "junk", 4, 10, &p, &plen),
			 WISP_ERR_DECOMPRESS);
	/* two frames back to back */
	uint8_t two[128];
	ssize_t a = wisp_zstd_compress(z, "ab", 2, two, sizeof(two));
	ssize_t b = wisp_zstd_compress(z, "cd", 2, two + a, sizeof(two) - (size_t)a);
	assert_true(a > 0 && b > 0);
	assert_int_equal(wisp_zstd_decompress(z, two, (size_t)(a + b), out, sizeof(out)),
			 WISP_ERR_DECOMPRESS);
	/* a corrupted block header */
	uint8_t c[128];
	ssize_t cl = wisp_zstd_compress(z, "hello hello hello hello", 23, c, sizeof(c));
	c[cl - 1] ^= 0xff;
	c[6] = 0xff;
	c[7] = 0xff;
	assert_true(wisp_zstd_decompress(z, c, (size_t)cl, out, sizeof(out)) < 0);
	/* a header that declares less than the frame holds: corrupt in both
	 * paths, even though the declared size is within the limit */
	uint8_t big[1000], lie[1100];
	fill(big, sizeof(big), 3, 1);
	cl = wisp_zstd_compress(z, big, sizeof(big), lie, sizeof(lie));
	assert_true(cl > 0);
	assert_int_equal(lie[4] & 0xe0, 0x60); /* 2-byte content size, single segment */
	lie[5] = (uint8_t)(500 - 256);
	lie[6] = 0;
	uint8_t *dst = malloc(2000);
	assert_int_equal(wisp_zstd_decompress(z, lie, (size_t)cl, dst, 2000), WISP_ERR_DECOMPRESS);
	assert_int_equal(wisp_zstd_decompress(z, lie, (size_t)cl, dst, 500), WISP_ERR_DECOMPRESS);
	assert_int_equal(wisp_zstd_decompress_alloc(z, lie, (size_t)cl, 2000, &p, &plen),
			 WISP_ERR_DECOMPRESS);
	free(dst);
	wisp_zstd_free(z);
	wisp_zstd_free(NULL);
}

static void test_declared_zero(void **state)
{
	(void)state;
	wisp_zstd *z = wisp_zstd_new(NULL, 0);
	uint8_t c[64];
	ssize_t cl = wisp_zstd_compress(z, NULL, 0, c, sizeof(c));
	assert_true(cl > 0);
	uint8_t *p = NULL;
	size_t plen = 99;
	assert_int_equal(wisp_zstd_decompress_alloc(z, c, (size_t)cl, 0, &p, &plen), 0);
	assert_non_null(p);
	assert_int_equal(plen, 0);
	wisp_free(wisp_mem_default(), p);
	assert_int_equal(wisp_zstd_decompress(z, c, (size_t)cl, NULL, 0), 0);
	wisp_zstd_free(z);
}

/* Encoders that do not know the size ahead (zstd's streaming API, the zstd
 * command on a pipe) write no content size and a window from their level
 * (2 MiB at level 3, 8 MiB at level 19), whatever the content: such frames
 * are valid and must decode; the window costs no memory, since the output
 * buffer holds the whole history. */
static size_t make_streamed(const void *in, size_t n, int window_log, uint8_t *out, size_t cap)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	assert_non_null(c);
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
	/* input first, the end apart: zstd never learns the size (a single
	 * ZSTD_e_end call would size the window to the input) */
	ZSTD_inBuffer ib = { in, n, 0 };
	ZSTD_outBuffer ob = { out, cap, 0 };
	while (ib.pos < ib.size)
		assert_false(ZSTD_isError(ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue)));
	ZSTD_inBuffer empty = { NULL, 0, 0 };
	size_t left;
	do {
		left = ZSTD_compressStream2(c, &ob, &empty, ZSTD_e_end);
		assert_false(ZSTD_isError(left));
	} while (left);
	ZSTD_freeCCtx(c);
	assert_true(ZSTD_getFrameContentSize(out, ob.pos) == ZSTD_CONTENTSIZE_UNKNOWN);
	ZSTD_frameHeader fh;
	assert_int_equal(ZSTD_getFrameHeader(&fh, out, ob.pos), 0);
	if (n) /* (an empty frame gets the smallest window) */
		assert_int_equal(fh.windowSize, (unsigned long long)1 << window_log);
	return ob.pos;
}

static void test_large_window(void **state)
{
	(void)state;
	static const char msg[] = "hello atlas";
	size_t n = 200000;
	uint8_t *in = malloc(n), *c = malloc(ZSTD_compressBound(n) + 64), *out = malloc(n);
	fill(in, n, 11, 1);
	static const struct {
		size_t len;
		int window_log;
	} cases[] = { { sizeof(msg) - 1, 21 }, { 0, 19 }, { 200000, 23 }, { 1000, 27 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len;
		const void *src = len == sizeof(msg) - 1 ? (const void *)msg : in;
		size_t cl = make_streamed(src, len, cases[i].window_log, c, ZSTD_compressBound(n) + 64);
		peakmem pm;
		peakmem_init(&pm);
		wisp_zstd *z = wisp_zstd_new(&pm.mem, 0);
		assert_non_null(z);
		assert_int_equal(wisp_zstd_decompress(z, c, cl, out, len), (ssize_t)len);
		assert_memory_equal(out, src, len);
		uint8_t *p = NULL;
		size_t plen = 0;
		assert_int_equal(wisp_zstd_decompress_alloc(z, c, cl, len, &p, &plen), 0);
		assert_int_equal(plen, len);
		assert_memory_equal(p, src, len);
		wisp_free(&pm.mem, p);
		if (len) {
			assert_int_equal(wisp_zstd_decompress(z, c, cl, out, len - 1), WISP_ERR_TOO_LARGE);
			assert_int_equal(wisp_zstd_decompress_alloc(z, c, cl, len - 1, &p, &plen), WISP_ERR_TOO_LARGE);
		}
		/* the context and at most the output, never the declared window */
		printf("# window 2^%d, %zu bytes: peak %zu bytes\n", cases[i].window_log, len, pm.peak);
		assert_true(pm.peak < 1 * MiB + len);
		wisp_zstd_free(z);
		assert_int_equal(pm.live, 0);
	}
	free(in);
	free(c);
	free(out);
}

/* Fail every allocation in turn: no leak, no crash, NOMEM or NULL only. */
static void test_failing_allocator(void **state)
{
	(void)state;
	static const char msg[] = "gossip gossip gossip gossip gossip gossip gossip";
	uint8_t c[256], out[256];
	int ok = 0;
	for (unsigned long fail_at = 1; fail_at < 200 && !ok; fail_at++) {
		wt_failmem fm;
		wt_failmem_init(&fm, fail_at);
		wisp_zstd *z = wisp_zstd_new(&fm.mem, 0);
		if (!z)
			continue;
		ssize_t cl = wisp_zstd_compress(z, msg, sizeof(msg), c, sizeof(c));
		if (cl < 0) {
			assert_int_equal(cl, WISP_ERR_NOMEM);
			wisp_zstd_free(z);
			continue;
		}
		ssize_t dl = wisp_zstd_decompress(z, c, (size_t)cl, out, sizeof(out));
		if (dl < 0) {
			assert_int_equal(dl, WISP_ERR_NOMEM);
			wisp_zstd_free(z);
			continue;
		}
		assert_int_equal(dl, sizeof(msg));
		uint8_t *p = NULL;
		size_t plen;
		int r = wisp_zstd_decompress_alloc(z, c, (size_t)cl, sizeof(msg), &p, &plen);
		if (r < 0) {
			assert_int_equal(r, WISP_ERR_NOMEM);
			assert_null(p);
			wisp_zstd_free(z);
			continue;
		}
		assert_memory_equal(p, msg, sizeof(msg));
		wisp_free(&fm.mem, p);
		wisp_zstd_free(z);
		ok = 1;
		printf("# zstd: succeeded with fail_at %lu\n", fail_at);
	}
	assert_true(ok);
	/* the first allocation failing means no context at all */
	wt_failmem fm;
	wt_failmem_init(&fm, 1);
	assert_null(wisp_zstd_new(&fm.mem, 0));
	wt_failmem_init(&fm, 2);
	assert_null(wisp_zstd_new(&fm.mem, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bomb_declared),
		cmocka_unit_test(test_bomb_undeclared),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_undeclared_size),
		cmocka_unit_test(test_large_window),
		cmocka_unit_test(test_not_zstd),
		cmocka_unit_test(test_declared_zero),
		cmocka_unit_test(test_failing_allocator),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
