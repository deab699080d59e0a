/* Multiaddrs both ways on arbitrary bytes. Valid binary prints as text that
 * parses back to the same binary; text that parses prints canonically and
 * that canonical text parses to the same binary again. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/multiaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t bin[8192], back[8192];
static char text[65536], text2[65536];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int v = wisp_multiaddr_validate(data, size);
	ssize_t tl = wisp_multiaddr_to_text(data, size, text, sizeof(text));
	if (v == 0) {
		if (tl <= 0 || strlen(text) != (size_t)tl)
			abort();
		ssize_t bl = wisp_multiaddr_from_text(text, (size_t)tl, back, sizeof(back));
		if (bl != (ssize_t)size || memcmp(back, data, size))
			abort();
		wisp_ma_iter it;
		wisp_ma_component c;
		int r;
		wisp_ma_iter_init(&it, data, size);
		while ((r = wisp_ma_next(&it, &c)) == 1)
			if (c.value < data || c.value + c.len > data + size)
				abort();
		if (r != 0)
			abort();
	} else if (tl != v || !wisp_err_is_peer(v)) {
		abort();
	}

	ssize_t bl = wisp_multiaddr_from_text((const char *)data, size, bin, sizeof(bin));
	if (bl > 0) {
		if (wisp_multiaddr_validate(bin, (size_t)bl) != 0)
			abort();
		tl = wisp_multiaddr_to_text(bin, (size_t)bl, text2, sizeof(text2));
		if (tl <= 0)
			abort();
		ssize_t bl2 = wisp_multiaddr_from_text(text2, (size_t)tl, back, sizeof(back));
		if (bl2 != bl || memcmp(back, bin, (size_t)bl))
			abort();
	} else if (bl == 0 || (!wisp_err_is_peer((int)bl) && bl != WISP_ERR_NOBUF)) {
		abort();
	}
	return 0;
}
