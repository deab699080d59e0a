#include "codec/rrframe.h"

#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameContentSize on a bare header */
#include <zstd.h>

#include <wisp/error.h>

#include "codec/varint.h"

/* zstd's format (RFC 8878): magic, frame header descriptor, then optional
 * window descriptor, dictionary id and content size; blocks with 3-byte
 * headers (last flag, type, size); an optional 4-byte checksum. */
#define ZSTD_MAGIC 0xFD2FB528u
#define BLOCK_MAX (128u * 1024)

enum { S_RESULT, S_LEN, S_FHDR, S_BHDR, S_BODY, S_CSUM };

void wisp_rr_reader_init(wisp_rr_reader *r, wisp_pool *pool, bool response, uint32_t max)
{
	memset(r, 0, sizeof(*r));
	r->pool = pool;
	r->response = response;
	r->max = max;
	r->state = response ? S_RESULT : S_LEN;
}

void wisp_rr_reader_fini(wisp_rr_reader *r)
{
	wisp_buf_unref(r->frame);
	r->frame = NULL;
}

bool wisp_rr_reader_idle(const wisp_rr_reader *r)
{
	return r->state == (r->response ? S_RESULT : S_LEN) && r->hlen == 0;
}

/* The frame header's size from its descriptor byte. */
static uint8_t fhdr_size(uint8_t fhd)
{
	static const uint8_t dict[4] = { 0, 1, 2, 4 }, fcs[4] = { 0, 2, 4, 8 };
	bool single = fhd & 0x20;
	uint8_t n = 5 + (single ? 0 : 1) + dict[fhd & 3] + fcs[fhd >> 6];
	if ((fhd >> 6) == 0 && single)
		n += 1;
	return n;
}

/* Keep bytes of the frame (everything after the length prefix). */
static int keep(wisp_rr_reader *r, const uint8_t *p, size_t n)
{
	if (r->frame->len + n > r->bound)
		return WISP_ERR_TOO_LARGE;
	memcpy(r->frame->data + r->frame->len, p, n);
	r->frame->len += (uint32_t)n;
	return WISP_OK;
}

/* The length prefix is complete: check it and get the frame's buffer. */
static int start_frame(wisp_rr_reader *r)
{
	uint32_t max = r->result ? WISP_RR_MAX_ERRMSG : r->max;
	if (r->len > max)
		return WISP_ERR_TOO_LARGE;
	r->bound = wisp_zstd_bound((size_t)r->len);
	if (!r->bound)
		return WISP_ERR_TOO_LARGE;
	r->frame = wisp_buf_alloc(r->pool, r->bound);
	if (!r->frame)
		return WISP_ERR_NOMEM;
	r->frame->len = 0;
	r->state = S_FHDR;
	r->hlen = 0;
	r->hneed = 5;
	return WISP_OK;
}

/* A header (frame or block) is complete in hdr[0..hlen). */
static int header_done(wisp_rr_reader *r)
{
	if (r->state == S_FHDR) {
		uint32_t magic = r->hdr[0] | r->hdr[1] << 8 | r->hdr[2] << 16 | (uint32_t)r->hdr[3] << 24;
		if (magic != ZSTD_MAGIC || (r->hdr[4] & 0x08))
			return WISP_ERR_DECOMPRESS;
		if (r->hlen == 5) {
			r->hneed = fhdr_size(r->hdr[4]);
			if (r->hneed > 5)
				return WISP_OK;
		}
		unsigned long long fcs = ZSTD_getFrameContentSize(r->hdr, r->hlen);
		if (fcs == ZSTD_CONTENTSIZE_ERROR || (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != r->len))
			return WISP_ERR_DECOMPRESS;
		r->checksum = r->hdr[4] & 0x04;
		r->state = S_BHDR;
		r->hlen = 0;
		r->hneed = 3;
		return WISP_OK;
	}
	/* a block header */
	uint32_t v = r->hdr[0] | r->hdr[1] << 8 | (uint32_t)r->hdr[2] << 16;
	uint32_t type = (v >> 1) & 3, size = v >> 3;
	if (type == 3 || size > BLOCK_MAX)
		return WISP_ERR_DECOMPRESS;
	r->last_block = v & 1;
	r->skip = type == 1 ? 1 : size; /* RLE: one byte repeated size times */
	r->state = S_BODY;
	r->hlen = 0;
	return WISP_OK;
}

/* The current body (or checksum) ended: what comes next. Returns 1 when
 * the frame is complete. */
