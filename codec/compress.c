#include "codec/compress.h"

#include <stdbool.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_customMem, ZSTD_create*_advanced */
#include <zstd.h>
#include <zstd_errors.h>

#include <wisp/error.h>

#include "runtime/mem.h"

struct wisp_zstd {
	wisp_mem mem; /* copy: zstd's opaque pointer needs a mutable address */
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
};

/* Smallest window zstd supports; limits below it would refuse valid frames. */
#define MIN_WINDOW_LOG 10
/* First buffer size when a frame does not declare its content size. */
#define ALLOC_START 4096

static void *zalloc(void *opaque, size_t size)
{
	return wisp_malloc(opaque, size);
}

static void zfree(void *opaque, void *p)
{
	wisp_free(opaque, p);
}

wisp_zstd *wisp_zstd_new(const wisp_mem *mem, int level)
{
	if (!mem)
		mem = wisp_mem_default();
	wisp_zstd *z = wisp_malloc(mem, sizeof(*z));
	if (!z)
		return NULL;
	z->mem = *mem;
	ZSTD_customMem cm = { .customAlloc = zalloc, .customFree = zfree, .opaque = &z->mem };
	z->c = ZSTD_createCCtx_advanced(cm);
	z->d = ZSTD_createDCtx_advanced(cm);
	if (!z->c || !z->d) {
		wisp_zstd_free(z);
		return NULL;
	}
	if (level == 0)
		level = WISP_ZSTD_DEFAULT_LEVEL;
	if (level < ZSTD_minCLevel())
		level = ZSTD_minCLevel();
	if (level > ZSTD_maxCLevel())
		level = ZSTD_maxCLevel();
	ZSTD_CCtx_setParameter(z->c, ZSTD_c_compressionLevel, level);
	return z;
}

void wisp_zstd_free(wisp_zstd *z)
{
	if (!z)
		return;
	ZSTD_freeCCtx(z->c);
	ZSTD_freeDCtx(z->d);
	wisp_mem mem = z->mem;
	wisp_free(&mem, z);
}

size_t wisp_zstd_bound(size_t n)
{
	size_t b = ZSTD_compressBound(n);
	return ZSTD_isError(b) ? 0 : b;
}

ssize_t wisp_zstd_compress(wisp_zstd *z, const void *in, size_t n, void *out, size_t cap)
{
	size_t r = ZSTD_compress2(z->c, out, cap, in, n);
	if (!ZSTD_isError(r))
		return (ssize_t)r;
	switch (ZSTD_getErrorCode(r)) {
	case ZSTD_error_dstSize_tooSmall:
		return WISP_ERR_NOBUF;
	case ZSTD_error_memory_allocation:
		return WISP_ERR_NOMEM;
	default:
		return WISP_ERR_INVALID_ARG;
	}
}

static int map_derr(size_t r)
{
	switch (ZSTD_getErrorCode(r)) {
	case ZSTD_error_memory_allocation:
		return WISP_ERR_NOMEM;
	case ZSTD_error_frameParameter_windowTooLarge:
		return WISP_ERR_TOO_LARGE;
	default:
		return WISP_ERR_DECOMPRESS;
	}
}

/* The smallest window log that covers max bytes (at least zstd's minimum). */
static int window_log(size_t max)
{
	int wlog = MIN_WINDOW_LOG;
	while (wlog < ZSTD_WINDOWLOG_MAX && ((size_t)1 << wlog) < max)
		wlog++;
	return wlog;
}

/* Checks the frame header and prepares the stream. Returns 0 with the
 * declared content size (or ZSTD_CONTENTSIZE_UNKNOWN) in *declared. */
static int start_frame(wisp_zstd *z, const void *in, size_t n, size_t max,
		       unsigned long long *declared)
{
	/* One ordinary frame only: skippable frames carry nothing for us. */
	const uint8_t *b = in;
	if (n < 4 || (b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24) != ZSTD_MAGICNUMBER)
		return WISP_ERR_DECOMPRESS;
	unsigned long long fcs = ZSTD_getFrameContentSize(in, n);
	if (fcs == ZSTD_CONTENTSIZE_ERROR)
		return WISP_ERR_DECOMPRESS;
	if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs > max)
		return WISP_ERR_TOO_LARGE;

	/* Streaming allocates the window: never more than the whole allowed
	 * output (frames with a larger window are decoded by flat()). */
	ZSTD_DCtx_reset(z->d, ZSTD_reset_session_and_parameters);
	size_t r = ZSTD_DCtx_setParameter(z->d, ZSTD_d_windowLogMax, window_log(max));
	if (ZSTD_isError(r))
		return WISP_ERR_INTERNAL;
	*declared = fcs;
	return 0;
}

/* True when the frame's window is larger than streaming may allocate for
 * max bytes of output. Encoders that do not know the size ahead (zstd's
 * streaming API, the zstd command on a pipe) declare windows of 512 KiB to
 * 8 MiB whatever the content: such frames are valid. */
static bool big_window(const void *in, size_t n, size_t max)
{
	ZSTD_frameHeader fh;
	return ZSTD_getFrameHeader(&fh, in, n) == 0 && fh.windowSize > ((unsigned long long)1 << window_log(max));
}

