/* gossipsub behaviour against an adversarial peer, over real sockets.
 *
 * Three wisp nodes in a line, B - A - C, gossip on one topic; an evil peer
 * (tests/evilgossip.h) connects to A and plays the protocol by hand:
 *   - IHAVE/IWANT recovers a message in both directions: the evil peer,
 *     kept out of A's mesh by its PRUNE, hears of B's message by IHAVE and
 *     fetches it by IWANT; and A, told by IHAVE of a message it has not
 *     seen, asks for it, gets it, and delivers it once (not again when it
 *     comes back or is announced again);
 *   - PRUNE backoff: after the evil peer PRUNEs with backoff B, A does not
 *     GRAFT it before B has passed, although A's mesh stays under D_lo; a
 *     GRAFT from the evil peer inside the backoff is refused with a PRUNE
 *     and penalized (gossipsub v1.1);
 *   - a peer flooding messages with bad signatures is graylisted: its RPCs
 *     are then ignored whole (rpc_graylisted), while every honest message
 *     still reaches every node once; and the next peer to take its handle
 *     starts with a clean score;
 *   - a peer that stops reading is held to its byte budget: A drops frames
 *     for it (frames_dropped) with memory bounded, closes it for the stall,
 *     and C still gets every message;
 *   - in a full send queue a high-priority topic's frame evicts normal
 *     frames (a normal one is refused) and goes out ahead of them.
 * Nodes run a 100 ms heartbeat (the gossip actor's test hook). Waits are
 * for events and counters with deadlines; the one time assertion is a lower
 * bound (no GRAFT before the backoff ends). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/wisp.h>

#include "actors/gossip/router.h"
#include "runtime/buf.h"
#include "runtime/node.h"
#include "tests/evilgossip.h"
#include "tests/gossipnet.h"
#include "tests/testlib.h"

#define WAIT_MS 20000
#define PROTO "/meshsub/1.1.0"
#define TOPIC "adv/t"
#define HEARTBEAT_MS 100
#define A 0
#define B 1
#define C 2

static wisp_gs_config defaults;

static void start3(gn_opts *o)
{
	wisp_gs_config_default(&defaults);
	o->nodes = 3;
	o->heartbeat_ms = HEARTBEAT_MS;
	gn_start(o);
	gn_dial(B, A);
	gn_dial(C, A);
	gn_subscribe_all(TOPIC, NULL);
	gn_wait_mesh(TOPIC, B);
	gn_wait_mesh(TOPIC, C);
}

static int setup(void **state)
{
	(void)state;
	gn_opts o = { 0 };
	start3(&o);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gn_stop();
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

/* Wait for one of a node's router counters to reach a value. */
#define WAIT_ROUTER(e, node, field, value) GN_WAIT_ROUTER(e, node, field, value, WAIT_MS)

static eg_peer *evil(int rcvbuf)
{
	eg_peer *e = eg_new();
	assert_non_null(e);
	int err = eg_connect(e, gn[A].port, rcvbuf, PROTO, WAIT_MS);
	if (err)
		print_message("evil connect: %d\n", err);
	assert_int_equal(err, 0);
	return e;
}

static bool id_is(const wisp_gs_bytes *b, const uint8_t *id, size_t len)
{
	return b->len == len && !memcmp(b->data, id, len);
}

/* What the evil peer watches for in the node's RPCs: one message id. */
typedef struct watch {
	uint8_t id[64];
	size_t id_len;
	unsigned ihave, iwant, msgs; /* times the id came in an IHAVE, IWANT, as a message */
	unsigned msgs_before_ihave;  /* messages (any) before the first IHAVE of it */
	bool msg_verified;
	char data[8192];
	size_t data_len;
	wisp_peer_id from;
} watch;

