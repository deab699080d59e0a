/* Two nodes in one process over loopback, through the public API: listen,
 * dial, identify both ways, ping, the diagnostic transfers, disconnect, a
 * dial that names the wrong peer, and every buffer back at stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <wisp/wisp.h>

#include "runtime/loop.h"
#include "tests/testlib.h"

#define WAIT_MS 20000

typedef struct seen {
	wisp_node *n;
	char listen[WISP_ADDR_TEXT_MAX];
	int connected, disconnected, dial_failed, closed, inbound_failed;
	wisp_peer_info conn, down, failed;
	int dial_status, down_status;
	int identify;
	char agent[256];
	bool peer_has_echo, peer_has_ping;
	char peer_listen[WISP_ADDR_TEXT_MAX];
	uint8_t peer_key[64];
	uint32_t peer_key_len;
	int pings, ping_status;
	uint64_t rtt_ns;
	int tests;
	wisp_test_result test;
	int test_status;
} seen;

static void take(seen *s, const wisp_event *ev)
{
	switch (ev->type) {
	case WISP_EVENT_LISTENING:
		snprintf(s->listen, sizeof(s->listen), "%s", ev->u.listen->addr);
		break;
	case WISP_EVENT_CONNECTED:
		s->connected++;
		s->conn = *ev->u.peer;
		break;
	case WISP_EVENT_DISCONNECTED:
		s->disconnected++;
		s->down = *ev->u.peer;
		s->down_status = ev->status;
		break;
	case WISP_EVENT_DIAL_FAILED:
		s->dial_failed++;
		s->failed = *ev->u.peer;
		s->dial_status = ev->status;
		break;
	case WISP_EVENT_INBOUND_FAILED:
		s->inbound_failed++;
		break;
	case WISP_EVENT_CLOSED:
		s->closed++;
		break;
	case WISP_EVENT_IDENTIFY: {
		const wisp_identify_info *id = ev->u.identify;
		s->identify++;
		snprintf(s->agent, sizeof(s->agent), "%s", id->agent);
		for (uint32_t i = 0; i < id->n_protocols; i++) {
			if (strcmp(id->protocols[i], "/wisp/echo/1.0.0") == 0)
				s->peer_has_echo = true;
			if (strcmp(id->protocols[i], "/ipfs/ping/1.0.0") == 0)
				s->peer_has_ping = true;
		}
		if (id->n_listen_addrs)
			snprintf(s->peer_listen, sizeof(s->peer_listen), "%s", id->listen_addrs[0]);
		memcpy(s->peer_key, id->public_key, id->public_key_len);
		s->peer_key_len = id->public_key_len;
		break;
	}
	case WISP_EVENT_PING:
		s->pings++;
		s->ping_status = ev->status;
		s->rtt_ns = ev->u.ping ? ev->u.ping->rtt_ns : 0;
		break;
	case WISP_EVENT_TEST:
		s->tests++;
		s->test_status = ev->status;
		if (ev->u.test)
			s->test = *ev->u.test;
		break;
	default:
		break;
	}
}

static void drain(seen *s)
{
	wisp_event ev;
	while (wisp_node_next_event(s->n, &ev) == 1) {
		take(s, &ev);
		wisp_event_release(s->n, &ev);
	}
}

typedef struct two {
	seen *a, *b;
	bool (*cond)(struct two *);
} two;

static bool two_cond(void *arg)
{
	two *t = arg;
	drain(t->a);
	drain(t->b);
	return t->cond(t);
}

/* Wait for cond over both nodes' events, polling both event fds. */
static bool wait_for(seen *a, seen *b, bool (*cond)(two *))
{
	two t = { a, b, cond };
	uint64_t deadline = wt_now_ns() + (uint64_t)WAIT_MS * 1000000u;
	while (!two_cond(&t)) {
		if (wt_now_ns() > deadline)
			return false;
		struct pollfd p[2] = { { .fd = wisp_node_event_fd(a->n), .events = POLLIN },
				       { .fd = wisp_node_event_fd(b->n), .events = POLLIN } };
		poll(p, 2, 50);
	}
	return true;
}

static wisp_privkey a_key;

static wisp_node *start(uint32_t workers, bool listen, uint32_t services)
{
	wisp_options o;
	wisp_options_default(&o);
	if (listen) {
		assert_int_equal(wisp_privkey_generate(&a_key), WISP_OK);
		o.identity = &a_key;
	}
	o.workers = workers;
	static const char *const addrs[] = { "/ip4/127.0.0.1/tcp/0" };
	if (listen) {
		o.listen = addrs;
		o.n_listen = 1;
	}
	o.services = services;
	wisp_node *n = NULL;
	assert_int_equal(wisp_node_new(&n, &o), WISP_OK);
	int err = wisp_node_start(n);
	if (err)
		print_message("start: %s\n", wisp_node_errmsg(n));
	assert_int_equal(err, WISP_OK);
	return n;
}

static bool a_listening(two *t)
{
	return t->a->listen[0] != 0;
}

static bool both_identified(two *t)
{
	return t->a->connected == 1 && t->b->connected == 1 && t->a->identify >= 1 && t->b->identify >= 1;
}

static bool b_pinged(two *t)
{
	return t->b->pings == 1;
}

static int tests_before;
static bool b_tested(two *t)
{
	return t->b->tests == tests_before + 1;
}

static bool a_tested(two *t)
{
	return t->a->tests == 1;
}

static bool both_down(two *t)
{
	return t->a->disconnected == 1 && t->b->disconnected == 1 && t->b->closed == 1;
}

static bool b_dial_failed(two *t)
{
	return t->b->dial_failed == 1 && t->a->inbound_failed == 1;
}

