/* Frame reader on arbitrary bytes with a maximum taken from the first byte.
 * Frames come out whole, re-encode to the bytes consumed, and reading the
 * same stream cut at any point gives a prefix of the same frames. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t max = (size_t)data[0] << (data[1] & 15);
	size_t cut = size > 2 ? data[2] % size : 0;
	data += 2;
	size -= 2;

	wisp_frame_reader r;
	const uint8_t *p;
	size_t plen, frames = 0;
	uint8_t out[16 + 4096];
	int rc;
	wisp_frame_reader_init(&r, data, size, max);
	while ((rc = wisp_frame_next(&r, &p, &plen)) == 1) {
		if (plen > max || p < data || p + plen > data + size)
			abort();
		size_t fsz = wisp_frame_size(plen);
		if (fsz <= sizeof(out)) {
			ssize_t n = wisp_frame_write(out, sizeof(out), p, plen);
			if (n != (ssize_t)fsz || memcmp(out, p - (fsz - plen), fsz))
				abort();
		}
		frames++;
	}
	if (rc != 0 && rc != WISP_ERR_TOO_LARGE && rc != WISP_ERR_VARINT)
		abort();
	size_t rest = wisp_frame_reader_rest(&r);

	/* the same bytes arriving only up to cut: never more frames, never an
	 * error the full stream did not have at that point */
	if (cut > size)
		cut = size;
	wisp_frame_reader c;
	size_t cframes = 0;
	int crc;
	wisp_frame_reader_init(&c, data, cut, max);
	while ((crc = wisp_frame_next(&c, &p, &plen)) == 1)
		cframes++;
	if (cframes > frames)
		abort();
	/* a partial prefix may already be TOO_LARGE where the whole one turns
	 * out VARINT; either way the full stream failed at the same frame */
	if (crc < 0 && (cframes != frames || rc >= 0))
		abort();
	if (crc == 0 && rc == 0 && cframes == frames && size - rest > cut)
		abort();

	size_t need;
	ssize_t pk = wisp_frame_peek(r.p, rest, max, &p, &plen, &need);
	if (rc == 0 && (pk != 0 || need <= rest))
		abort();
	return 0;
}
