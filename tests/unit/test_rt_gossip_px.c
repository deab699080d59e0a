/* Gossipsub peer exchange end to end, over loopback:
 *   - A knows only B; B knows A and C. A scores B above the accept-PX
 *     threshold (the application's score). B leaves the topic: its PRUNEs
 *     carry PX, and the entry for C carries the signed peer record B got in
 *     C's identify. A verifies it and dials C's address from it (cookie
 *     WISP_COOKIE_PX); C, which does not trust B that much, does not follow
 *     B's PX about A.
 *   - an evil gossip peer A trusts PRUNEs it with PX entries whose records
 *     are another peer's, tampered, or signed with an Ed25519 key: each is
 *     counted (px_bad_record, px_unsupported_key) and none is dialed.
 * Everything waits on events or counters with deadlines; nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/wisp.h>

#include "actors/gossip/rpc.h"
#include "actors/scoring/actor.h"
#include "codec/frame.h"
#include "codec/multiaddr.h"
#include "codec/pb.h"
#include "codec/peer_record.h"
#include "net/mss.h"
#include "net/yamux.h"
#include "runtime/node.h"
#include "tests/evilpeer.h"
#include "tests/testlib.h"

#define WAIT_MS 20000
#define N 3
#define TOPIC "atlas/px/v1"
#define TRUST 1000.0 /* the application's score for a trusted peer: over accept_px (100) */

typedef struct node {
	wisp_node *n;
	char listen[WISP_ADDR_TEXT_MAX];
	int connected, subscribed, px_connected, px_failed;
	wisp_peer_id px_peer;       /* the peer of the last CONNECTED with WISP_COOKIE_PX */
	int px_inbound;             /* ... and its direction */
	wisp_peer_id rec_from[4];   /* peers whose identify carried a verified record */
	int n_rec, rec_refused;
} node;

static node nodes[N];

static void take(int i, const wisp_event *ev)
{
	node *x = &nodes[i];
	switch (ev->type) {
	case WISP_EVENT_LISTENING:
		snprintf(x->listen, sizeof(x->listen), "%s", ev->u.listen->addr);
		break;
	case WISP_EVENT_CONNECTED:
		x->connected++;
		if (ev->cookie == WISP_COOKIE_PX && ev->u.peer) {
			x->px_connected++;
			x->px_peer = ev->u.peer->peer;
			x->px_inbound = ev->u.peer->inbound;
		}
		break;
	case WISP_EVENT_DIAL_FAILED:
		if (ev->cookie == WISP_COOKIE_PX)
			x->px_failed++;
		break;
	case WISP_EVENT_SUBSCRIBED:
		if (ev->status == WISP_OK)
			x->subscribed++;
		break;
	case WISP_EVENT_IDENTIFY:
		if (ev->u.identify->signed_peer_record == 1 && x->n_rec < 4)
			x->rec_from[x->n_rec++] = ev->u.identify->peer;
		else if (ev->u.identify->signed_peer_record < 0)
			x->rec_refused++;
		break;
	default:
		break;
	}
}

static wisp_node *node_at(int i)
{
	return nodes[i].n;
}

static bool wait_for(bool (*cond)(void))
{
	return wt_wait_nodes(node_at, N, take, cond, WAIT_MS);
}

static wisp_stats stats_of(int i)
{
	wisp_stats st;
	wisp_node_stats(nodes[i].n, &st);
	return st;
}

/* Score snapshots A's scoring actor has sent its gossip actor: the router
 * judges a PRUNE's PX by the last one it got. */
static uint64_t snapshots(int i)
{
	return wisp_stat_get(&wisp_scoring_stats_of(nodes[i].n->scoring_state)->snapshots);
}

static int cur;
static bool cur_listening(void)
{
	return nodes[cur].listen[0] != 0;
}

static void start_node(int i)
{
	wisp_options o;
	wt_node_options(&o, true);
	assert_int_equal(wisp_node_new(&nodes[i].n, &o), WISP_OK);
	assert_int_equal(wisp_node_start(nodes[i].n), WISP_OK);
	cur = i;
	assert_true(wait_for(cur_listening));
}

