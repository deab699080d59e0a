/* gossipsub over loopback with 12 nodes and churn: every message reaches
 * every live subscriber exactly once, before and after a quarter of the
 * nodes leave and new ones join. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <wisp/wisp.h>

#include "tests/testlib.h"

#define N 12
#define DEGREE 3
#define TOPIC "atlas/vote/v1"
#define MSGS 16
#define WAIT_MS 20000

typedef struct node {
	wisp_node *n;
	bool live;
	char listen[WISP_ADDR_TEXT_MAX];
	int subscribed, published, publish_status;
	uint32_t pub_peers;
	/* how often each test message arrived: "m<round>-<k>" */
	int got[2][MSGS];
	int other; /* messages that are not test messages (probes) */
} node;

static node nodes[N];
static int round_no;
static int pub_status[2][MSGS], pub_peers[2][MSGS];

static void take(node *x, const wisp_event *ev)
{
	switch (ev->type) {
	case WISP_EVENT_LISTENING:
		snprintf(x->listen, sizeof(x->listen), "%s", ev->u.listen->addr);
		break;
	case WISP_EVENT_SUBSCRIBED:
		if (ev->status == WISP_OK)
			x->subscribed++;
		break;
	case WISP_EVENT_PUBLISHED:
		x->published++;
		x->publish_status = ev->status;
		x->pub_peers = ev->u.published ? ev->u.published->peers : 0;
		if (ev->cookie >= 100 && ev->cookie < 100 + MSGS) {
			/* a round's message: how it went out, for the diagnosis */
			pub_status[round_no][ev->cookie - 100] = ev->status;
			pub_peers[round_no][ev->cookie - 100] = (int)x->pub_peers;
		}
		break;
	case WISP_EVENT_MESSAGE: {
		const wisp_message_info *m = ev->u.message;
		int r, k;
		char text[32];
		snprintf(text, sizeof(text), "%.*s", (int)(m->len < 31 ? m->len : 31), (const char *)m->data);
		if (sscanf(text, "m%d-%d", &r, &k) == 2 && r >= 0 && r < 2 && k >= 0 && k < MSGS)
			x->got[r][k]++;
		else
			x->other++;
		break;
	}
	default:
		break;
	}
}

static wisp_node *node_at(int i)
{
	return nodes[i].n;
}

static void take_at(int i, const wisp_event *ev)
{
	take(&nodes[i], ev);
}

static bool wait_ms(bool (*cond)(void), unsigned ms)
{
	return wt_wait_nodes(node_at, N, take_at, cond, ms);
}

static int waiting_for;
static bool node_ready(void)
{
	return nodes[waiting_for].listen[0] && nodes[waiting_for].subscribed >= 1;
}

static void start_node(int i)
{
	memset(&nodes[i], 0, sizeof(nodes[i]));
	wisp_options o;
	wt_node_options(&o, true);
	assert_int_equal(wisp_node_new(&nodes[i].n, &o), WISP_OK);
	assert_int_equal(wisp_node_start(nodes[i].n), WISP_OK);
	assert_int_equal(wisp_subscribe(nodes[i].n, TOPIC, NULL, 0), WISP_OK);
	waiting_for = i;
	assert_true(wait_ms(node_ready, WAIT_MS));
	nodes[i].live = true;
}

static void stop_node(int i)
{
	assert_int_equal(wisp_node_stop(nodes[i].n), WISP_OK);
	wt_node_finish(nodes[i].n);
	nodes[i].n = NULL;
	nodes[i].live = false;
}

/* i dials the next DEGREE live nodes around the ring */
static void dial_ring(int i)
{
	for (int k = 1, done = 0; k < N && done < DEGREE; k++) {
		int j = (i + k) % N;
		if (!nodes[j].live)
			continue;
		assert_int_equal(wisp_dial(nodes[i].n, nodes[j].listen, 0), WISP_OK);
		done++;
	}
}

static int pub_node, pub_before;
static bool pub_answered(void)
{
	return nodes[pub_node].published > pub_before;
}

static int probe_base[N];
static bool probe_everywhere(void)
{
	for (int i = 0; i < N; i++)
		if (nodes[i].live && i != pub_node && nodes[i].other <= probe_base[i])
			return false;
	return true;
}

/* Every live node has every gossip peer it knows in its mesh (each has at
 * most D_lo = 6). Until then a message can miss a node for good: flood
 * publishing reaches only the author's own neighbours, forwards go along
 * mesh links, and gossip (IHAVE) goes only to peers outside the mesh, so a
 * node that joins its neighbours' meshes after a message passed never hears
 * of it. */
static bool meshes_full(void)
{
	for (int i = 0; i < N; i++) {
		if (!nodes[i].live)
			continue;
		wisp_stats st;
		wisp_node_stats(nodes[i].n, &st);
		uint64_t want = st.gossip.peers < 6 ? st.gossip.peers : 6;
		if (st.gossip.peers == 0 || st.gossip.mesh < want)
			return false;
	}
	return true;
}

