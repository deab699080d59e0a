/* libFuzzer target: signed peer records on arbitrary bytes.
 *
 * The input goes to wisp_peer_record_open() as an Envelope, and (since
 * random bytes never carry a valid signature) also to the payload decoder
 * directly. A payload that decodes is sealed again with a fixed key and its
 * addresses, and that record must open to the same seq and addresses; every
 * slice must lie inside its input; every error must be typed (a peer fault,
 * or UNSUPPORTED for a key type wisp does not verify). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/peer_record.h"

#define CHECK(c)                                                                                 \
	do {                                                                                     \
		if (!(c))                                                                        \
			abort();                                                                 \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_slices(const wisp_peer_record *rec, const uint8_t *in, size_t n)
{
	CHECK(rec->n_addrs <= WISP_PEER_RECORD_MAX_ADDRS);
	for (size_t i = 0; i < rec->n_addrs; i++) {
		const wisp_peer_record_addr *a = &rec->addrs[i];
		CHECK(a->len <= WISP_PEER_RECORD_MAX_ADDR_LEN);
		CHECK(a->len == 0 || (a->data >= in && a->data + a->len <= in + n));
	}
	struct sockaddr_storage ss[WISP_PEER_RECORD_MAX_ADDRS];
	socklen_t sl[WISP_PEER_RECORD_MAX_ADDRS];
	CHECK(wisp_peer_record_tcp(rec, ss, sl, WISP_PEER_RECORD_MAX_ADDRS) <= rec->n_addrs);
}

static void reseal(const wisp_peer_record *rec)
{
	static wisp_privkey key;
	static bool have_key;
	static uint8_t out[WISP_PEER_RECORD_MAX];
	static wisp_peer_record back;
	if (!have_key) {
		uint8_t s[WISP_SECRET_LEN];
		for (int i = 0; i < WISP_SECRET_LEN; i++)
			s[i] = (uint8_t)(i + 1);
		CHECK(wisp_privkey_from_secret(&key, s) == 0);
		have_key = true;
	}
	wisp_peer_record_addr addrs[WISP_PEER_RECORD_MAX_ADDRS];
	size_t n = 0;
	for (size_t i = 0; i < rec->n_addrs; i++)
		if (rec->addrs[i].len) /* the sealer refuses empty addresses */
			addrs[n++] = rec->addrs[i];
	ssize_t len = wisp_peer_record_seal(&key, rec->seq, addrs, n, out, sizeof(out));
	if (len == WISP_ERR_INVALID_ARG)
		return; /* a payload near the bound grows past it with our key and signature */
	CHECK(len > 0);
	CHECK(wisp_peer_record_open(&back, out, (size_t)len) == 0);
	CHECK(back.seq == rec->seq && back.n_addrs == n);
	for (size_t i = 0; i < n; i++)
		CHECK(back.addrs[i].len == addrs[i].len && memcmp(back.addrs[i].data, addrs[i].data, addrs[i].len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static wisp_peer_record rec;
	int rc = wisp_peer_record_open(&rec, data, size);
	if (rc == 0)
		check_slices(&rec, data, size);
	else
		CHECK(wisp_err_is_peer(rc) || rc == WISP_ERR_UNSUPPORTED);

	rc = wisp_peer_record_decode_payload(&rec, data, size);
	if (rc == 0) {
		check_slices(&rec, data, size);
		reseal(&rec);
	} else {
		CHECK(wisp_err_is_peer(rc));
	}
	return 0;
}
