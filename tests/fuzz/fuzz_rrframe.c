/* Request/response framing over arbitrary bytes: the first byte picks the
 * mode (request or response chunks) and the split size. Every frame the
 * reader completes is decoded under a 64 KiB limit; a decoded chunk
 * re-encodes and reads back to the same content. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/rrframe.h"
#include "runtime/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT (64 * 1024)

static wisp_pool *pool;
static wisp_zstd *z;
static uint8_t out[LIMIT], again[LIMIT];

static void check_round_trip(uint8_t result, const uint8_t *content, size_t n)
{
	int err = 0;
	wisp_buf *b = wisp_rr_encode(pool, z, result, content, n, &err);
	if (!b)
		abort();
	wisp_rr_reader r;
	wisp_rr_reader_init(&r, pool, true, LIMIT);
	size_t used = 0;
	if (wisp_rr_reader_feed(&r, b->data, b->len, &used) != 1 || used != b->len || r.result != result ||
	    r.len != n || wisp_rr_decode(z, result, r.frame->data, r.frame->len, again, n) != WISP_OK ||
	    (n && memcmp(again, content, n)))
		abort();
	wisp_rr_reader_fini(&r);
	wisp_buf_unref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pool) {
		if (wisp_pool_new(&pool, wisp_mem_default(), 16u << 20) != WISP_OK)
			abort();
		z = wisp_zstd_new(NULL, 1);
		if (!z)
			abort();
	}
	if (size < 1)
		return 0;
	bool response = data[0] & 1;
	size_t step = (size_t)(data[0] >> 1) + 1;
	data++;
	size--;
	wisp_rr_reader r;
	wisp_rr_reader_init(&r, pool, response, LIMIT);
	size_t off = 0;
	while (off < size) {
		size_t k = size - off < step ? size - off : step, used = 0;
		int rc = wisp_rr_reader_feed(&r, data + off, k, &used);
		if (rc < 0 || used > k)
			break;
		off += used;
		if (rc == 1) {
			if (r.len > (r.result ? WISP_RR_MAX_ERRMSG : LIMIT) || r.frame->len > wisp_zstd_bound(r.len))
				abort();
			wisp_buf *f = r.frame;
			r.frame = NULL;
			int err = wisp_rr_decode(z, r.result, f->data, f->len, out, r.len);
			wisp_buf_unref(f);
			if (err == WISP_OK)
				check_round_trip(r.result, out, r.len);
			if (!response)
				break;
		}
	}
	wisp_rr_reader_fini(&r);
	return 0;
}