/* Wait until the meshes have formed, then publish probes from pub_node
 * until one reaches every live node. */
static void wait_mesh(void)
{
	assert_true(wait_ms(meshes_full, WAIT_MS));
	for (int tries = 0; tries < 60; tries++) {
		char probe[32];
		snprintf(probe, sizeof(probe), "probe %d", tries);
		for (int i = 0; i < N; i++)
			probe_base[i] = nodes[i].other;
		pub_before = nodes[pub_node].published;
		assert_int_equal(wisp_publish(nodes[pub_node].n, TOPIC, probe, strlen(probe), 1), WISP_OK);
		assert_true(wait_ms(pub_answered, WAIT_MS));
		if (wait_ms(probe_everywhere, 700))
			return;
	}
	fail_msg("the mesh never formed");
}

static int publisher[2][MSGS];

static bool never(void)
{
	return false;
}

/* Who misses what, how each message went out, and each node's counters. */
static void diagnose(void)
{
	for (int k = 0; k < MSGS; k++) {
		printf("# m%d-%d from node %d: status %d, %d peers; missing at", round_no, k, publisher[round_no][k],
		       pub_status[round_no][k], pub_peers[round_no][k]);
		for (int i = 0; i < N; i++)
			if (nodes[i].live && nodes[i].got[round_no][k] == 0 && publisher[round_no][k] != i)
				printf(" %d", i);
		printf("\n");
	}
	for (int i = 0; i < N; i++) {
		if (!nodes[i].live)
			continue;
		wisp_stats st;
		wisp_node_stats(nodes[i].n, &st);
		const wisp_peer_id *pid = wisp_node_peer_id(nodes[i].n);
		printf("# node %d [%02x%02x]\n", i, pid->bytes[pid->len - 2], pid->bytes[pid->len - 1]);
		printf("# node %d: conns %llu peers %llu msg_in %llu dup %llu delivered %llu fwd %llu ihave %llu "
		       "iwant_served %llu graft %llu prune %llu dropped %llu rpc_bad %llu events_dropped %llu\n",
		       i, (unsigned long long)st.net.open, (unsigned long long)st.gossip.peers,
		       (unsigned long long)st.gossip.msg_in, (unsigned long long)st.gossip.msg_duplicate,
		       (unsigned long long)st.gossip.msg_delivered, (unsigned long long)st.gossip.msg_forwarded,
		       (unsigned long long)st.gossip.ihave_in, (unsigned long long)st.gossip.iwant_served,
		       (unsigned long long)st.gossip.graft_in, (unsigned long long)st.gossip.prune_in,
		       (unsigned long long)st.gossip.frames_dropped, (unsigned long long)st.gossip.rpc_bad,
		       (unsigned long long)st.events_dropped);
	}
}

static bool round_done(void)
{
	for (int i = 0; i < N; i++)
		for (int k = 0; k < MSGS; k++)
			if (nodes[i].live && nodes[i].got[round_no][k] == 0 && publisher[round_no][k] != i)
				return false;
	return true;
}

/* MSGS messages from different nodes; every other live node gets each once. */
static void publish_round(void)
{
	for (int k = 0; k < MSGS; k++) {
		int from = k % N;
		if (!nodes[from].live)
			from = (from + 1) % N;
		publisher[round_no][k] = from;
		char text[32];
		snprintf(text, sizeof(text), "m%d-%d", round_no, k);
		pub_status[round_no][k] = 1; /* no answer yet */
		assert_int_equal(wisp_publish(nodes[from].n, TOPIC, text, strlen(text), 100 + (uint64_t)k), WISP_OK);
	}
	if (!wait_ms(round_done, WAIT_MS)) {
		diagnose();
		fail_msg("round %d: not every live node got every message", round_no);
	}
	/* a second copy would come with the same gossip: give it a heartbeat */
	(void)wait_ms(never, 1000);
	for (int i = 0; i < N; i++)
		for (int k = 0; nodes[i].live && k < MSGS; k++)
			if (nodes[i].got[round_no][k] > 1)
				fail_msg("node %d got message %d of round %d %d times", i, k, round_no,
					 nodes[i].got[round_no][k]);
}

static void test_mesh_with_churn(void **state)
{
	(void)state;
	for (int i = 0; i < N; i++)
		start_node(i);
	for (int i = 0; i < N; i++)
		dial_ring(i);
	pub_node = 0;
	wait_mesh();
	round_no = 0;
	publish_round();

	/* a quarter of the network leaves, as many new nodes join */
	for (int i = 1; i < N; i += 4)
		stop_node(i);
	for (int i = 1; i < N; i += 4) {
		start_node(i);
		dial_ring(i);
	}
	wait_mesh();
	round_no = 1;
	publish_round();

	for (int i = 0; i < N; i++)
		stop_node(i);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mesh_with_churn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