static void on_rpc_watch(eg_peer *e, const wisp_gs_rpc *r, void *arg)
{
	watch *w = arg;
	wisp_gs_topic_profile prof;
	wisp_gs_topic_profile_default(&prof);
	for (uint32_t i = 0; i < r->n_msgs; i++) {
		uint8_t id[WISP_GS_ID_MAX];
		size_t n = wisp_gs_message_id(&prof, &r->msgs[i], id, sizeof(id));
		if (n != w->id_len || memcmp(id, w->id, n))
			continue;
		w->msgs++;
		static uint8_t scratch[16384];
		w->msg_verified = wisp_gs_verify(&r->msgs[i], scratch, sizeof(scratch)) == 0;
		w->data_len = r->msgs[i].data.len < sizeof(w->data) ? r->msgs[i].data.len : sizeof(w->data);
		memcpy(w->data, r->msgs[i].data.data, w->data_len);
		if (wisp_peer_id_from_bytes(&w->from, r->msgs[i].from.data, r->msgs[i].from.len) != WISP_OK)
			w->from.len = 0;
	}
	for (uint32_t i = 0; i < r->n_ihave; i++)
		for (uint32_t j = 0; j < r->ihave[i].ids.n; j++)
			if (id_is(&r->ids[r->ihave[i].ids.first + j], w->id, w->id_len)) {
				if (!w->ihave)
					w->msgs_before_ihave = e->got.msgs;
				w->ihave++;
			}
	for (uint32_t i = 0; i < r->n_iwant; i++)
		for (uint32_t j = 0; j < r->iwant[i].n; j++)
			if (id_is(&r->ids[r->iwant[i].first + j], w->id, w->id_len))
				w->iwant++;
}

static watch *cur_w;

static bool watch_ihave(void)
{
	return cur_w->ihave > 0;
}

static bool watch_iwant(void)
{
	return cur_w->iwant > 0;
}

static bool watch_msg(void)
{
	return cur_w->msgs > 0;
}

static void watch_start(eg_peer *e, watch *w, const uint8_t *id, size_t len)
{
	memset(w, 0, sizeof(*w));
	memcpy(w->id, id, len);
	w->id_len = len;
	e->on_rpc = on_rpc_watch;
	e->arg = w;
	cur_w = w;
}

static unsigned want_k;
static char want_tag;

static bool all_got(void)
{
	for (unsigned i = 0; i < gn_count; i++)
		if (gn_got((int)i, want_tag, want_k) == 0 && !(want_tag == 'h' && (int)i == B))
			return false;
	return true;
}

/* Every node (but the publisher B, for 'h') has (tag, k). */
static void expect_everywhere(eg_peer *e, char tag, unsigned k)
{
	want_tag = tag;
	want_k = k;
	bool ok = gn_wait(e, all_got, WAIT_MS);
	if (!ok)
		print_message("%c%u: A %u, B %u, C %u\n", tag, k, gn_got(A, tag, k), gn_got(B, tag, k),
			      gn_got(C, tag, k));
	assert_true(ok);
}

/* Everything A sent e before this returns has been read (see the barrier
 * in test_rt_gossip_bad.c): a fresh IHAVE, answered by IWANT. */
static void barrier(eg_peer *e)
{
	static uint64_t n;
	eg_rpc_fn *old = e->on_rpc;
	void *old_arg = e->arg;
	watch w;
	uint8_t id[16];
	memset(id, 0xba, sizeof(id));
	uint64_t x = ++n ^ wt_now_ns();
	memcpy(id, &x, sizeof(x));
	watch_start(e, &w, id, sizeof(id));
	wisp_gs_bytes b = { id, sizeof(id) };
	for (int i = 0; i < 100 && !w.iwant; i++) {
		assert_int_equal(eg_ihave(e, TOPIC, &b, 1, WAIT_MS), 0);
		(void)gn_wait(e, watch_iwant, 200);
	}
	assert_true(w.iwant > 0);
	e->on_rpc = old;
	e->arg = old_arg;
}

static unsigned next_h, next_e;

/* ---- 1. IHAVE/IWANT: A serves the evil peer ------------------------------ */

static void test_iwant_recovers_for_peer(void **state)
{
	(void)state;
	wisp_gs_router_stats rs0;
	gn_router_stats(A, &rs0);
	eg_peer *e = evil(0);
	/* subscribed, but out of A's mesh: its PRUNE (with a long backoff)
	 * comes in the same RPC as the subscription, before any GRAFT */
	wisp_gs_rpc *o = e->out;
	o->subs[o->n_subs++] = (wisp_gs_subopt){ .subscribe = true, .topic = { (const uint8_t *)TOPIC, 5 } };
	o->prune[o->n_prune++] = (wisp_gs_prune){ .topic = { (const uint8_t *)TOPIC, 5 }, .has_backoff = true,
						  .backoff = 60 };
	assert_int_equal(eg_send_out(e, WAIT_MS), 0);
	WAIT_ROUTER(e, A, prune_in, rs0.prune_in + 1);

	unsigned k = next_h++;
	assert_int_equal(gn_publish(B, TOPIC, 'h', k, 300), WISP_OK);
	watch w;
	watch_start(e, &w, gn[B].last_pub.id, gn[B].last_pub.id_len);
	expect_everywhere(e, 'h', k);
	/* A gossips about it at a heartbeat: the evil peer hears the id, not
	 * the message */
	assert_true(gn_wait(e, watch_ihave, WAIT_MS));
	assert_int_equal(w.msgs, 0);
	assert_int_equal(e->got.graft, 0);
	wisp_gs_bytes id = { w.id, (uint32_t)w.id_len };
	assert_int_equal(eg_iwant(e, &id, 1, WAIT_MS), 0);
	assert_true(gn_wait(e, watch_msg, WAIT_MS));
	/* B's message as B signed it */
	char want[512];
	size_t n = gn_data(want, sizeof(want), 'h', k, 300);
	assert_int_equal(w.data_len, n);
	assert_memory_equal(w.data, want, n);
	assert_true(w.msg_verified);
	assert_true(wisp_peer_id_equal(&w.from, wisp_node_peer_id(gn[B].n)));
	WAIT_ROUTER(e, A, iwant_served, rs0.iwant_served + 1);
	barrier(e);
	assert_int_equal(w.msgs, 1);
	eg_free(e);
}

