/* Both varint decoders on arbitrary bytes: a decoded value re-encodes to
 * exactly the bytes consumed, and the two flavours agree where both apply. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/varint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *end = data + size;
	uint8_t buf[WISP_PBVARINT_MAX_LEN];
	uint64_t u = 0, pv = 0;
	ssize_t un = wisp_uvarint_get(data, end, &u);
	ssize_t pn = wisp_pbvarint_get(data, end, &pv);

	if (un > 0) {
		if ((size_t)un > size || u > WISP_UVARINT_MAX)
			abort();
		if (wisp_uvarint_len(u) != (size_t)un || wisp_uvarint_put(buf, u) != (size_t)un ||
		    memcmp(buf, data, (size_t)un))
			abort();
		/* anything uvarint accepts, protobuf accepts identically */
		if (pn != un || pv != u)
			abort();
	} else if (un != WISP_ERR_TRUNCATED && un != WISP_ERR_VARINT) {
		abort();
	}
	if (pn > 0) {
		if (wisp_pbvarint_put(buf, pv) != (size_t)pn || memcmp(buf, data, (size_t)pn))
			abort();
		if (un < 0 && pn <= WISP_UVARINT_MAX_LEN)
			abort();
	} else if (pn != WISP_ERR_TRUNCATED && pn != WISP_ERR_VARINT) {
		abort();
	}
	return 0;
}