static void stop_all(void)
{
	for (int i = 0; i < N; i++)
		if (nodes[i].n)
			assert_int_equal(wisp_node_stop(nodes[i].n), WISP_OK);
	/* records held per connection go back with the actor */
	for (int i = 0; i < N; i++)
		if (nodes[i].n)
			wt_node_finish(nodes[i].n);
	memset(nodes, 0, sizeof(nodes));
}

static bool has_record_from(int i, int from)
{
	for (int k = 0; k < nodes[i].n_rec; k++)
		if (wisp_peer_id_equal(&nodes[i].rec_from[k], wisp_node_peer_id(nodes[from].n)))
			return true;
	return false;
}

/* Until A's router has a score snapshot made after this call: one taken
 * now is stale only if nothing changed since. Setting the score again is a
 * change, so a snapshot follows within WISP_SCORING_SNAPSHOT_MS. */
static int snap_node;
static uint64_t snap_before;
static bool snap_taken(void)
{
	return snapshots(snap_node) > snap_before;
}

static void fresh_scores(int i, const wisp_peer_id *trusted)
{
	snap_node = i;
	snap_before = snapshots(i);
	assert_int_equal(wisp_set_app_score(nodes[i].n, trusted, TRUST), WISP_OK);
	assert_true(wait_for(snap_taken));
}

/* ---- A, B, C ------------------------------------------------------------- */

enum { A = 0, B = 1, C = 2 };

static bool line_up(void)
{
	/* A-B and B-C connected, each side's identify with a verified record */
	return nodes[A].connected >= 1 && nodes[B].connected >= 2 && nodes[C].connected >= 1 &&
	       has_record_from(A, B) && has_record_from(B, A) && has_record_from(B, C) && has_record_from(C, B);
}

static bool all_subscribed(void)
{
	for (int i = 0; i < N; i++)
		if (nodes[i].subscribed < 1)
			return false;
	return true;
}

static bool meshed(void)
{
	wisp_stats a = stats_of(A), b = stats_of(B), c = stats_of(C);
	return a.gossip.mesh == 1 && b.gossip.mesh == 2 && c.gossip.mesh == 1;
}

static bool a_reached_c(void)
{
	return nodes[A].px_connected >= 1 && nodes[C].connected >= 2 && stats_of(A).gossip.peers == 2 &&
	       stats_of(C).gossip.px_ignored >= 1;
}

static void test_px_dials_from_record(void **state)
{
	(void)state;
	memset(nodes, 0, sizeof(nodes));
	for (int i = 0; i < N; i++)
		start_node(i);
	/* A trusts B before B connects (the score is remembered by id) */
	assert_int_equal(wisp_set_app_score(nodes[A].n, wisp_node_peer_id(nodes[B].n), TRUST), WISP_OK);
	assert_int_equal(wisp_dial(nodes[B].n, nodes[C].listen, 1), WISP_OK);
	assert_int_equal(wisp_dial(nodes[A].n, nodes[B].listen, 1), WISP_OK);
	assert_true(wait_for(line_up));
	for (int i = 0; i < N; i++)
		assert_int_equal(wisp_subscribe(nodes[i].n, TOPIC, NULL, 0), WISP_OK);
	assert_true(wait_for(all_subscribed));
	assert_true(wait_for(meshed));
	fresh_scores(A, wisp_node_peer_id(nodes[B].n));
	assert_int_equal(stats_of(A).gossip.px_dialed, 0);

	/* B leaves: PRUNE with PX to A (naming C, with C's record) and to C
	 * (naming A) */
	assert_int_equal(wisp_unsubscribe(nodes[B].n, TOPIC, 2), WISP_OK);
	assert_true(wait_for(a_reached_c));
	assert_true(wisp_peer_id_equal(&nodes[A].px_peer, wisp_node_peer_id(nodes[C].n)));
	assert_int_equal(nodes[A].px_inbound, 0); /* A dialed C */
	wisp_stats a = stats_of(A), b = stats_of(B), c = stats_of(C);
	assert_int_equal(a.gossip.px_received, 1);
	assert_int_equal(a.gossip.px_dialed, 1);
	assert_int_equal(a.gossip.px_bad_record, 0);
	assert_int_equal(a.gossip.px_unsupported_key, 0);
	assert_true(b.gossip.px_records_sent >= 2);
	/* C heard of A from B, whose score at C is 0: not followed */
	assert_int_equal(c.gossip.px_received, 0);
	assert_int_equal(c.gossip.px_dialed, 0);
	assert_int_equal(nodes[C].px_connected, 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(stats_of(i).net.peer_record_errors, 0);
		assert_int_equal(nodes[i].rec_refused, 0);
		assert_int_equal(nodes[i].px_failed, 0);
	}
	stop_all();
}