static void do_test(seen *a, seen *b, const wisp_test_spec *spec)
{
	tests_before = b->tests;
	assert_int_equal(wisp_stream_test(b->n, wisp_node_peer_id(a->n), spec, 99), WISP_OK);
	assert_true(wait_for(a, b, b_tested));
	if (b->test_status)
		print_message("test %d: %s\n", spec->kind, wisp_strerror(b->test_status));
	assert_int_equal(b->test_status, WISP_OK);
	assert_true(b->test.ok);
}

static void test_two_nodes(void **state)
{
	(void)state;
	seen a = { 0 }, b = { 0 };
	a.n = start(2, true, WISP_SERVICE_ECHO | WISP_SERVICE_PERF);
	b.n = start(1, false, 0);
	assert_true(wait_for(&a, &b, a_listening));
	char peer_a[WISP_PEER_ID_TEXT_MAX];
	assert_true(wisp_peer_id_to_base58(wisp_node_peer_id(a.n), peer_a, sizeof(peer_a)) > 0);
	assert_non_null(strstr(a.listen, peer_a));

	assert_int_equal(wisp_dial(b.n, a.listen, 7), WISP_OK);
	assert_true(wait_for(&a, &b, both_identified));
	assert_true(wisp_peer_id_equal(&b.conn.peer, wisp_node_peer_id(a.n)));
	assert_true(wisp_peer_id_equal(&a.conn.peer, wisp_node_peer_id(b.n)));
	assert_int_equal(a.conn.inbound, 1);
	assert_int_equal(b.conn.inbound, 0);
	assert_string_equal(b.agent, "wisp/" WISP_VERSION_STRING);
	assert_true(b.peer_has_echo);
	assert_true(b.peer_has_ping);
	assert_false(a.peer_has_echo); /* b serves no diagnostics */
	assert_non_null(strstr(b.peer_listen, "/ip4/127.0.0.1/tcp/"));
	/* the key b learned through identify is a's */
	uint8_t key[64];
	ssize_t klen = wisp_pubkey_encode(wisp_privkey_pubkey(&a_key), key, sizeof(key));
	assert_int_equal(b.peer_key_len, klen);
	assert_memory_equal(b.peer_key, key, (size_t)klen);

	assert_int_equal(wisp_ping(b.n, wisp_node_peer_id(a.n), 3), WISP_OK);
	assert_true(wait_for(&a, &b, b_pinged));
	assert_int_equal(b.ping_status, WISP_OK);
	assert_true(b.rtt_ns > 0);

	wisp_test_spec echo = { .kind = WISP_TEST_ECHO, .bytes = 1u << 20, .streams = 8 };
	do_test(&a, &b, &echo);
	assert_int_equal(b.test.bytes, 8u << 20);
	/* stream 0's payload digest, as js-peer's README gives it */
	char hex[65];
	wt_hex(b.test.sha256, 32, hex);
	assert_memory_equal(hex, "3e75ec67", 8);

	wisp_test_spec rtt = { .kind = WISP_TEST_RTT, .size = 1024, .count = 200 };
	do_test(&a, &b, &rtt);
	assert_true(b.test.p50_ns > 0 && b.test.p50_ns <= b.test.p99_ns);

	wisp_test_spec perf = { .kind = WISP_TEST_PERF, .upload = 1u << 20, .download = 4u << 20 };
	do_test(&a, &b, &perf);
	assert_int_equal(b.test.bytes, 4u << 20);

	/* a peer that does not serve the protocol: refused, cleanly */
	assert_int_equal(wisp_stream_test(a.n, wisp_node_peer_id(b.n), &echo, 5), WISP_OK);
	assert_true(wait_for(&a, &b, a_tested));
	assert_int_equal(a.test_status, WISP_ERR_REFUSED);
	assert_false(a.test.ok);

	assert_int_equal(wisp_disconnect(b.n, wisp_node_peer_id(a.n), 11), WISP_OK);
	assert_true(wait_for(&a, &b, both_down));

	/* a dial naming another peer id fails in the handshake */
	wisp_privkey other;
	assert_int_equal(wisp_privkey_generate(&other), WISP_OK);
	wisp_peer_id other_id;
	assert_int_equal(wisp_peer_id_from_pubkey(&other_id, wisp_privkey_pubkey(&other)), WISP_OK);
	char other_text[WISP_PEER_ID_TEXT_MAX];
	assert_true(wisp_peer_id_to_base58(&other_id, other_text, sizeof(other_text)) > 0);
	char wrong[256];
	const char *p2p = strstr(a.listen, "/p2p/");
	snprintf(wrong, sizeof(wrong), "%.*s/p2p/%s", (int)(p2p - a.listen), a.listen, other_text);
	assert_int_equal(wisp_dial(b.n, wrong, 8), WISP_OK);
	assert_true(wait_for(&a, &b, b_dial_failed));
	assert_int_equal(b.dial_status, WISP_ERR_PEER_ID);
	assert_string_equal(b.failed.stage, "handshake");

	wisp_stats st;
	wisp_node_stats(b.n, &st);
	assert_true(st.net.handshake_failures >= 1);
	assert_int_equal(wisp_node_stop(a.n), WISP_OK);
	assert_int_equal(wisp_node_stop(b.n), WISP_OK);
	wisp_node_stats(a.n, &st);
	drain(&a);
	drain(&b);
	wisp_node_stats(a.n, &st);
	assert_int_equal(st.pool_in_use, 0);
	wisp_node_stats(b.n, &st);
	assert_int_equal(st.pool_in_use, 0);
	wisp_node_free(a.n);
	wisp_node_free(b.n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_nodes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
