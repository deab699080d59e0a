/* Explicit peers and the application's score, through the public API over
 * loopback:
 *   - an explicit peer is dialed at start and again after it is lost, gets
 *     every message of its topics, and is never in the mesh (its GRAFT is
 *     answered with a PRUNE);
 *   - a peer id the application scored below the graylist threshold before
 *     it connected is never meshed, its RPCs are ignored, and its messages
 *     reach the node only through honest peers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <wisp/wisp.h>

#include "tests/testlib.h"

#define WAIT_MS 20000
#define N 3
#define TOPIC "atlas/vote/v1"

typedef struct node {
	wisp_node *n;
	char listen[WISP_ADDR_TEXT_MAX];
	int connected, disconnected, explicit_connected, subscribed, published, publish_status, messages;
	char last_data[64];
	wisp_peer_id last_source;
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
		if (ev->cookie == WISP_COOKIE_EXPLICIT)
			x->explicit_connected++;
		break;
	case WISP_EVENT_DISCONNECTED:
		x->disconnected++;
		break;
	case WISP_EVENT_SUBSCRIBED:
		if (ev->status == WISP_OK)
			x->subscribed++;
		break;
	case WISP_EVENT_PUBLISHED:
		x->published++;
		x->publish_status = ev->status;
		break;
	case WISP_EVENT_MESSAGE:
		x->messages++;
		snprintf(x->last_data, sizeof(x->last_data), "%.*s", (int)ev->u.message->len,
			 (const char *)ev->u.message->data);
		x->last_source = ev->u.message->source;
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

static bool never(void)
{
	return false;
}

/* Let about ms pass while events keep being taken. */
static void pass_ms(unsigned ms)
{
	(void)wt_wait_nodes(node_at, N, take, never, ms);
}

static wisp_stats stats_of(int i)
{
	wisp_stats st;
	wisp_node_stats(nodes[i].n, &st);
	return st;
}

static int cur;
static bool cur_listening(void)
{
	return nodes[cur].listen[0] != 0;
}

/* Node i listens on loopback; explicit: the multiaddrs it keeps. */
static void start_node(int i, const char *const *explicit_peers, uint32_t n_explicit)
{
	wisp_options o;
	wt_node_options(&o, true);
	o.explicit_peers = explicit_peers;
	o.n_explicit_peers = n_explicit;
	o.explicit_redial_ms = 200;
	assert_int_equal(wisp_node_new(&nodes[i].n, &o), WISP_OK);
	assert_int_equal(wisp_node_start(nodes[i].n), WISP_OK);
	cur = i;
	assert_true(wait_for(cur_listening));
}

static void stop_all(void)
{
	for (int i = 0; i < N; i++)
		assert_int_equal(wisp_node_stop(nodes[i].n), WISP_OK);
	for (int i = 0; i < N; i++)
		wt_node_finish(nodes[i].n);
	memset(nodes, 0, sizeof(nodes));
}

static bool all_subscribed(void)
{
	for (int i = 0; i < N; i++)
		if (nodes[i].subscribed < 1)
			return false;
	return true;
}

static void subscribe_all(void)
{
	for (int i = 0; i < N; i++)
		assert_int_equal(wisp_subscribe(nodes[i].n, TOPIC, NULL, 0), WISP_OK);
	assert_true(wait_for(all_subscribed));
}

static int want_node, want_count;
static bool node_messages(void)
{
	return nodes[want_node].messages >= want_count;
}

static int pub_node, pub_before;
static bool pub_answered(void)
{
	return nodes[pub_node].published > pub_before;
}

static void publish(int from, const char *text)
{
	pub_node = from;
	pub_before = nodes[from].published;
	assert_int_equal(wisp_publish(nodes[from].n, TOPIC, text, strlen(text), 1), WISP_OK);
	assert_true(wait_for(pub_answered));
	assert_int_equal(nodes[from].publish_status, WISP_OK);
}

/* ---- explicit peers ----------------------------------------------------- */

static bool a_has_explicit(void)
{
	return nodes[0].explicit_connected >= 1 && nodes[1].connected >= 1;
}

static bool meshed_without_b(void)
{
	/* A (0) has peers B (1) and C (2); only C in its mesh; B was told no */
	wisp_stats a = stats_of(0), b = stats_of(1), c = stats_of(2);
	return a.gossip.peers == 2 && a.gossip.mesh == 1 && c.gossip.mesh == 1 && b.gossip.prune_in >= 1;
}

static bool b_reconnected(void)
{
	return nodes[0].disconnected >= 1 && nodes[0].explicit_connected >= 2 && stats_of(0).gossip.peers == 2;
}

/* An explicit peer must be a dialable address naming the peer: the node
 * is not made, and the reason names the address. */
