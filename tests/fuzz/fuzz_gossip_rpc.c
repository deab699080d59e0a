/* libFuzzer target: the gossipsub RPC decoder on arbitrary bytes, with the
 * default limits and with small ones (so counts hit their limits). Errors
 * must be peer faults. A decoded RPC must encode (sized exactly by
 * wisp_gs_rpc_size), decode again to the same counts and slices, and that
 * form must be a fixed point of decode + encode. Every decoded message's raw
 * bytes decode as a message with the same fields, and its StrictSign bytes
 * can be built. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "actors/gossip/rpc.h"

#define CHECK(c)                                                                                 \
	do {                                                                                     \
		if (!(c))                                                                        \
			abort();                                                                 \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(wisp_gs_bytes a, wisp_gs_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static void check(wisp_gs_rpc *r, wisp_gs_rpc *r2, const uint8_t *data, size_t size)
{
	int rc = wisp_gs_rpc_decode(r, data, size);
	if (rc) {
		CHECK(wisp_err_is_peer(rc));
		return;
	}
	CHECK(r->n_subs <= r->lim.max_subs && r->n_msgs <= r->lim.max_messages);
	CHECK(r->n_ids <= r->lim.max_ids && r->n_px <= r->lim.max_px);
	for (uint32_t i = 0; i < r->n_ids; i++)
		CHECK(r->ids[i].len <= r->lim.max_id &&
		      (!r->ids[i].len || (r->ids[i].data >= data && r->ids[i].data + r->ids[i].len <= data + size)));

	static uint8_t sign[(1 << 16) + 4096];
	for (uint32_t i = 0; i < r->n_msgs; i++) {
		const wisp_gs_message *m = &r->msgs[i];
		wisp_gs_message d;
		CHECK(m->data.len <= r->lim.max_message && m->topic.len <= r->lim.max_topic);
		CHECK(wisp_gs_message_decode(&d, m->raw.data, m->raw.len, &r->lim) == 0);
		CHECK(same(d.from, m->from) && same(d.data, m->data) && same(d.key, m->key));
		size_t need = wisp_gs_sign_bytes_size(m);
		if (need <= sizeof(sign))
			CHECK(wisp_gs_sign_bytes(m, sign, sizeof(sign)) == (ssize_t)need);
		int v = wisp_gs_verify(m, sign, sizeof(sign));
		CHECK(v != 0); /* random bytes do not carry a valid signature */
	}

	size_t n = wisp_gs_rpc_size(r);
	uint8_t *out = malloc(n ? n : 1), *out2 = malloc(n ? n : 1);
	CHECK(out && out2);
	CHECK(wisp_gs_rpc_encode(r, out, n) == (ssize_t)n);
	if (n)
		CHECK(wisp_gs_rpc_encode(r, out, n - 1) == WISP_ERR_NOBUF);
	if (n <= r2->lim.max_rpc) {
		CHECK(wisp_gs_rpc_decode(r2, out, n) == 0);
		CHECK(r2->n_subs == r->n_subs && r2->n_msgs == r->n_msgs && r2->n_ihave == r->n_ihave &&
		      r2->n_iwant == r->n_iwant && r2->n_graft == r->n_graft &&
		      r2->n_prune == r->n_prune && r2->n_idontwant == r->n_idontwant &&
		      r2->n_ids == r->n_ids && r2->n_px == r->n_px);
		for (uint32_t i = 0; i < r->n_ids; i++)
			CHECK(same(r->ids[i], r2->ids[i]));
		for (uint32_t i = 0; i < r->n_subs; i++)
			CHECK(same(r->subs[i].topic, r2->subs[i].topic) &&
			      r->subs[i].subscribe == r2->subs[i].subscribe);
		CHECK(wisp_gs_rpc_size(r2) == n);
		CHECK(wisp_gs_rpc_encode(r2, out2, n) == (ssize_t)n);
		CHECK(memcmp(out, out2, n) == 0);
	}
	free(out);
	free(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static wisp_gs_rpc *def, *def2, *small, *small2;
	if (!def) {
		wisp_gs_limits l;
		wisp_gs_limits_default(&l);
		l.max_message = 1 << 16;
		CHECK(wisp_gs_rpc_new(&def, wisp_mem_default(), &l) == 0);
		l.max_rpc *= 2; /* re-encoding may add default fields */
		CHECK(wisp_gs_rpc_new(&def2, wisp_mem_default(), &l) == 0);
		l.max_rpc = 4096, l.max_subs = 3, l.max_messages = 2, l.max_message = 64;
		l.max_ihave = 2, l.max_iwant = 2, l.max_ids = 6, l.max_graft = 2, l.max_prune = 2;
		l.max_px = 2, l.max_idontwant = 2, l.max_topic = 16, l.max_id = 16;
		CHECK(wisp_gs_rpc_new(&small, wisp_mem_default(), &l) == 0);
		l.max_rpc = 8192;
		CHECK(wisp_gs_rpc_new(&small2, wisp_mem_default(), &l) == 0);
	}
	check(def, def2, data, size);
	check(small, small2, data, size);
	return 0;
}
