/* libFuzzer target: one gossipsub router fed by hostile peers. The input is
 * a script of steps: 0x00-0x07 RPC from peer (b & 7) whose length is the
 * next byte; 0x08 heartbeat (time + 1 s); 0x09 publish; 0x0a peer leaves
 * and comes back; 0x0b time + 30 s. Two topics: "a" StrictSign (inline
 * verification), "b" StrictNoSign with content ids. After every step the
 * router's bookkeeping must hold (wisp_gs_router_check), errors from
 * handle_rpc must be peer faults, every frame must fit max_rpc (PX entries
 * of peers 0, 3, 6 carry 3000-byte records), and every frame reference must
 * be returned at the end. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "actors/gossip/router.h"

#define CHECK(c)                                                                                 \
	do {                                                                                     \
		if (!(c))                                                                        \
			abort();                                                                 \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RPC 8192u

static void on_send(void *ctx, uint32_t peer, wisp_buf *f, int prio, wisp_tstamp exp)
{
	(void)ctx, (void)peer, (void)prio, (void)exp;
	CHECK(f && f->len > 0 && f->len <= MAX_RPC + 4);
}

static void on_px(void *ctx, const uint8_t *id, size_t len, const uint8_t *rec, size_t rec_len)
{
	(void)ctx;
	CHECK(id && len > 0);
	CHECK((rec == NULL) == (rec_len == 0));
}

static const uint8_t *on_peer_record(void *ctx, uint32_t peer, size_t *len)
{
	static uint8_t rec[3000];
	(void)ctx;
	*len = peer % 3 ? 0 : sizeof(rec);
	return peer % 3 ? NULL : rec;
}

static double on_score(void *ctx, uint32_t peer)
{
	const uint8_t *scores = ctx;
	return (double)(int8_t)scores[peer] * 250.0; /* -32000 .. 31750 */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static wisp_pool *pool;
	static wisp_privkey key;
	if (!pool) {
		uint8_t secret[32] = { 1 };
		CHECK(wisp_pool_new(&pool, wisp_mem_default(), 64u << 20) == 0);
		CHECK(wisp_privkey_from_secret(&key, secret) == 0);
	}
	uint8_t scores[8] = { 0 };
	if (size >= 8) {
		memcpy(scores, data, 8);
		data += 8, size -= 8;
	}
	wisp_gs_config c;
	wisp_gs_config_default(&c);
	c.seed = 1;
	c.max_peers = 8, c.max_topics = 4, c.max_remote_topics = 4, c.max_peer_subs = 4;
	c.mcache_cap = 16, c.seen_cap = 32, c.max_pending = 8, c.max_promises = 16;
	c.max_idontwant = 16, c.max_idontwant_peer = 8, c.max_backoffs = 16;
	c.d = 3, c.d_lo = 2, c.d_hi = 4, c.d_score = 1, c.d_out = 1, c.d_lazy = 2;
	c.opportunistic_graft_ticks = 3;
	c.lim.max_message = 4096, c.lim.max_rpc = MAX_RPC;
	wisp_gs_ops ops = { .send = on_send, .score = on_score, .px = on_px, .peer_record = on_peer_record };
	wisp_gs_router *r;
	wisp_tstamp now = 1000 * WISP_NS_PER_S;
	CHECK(wisp_gs_router_new(&r, wisp_mem_default(), &c, &ops, scores, &key, pool, now) == 0);
	wisp_gs_topic_profile nosign;
	wisp_gs_topic_profile_default(&nosign);
	nosign.sign = WISP_GS_SIGN_NONE;
	nosign.msgid = WISP_GS_MSGID_CONTENT;
	nosign.idontwant_threshold = 4;
	CHECK(wisp_gs_router_subscribe(r, (const uint8_t *)"a", 1, NULL, now) == 0);
	CHECK(wisp_gs_router_subscribe(r, (const uint8_t *)"b", 1, &nosign, now) == 0);
	for (uint32_t p = 0; p < 8; p++) {
		wisp_peer_id id = { .len = 3, .bytes = { 0, 1, (uint8_t)p } };
		CHECK(wisp_gs_router_add_peer(r, p, &id, p & 1, p == 7, WISP_GS_PROTO_V10 + (p % 3), now) == 0);
	}
	uint32_t pubs = 0;
	size_t i = 0;
	while (i < size) {
		uint8_t op = data[i++];
		if (op < 8) {
			size_t n = i < size ? data[i++] : 0;
			if (n > size - i)
				n = size - i;
			int rc = wisp_gs_router_handle_rpc(r, op, NULL, data + i, n, now);
			CHECK(rc == 0 || wisp_err_is_peer(rc));
			i += n;
		} else if (op == 8) {
			now += WISP_NS_PER_S;
			CHECK(wisp_gs_router_handle_expiry(r, now) == 0);
		} else if (op == 9) {
			wisp_gs_publish_result res;
			uint8_t msg[8];
			memcpy(msg, &pubs, 4);
			memcpy(msg + 4, "pub!", 4);
			pubs++;
			int rc = wisp_gs_router_publish(r, (const uint8_t *)(pubs & 1 ? "a" : "b"), 1, msg,
							sizeof(msg), now, &res);
			CHECK(rc == 0 || rc == WISP_ERR_EXISTS);
		} else if (op == 10) {
			uint32_t p = i < size ? data[i++] & 7 : 0;
			wisp_gs_router_remove_peer(r, p, now);
			wisp_peer_id id = { .len = 3, .bytes = { 0, 1, (uint8_t)p } };
			CHECK(wisp_gs_router_add_peer(r, p, &id, false, false, WISP_GS_PROTO_V12, now) == 0);
		} else if (op == 11) {
			now += 30 * WISP_NS_PER_S;
			CHECK(wisp_gs_router_handle_expiry(r, now) == 0);
		}
		CHECK(wisp_gs_router_check(r) == 0);
	}
	wisp_gs_router_free(r);
	wisp_pool_stats ps;
	wisp_pool_stats_get(pool, &ps);
	CHECK(ps.in_use == 0);
	return 0;
}
