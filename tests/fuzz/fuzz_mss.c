/* multistream-select on arbitrary bytes, as listener and as dialer, fed in
 * pieces whose sizes come from the first byte. Whatever arrives, read only
 * consumes what it was given, the output queue stays inside its bound, and a
 * finished negotiation reports a handle the side could have chosen. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "net/mss.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int match(void *ctx, const char *p, size_t len)
{
	(void)ctx;
	if (len == 6 && memcmp(p, "/noise", 6) == 0)
		return 3;
	return -1;
}

static void feed(wisp_mss *m, const uint8_t *data, size_t size, size_t step)
{
	uint8_t out[4096];
	size_t off = 0, have = 0;
	while (off < size) {
		have = have + step > size - off ? size - off : have + step;
		ssize_t r = wisp_mss_read(m, data + off, have);
		if (wisp_mss_pending(m) > sizeof(m->out))
			abort();
		wisp_mss_write(m, out, sizeof(out));
		if (r < 0) {
			if (!wisp_err_is_peer((int)r) && r != WISP_ERR_REFUSED)
				abort();
			return;
		}
		if ((size_t)r > have)
			abort();
		off += (size_t)r;
		have -= (size_t)r;
		if (wisp_mss_done(m))
			return;
		if (r == 0 && have == size - off)
			return; /* all given, nothing consumed: needs more */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)(data[0] & 63) + 1;
	data++;
	size--;

	wisp_mss l;
	wisp_mss_listener_init(&l, match, NULL);
	feed(&l, data, size, step);
	if (wisp_mss_done(&l) && wisp_mss_selected(&l) != 3)
		abort();

	static const char *const protos[] = { "/tls/1.0.0", "/noise" };
	wisp_mss d;
	if (wisp_mss_dialer_init(&d, protos, 2) != WISP_OK)
		abort();
	feed(&d, data, size, step);
	if (wisp_mss_done(&d) && (unsigned)wisp_mss_selected(&d) > 1)
		abort();
	return 0;
}
