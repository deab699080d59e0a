#include "codec/frame.h"

#include <string.h>

#include <wisp/error.h>

#include "codec/varint.h"

ssize_t wisp_frame_peek(const uint8_t *buf, size_t len, size_t max, const uint8_t **payload,
			size_t *plen, size_t *need)
{
	const uint8_t *end = len ? buf + len : buf;
	uint64_t declared;
	ssize_t n = wisp_uvarint_get(buf, end, &declared);
	if (n == WISP_ERR_TRUNCATED) {
		/* len (< 9) bytes all carry the continuation bit. A minimal
		 * encoding ends in a non-zero byte, so once one byte is in the
		 * value is at least 2^(7*len) plus what has been seen. */
		uint64_t low = 0;
		for (size_t i = 0; i < len; i++)
			low |= (uint64_t)(buf[i] & 0x7f) << (7 * i);
		if (len)
			low += (uint64_t)1 << (7 * len);
		if (low > max)
			return WISP_ERR_TOO_LARGE;
		if (need)
			*need = len + 1;
		return 0;
	}
	if (n < 0)
		return n;
	if (declared > max)
		return WISP_ERR_TOO_LARGE;
	if (declared > len - (size_t)n) {
		if (need)
			*need = (size_t)n + (size_t)declared;
		return 0;
	}
	*payload = buf + n;
	*plen = (size_t)declared;
	return n + (ssize_t)declared;
}

void wisp_frame_reader_init(wisp_frame_reader *r, const uint8_t *buf, size_t len, size_t max)
{
	r->p = buf;
	r->end = len ? buf + len : buf;
	r->max = max;
}

int wisp_frame_next(wisp_frame_reader *r, const uint8_t **payload, size_t *plen)
{
	ssize_t n = wisp_frame_peek(r->p, (size_t)(r->end - r->p), r->max, payload, plen, NULL);
	if (n <= 0)
		return (int)n;
	r->p += n;
	return 1;
}

size_t wisp_frame_reader_rest(const wisp_frame_reader *r)
{
	return (size_t)(r->end - r->p);
}

size_t wisp_frame_size(size_t plen)
{
	return wisp_uvarint_len(plen) + plen;
}

ssize_t wisp_frame_put_prefix(uint8_t *out, size_t cap, size_t plen)
{
	size_t hl = wisp_uvarint_len(plen);
	if (hl == 0 || hl > cap)
		return WISP_ERR_NOBUF;
	wisp_uvarint_put(out, plen);
	return (ssize_t)hl;
}

ssize_t wisp_frame_write(uint8_t *out, size_t cap, const void *payload, size_t plen)
{
	ssize_t hl = wisp_frame_put_prefix(out, cap, plen);
	if (hl < 0)
		return hl;
	if (plen > cap - (size_t)hl)
		return WISP_ERR_NOBUF;
	if (plen)
		memcpy(out + hl, payload, plen);
	return hl + (ssize_t)plen;
}