/* ---- 2. IHAVE/IWANT: A fetches from the evil peer ------------------------ */

static void test_ihave_fetches_from_peer(void **state)
{
	(void)state;
	eg_peer *e = evil(0);
	assert_int_equal(eg_subscribe(e, TOPIC, true, WAIT_MS), 0);
	unsigned k = next_e++;
	char data[256];
	size_t n = gn_data(data, sizeof(data), 'e', k, 200);
	eg_msg m;
	assert_int_equal(eg_msg_sign(e, &m, TOPIC, data, n), 0);
	watch w;
	watch_start(e, &w, m.id, m.id_len);
	wisp_gs_bytes id = { m.id, (uint32_t)m.id_len };
	assert_int_equal(eg_ihave(e, TOPIC, &id, 1, WAIT_MS), 0);
	assert_true(gn_wait(e, watch_iwant, WAIT_MS));
	assert_int_equal(eg_publish(e, &m.m, WAIT_MS), 0);
	/* A delivers it and passes it on: B and C have it too */
	expect_everywhere(e, 'e', k);

	/* The same message again, and announced again: a duplicate, not
	 * asked for, not delivered twice. */
	wisp_gs_router_stats rs0;
	gn_router_stats(A, &rs0);
	assert_int_equal(eg_publish(e, &m.m, WAIT_MS), 0);
	assert_int_equal(eg_ihave(e, TOPIC, &id, 1, WAIT_MS), 0);
	WAIT_ROUTER(e, A, msg_duplicate, rs0.msg_duplicate + 1);
	unsigned asked = w.iwant;
	barrier(e);
	assert_int_equal(asked, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(gn_got(i, 'e', k), 1);
	eg_free(e);
}

/* ---- 3. PRUNE backoff ---------------------------------------------------- */

#define BACKOFF_S 2

static eg_peer *cur_e;
static uint32_t want_grafts, want_prunes;

static bool grafted(void)
{
	return cur_e->got.graft >= want_grafts;
}

static bool pruned(void)
{
	return cur_e->got.prune >= want_prunes;
}

static void test_prune_backoff(void **state)
{
	(void)state;
	eg_peer *e = evil(0);
	cur_e = e;
	assert_int_equal(eg_subscribe(e, TOPIC, true, WAIT_MS), 0);
	/* A's mesh ({B, C}) is under D_lo: it grafts us at a heartbeat */
	assert_true(defaults.d_lo > 3);
	want_grafts = 1;
	assert_true(gn_wait(e, grafted, WAIT_MS));

	wisp_gs_router_stats rs0, rs;
	gn_router_stats(A, &rs0);
	uint64_t t_prune = wt_now_ns();
	assert_int_equal(eg_prune(e, TOPIC, BACKOFF_S, WAIT_MS), 0);
	WAIT_ROUTER(e, A, prune_in, rs0.prune_in + 1);
	/* A wants peers all along, and grafts us again only after the backoff */
	want_grafts = 2;
	assert_true(gn_wait(e, grafted, WAIT_MS));
	uint64_t waited = e->got.last_graft_ns - t_prune;
	gn_router_stats(A, &rs);
	print_message("# regrafted %llu ms after a PRUNE with a %d s backoff, %llu heartbeats later\n",
		      (unsigned long long)(waited / 1000000u), BACKOFF_S,
		      (unsigned long long)(rs.heartbeats - rs0.heartbeats));
	assert_true(waited >= (uint64_t)BACKOFF_S * 1000000000u);
	/* heartbeats ran meanwhile, each with the mesh under D_lo and us a
	 * candidate but for the backoff */
	assert_true(rs.heartbeats - rs0.heartbeats >= 2);

	/* A GRAFT inside the backoff: refused with a PRUNE that carries A's
	 * backoff, and penalized (P7). */
	gn_router_stats(A, &rs0);
	wisp_stats st0, st;
	gn_stats(A, &st0);
	assert_int_equal(eg_prune(e, TOPIC, 60, WAIT_MS), 0);
	WAIT_ROUTER(e, A, prune_in, rs0.prune_in + 1);
	want_prunes = e->got.prune + 1;
	assert_int_equal(eg_graft(e, TOPIC, WAIT_MS), 0);
	assert_true(gn_wait(e, pruned, WAIT_MS));
	assert_int_equal(e->got.last_prune_backoff, defaults.prune_backoff_ns / WISP_NS_PER_S);
	gn_router_stats(A, &rs);
	gn_stats(A, &st);
	assert_int_equal(rs.graft_backoff - rs0.graft_backoff, 1);
	assert_int_equal(st.gossip.graft_in - st0.gossip.graft_in, 1);

	/* and we are not in A's mesh: B's next message comes to us as an
	 * IHAVE, not forwarded */
	unsigned k = next_h++;
	assert_int_equal(gn_publish(B, TOPIC, 'h', k, 100), WISP_OK);
	watch w;
	watch_start(e, &w, gn[B].last_pub.id, gn[B].last_pub.id_len);
	assert_true(gn_wait(e, watch_ihave, WAIT_MS));
	assert_int_equal(w.msgs, 0);
	assert_int_equal(e->got.graft, 2);
	eg_free(e);
}

/* ---- 4. graylisting a flooder -------------------------------------------- */

#define HONEST_PER_BATCH 4
#define BAD_PER_BATCH 10

static uint64_t flood_sent;
static unsigned h_first, h_last;

static bool flood_counted(void)
{
	wisp_stats st;
	gn_stats(A, &st);
	/* each bad RPC is either checked (and fails) or ignored whole */
	return st.gossip.msg_bad_signature + st.gossip.rpc_graylisted >= flood_sent;
}

static bool honest_all_delivered(void)
{
	for (unsigned k = h_first; k < h_last; k++) {
		int from = (k - h_first) % 2 ? C : B;
		for (int i = 0; i < 3; i++)
			if (i != from && gn_got(i, 'h', k) == 0)
				return false;
	}
	return true;
}

static void send_forged(eg_peer *e)
{
	char data[64];
	size_t n = gn_data(data, sizeof(data), 'e', next_e++, 40);
	eg_msg m;
	assert_int_equal(eg_msg_sign(e, &m, TOPIC, data, n), 0);
	m.sig[m.m.signature.len - 3] ^= 0x5a; /* a bad signature */
	assert_int_equal(eg_publish(e, &m.m, WAIT_MS), 0);
}

static uint32_t peers_before;

static bool peer_left(void)
{
	wisp_gs_router_stats rs;
	gn_router_stats(A, &rs);
	return rs.peers < peers_before;
}

static unsigned newcomer_k;
static bool newcomer_delivered(void)
{
	return gn_got(A, 'e', newcomer_k) > 0;
}

static void test_graylist_flood(void **state)
{
	(void)state;
	eg_peer *e = evil(0);
	assert_int_equal(eg_subscribe(e, TOPIC, true, WAIT_MS), 0);
	wisp_stats st0, st;
	gn_stats(A, &st0);
	flood_sent = st0.gossip.msg_bad_signature + st0.gossip.rpc_graylisted;
	h_first = h_last = next_h;

	/* Bad signatures in batches, honest messages from B and C in between,
	 * until A ignores the flooder. A heartbeat between batches lets the
	 * scores catch up (the scoring actor sends them every 200 ms at
	 * most): a flood that outran them would only be counted. */
	bool graylisted = false;
	uint64_t deadline = wt_now_ns() + (uint64_t)WAIT_MS * 1000000u;
	while (!graylisted && wt_now_ns() < deadline) {
		for (int i = 0; i < BAD_PER_BATCH; i++)
			send_forged(e);
		flood_sent += BAD_PER_BATCH;
		for (int i = 0; i < HONEST_PER_BATCH; i++, h_last++)
			gn_publish_async((h_last - h_first) % 2 ? C : B, TOPIC, 'h', h_last, 200);
		assert_true(gn_wait(e, flood_counted, WAIT_MS));
		wisp_gs_router_stats rs;
		gn_router_stats(A, &rs);
		WAIT_ROUTER(e, A, heartbeats, rs.heartbeats + 1);
		gn_stats(A, &st);
		graylisted = st.gossip.rpc_graylisted > st0.gossip.rpc_graylisted;
	}
	next_h = h_last;
	assert_true(graylisted);
	gn_stats(A, &st);
	print_message("# graylisted after %llu bad signatures\n",
		      (unsigned long long)(st.gossip.msg_bad_signature - st0.gossip.msg_bad_signature));
	/* the score's P4 (-40 x n^2 by default) passes the graylist threshold
	 * (-4000) after more than 10 invalid messages */
	assert_true(st.gossip.msg_bad_signature - st0.gossip.msg_bad_signature > 10);

	/* From now on every RPC of the flooder is ignored whole: a valid
	 * message, IHAVE, IWANT, GRAFT, subscriptions. (The counters below
	 * that honest nodes also move are read once their traffic is done.) */
	assert_true(gn_wait(e, honest_all_delivered, WAIT_MS));
	wisp_gs_router_stats rs0, rs;
	gn_router_stats(A, &rs0);
	gn_stats(A, &st0);
	unsigned k_valid = next_e++;
	for (int r = 0; r < 4; r++) {
		char data[64];
		size_t n = gn_data(data, sizeof(data), 'e', k_valid, 40);
		eg_msg m;
		assert_int_equal(eg_msg_sign(e, &m, TOPIC, data, n), 0);
		assert_int_equal(eg_publish(e, &m.m, WAIT_MS), 0);
		uint8_t idb[16] = { (uint8_t)r, 0xaa };
		wisp_gs_bytes id = { idb, sizeof(idb) };
		assert_int_equal(eg_ihave(e, TOPIC, &id, 1, WAIT_MS), 0);
		id.data = gn[B].last_pub.id;
		id.len = gn[B].last_pub.id_len;
		assert_int_equal(eg_iwant(e, &id, 1, WAIT_MS), 0);
		assert_int_equal(eg_graft(e, TOPIC, WAIT_MS), 0);
		assert_int_equal(eg_subscribe(e, "adv/other", true, WAIT_MS), 0);
	}
	WAIT_ROUTER(e, A, rpc_graylisted, rs0.rpc_graylisted + 20);
	gn_router_stats(A, &rs);
	assert_int_equal(rs.rpc_graylisted - rs0.rpc_graylisted, 20);
	/* not decoded: nothing of them was looked at */
	assert_int_equal(rs.msg_in - rs0.msg_in, 0);
	assert_int_equal(rs.subs_in - rs0.subs_in, 0);
	assert_int_equal(rs.iwant_in_ids - rs0.iwant_in_ids, 0);
	assert_int_equal(rs.rpc_bad - rs0.rpc_bad, 0);

	/* honest traffic went on: every message to every node, once */
	bool ok = gn_wait(e, honest_all_delivered, WAIT_MS);
	assert_true(ok);
	for (unsigned k = h_first; k < h_last; k++)
		for (int i = 0; i < 3; i++)
			assert_true(gn_got(i, 'h', k) <= 1);
	assert_int_equal(gn_got(A, 'e', k_valid), 0);

	/* The flooder leaves; the next peer takes its handle at A and must
	 * not inherit its score: its first message is taken. */
	peers_before = rs.peers;
	eg_free(e);
	assert_true(gn_wait(NULL, peer_left, WAIT_MS));
	gn_router_stats(A, &rs0);
	eg_peer *e2 = evil(0);
	newcomer_k = next_e++;
	char data[64];
	size_t n = gn_data(data, sizeof(data), 'e', newcomer_k, 40);
	eg_msg m;
	assert_int_equal(eg_msg_sign(e2, &m, TOPIC, data, n), 0);
	assert_int_equal(eg_publish(e2, &m.m, WAIT_MS), 0);
	ok = gn_wait(e2, newcomer_delivered, WAIT_MS);
	gn_router_stats(A, &rs);
	if (!ok)
		print_message("the newcomer's message was not delivered: %llu RPCs graylisted\n",
			      (unsigned long long)(rs.rpc_graylisted - rs0.rpc_graylisted));
	assert_true(ok);
	assert_int_equal(rs.rpc_graylisted - rs0.rpc_graylisted, 0);
	eg_free(e2);
}

/* ---- 5. a peer that stops reading ---------------------------------------- */

#define SLOW_BUDGET (256u * 1024)
#define SLOW_STALL_MS 5000
#define ROUNDS 36
#define PER_ROUND 64
#define SLOW_DATA 3700 /* the frame (data + ~150 bytes) fits a 4 KiB pool buffer */
#define SLOW_MCACHE 3

static int setup_slow(void **state)
{
	(void)state;
	gn_opts o = { .conn_send_budget = SLOW_BUDGET, .stall_timeout_ms = SLOW_STALL_MS, .mcache_len = SLOW_MCACHE,
		      .mcache_gossip = 2 };
	start3(&o);
	return 0;
}

static uint64_t pool_bytes(int i)
{
	wisp_pool_stats ps;
	wisp_pool_stats_get(gn[i].n->pool, &ps);
	return ps.bytes;
}

static unsigned round_first, round_end;
static uint64_t round_hb;

static bool round_done(void)
{
	for (unsigned k = round_first; k < round_end; k++)
		if (gn_got(A, 'h', k) == 0 || gn_got(C, 'h', k) == 0)
			return false;
	wisp_gs_router_stats rs;
	gn_router_stats(A, &rs);
	/* and a heartbeat since the round began: the message cache moves on */
	return rs.heartbeats > round_hb;
}

static uint64_t slow_base_closes;
static unsigned slow_base_disconnected;

/* The counter, and the DISCONNECTED event (it may be taken later than the
 * counter moves). */
static bool slow_closed(void)
{
	wisp_stats st;
	gn_stats(A, &st);
	return st.net.slow_closes > slow_base_closes && gn[A].disconnected > slow_base_disconnected;
}

static void test_slow_reader(void **state)
{
	(void)state;
	eg_peer *e = evil(4096);
	wisp_gs_router_stats rs0;
	gn_router_stats(A, &rs0);
	/* in A's mesh, with a window that lets A send far ahead */
	assert_int_equal(eg_subscribe(e, TOPIC, true, WAIT_MS), 0);
	assert_int_equal(eg_graft(e, TOPIC, WAIT_MS), 0);
	WAIT_ROUTER(e, A, graft_in, rs0.graft_in + 1);
	assert_int_equal(eg_grant(e, 1u << 30), 0);
	unsigned k = next_h++;
	assert_int_equal(gn_publish(B, TOPIC, 'h', k, 100), WISP_OK);
	watch w;
	watch_start(e, &w, gn[B].last_pub.id, gn[B].last_pub.id_len);
	assert_true(gn_wait(e, watch_msg, WAIT_MS)); /* forwarded: in the mesh */
	e->on_rpc = NULL;

	/* From here on it never reads. B floods; A forwards to C and to us. */
	wisp_stats st0, st;
	gn_stats(A, &st0);
	slow_base_closes = st0.net.slow_closes;
	slow_base_disconnected = gn[A].disconnected;
	uint64_t base = pool_bytes(A), high = 0;
	unsigned first = next_h;
	uint64_t t_flood = wt_now_ns();
	for (int r = 0; r < ROUNDS; r++) {
		wisp_gs_router_stats rs;
		gn_router_stats(A, &rs);
		round_hb = rs.heartbeats;
		round_first = next_h;
		for (int i = 0; i < PER_ROUND; i++)
			gn_publish_async(B, TOPIC, 'h', next_h++, SLOW_DATA);
		round_end = next_h;
		assert_true(gn_wait(NULL, round_done, WAIT_MS));
		uint64_t b = pool_bytes(A) - base;
		if (b > high)
			high = b;
	}
	uint64_t flood_ms = (wt_now_ns() - t_flood) / 1000000u;
	bool closed = gn_wait(NULL, slow_closed, WAIT_MS);
	gn_stats(A, &st);
	if (!closed)
		print_message("no slow close: %llu budget stalls, %llu frames dropped, %llu bytes out\n",
			      (unsigned long long)(st.net.budget_stalls - st0.net.budget_stalls),
			      (unsigned long long)(st.gossip.frames_dropped - st0.gossip.frames_dropped),
			      (unsigned long long)(st.net.bytes_out - st0.net.bytes_out));
	assert_true(closed);
	/* What A may hold at once: the message cache (SLOW_MCACHE heartbeat
	 * windows of at most a round each, plus the round in flight), a round
	 * of inbound frames and of events for the application, and for each
	 * peer what its byte budgets allow: the send queue and the stream's
	 * feed (a budget each, in message buffers), and the kernel's share
	 * (a budget in 64 KiB sealed buffers). Everything published by B was
	 * far more than that. */
	const uint64_t buf = 4096 + 64, sealed = 65536 + 64;
	const uint64_t per_peer = 2 * (SLOW_BUDGET + buf) + (SLOW_BUDGET / 65536 + 1) * sealed;
	const uint64_t bound = (uint64_t)(SLOW_MCACHE + 2) * PER_ROUND * buf + 2 * PER_ROUND * buf + 2 * per_peer +
			       512 * 1024;
	const uint64_t total = (uint64_t)ROUNDS * PER_ROUND * buf;
	print_message("# slow reader: %llu frames dropped; A's pool grew by at most %llu bytes (bound %llu, %llu "
		      "published in %llu ms)\n",
		      (unsigned long long)(st.gossip.frames_dropped - st0.gossip.frames_dropped),
		      (unsigned long long)high, (unsigned long long)bound, (unsigned long long)total,
		      (unsigned long long)flood_ms);
	assert_true(total > 2 * bound);
	assert_true(high <= bound);
	assert_true(st.gossip.frames_dropped > st0.gossip.frames_dropped);
	assert_int_equal(st.net.slow_closes - st0.net.slow_closes, 1);
	assert_true(st.net.budget_stalls > st0.net.budget_stalls);
	assert_int_equal(gn[A].last_disconnect, WISP_ERR_LIMIT);
	/* C got every message once, as did A */
	for (unsigned x = first; x < next_h; x++) {
		assert_int_equal(gn_got(A, 'h', x), 1);
		assert_int_equal(gn_got(C, 'h', x), 1);
	}
	assert_true(ev_wait_closed(&e->p, WAIT_MS));
	eg_free(e);
}

/* ---- 6. topic priority in a full send queue ----------------------------- */

/* A holds at most 64 KiB of gossip frames for a peer; the evil peer stops
 * reading, so A's queue for it fills with normal-topic frames. Another
 * normal frame is then refused (dropped, nothing evicted); a frame of a
 * WISP_PRIORITY_HIGH topic evicts the newest normal frames instead and
 * goes out ahead of the normal frames still waiting. */

#define PRIO_TOPIC "adv/hi"
#define NORMAL_TOPIC "adv/n" /* only A and the evil peer: A's frames on it go to the evil peer alone */
#define PRIO_BUDGET (64u * 1024)

static int setup_prio(void **state)
{
	(void)state;
	gn_opts o = { .conn_send_budget = PRIO_BUDGET, .stall_timeout_ms = 60000 };
	start3(&o);
	wisp_topic_opts hi;
	wisp_topic_opts_default(&hi);
	hi.priority = WISP_PRIORITY_HIGH;
	gn_subscribe_all(PRIO_TOPIC, &hi);
	gn_wait_mesh(PRIO_TOPIC, B);
	assert_int_equal(wisp_subscribe(gn[A].n, NORMAL_TOPIC, NULL, 0), WISP_OK);
	return 0;
}

static wisp_stats prio_st0;
static unsigned pub_want;

static bool a_published(void)
{
	return gn[A].published >= pub_want;
}

static bool a_dropped(void)
{
	wisp_stats st;
	gn_stats(A, &st);
	return st.gossip.frames_dropped > prio_st0.gossip.frames_dropped;
}

static bool a_evicted(void)
{
	wisp_stats st;
	gn_stats(A, &st);
	return st.gossip.frames_evicted > prio_st0.gossip.frames_evicted;
}

/* The order in which the evil peer reads messages once it reads again. */
typedef struct order {
	unsigned high_k;       /* the high-priority message watched for */
	int high_at;           /* its position, -1 not read yet */
	unsigned normal_after; /* normal messages published before it and read after it */
	unsigned n;
} order;

static order *cur_order;

static void on_rpc_order(eg_peer *e, const wisp_gs_rpc *rpc, void *arg)
{
	(void)e;
	order *o = arg;
	for (uint32_t i = 0; i < rpc->n_msgs; i++) {
		const wisp_gs_bytes *t = &rpc->msgs[i].topic;
		bool hi = t->len == strlen(PRIO_TOPIC) && !memcmp(t->data, PRIO_TOPIC, t->len);
		bool normal = t->len == strlen(NORMAL_TOPIC) && !memcmp(t->data, NORMAL_TOPIC, t->len);
		char text[16];
		unsigned k = 0;
		const wisp_gs_bytes *d = &rpc->msgs[i].data;
		snprintf(text, sizeof(text), "%.*s", (int)(d->len < 15 ? d->len : 15), (const char *)d->data);
		if (sscanf(text, "h%u:", &k) != 1)
			continue;
		if (hi && k == o->high_k)
			o->high_at = (int)o->n;
		else if (normal && o->high_at >= 0 && k < o->high_k)
			o->normal_after++;
		o->n++;
	}
}

static bool high_then_normal(void)
{
	return cur_order->high_at >= 0 && cur_order->normal_after > 0;
}

static unsigned prio_k;
static bool others_got_high(void)
{
	return gn_got(B, 'h', prio_k) == 1 && gn_got(C, 'h', prio_k) == 1;
}

static void test_priority(void **state)
{
	(void)state;
	eg_peer *e = evil(4096);
	wisp_gs_router_stats rs0;
	gn_router_stats(A, &rs0);
	assert_int_equal(eg_subscribe(e, NORMAL_TOPIC, true, WAIT_MS), 0);
	assert_int_equal(eg_subscribe(e, PRIO_TOPIC, true, WAIT_MS), 0);
	WAIT_ROUTER(e, A, subs_in, rs0.subs_in + 2);
	/* in A's meshes: A then sends it messages, not IHAVE gossip */
	assert_int_equal(eg_graft(e, NORMAL_TOPIC, WAIT_MS), 0);
	assert_int_equal(eg_graft(e, PRIO_TOPIC, WAIT_MS), 0);
	WAIT_ROUTER(e, A, graft_in, rs0.graft_in + 2);

	/* From here on the evil peer reads nothing until told. A publishes on
	 * the normal topic (which only the evil peer joined: every drop is in
	 * its queue) far more than its queue takes (the stream's window and
	 * feed, then 64 KiB): frames are refused, none is evicted. */
	gn_stats(A, &prio_st0);
	pub_want = gn[A].published;
	for (int i = 0; i < 200; i++, pub_want++)
		gn_publish_async(A, NORMAL_TOPIC, 'h', next_h++, 4000);
	assert_true(gn_wait(NULL, a_published, WAIT_MS));
	assert_true(gn_wait(NULL, a_dropped, WAIT_MS));
	wisp_stats st;
	gn_stats(A, &st);
	assert_int_equal(st.gossip.frames_evicted, prio_st0.gossip.frames_evicted);

	/* A high-priority message right behind more normal ones (so that the
	 * queue is full when it comes) takes the room of normal frames. The
	 * kernel sometimes takes a burst of A's bytes late (its send buffer
	 * grows while the peer is silent), emptying the queue: then another
	 * round. */
	bool evicted = false;
	for (int round = 0; round < 5 && !evicted; round++) {
		for (int i = 0; i < 40; i++, pub_want++)
			gn_publish_async(A, NORMAL_TOPIC, 'h', next_h++, 4000);
		prio_k = next_h++;
		gn_publish_async(A, PRIO_TOPIC, 'h', prio_k, 4000);
		pub_want++;
		assert_true(gn_wait(NULL, a_published, WAIT_MS));
		assert_true(gn_wait(NULL, others_got_high, WAIT_MS));
		evicted = gn_wait(NULL, a_evicted, 1000);
	}
	assert_true(evicted);
	/* more normal ones are refused again, evicting nothing */
	gn_stats(A, &prio_st0);
	for (int i = 0; i < 40; i++, pub_want++)
		gn_publish_async(A, NORMAL_TOPIC, 'h', next_h++, 4000);
	assert_true(gn_wait(NULL, a_published, WAIT_MS));
	assert_true(gn_wait(NULL, a_dropped, WAIT_MS));
	gn_stats(A, &st);
	assert_int_equal(st.gossip.frames_evicted, prio_st0.gossip.frames_evicted);

	/* reading again, the evil peer gets the high-priority message that
	 * evicted ahead of normal ones published before it (they waited in the
	 * queue when it came) */
	order o = { .high_k = prio_k, .high_at = -1 };
	cur_order = &o;
	e->on_rpc = on_rpc_order;
	e->arg = &o;
	assert_int_equal(eg_grant(e, 1u << 30), 0);
	assert_true(gn_wait(e, high_then_normal, WAIT_MS));
	print_message("# priority: a high-priority message was read %dth of %u, then %u normal ones\n", o.high_at + 1,
		      o.n, o.normal_after);
	eg_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_iwant_recovers_for_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ihave_fetches_from_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_graylist_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader, setup_slow, teardown),
		cmocka_unit_test_setup_teardown(test_priority, setup_prio, teardown),
	};
	/* GOSSIP_ONLY=test_name runs one case */
	const char *only = getenv("GOSSIP_ONLY");
	if (only && *only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
