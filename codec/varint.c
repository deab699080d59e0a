#include "codec/varint.h"

#include <wisp/error.h>

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t varint_put(uint8_t *out, uint64_t v)
{
	size_t i = 0;
	while (v >= 0x80) {
		out[i++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[i++] = (uint8_t)v;
	return i;
}

/* maxlen is 9 or 10. With 10, the last byte carries only bit 63. */
static ssize_t varint_get(const uint8_t *p, const uint8_t *end, uint64_t *out, size_t maxlen)
{
	size_t avail = (size_t)(end - p);
	uint64_t v = 0;
	for (size_t i = 0; i < maxlen; i++) {
		if (i >= avail)
			return WISP_ERR_TRUNCATED;
		uint8_t b = p[i];
		if (i == 9 && b > 1)
			return WISP_ERR_VARINT;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			/* A zero final byte after others means the encoder padded. */
			if (b == 0 && i > 0)
				return WISP_ERR_VARINT;
			*out = v;
			return (ssize_t)(i + 1);
		}
	}
	return WISP_ERR_VARINT;
}

size_t wisp_uvarint_len(uint64_t v)
{
	return v > WISP_UVARINT_MAX ? 0 : varint_len(v);
}

size_t wisp_uvarint_put(uint8_t *out, uint64_t v)
{
	return v > WISP_UVARINT_MAX ? 0 : varint_put(out, v);
}

ssize_t wisp_uvarint_get(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
	return varint_get(p, end, out, WISP_UVARINT_MAX_LEN);
}

size_t wisp_pbvarint_len(uint64_t v)
{
	return varint_len(v);
}

size_t wisp_pbvarint_put(uint8_t *out, uint64_t v)
{
	return varint_put(out, v);
}

ssize_t wisp_pbvarint_get(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
	return varint_get(p, end, out, WISP_PBVARINT_MAX_LEN);
}
