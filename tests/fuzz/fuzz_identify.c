/* libFuzzer target: the identify decoder on arbitrary bytes, as a bare
 * message and as a frame. A message that decodes must encode (wisp never
 * refuses to send what it accepted), and the encoding must decode to the
 * same content; errors must be peer faults. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "net/identify.h"

#define CHECK(c)                                                                                 \
	do {                                                                                     \
		if (!(c))                                                                        \
			abort();                                                                 \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const wisp_identify_bytes *a, const wisp_identify_bytes *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void check_message(const wisp_identify *m, const uint8_t *in, size_t n)
{
	static wisp_identify d;
	static uint8_t out[WISP_IDENTIFY_MAX_MSG];

	CHECK(m->n_listen_addrs <= WISP_IDENTIFY_MAX_ADDRS);
	CHECK(m->n_protocols <= WISP_IDENTIFY_MAX_PROTOCOLS);
	for (size_t i = 0; i < m->n_protocols; i++)
		CHECK(m->protocols[i].len <= WISP_IDENTIFY_MAX_PROTOCOL_LEN &&
		      (m->protocols[i].len == 0 ||
		       (m->protocols[i].data >= in && m->protocols[i].data + m->protocols[i].len <= in + n)));
	ssize_t w = wisp_identify_encode(m, out, sizeof(out));
	CHECK(w >= 0 && (size_t)w <= n);
	CHECK(wisp_identify_decode(&d, out, (size_t)w) == 0);
	CHECK(d.n_listen_addrs == m->n_listen_addrs && d.n_protocols == m->n_protocols);
	for (size_t i = 0; i < m->n_listen_addrs; i++)
		CHECK(same(&d.listen_addrs[i], &m->listen_addrs[i]));
	for (size_t i = 0; i < m->n_protocols; i++)
		CHECK(same(&d.protocols[i], &m->protocols[i]));
	CHECK(d.has_public_key == m->has_public_key);
	CHECK(!d.has_public_key || wisp_pubkey_equal(&d.public_key, &m->public_key));
	CHECK(d.has_observed_addr == m->has_observed_addr && same(&d.observed_addr, &m->observed_addr));
	CHECK(d.has_agent_version == m->has_agent_version && same(&d.agent_version, &m->agent_version));
	CHECK(d.has_protocol_version == m->has_protocol_version &&
	      same(&d.protocol_version, &m->protocol_version));
	CHECK(d.has_signed_peer_record == m->has_signed_peer_record &&
	      same(&d.signed_peer_record, &m->signed_peer_record));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static wisp_identify m;
	int rc = wisp_identify_decode(&m, data, size);

	if (rc == 0)
		check_message(&m, data, size);
	else
		CHECK(wisp_err_is_peer(rc));

	ssize_t n = wisp_identify_read_frame(&m, data, size);
	CHECK(n >= 0 || wisp_err_is_peer((int)n));
	CHECK(n <= (ssize_t)size);
	return 0;
}
