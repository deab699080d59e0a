/* zstd compression for message payloads (request/response chunks, gossip
 * data when a topic enables it).
 *
 * A wisp_zstd holds one compression and one decompression context, created
 * once with a wisp_mem (all of zstd's memory goes through it) and reused for
 * every message. Decompression is bounded by a caller maximum: a frame that
 * declares a larger content size is refused before any output is written or
 * allocated, and frames without a declared size are decoded by streaming
 * with the output capped, so a decompression bomb costs at most the maximum,
 * never more memory. A frame whose window is larger than the maximum (valid:
 * streaming encoders declare one whatever the content) is decoded in one
 * pass into a buffer of the maximum, which needs no window.
 *
 * A wisp_zstd belongs to one thread at a time.
 */
#ifndef WISP_CODEC_COMPRESS_H
#define WISP_CODEC_COMPRESS_H

#include <wisp/common.h>
#include <wisp/mem.h>

typedef struct wisp_zstd wisp_zstd;

/* Level used by wisp_zstd_new() when level is 0. */
#define WISP_ZSTD_DEFAULT_LEVEL 3

/* Creates a context pair using mem (NULL: wisp_mem_default()) and
 * compression level (0: WISP_ZSTD_DEFAULT_LEVEL; clamped to zstd's range).
 * Returns NULL when memory runs out. Free with wisp_zstd_free(). */
wisp_zstd *wisp_zstd_new(const wisp_mem *mem, int level) WISP_WARN_UNUSED;

/* Frees z and everything zstd allocated for it; NULL is ignored. */
void wisp_zstd_free(wisp_zstd *z);

/* Largest compressed size of n input bytes (a buffer this big always
 * suffices for wisp_zstd_compress), or 0 when n is too large for zstd. */
size_t wisp_zstd_bound(size_t n);

/* Compresses in[0..n) as one zstd frame that declares its content size into
 * out[0..cap). Returns the compressed size, or WISP_ERR_NOBUF,
 * WISP_ERR_NOMEM, WISP_ERR_INVALID_ARG (input too large for zstd). */
ssize_t wisp_zstd_compress(wisp_zstd *z, const void *in, size_t n, void *out, size_t cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Decompresses in[0..n), which must be exactly one zstd frame, into
 * out[0..cap); cap is the maximum decompressed size. Returns the
 * decompressed size, or
 *   WISP_ERR_TOO_LARGE   the frame declares more than cap bytes, or declares
 *                        no size and holds more;
 *   WISP_ERR_DECOMPRESS  not zstd, corrupt, truncated, trailing bytes, or
 *                        content that does not match its declared size;
 *   WISP_ERR_NOMEM       zstd could not allocate its buffers.
 * out's contents are unspecified after an error. */
ssize_t wisp_zstd_decompress(wisp_zstd *z, const void *in, size_t n, void *out, size_t cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

/* As wisp_zstd_decompress, but allocates the output (through z's wisp_mem)
 * with at most max bytes: exactly the declared size when the frame has one,
 * else a buffer grown as output arrives (or, for a window larger than max,
 * max bytes, then shrunk to the output). On success *out (free it with
 * wisp_free(mem, *out) using the same mem; never NULL, even for 0 bytes) and
 * *outlen are set and 0 is returned; on error nothing is allocated and the
 * errors are those of wisp_zstd_decompress. */
int wisp_zstd_decompress_alloc(wisp_zstd *z, const void *in, size_t n, size_t max, uint8_t **out,
			       size_t *outlen) WISP_NONNULL(1, 5, 6) WISP_WARN_UNUSED;

#endif