/* ---- an evil peer's PX ----------------------------------------------------- */

/* A PeerInfo and the bytes it points at. */
typedef struct entry {
	wisp_peer_id id;
	uint8_t rec[1024];
	size_t len;
} entry;

static void seal_for(const wisp_privkey *key, uint16_t port, entry *e)
{
	char text[64];
	uint8_t bin[64];
	snprintf(text, sizeof(text), "/ip4/127.0.0.1/tcp/%u", port);
	ssize_t l = wisp_multiaddr_from_text(text, strlen(text), bin, sizeof(bin));
	assert_true(l > 0);
	wisp_peer_record_addr a = { bin, (size_t)l };
	ssize_t n = wisp_peer_record_seal(key, 7, &a, 1, e->rec, sizeof(e->rec));
	assert_true(n > 0);
	e->len = (size_t)n;
}

static bool a_subscribed(void)
{
	return nodes[A].subscribed == 1;
}

static bool evil_up(void)
{
	return stats_of(A).gossip.peers == 1;
}

static bool px_refused(void)
{
	wisp_stats a = stats_of(A);
	return a.gossip.px_received >= 3 && a.gossip.px_bad_record >= 2 && a.gossip.px_unsupported_key >= 1;
}

static void test_px_bad_records(void **state)
{
	(void)state;
	memset(nodes, 0, sizeof(nodes));
	start_node(A);
	assert_int_equal(wisp_subscribe(nodes[A].n, TOPIC, NULL, 0), WISP_OK);
	assert_true(wait_for(a_subscribed));
	const char *tcp = strstr(nodes[A].listen, "/tcp/");
	assert_non_null(tcp);
	uint16_t port = (uint16_t)atoi(tcp + 5);

	/* the evil peer, trusted by A */
	ev_peer *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	assert_int_equal(ev_connect(p, port, 0), 0);
	wisp_peer_id evil;
	assert_int_equal(wisp_peer_id_from_pubkey(&evil, wisp_privkey_pubkey(&p->key)), 0);
	assert_int_equal(wisp_set_app_score(nodes[A].n, &evil, TRUST), WISP_OK);
	assert_int_equal(ev_handshake(p, WAIT_MS), 0);
	/* its gossip stream: SYN, multistream, /meshsub/1.1.0 */
	uint8_t open[128];
	size_t n = ev_ymx(open, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_SYN, 1, 0);
	size_t m = ev_mss_msg(open + n + 12, sizeof(open) - n - 12, WISP_MSS_PROTOCOL);
	m += ev_mss_msg(open + n + 12 + m, sizeof(open) - n - 12 - m, "/meshsub/1.1.0");
	ev_ymx(open + n, WISP_YAMUX_DATA, 0, 1, (uint32_t)m);
	assert_int_equal(ev_send_sealed(p, open, n + 12 + m, WAIT_MS), 0);
	assert_true(wait_for(evil_up));
	fresh_scores(A, &evil);

	/* three entries, each for a listener nobody runs (a dial would show
	 * as a PX DIAL_FAILED): D's record in an entry for X; X's record with
	 * a flipped signature byte; an Ed25519 signer's record */
	wisp_privkey kd, kx;
	assert_int_equal(wisp_privkey_generate(&kd), 0);
	assert_int_equal(wisp_privkey_generate(&kx), 0);
	entry e[3];
	memset(e, 0, sizeof(e));
	assert_int_equal(wisp_peer_id_from_pubkey(&e[0].id, wisp_privkey_pubkey(&kx)), 0);
	seal_for(&kd, 9, &e[0]);
	e[1].id = e[0].id;
	seal_for(&kx, 9, &e[1]);
	e[1].rec[e[1].len - 4] ^= 0x20;
	/* Ed25519: identity multihash of PublicKey{Type 1, 32 bytes} */
	uint8_t edpb[36] = { 0x08, 0x01, 0x12, 0x20 };
	memset(edpb + 4, 0x33, 32);
	e[2].id.len = 38;
	e[2].id.bytes[0] = 0x00;
	e[2].id.bytes[1] = 36;
	memcpy(e[2].id.bytes + 2, edpb, 36);
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, e[2].rec, sizeof(e[2].rec));
	wisp_pb_put_bytes(&w, 1, edpb, sizeof(edpb));
	wisp_pb_put_bytes(&w, 2, "\x03\x01", 2);
	uint8_t pl[64];
	wisp_pb_writer pw;
	wisp_pb_writer_init(&pw, pl, sizeof(pl));
	wisp_pb_put_bytes(&pw, 1, e[2].id.bytes, e[2].id.len);
	ssize_t plen = wisp_pb_writer_finish(&pw);
	assert_true(plen > 0);
	wisp_pb_put_bytes(&w, 3, pl, (size_t)plen);
	uint8_t sig[64];
	memset(sig, 0x44, sizeof(sig));
	wisp_pb_put_bytes(&w, 5, sig, sizeof(sig));
	ssize_t el = wisp_pb_writer_finish(&w);
	assert_true(el > 0);
	e[2].len = (size_t)el;

	/* RPC{subscribe TOPIC; control: PRUNE(TOPIC, backoff 60, px = e[0..3))} */
	wisp_gs_rpc *r;
	assert_int_equal(wisp_gs_rpc_new(&r, wisp_mem_default(), NULL), 0);
	r->n_subs = 1;
	r->subs[0] = (wisp_gs_subopt){ .subscribe = true, .topic = { (const uint8_t *)TOPIC, strlen(TOPIC) } };
	r->has_control = true;
	r->n_prune = 1;
	r->prune[0] = (wisp_gs_prune){ .topic = { (const uint8_t *)TOPIC, strlen(TOPIC) },
				       .has_backoff = true,
				       .backoff = 60,
				       .px = { 0, 3 } };
	r->n_px = 3;
	for (int i = 0; i < 3; i++)
		r->px[i] = (wisp_gs_peer_info){ .has_record = true,
						.peer_id = { e[i].id.bytes, e[i].id.len },
						.record = { e[i].rec, (uint32_t)e[i].len } };
	static uint8_t frame[12 + 8192];
	ssize_t rl = wisp_gs_rpc_encode(r, frame + 12 + 4, sizeof(frame) - 16);
	assert_true(rl > 0);
	wisp_gs_rpc_free(r);
	/* uvarint length prefix right before the RPC, the yamux header before it */
	uint8_t pre[10];
	ssize_t pn = wisp_frame_put_prefix(pre, sizeof(pre), (size_t)rl);
	assert_true(pn > 0 && pn <= 4);
	memcpy(frame + 12 + 4 - pn, pre, (size_t)pn);
	uint8_t *start = frame + 4 - pn;
	ev_ymx(start, WISP_YAMUX_DATA, 0, 1, (uint32_t)(pn + rl));
	assert_int_equal(ev_send_sealed(p, start, 12 + (size_t)pn + (size_t)rl, WAIT_MS), 0);

	assert_true(wait_for(px_refused));
	wisp_stats a = stats_of(A);
	assert_int_equal(a.gossip.px_received, 3);
	assert_int_equal(a.gossip.px_bad_record, 2);
	assert_int_equal(a.gossip.px_unsupported_key, 1);
	assert_int_equal(a.gossip.px_dialed, 0);
	assert_int_equal(nodes[A].px_connected + nodes[A].px_failed, 0);
	assert_int_equal(a.net.peer_errors, 0); /* bad PX is no protocol error */

	ev_close(p);
	free(p);
	wisp_privkey_wipe(&kd);
	wisp_privkey_wipe(&kx);
	stop_all();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_px_dials_from_record),
		cmocka_unit_test(test_px_bad_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