static void test_explicit_peer_refused(void **state)
{
	(void)state;
	static const char *const bad[] = { "/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/x/p2p/16Uiu2" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wisp_options o;
		wisp_options_default(&o);
		o.explicit_peers = &bad[i];
		o.n_explicit_peers = 1;
		wisp_node *n = NULL;
		assert_true(wisp_node_new(&n, &o) < 0);
		assert_null(n);
		assert_non_null(strstr(wisp_node_new_errmsg(), bad[i]));
	}
	wisp_options o;
	wisp_options_default(&o);
	o.n_explicit_peers = WISP_MAX_EXPLICIT_PEERS + 1;
	wisp_node *n = NULL;
	assert_int_equal(wisp_node_new(&n, &o), WISP_ERR_INVALID_ARG);
	assert_non_null(strstr(wisp_node_new_errmsg(), "explicit peers"));
}

static void test_explicit_peer(void **state)
{
	(void)state;
	memset(nodes, 0, sizeof(nodes));
	start_node(1, NULL, 0); /* B */
	start_node(2, NULL, 0); /* C */
	const char *xp[] = { nodes[1].listen };
	start_node(0, xp, 1); /* A keeps B */
	/* A dials B by itself, with the explicit cookie */
	assert_true(wait_for(a_has_explicit));
	assert_int_equal(wisp_dial(nodes[0].n, nodes[2].listen, 7), WISP_OK);
	subscribe_all();
	assert_true(wait_for(meshed_without_b));
	/* a few heartbeats later B is still outside A's mesh */
	pass_ms(2500);
	assert_int_equal(stats_of(0).gossip.mesh, 1);

	/* C's message reaches B through A, which sends explicit peers
	 * everything; A's own too */
	publish(2, "from C");
	want_node = 1;
	want_count = 1;
	assert_true(wait_for(node_messages));
	assert_string_equal(nodes[1].last_data, "from C");
	assert_true(wisp_peer_id_equal(&nodes[1].last_source, wisp_node_peer_id(nodes[0].n)));
	publish(0, "from A");
	want_count = 2;
	assert_true(wait_for(node_messages));
	assert_string_equal(nodes[1].last_data, "from A");

	/* B drops A: A dials it again */
	assert_int_equal(wisp_disconnect(nodes[1].n, wisp_node_peer_id(nodes[0].n), 3), WISP_OK);
	assert_true(wait_for(b_reconnected));
	publish(2, "after the loss");
	want_count = 3;
	assert_true(wait_for(node_messages));
	assert_string_equal(nodes[1].last_data, "after the loss");
	stop_all();
}

/* ---- the application's score -------------------------------------------- */

static bool triangle(void)
{
	for (int i = 0; i < N; i++)
		if (nodes[i].connected < 2)
			return false;
	return true;
}

static bool b_shunned(void)
{
	/* A has two gossip peers and only C in its mesh; B and C mesh each
	 * other */
	wisp_stats a = stats_of(0), b = stats_of(1), c = stats_of(2);
	return a.gossip.peers == 2 && a.gossip.mesh == 1 && b.gossip.mesh >= 1 && c.gossip.mesh == 2;
}

static void test_app_score(void **state)
{
	(void)state;
	memset(nodes, 0, sizeof(nodes));
	for (int i = 0; i < N; i++)
		start_node(i, NULL, 0);
	/* A scores B far below the graylist threshold before B connects */
	assert_int_equal(wisp_set_app_score(nodes[0].n, wisp_node_peer_id(nodes[1].n), -1e6), WISP_OK);
	assert_int_equal(wisp_set_app_score(nodes[0].n, wisp_node_peer_id(nodes[1].n), 0.0 / 0.0),
			 WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_dial(nodes[1].n, nodes[0].listen, 1), WISP_OK);
	assert_int_equal(wisp_dial(nodes[2].n, nodes[0].listen, 1), WISP_OK);
	assert_int_equal(wisp_dial(nodes[1].n, nodes[2].listen, 1), WISP_OK);
	assert_true(wait_for(triangle));
	subscribe_all();
	assert_true(wait_for(b_shunned));

	/* B's message: A ignores B's copy and takes C's */
	uint64_t gray = stats_of(0).gossip.rpc_graylisted;
	publish(1, "from B");
	want_node = 0;
	want_count = 1;
	assert_true(wait_for(node_messages));
	assert_string_equal(nodes[0].last_data, "from B");
	assert_true(wisp_peer_id_equal(&nodes[0].last_source, wisp_node_peer_id(nodes[2].n)));
	assert_true(stats_of(0).gossip.rpc_graylisted > gray);
	/* A's own message skips B (below the publish threshold): B has it
	 * from C */
	publish(0, "from A");
	want_node = 1;
	want_count = 1;
	assert_true(wait_for(node_messages));
	assert_string_equal(nodes[1].last_data, "from A");
	assert_true(wisp_peer_id_equal(&nodes[1].last_source, wisp_node_peer_id(nodes[2].n)));
	stop_all();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_explicit_peer_refused),
		cmocka_unit_test(test_explicit_peer),
		cmocka_unit_test(test_app_score),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
