/* zstd decompression of arbitrary bytes under a 256 KiB limit, both into a
 * caller buffer and allocating. Both paths must agree; a success
 * re-compresses and decompresses to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>
#include <wisp/mem.h>

#include "codec/compress.h"
#include "runtime/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT (256 * 1024)

static wisp_zstd *z;
static uint8_t out[LIMIT], again[LIMIT];
static uint8_t *cbuf;
static size_t ccap;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!z) {
		z = wisp_zstd_new(NULL, 1);
		ccap = wisp_zstd_bound(LIMIT);
		cbuf = malloc(ccap);
		if (!z || !cbuf)
			abort();
	}
	ssize_t n = wisp_zstd_decompress(z, data, size, out, sizeof(out));
	uint8_t *p = NULL;
	size_t plen = 0;
	int r = wisp_zstd_decompress_alloc(z, data, size, LIMIT, &p, &plen);
	if (n >= 0) {
		if (r != 0 || plen != (size_t)n || (n && memcmp(p, out, (size_t)n)))
			abort();
		ssize_t cl = wisp_zstd_compress(z, out, (size_t)n, cbuf, ccap);
		if (cl <= 0)
			abort();
		if (wisp_zstd_decompress(z, cbuf, (size_t)cl, again, sizeof(again)) != n ||
		    memcmp(again, out, (size_t)n))
			abort();
	} else {
		if (n != WISP_ERR_DECOMPRESS && n != WISP_ERR_TOO_LARGE)
			abort();
		if (r != n || p)
			abort();
	}
	wisp_free(wisp_mem_default(), p);
	return 0;
}