/* Decodes a big_window() frame in one pass into out[0..cap): out holds the
 * whole history, so zstd allocates no window and the window costs nothing.
 * Errors as wisp_zstd_decompress(). */
static ssize_t flat(wisp_zstd *z, const void *in, size_t n, void *out, size_t cap, unsigned long long declared)
{
	size_t r = ZSTD_decompressDCtx(z->d, out, cap, in, n);
	if (ZSTD_isError(r)) {
		/* more than cap: over the limit, or, past a declared size, corrupt */
		if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall)
			return declared == ZSTD_CONTENTSIZE_UNKNOWN ? WISP_ERR_TOO_LARGE : WISP_ERR_DECOMPRESS;
		return map_derr(r);
	}
	/* one frame only (ZSTD_decompressDCtx goes on through more frames) */
	if (ZSTD_findFrameCompressedSize(in, n) != n)
		return WISP_ERR_DECOMPRESS;
	return (ssize_t)r;
}

/* Decodes until the frame ends or out is full. Returns 1 when the frame is
 * complete with all input consumed, 0 when out is full first, or an error
 * (input that ends inside the frame or continues after it is corrupt). */
static int pump(ZSTD_DCtx *d, ZSTD_inBuffer *in, ZSTD_outBuffer *out)
{
	for (;;) {
		if (out->pos == out->size)
			return 0;
		size_t ip = in->pos, op = out->pos;
		size_t r = ZSTD_decompressStream(d, out, in);
		if (ZSTD_isError(r))
			return map_derr(r);
		if (r == 0)
			return in->pos == in->size ? 1 : WISP_ERR_DECOMPRESS;
		if (in->pos == ip && out->pos == op)
			return WISP_ERR_DECOMPRESS;
	}
}

/* Called with out full: done if the frame ends without another byte. More
 * output is over the limit, or, past a declared content size, corrupt. */
static int finish_full(ZSTD_DCtx *d, ZSTD_inBuffer *in, unsigned long long declared)
{
	uint8_t probe;
	ZSTD_outBuffer s = { &probe, 1, 0 };
	int r = pump(d, in, &s);
	if (s.pos)
		return declared == ZSTD_CONTENTSIZE_UNKNOWN ? WISP_ERR_TOO_LARGE
							   : WISP_ERR_DECOMPRESS;
	return r == 1 ? 0 : r;
}

ssize_t wisp_zstd_decompress(wisp_zstd *z, const void *in, size_t n, void *out, size_t cap)
{
	unsigned long long declared;
	int r = start_frame(z, in, n, cap, &declared);
	if (r)
		return r;
	if (big_window(in, n, cap))
		return flat(z, in, n, out, cap, declared);
	ZSTD_inBuffer ib = { in, n, 0 };
	ZSTD_outBuffer ob = { out, cap, 0 };
	r = pump(z->d, &ib, &ob);
	if (r == 0)
		r = finish_full(z->d, &ib, declared);
	else if (r == 1)
		r = 0;
	return r ? r : (ssize_t)ob.pos;
}

int wisp_zstd_decompress_alloc(wisp_zstd *z, const void *in, size_t n, size_t max, uint8_t **out,
			       size_t *outlen)
{
	unsigned long long declared;
	int r = start_frame(z, in, n, max, &declared);
	if (r)
		return r;
	size_t size;
	if (declared != ZSTD_CONTENTSIZE_UNKNOWN)
		size = (size_t)declared;
	else
		size = max < ALLOC_START ? max : ALLOC_START;
	bool big = big_window(in, n, max);
	if (big && declared == ZSTD_CONTENTSIZE_UNKNOWN)
		size = max; /* one pass needs room for all that is allowed */
	uint8_t *buf = wisp_malloc(&z->mem, size ? size : 1);
	if (!buf)
		return WISP_ERR_NOMEM;
	if (big) {
		ssize_t got = flat(z, in, n, buf, size, declared);
		uint8_t *fit = got >= 0 && (size_t)got < size ? wisp_realloc(&z->mem, buf, got ? (size_t)got : 1) : buf;
		if (got < 0 || !fit) {
			wisp_free(&z->mem, buf);
			return got < 0 ? (int)got : WISP_ERR_NOMEM;
		}
		*out = fit;
		*outlen = (size_t)got;
		return 0;
	}

	ZSTD_inBuffer ib = { in, n, 0 };
	ZSTD_outBuffer ob = { buf, size, 0 };
	for (;;) {
		r = pump(z->d, &ib, &ob);
		if (r != 0)
			break;
		if (ob.size == max || declared != ZSTD_CONTENTSIZE_UNKNOWN) {
			r = finish_full(z->d, &ib, declared);
			break;
		}
		/* Double, never past max: memory tracks real output, not claims. */
		size_t grown = ob.size > max / 2 ? max : ob.size * 2;
		uint8_t *nb = wisp_realloc(&z->mem, buf, grown);
		if (!nb) {
			r = WISP_ERR_NOMEM;
			break;
		}
		buf = nb;
		ob.dst = nb;
		ob.size = grown;
	}
	if (r < 0) {
		wisp_free(&z->mem, buf);
		return r;
	}
	*out = buf;
	*outlen = ob.pos;
	return 0;
}
