/* Request/response framing: the Atlas protocols (/atlas/req/<name>/<v>/pb_zstd)
 * and any the application registers with the same framing.
 *
 *   request         uvarint(n) || one zstd frame whose content is n bytes
 *   response chunk  result byte || uvarint(n) || one zstd frame of n bytes
 *
 * Result codes: 0 success, 1 invalid request, 2 server error, 3 resource
 * unavailable; with a non-zero result the content is a UTF-8 message of at
 * most WISP_RR_MAX_ERRMSG bytes.
 *
 * The reader is sans-I/O: bytes in any split, whole frames out. It checks
 * the declared length against the caller's maximum before it keeps a byte,
 * finds where the zstd frame ends from the frame's own structure (header,
 * block headers, checksum) without decompressing it, and refuses a frame
 * longer than zstd's worst case for the declared length. The compressed
 * frame is gathered into one pooled buffer; wisp_rr_decode() decompresses it
 * into exactly the declared length or fails, so a decompression bomb costs
 * nothing beyond the declared length, which the caller bounded.
 *
 * Caller-owned state; one thread at a time.
 */
#ifndef WISP_CODEC_RRFRAME_H
#define WISP_CODEC_RRFRAME_H

#include <stdbool.h>

#include <wisp/common.h>

#include "codec/compress.h"
#include "runtime/buf.h"

#define WISP_RR_MAX_ERRMSG 256
#define WISP_RR_RESULT_MAX 3

typedef struct wisp_rr_reader {
	bool response;     /* chunks (result byte first) rather than one request */
	uint32_t max;      /* largest content of a request or a success chunk */
	wisp_pool *pool;
	/* the frame being read */
	uint8_t state;
	uint8_t result;
	uint8_t hlen, hneed; /* header bytes gathered in hdr, and wanted */
	uint8_t hdr[18];     /* the length prefix, the zstd frame header, a block header */
	bool last_block;
	bool checksum;
	uint32_t skip;       /* bytes left in the current block body or checksum */
	uint64_t len;        /* the declared content length */
	size_t bound;        /* the most compressed bytes that length allows */
	wisp_buf *frame;     /* the compressed frame so far */
} wisp_rr_reader;

/* response: read response chunks, else one request. max: the largest
 * content accepted for a request or a success chunk. */
void wisp_rr_reader_init(wisp_rr_reader *r, wisp_pool *pool, bool response, uint32_t max) WISP_NONNULL(1, 2);
/* Releases a frame in progress. */
void wisp_rr_reader_fini(wisp_rr_reader *r) WISP_NONNULL(1);

/* Reads from p[0..n) until a frame is complete or the bytes run out; *used
 * is how many were taken. Returns
 *   1  a frame is complete: r->result (0 for requests), r->len (declared
 *      content length) and r->frame (the compressed zstd frame, owned by
 *      the caller now; r->frame is set to NULL); call again for the rest;
 *   0  every byte was taken and the frame is not complete yet;
 *   WISP_ERR_UNKNOWN_CODE  a result byte over 3;
 *   WISP_ERR_TOO_LARGE     a declared length over the maximum (over
 *                          WISP_RR_MAX_ERRMSG for an error result), or
 *                          more compressed bytes than it allows;
 *   WISP_ERR_VARINT        a bad length prefix;
 *   WISP_ERR_DECOMPRESS    not one zstd frame: another magic (skippable
 *                          frames too), a reserved bit or block type, a
 *                          block over 128 KiB, a declared content size
 *                          other than the prefix's;
 *   WISP_ERR_NOMEM         the pool has no buffer for the frame.
 * After an error the reader must not be fed again. */
int wisp_rr_reader_feed(wisp_rr_reader *r, const uint8_t *p, size_t n, size_t *used) WISP_NONNULL(1, 4)
	WISP_WARN_UNUSED;

/* True when no frame has begun: the stream may end here. */
bool wisp_rr_reader_idle(const wisp_rr_reader *r) WISP_NONNULL(1);

/* Decompresses frame[0..flen) into out[0..len): exactly len bytes or an
 * error (WISP_ERR_DECOMPRESS: corrupt, or content of another length;
 * WISP_ERR_TOO_LARGE; WISP_ERR_NOMEM). For error results, the content must
 * also be UTF-8 (else WISP_ERR_MALFORMED). */
int wisp_rr_decode(wisp_zstd *z, uint8_t result, const uint8_t *frame, size_t flen, uint8_t *out, size_t len)
	WISP_WARN_UNUSED;

/* The encoded size bound of n content bytes (result byte included). */
size_t wisp_rr_encoded_bound(size_t n);

/* Encodes a request (result < 0) or a response chunk into a pooled buffer
 * (b->data[0..b->len)). NULL with *err: WISP_ERR_NOMEM (pool or zstd),
 * WISP_ERR_INVALID_ARG (result over 3, an error message over
 * WISP_RR_MAX_ERRMSG, n over the pool's reach). */
wisp_buf *wisp_rr_encode(wisp_pool *pool, wisp_zstd *z, int result, const void *p, size_t n, int *err)
	WISP_NONNULL(1, 2, 6);

/* True when p[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
bool wisp_utf8_valid(const uint8_t *p, size_t n);

#endif
