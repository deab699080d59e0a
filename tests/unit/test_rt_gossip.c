/* gossipsub through the public API: nodes over loopback subscribe, publish
 * and receive, under StrictSign and StrictNoSign, with application
 * validation and zstd-compressed topics, and every buffer back at stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/wisp.h>

#include "codec/compress.h"
#include "tests/testlib.h"

#define WAIT_MS 20000
#define N 4

typedef struct node {
	wisp_node *n;
	char listen[WISP_ADDR_TEXT_MAX];
	int identified;
	int connected, subscribed, published, publish_status, messages, validates;
	uint32_t pub_peers;
	char last_data[256];
	uint32_t last_len;
	uint64_t last_sum;    /* FNV-1a of the whole data */
	wisp_peer_id last_from, last_source;
	uint8_t last_id[64];
	uint32_t last_id_len;
	uint64_t pending_ref;
	wisp_verdict verdict; /* what this node answers to validation requests */
	bool validator;
} node;

static node nodes[N];

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void take(node *x, const struct wisp_event *ev)
{
	switch (ev->type) {
	case WISP_EVENT_LISTENING:
		snprintf(x->listen, sizeof(x->listen), "%s", ev->u.listen->addr);
		break;
	case WISP_EVENT_CONNECTED:
		x->connected++;
		break;
	case WISP_EVENT_IDENTIFY:
		x->identified++;
		break;
	case WISP_EVENT_SUBSCRIBED:
		if (ev->status == WISP_OK)
			x->subscribed++;
		break;
	case WISP_EVENT_PUBLISHED:
		x->published++;
		x->publish_status = ev->status;
		x->pub_peers = ev->u.published ? ev->u.published->peers : 0;
		break;
	case WISP_EVENT_MESSAGE: {
		const wisp_message_info *m = ev->u.message;
		x->messages++;
		snprintf(x->last_data, sizeof(x->last_data), "%.*s", (int)m->len, (const char *)m->data);
		x->last_len = m->len;
		x->last_sum = fnv(m->data, m->len);
		x->last_from = m->from;
		x->last_source = m->source;
		x->last_id_len = m->id_len;
		memcpy(x->last_id, m->id, m->id_len);
		break;
	}
	case WISP_EVENT_VALIDATE:
		x->validates++;
		assert_int_equal(wisp_validate(x->n, ev->u.message->ref, x->verdict), WISP_OK);
		break;
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

static bool drained(void)
{
	return true;
}

static bool wait_for(bool (*cond)(void))
{
	return wait_ms(cond, WAIT_MS);
}

static bool all_listening(void)
{
	return nodes[0].listen[0] != 0;
}

static bool all_connected(void)
{
	/* node 0 has N-1 connections, the others one each */
	if (nodes[0].connected < N - 1)
		return false;
	for (int i = 1; i < N; i++)
		if (nodes[i].connected < 1)
			return false;
	return true;
}

static int want_subscribed;
static bool all_subscribed(void)
{
	for (int i = 0; i < N; i++)
		if (nodes[i].subscribed < want_subscribed)
			return false;
	return true;
}

/* Messages each node must have: its count when the mesh was ready, plus
 * the messages published since. */
static int base[N], want_messages;
static bool others_got(void)
{
	for (int i = 0; i < N; i++)
		if (i != 1 && nodes[i].messages < base[i] + want_messages)
			return false;
	return true;
}

static void start_all(void)
{
	memset(nodes, 0, sizeof(nodes));
	for (int i = 0; i < N; i++) {
		wisp_options o;
		wt_node_options(&o, i == 0);
		assert_int_equal(wisp_node_new(&nodes[i].n, &o), WISP_OK);
		assert_int_equal(wisp_node_start(nodes[i].n), WISP_OK);
	}
	assert_true(wait_for(all_listening));
	for (int i = 1; i < N; i++)
		assert_int_equal(wisp_dial(nodes[i].n, nodes[0].listen, (uint64_t)i), WISP_OK);
	assert_true(wait_for(all_connected));
}

static void stop_all(void)
{
	for (int i = 0; i < N; i++)
		assert_int_equal(wisp_node_stop(nodes[i].n), WISP_OK);
	(void)wait_ms(drained, 0); /* events queued before the stop hold buffers */
	for (int i = 0; i < N; i++) {
		wt_node_finish(nodes[i].n);
		nodes[i].n = NULL;
	}
}

static void subscribe_all(const char *topic, const wisp_topic_opts *o)
{
	want_subscribed++;
	for (int i = 0; i < N; i++)
		assert_int_equal(wisp_subscribe(nodes[i].n, topic, o, 1), WISP_OK);
	assert_true(wait_for(all_subscribed));
}

/* Publish from node 1 until the mesh has formed (a publish before the
 * peers' subscriptions arrived reaches nobody), then expect every other node
 * to get the message exactly once. */
static void publish_and_check(const char *topic, const char *text)
{
	want_messages++;
	int before = nodes[1].published;
	assert_int_equal(wisp_publish(nodes[1].n, topic, text, strlen(text), 9), WISP_OK);
	assert_true(wait_for(others_got));
	assert_int_equal(nodes[1].published, before + 1);
	assert_int_equal(nodes[1].publish_status, WISP_OK);
	for (int i = 0; i < N; i++) {
		if (i == 1)
			continue;
		assert_int_equal(nodes[i].messages, base[i] + want_messages);
		assert_string_equal(nodes[i].last_data, text);
	}
	assert_int_equal(nodes[1].messages, 0); /* own messages are not delivered */
}

static int pub_before;
static bool pub_answered(void)
{
	return nodes[1].published > pub_before;
}

static const char *probe_text;
static bool probe_everywhere(void)
{
	for (int i = 0; i < N; i++)
		if (i != 1 && strcmp(nodes[i].last_data, probe_text) != 0)
			return false;
	return true;
}

static bool never(void)
{
	return false;
}

/* Subscriptions travel after the connections come up, and meshes form on
 * heartbeats: a message published before node 0 grafted the others reaches
 * node 0 only (gossip goes to peers outside the mesh). Publish probes until
 * one reaches every node, then count messages from there. With zstd, node 1
 * publishes each probe as a zstd frame it made itself (for a topic node 1
 * does not compress while the others do). */
static void wait_mesh_z(const char *topic, wisp_zstd *zstd)
{
	static char probe[32];
	for (int tries = 0; tries < 60; tries++) {
		snprintf(probe, sizeof(probe), "probe %d", tries);
		pub_before = nodes[1].published;
		uint8_t frame[128];
		const void *data = probe;
		size_t len = strlen(probe);
		if (zstd) {
			ssize_t z = wisp_zstd_compress(zstd, probe, len, frame, sizeof(frame));
			assert_true(z > 0);
			data = frame;
			len = (size_t)z;
		}
		assert_int_equal(wisp_publish(nodes[1].n, topic, data, len, 1), WISP_OK);
		assert_true(wait_for(pub_answered));
		probe_text = probe;
		if (nodes[1].publish_status == WISP_OK && wait_ms(probe_everywhere, 500)) {
			for (int i = 0; i < N; i++)
				base[i] = nodes[i].messages;
			want_messages = 0;
			return;
		}
		if (nodes[1].publish_status != WISP_OK)
			(void)wait_ms(never, 100); /* no subscriber known yet: let subscriptions travel */
	}
	fail_msg("the mesh never formed");
}

static void wait_mesh(const char *topic)
{
	wait_mesh_z(topic, NULL);
}

static void test_strict_sign(void **state)
{
	(void)state;
	start_all();
	want_subscribed = 0;
	subscribe_all("atlas/vote/v1", NULL);
	wait_mesh("atlas/vote/v1");
	publish_and_check("atlas/vote/v1", "vote 1");
	/* StrictSign: the author is node 1, whoever forwarded it */
	for (int i = 0; i < N; i++)
		if (i != 1)
			assert_true(wisp_peer_id_equal(&nodes[i].last_from, wisp_node_peer_id(nodes[1].n)));
	publish_and_check("atlas/vote/v1", "vote 2");
	/* the same content again is a new message under StrictSign (new seqno) */
	publish_and_check("atlas/vote/v1", "vote 2");
	stop_all();
}

static void test_no_sign_content_id(void **state)
{
	(void)state;
	start_all();
	want_subscribed = 0;
	wisp_topic_opts o;
	wisp_topic_opts_default(&o);
	o.sign = WISP_SIGN_NONE;
	o.msgid = WISP_MSGID_CONTENT;
	subscribe_all("atlas/tx/v1", &o);
	wait_mesh("atlas/tx/v1");
	publish_and_check("atlas/tx/v1", "tx 1");
	for (int i = 0; i < N; i++)
		if (i != 1)
			assert_int_equal(nodes[i].last_from.len, 0); /* no author under StrictNoSign */
	/* the same content again is the same message: refused as a duplicate */
	pub_before = nodes[1].published;
	assert_int_equal(wisp_publish(nodes[1].n, "atlas/tx/v1", "tx 1", 4, 9), WISP_OK);
	assert_true(wait_for(pub_answered));
	assert_int_equal(nodes[1].publish_status, WISP_ERR_EXISTS);
	stop_all();
}

static void test_validation(void **state)
{
	(void)state;
	start_all();
	want_subscribed = 0;
	wisp_topic_opts o;
	wisp_topic_opts_default(&o);
	o.validate = 1;
	for (int i = 0; i < N; i++)
		nodes[i].verdict = WISP_VERDICT_ACCEPT;
	subscribe_all("atlas/proposal/v1", &o);
	wait_mesh("atlas/proposal/v1");
	publish_and_check("atlas/proposal/v1", "proposal 1");
	for (int i = 0; i < N; i++)
		if (i != 1)
			assert_true(nodes[i].validates >= 1);
	stop_all();
}

/* Compressible data: lines of a ledger-like text, some digits varying. */
static void fill_text(uint8_t *p, size_t n, unsigned seed)
{
	size_t off = 0;
	for (unsigned i = 0; off < n; i++) {
		char line[96];
		int k = snprintf(line, sizeof(line), "tx %08u from atlas1q%05u to atlas1q%05u amount %u nonce %u\n",
				 i + seed, (i * 7919u) % 100000, (i * 104729u) % 100000, (i * 31u) % 5000, i);
		size_t take = (size_t)k < n - off ? (size_t)k : n - off;
		memcpy(p + off, line, take);
		off += take;
	}
}

static uint64_t bytes_out(int i)
{
	wisp_stats st;
	wisp_node_stats(nodes[i].n, &st);
	return st.net.bytes_out;
}

static int stat_node;
static uint64_t stat_want;
static bool decompress_failed_reached(void)
{
	wisp_stats st;
	wisp_node_stats(nodes[stat_node].n, &st);
	return st.gossip.msg_decompress_failed >= stat_want;
}

/* A compressed topic: 200 KB of text cross the wire in far fewer bytes and
 * arrive whole; then, on a topic node 1 does not compress while the others
 * do, what node 1 sends as data is taken as a zstd frame by the hub: plain
 * bytes and a frame declaring more than the topic's max_size are rejected
 * (counted, not delivered, not forwarded), while a valid frame gets through. */
static void test_zstd_topic(void **state)
{
	(void)state;
	start_all();
	want_subscribed = 0;
	wisp_topic_opts o;
	wisp_topic_opts_default(&o);
	o.sign = WISP_SIGN_NONE;
	o.compress = WISP_COMPRESS_ZSTD;
	o.max_size = 256 * 1024;
	subscribe_all("atlas/tx/v1", &o);
	wait_mesh("atlas/tx/v1");

	enum { BIG = 200 * 1000 };
	static uint8_t big[BIG];
	fill_text(big, BIG, 1);
	uint64_t out0 = bytes_out(1);
	want_messages++;
	assert_int_equal(wisp_publish(nodes[1].n, "atlas/tx/v1", big, BIG, 9), WISP_OK);
	assert_true(wait_for(others_got));
	assert_int_equal(nodes[1].publish_status, WISP_OK);
	for (int i = 0; i < N; i++) {
		if (i == 1)
			continue;
		assert_int_equal(nodes[i].last_len, BIG);
		assert_true(nodes[i].last_sum == fnv(big, BIG));
	}
	/* node 1 has one connection (to the hub): it sent the message once,
	 * compressed to well under a fifth of its size */
	uint64_t sent = bytes_out(1) - out0;
	printf("# %u bytes of text went out as %llu bytes\n", (unsigned)BIG, (unsigned long long)sent);
	assert_true(sent < BIG / 5);
	/* over max_size before compression: refused at publish */
	static uint8_t huge[300 * 1024];
	fill_text(huge, sizeof(huge), 2);
	pub_before = nodes[1].published;
	assert_int_equal(wisp_publish(nodes[1].n, "atlas/tx/v1", huge, sizeof(huge), 9), WISP_OK);
	assert_true(wait_for(pub_answered));
	assert_int_equal(nodes[1].publish_status, WISP_ERR_TOO_LARGE);

	/* node 1 publishes raw bytes on a topic the others decompress */
	wisp_topic_opts raw = o;
	raw.compress = WISP_COMPRESS_NONE;
	want_subscribed++;
	for (int i = 0; i < N; i++)
		assert_int_equal(wisp_subscribe(nodes[i].n, "atlas/raw", i == 1 ? &raw : &o, 1), WISP_OK);
	assert_true(wait_for(all_subscribed));
	wisp_zstd *z = wisp_zstd_new(NULL, 0);
	assert_non_null(z);
	wait_mesh_z("atlas/raw", z);
	wisp_stats before;
	wisp_node_stats(nodes[0].n, &before);
	int msgs0 = nodes[0].messages;

	const char *plain = "not a zstd frame at all";
	assert_int_equal(wisp_publish(nodes[1].n, "atlas/raw", plain, strlen(plain), 9), WISP_OK);
	stat_node = 0;
	stat_want = before.gossip.msg_decompress_failed + 1;
	assert_true(wait_for(decompress_failed_reached));

	/* a bomb: 2 MiB of zeros in a few hundred bytes, over the 256 KiB max */
	size_t bomb_n = 2u << 20;
	uint8_t *zeros = calloc(1, bomb_n);
	uint8_t bomb[4096];
	assert_non_null(zeros);
	ssize_t bl = wisp_zstd_compress(z, zeros, bomb_n, bomb, sizeof(bomb));
	free(zeros);
	assert_true(bl > 0);
	assert_int_equal(wisp_publish(nodes[1].n, "atlas/raw", bomb, (size_t)bl, 9), WISP_OK);
	stat_want++;
	assert_true(wait_for(decompress_failed_reached));

	/* a good frame after them still arrives everywhere */
	const char *good = "a good frame after the bad ones";
	uint8_t frame[256];
	ssize_t gl = wisp_zstd_compress(z, good, strlen(good), frame, sizeof(frame));
	assert_true(gl > 0);
	for (int i = 0; i < N; i++)
		base[i] = nodes[i].messages;
	want_messages = 1;
	assert_int_equal(wisp_publish(nodes[1].n, "atlas/raw", frame, (size_t)gl, 9), WISP_OK);
	assert_true(wait_for(others_got));
	assert_string_equal(nodes[0].last_data, good);
	/* the bad two reached no one: the hub delivered only the good one and
	 * rejected the others (counted as rejections) */
	wisp_stats after;
	wisp_node_stats(nodes[0].n, &after);
	assert_int_equal(nodes[0].messages, msgs0 + 1);
	assert_int_equal(after.gossip.msg_decompress_failed, before.gossip.msg_decompress_failed + 2);
	assert_true(after.gossip.msg_rejected >= before.gossip.msg_rejected + 2);
	for (int i = 2; i < N; i++) {
		assert_int_equal(nodes[i].messages, base[i] + 1);
		assert_string_equal(nodes[i].last_data, good);
	}
	wisp_zstd_free(z);
	stop_all();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strict_sign),
		cmocka_unit_test(test_no_sign_content_id),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_zstd_topic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