static int body_done(wisp_rr_reader *r)
{
	if (r->state == S_BODY && !r->last_block) {
		r->state = S_BHDR;
		r->hneed = 3;
		return 0;
	}
	if (r->state == S_BODY && r->checksum) {
		r->state = S_CSUM;
		r->skip = 4;
		return 0;
	}
	r->state = r->response ? S_RESULT : S_LEN;
	r->hlen = 0;
	return 1;
}

int wisp_rr_reader_feed(wisp_rr_reader *r, const uint8_t *p, size_t n, size_t *used)
{
	size_t i = 0;
	int err;
	while (i < n) {
		switch (r->state) {
		case S_RESULT:
			if (p[i] > WISP_RR_RESULT_MAX)
				return WISP_ERR_UNKNOWN_CODE;
			r->result = p[i++];
			r->state = S_LEN;
			r->hlen = 0;
			break;
		case S_LEN: {
			r->hdr[r->hlen++] = p[i++];
			uint64_t len;
			ssize_t k = wisp_uvarint_get(r->hdr, r->hdr + r->hlen, &len);
			if (k == WISP_ERR_TRUNCATED && r->hlen < WISP_UVARINT_MAX_LEN)
				break;
			if (k < 0)
				return (int)k;
			r->len = len;
			if ((err = start_frame(r)))
				return err;
			break;
		}
		case S_FHDR:
		case S_BHDR: {
			size_t k = r->hneed - r->hlen;
			if (k > n - i)
				k = n - i;
			memcpy(r->hdr + r->hlen, p + i, k);
			if ((err = keep(r, p + i, k)))
				return err;
			r->hlen += (uint8_t)k;
			i += k;
			if (r->hlen == r->hneed && (err = header_done(r)))
				return err;
			if (r->state == S_BODY && r->skip == 0 && body_done(r)) {
				/* an empty last block */
				*used = i;
				return 1;
			}
			break;
		}
		case S_BODY:
		case S_CSUM: {
			size_t k = r->skip < n - i ? r->skip : n - i;
			if ((err = keep(r, p + i, k)))
				return err;
			r->skip -= (uint32_t)k;
			i += k;
			if (r->skip == 0 && body_done(r)) {
				*used = i;
				return 1;
			}
			break;
		}
		default:
			return WISP_ERR_INTERNAL;
		}
	}
	*used = i;
	return 0;
}

bool wisp_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp;
		if ((c & 0xe0) == 0xc0) {
			k = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		static const uint32_t min[4] = { 0, 0x80, 0x800, 0x10000 };
		if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

int wisp_rr_decode(wisp_zstd *z, uint8_t result, const uint8_t *frame, size_t flen, uint8_t *out, size_t len)
{
	ssize_t got = wisp_zstd_decompress(z, frame, flen, out, len);
	if (got < 0)
		return (int)got;
	if ((size_t)got != len)
		return WISP_ERR_DECOMPRESS;
	if (result && !wisp_utf8_valid(out, len))
		return WISP_ERR_MALFORMED;
	return WISP_OK;
}

size_t wisp_rr_encoded_bound(size_t n)
{
	size_t b = wisp_zstd_bound(n);
	return b ? 1 + WISP_UVARINT_MAX_LEN + b : 0;
}

wisp_buf *wisp_rr_encode(wisp_pool *pool, wisp_zstd *z, int result, const void *p, size_t n, int *err)
{
	size_t bound = wisp_rr_encoded_bound(n);
	if (result > WISP_RR_RESULT_MAX || (result > 0 && n > WISP_RR_MAX_ERRMSG) || !bound ||
	    bound > wisp_pool_max_len(pool)) {
		*err = WISP_ERR_INVALID_ARG;
		return NULL;
	}
	wisp_buf *b = wisp_buf_alloc(pool, bound);
	if (!b) {
		*err = WISP_ERR_NOMEM;
		return NULL;
	}
	size_t off = 0;
	if (result >= 0)
		b->data[off++] = (uint8_t)result;
	off += wisp_uvarint_put(b->data + off, n);
	ssize_t c = wisp_zstd_compress(z, p, n, b->data + off, b->cap - off);
	if (c < 0) {
		wisp_buf_unref(b);
		*err = c == WISP_ERR_NOMEM ? WISP_ERR_NOMEM : WISP_ERR_INVALID_ARG;
		return NULL;
	}
	b->len = (uint32_t)(off + (size_t)c);
	return b;
}
