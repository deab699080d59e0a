/* Protobuf reader on arbitrary bytes, nested LEN fields read as messages up
 * to a small depth. A message read to its clean end is re-encoded field by
 * field with the writer and must give back the same bytes. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LEN 4096

static int reencode(const uint8_t *data, size_t size, int depth)
{
	wisp_pb_reader r;
	wisp_pb_field f;
	wisp_pb_writer w;
	uint8_t *out = malloc(size ? size : 1);
	if (!out)
		abort();
	wisp_pb_reader_init(&r, data, size);
	wisp_pb_writer_init(&w, out, size);
	int rc;
	while ((rc = wisp_pb_next(&r, &f, MAX_LEN)) == 1) {
		if (f.num == 0 || f.num > WISP_PB_MAX_FIELD)
			abort();
		switch (f.wire) {
		case WISP_PB_VARINT:
			wisp_pb_put_varint(&w, f.num, f.u64);
			break;
		case WISP_PB_I64:
			wisp_pb_put_fixed64(&w, f.num, f.u64);
			break;
		case WISP_PB_I32:
			wisp_pb_put_fixed32(&w, f.num, (uint32_t)f.u64);
			break;
		case WISP_PB_LEN:
			if (f.len > MAX_LEN || f.data < data || f.data + f.len > data + size)
				abort();
			if (depth < 4)
				(void)reencode(f.data, f.len, depth + 1);
			wisp_pb_put_bytes(&w, f.num, f.data, f.len);
			break;
		default:
			abort();
		}
	}
	if (rc == 0) {
		if (wisp_pb_writer_finish(&w) != (ssize_t)size || (size && memcmp(out, data, size)))
			abort();
	} else if (!wisp_err_is_peer(rc)) {
		abort();
	}
	free(out);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)reencode(data, size, 0);
	return 0;
}
