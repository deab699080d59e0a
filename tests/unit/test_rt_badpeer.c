/* Peers that misbehave on the wire, against a running wisp node.
 *
 * A node runs in-process on 127.0.0.1:0 with short timeouts; an evil peer on
 * the test thread (tests/evilpeer.h: plain sockets plus wisp's own sans-I/O
 * multistream, Noise and yamux pieces) sends exactly the bytes each case
 * needs. Every case asserts
 *   - the typed error the node reports (INBOUND_FAILED / DISCONNECTED /
 *     DIAL_FAILED status) and the stage it failed in,
 *   - the counters that moved (wisp_node_stats),
 *   - that our socket sees the connection closed within a deadline,
 *   - and, run several rounds, that pooled buffers and open connections
 *     come back to their baseline after each round (no growth).
 * Waits are on the event fd or the socket, with deadlines; nothing sleeps
 * to synchronize. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wisp/wisp.h>

#include "net/mss.h"
#include "net/noise.h"
#include "net/yamux.h"
#include "runtime/buf.h"
#include "runtime/node.h"
#include "tests/evilpeer.h"
#include "tests/testlib.h"

#define NODE_STREAMS 2 /* the node opens identify and gossipsub on every connection */
#define WAIT_MS 10000       /* any single wait; the cases take far less */
#define HS_TIMEOUT_MS 1000  /* the node's handshake timeout */
#define STALL_MS 1000       /* the node's stall timeout */
#define BUDGET (256u << 10) /* the node's conn_send_budget */
#define MAX_STREAMS 16      /* the node's max_streams_per_conn */
#define MAX_REFUSED 32      /* yamux's default max_refused */
#define ROUNDS 3            /* each case runs this often: memory must not grow */

/* ---- the node and its events ------------------------------------------ */

typedef struct failure {
	wisp_event_type type;
	int status;
	char stage[16];
	char addr[WISP_ADDR_TEXT_MAX];
	uint64_t at_ns; /* when the test thread took it */
	uint64_t trial_ms; /* after the start of its trial */
} failure;

#define MAX_FAILS 512

typedef struct fx {
	wisp_node *n;
	wisp_privkey key;
	uint16_t port;
	char listen[WISP_ADDR_TEXT_MAX];
	unsigned connected;
	unsigned n_fail;
	failure fails[MAX_FAILS];
	wisp_stats base; /* after start, events drained */
} fx;

static void take(fx *f, const wisp_event *ev)
{
	switch (ev->type) {
	case WISP_EVENT_LISTENING:
		snprintf(f->listen, sizeof(f->listen), "%s", ev->u.listen->addr);
		break;
	case WISP_EVENT_CONNECTED:
		f->connected++;
		break;
	case WISP_EVENT_INBOUND_FAILED:
	case WISP_EVENT_DISCONNECTED:
	case WISP_EVENT_DIAL_FAILED:
		if (f->n_fail < MAX_FAILS) {
			failure *x = &f->fails[f->n_fail];
			x->type = ev->type;
			x->status = ev->status;
			snprintf(x->stage, sizeof(x->stage), "%s", ev->u.peer ? ev->u.peer->stage : "");
			snprintf(x->addr, sizeof(x->addr), "%s", ev->u.peer ? ev->u.peer->addr : "");
			x->at_ns = wt_now_ns();
		}
		f->n_fail++;
		break;
	default:
		break;
	}
}

static void drain(fx *f)
{
	wisp_event ev;
	while (wisp_node_next_event(f->n, &ev) == 1) {
		take(f, &ev);
		wisp_event_release(f->n, &ev);
	}
}

static bool has_listen(void *arg)
{
	fx *f = arg;
	drain(f);
	return f->listen[0] != 0;
}

static uint64_t pool_bytes(const fx *f)
{
	wisp_pool_stats ps;
	wisp_pool_stats_get(f->n->pool, &ps);
	return ps.bytes;
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(wisp_privkey_generate(&f->key), WISP_OK);
	wisp_options o;
	wisp_options_default(&o);
	static const char *const addrs[] = { "/ip4/127.0.0.1/tcp/0" };
	o.workers = 2;
	/* Not pinned: on a shared machine a worker pinned to a busy CPU can
	 * lose a second, and the handshake timeout here is one second. */
	o.pin_workers = 0;
	o.identity = &f->key;
	o.listen = addrs;
	o.n_listen = 1;
	o.handshake_timeout_ms = HS_TIMEOUT_MS;
	o.stall_timeout_ms = STALL_MS;
	o.conn_send_budget = BUDGET;
	o.max_streams_per_conn = MAX_STREAMS;
	o.services = WISP_SERVICE_PERF | WISP_SERVICE_ECHO;
	assert_int_equal(wisp_node_new(&f->n, &o), WISP_OK);
	int err = wisp_node_start(f->n);
	if (err)
		print_message("start: %s\n", wisp_node_errmsg(f->n));
	assert_int_equal(err, WISP_OK);
	assert_true(wt_wait_until(has_listen, f, wisp_node_event_fd(f->n), WAIT_MS));
	const char *tcp = strstr(f->listen, "/tcp/");
	assert_non_null(tcp);
	f->port = (uint16_t)atoi(tcp + 5);
	assert_true(f->port > 0);
	wisp_node_stats(f->n, &f->base);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	assert_int_equal(wisp_node_stop(f->n), WISP_OK);
	drain(f);
	wisp_stats st;
	wisp_node_stats(f->n, &st);
	assert_int_equal(st.pool_in_use, 0);
	assert_int_equal(st.net.open, 0);
	wisp_node_free(f->n);
	free(f);
	return 0;
}

/* ---- trials ------------------------------------------------------------- */

/* One misbehaving connection: the counters before it, and the failures
 * reported so far. */
typedef struct trial {
	fx *f;
	wisp_stats before;
	unsigned fails;
	uint64_t t0;
} trial;

static void trial_begin(fx *f, trial *r)
{
	drain(f);
	r->f = f;
	r->fails = f->n_fail;
	r->t0 = wt_now_ns();
	wisp_node_stats(f->n, &r->before);
}

typedef struct fail_wait {
	fx *f;
	unsigned want;
} fail_wait;

static bool fails_reached(void *arg)
{
	fail_wait *w = arg;
	drain(w->f);
	return w->f->n_fail >= w->want;
}

/* Wait for the trial's i-th failure event (0-based) and return it. */
static const failure *trial_failure(trial *r, unsigned i)
{
	fail_wait w = { r->f, r->fails + i + 1 };
	bool ok = wt_wait_until(fails_reached, &w, wisp_node_event_fd(r->f->n), WAIT_MS);
	if (!ok)
		print_message("no failure event within %u ms\n", WAIT_MS);
	assert_true(ok);
	assert_true(r->fails + i < MAX_FAILS);
	failure *x = &r->f->fails[r->fails + i];
	x->trial_ms = (x->at_ns - r->t0) / 1000000u;
	return x;
}

static bool at_baseline(void *arg)
{
	fx *f = arg;
	drain(f);
	wisp_stats st;
	wisp_node_stats(f->n, &st);
	return st.net.open == f->base.net.open && st.pool_in_use == f->base.pool_in_use;
}

/* After every trial: no connection left open and every pooled buffer back. */
static void trial_end(trial *r)
{
	fx *f = r->f;
	/* Buffers come back after the last event, with nothing to wake us:
	 * re-check every millisecond (wt_wait_until without an fd). */
	bool ok = wt_wait_until(at_baseline, f, -1, WAIT_MS);
	if (!ok) {
		wisp_stats st;
		wisp_node_stats(f->n, &st);
		print_message("not back to baseline: open %llu (was %llu), pool_in_use %llu (was %llu)\n",
			      (unsigned long long)st.net.open, (unsigned long long)f->base.net.open,
			      (unsigned long long)st.pool_in_use, (unsigned long long)f->base.pool_in_use);
	}
	assert_true(ok);
}

/* The counters a trial moved. */
#define MOVED(r, st, field) ((st).net.field - (r)->before.net.field)

static void check_failure(const failure *x, wisp_event_type type, int status, const char *stage)
{
	if (x->type != type || x->status != status || strcmp(x->stage, stage) != 0)
		print_message("got event %d status %s stage %s after %llu ms; want event %d status %s stage %s\n",
			      x->type, wisp_errname(x->status), x->stage, (unsigned long long)x->trial_ms, type,
			      wisp_errname(status), stage);
	assert_int_equal(x->type, type);
	assert_int_equal(x->status, status);
	assert_string_equal(x->stage, stage);
}

/* A handshake that failed for the peer's fault: one failure, one peer
 * error, one reset, no timeout. */
static void check_peer_handshake_failure(trial *r)
{
	wisp_stats st;
	wisp_node_stats(r->f->n, &st);
	assert_int_equal(MOVED(r, st, handshake_failures), 1);
	assert_int_equal(MOVED(r, st, handshake_timeouts), 0);
	assert_int_equal(MOVED(r, st, peer_errors), 1);
	assert_int_equal(MOVED(r, st, upgraded), 0);
	assert_int_equal(MOVED(r, st, resets), 1);
}

/* A session that failed for the peer's fault. */
static void check_peer_session_failure(trial *r)
{
	wisp_stats st;
	wisp_node_stats(r->f->n, &st);
	assert_int_equal(MOVED(r, st, upgraded), 1);
	assert_int_equal(MOVED(r, st, handshake_failures), 0);
	assert_int_equal(MOVED(r, st, peer_errors), 1);
	assert_int_equal(MOVED(r, st, resets), 1);
}

static void connect_peer(fx *f, ev_peer *p, int rcvbuf)
{
	int err = ev_connect(p, f->port, rcvbuf);
	if (err)
		print_message("connect: %s\n", strerror(-err));
	assert_int_equal(err, 0);
}

static void expect_closed(ev_peer *p)
{
	bool closed = ev_wait_closed(p, WAIT_MS);
	if (!closed)
		print_message("the node did not close the connection within %u ms\n", WAIT_MS);
	assert_true(closed);
}

/* An inbound connection that sends raw bytes and must be failed with
 * status in stage (status 0: any error of the peer class). */
static void raw_case(fx *f, const void *bytes, size_t n, int status, const char *stage)
{
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer *p = calloc(1, sizeof(*p));
		assert_non_null(p);
		connect_peer(f, p, 0);
		(void)ev_send(p, bytes, n, WAIT_MS); /* the node may close while we send */
		expect_closed(p);
		const failure *x = trial_failure(&r, 0);
		if (status) {
			check_failure(x, WISP_EVENT_INBOUND_FAILED, status, stage);
		} else {
			assert_int_equal(x->type, WISP_EVENT_INBOUND_FAILED);
			assert_true(wisp_err_is_peer(x->status));
			assert_string_equal(x->stage, stage);
		}
		check_peer_handshake_failure(&r);
		ev_close(p);
		free(p);
		trial_end(&r);
	}
}

static void up_to_msg3(fx *f, ev_peer *p);

/* ---- 1. garbage instead of multistream -------------------------------- */

static void test_garbage_multistream(void **state)
{
	fx *f = *state;
	/* An HTTP request: 'G' reads as a length of 71, and the "message"
	 * holds CR bytes and no final newline. */
	const char *http = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\n"
			   "Accept: */*\r\nConnection: keep-alive\r\n\r\n";
	raw_case(f, http, strlen(http), WISP_ERR_MALFORMED, "security");

	/* A length prefix over 1024: refused from the prefix alone. */
	const uint8_t big[] = { 0x81, 0x08 }; /* 1025 */
	raw_case(f, big, sizeof(big), WISP_ERR_TOO_LARGE, "security");
	const uint8_t huge[] = { 0xff, 0xff, 0xff, 0x0f };
	raw_case(f, huge, sizeof(huge), WISP_ERR_TOO_LARGE, "security");

	/* A varint that never ends. */
	const uint8_t varint[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80 };
	raw_case(f, varint, sizeof(varint), WISP_ERR_VARINT, "security");

	/* A message without its newline; an empty message. */
	const uint8_t nonl[] = { 5, 'h', 'e', 'l', 'l', 'o' };
	raw_case(f, nonl, sizeof(nonl), WISP_ERR_MALFORMED, "security");
	const uint8_t empty[] = { 0 };
	raw_case(f, empty, sizeof(empty), WISP_ERR_MALFORMED, "security");

	/* Another multistream version. */
	uint8_t v2[64];
	size_t n = ev_mss_msg(v2, sizeof(v2), "/multistream/2.0.0");
	raw_case(f, v2, n, WISP_ERR_PROTOCOL, "security");

	/* Random bytes: which rule they break depends on the bytes, but
	 * 2 KiB always hold a whole first message (or an over-long prefix). */
	wt_rng_seed("garbage");
	uint8_t rnd[2048];
	for (size_t i = 0; i < sizeof(rnd); i++)
		rnd[i] = (uint8_t)wt_rng();
	raw_case(f, rnd, sizeof(rnd), 0, "security");

	/* The same inside the secure channel: Noise without the inline muxer,
	 * and then garbage where multistream-select for the muxer belongs. */
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer p;
		up_to_msg3(f, &p);
		uint8_t buf[1024];
		ssize_t m = ev_noise_msg3(&p, EV_SIG_GOOD, false, buf, sizeof(buf));
		assert_true(m > 0);
		assert_int_equal(ev_send(&p, buf, (size_t)m, WAIT_MS), 0);
		p.transport = true;
		assert_int_equal(ev_send_sealed(&p, http, strlen(http), WAIT_MS), 0);
		expect_closed(&p);
		check_failure(trial_failure(&r, 0), WISP_EVENT_INBOUND_FAILED, WISP_ERR_MALFORMED, "muxer");
		check_peer_handshake_failure(&r);
		ev_close(&p);
		trial_end(&r);
	}
}

/* ---- 2. an unknown security protocol ----------------------------------- */

static void test_unknown_security(void **state)
{
	fx *f = *state;
	uint8_t buf[256];
	char text[WISP_MSS_MAX_MSG];

	/* The peer hears "na" and hangs up. */
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer p;
		connect_peer(f, &p, 0);
		size_t n = ev_mss_msg(buf, sizeof(buf), WISP_MSS_PROTOCOL);
		n += ev_mss_msg(buf + n, sizeof(buf) - n, "/tls/1.0.0");
		assert_int_equal(ev_send(&p, buf, n, WAIT_MS), 0);
		assert_int_equal(ev_mss_read(&p, text, sizeof(text), WAIT_MS), 0);
		assert_string_equal(text, WISP_MSS_PROTOCOL);
		assert_int_equal(ev_mss_read(&p, text, sizeof(text), WAIT_MS), 0);
		assert_string_equal(text, "na");
		assert_int_equal(shutdown(p.fd, SHUT_WR), 0);
		expect_closed(&p);
		const failure *x = trial_failure(&r, 0);
		/* The peer left: not a protocol violation, but the handshake
		 * failed and is counted. */
		check_failure(x, WISP_EVENT_INBOUND_FAILED, WISP_ERR_RESET, "security");
		wisp_stats st;
		wisp_node_stats(f->n, &st);
		assert_int_equal(MOVED(&r, st, handshake_failures), 1);
		assert_int_equal(MOVED(&r, st, peer_errors), 0);
		ev_close(&p);
		trial_end(&r);
	}

	/* The peer keeps proposing: 16 answers, then the connection goes. */
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer p;
		connect_peer(f, &p, 0);
		size_t n = ev_mss_msg(buf, sizeof(buf), WISP_MSS_PROTOCOL);
		assert_int_equal(ev_send(&p, buf, n, WAIT_MS), 0);
		assert_int_equal(ev_mss_read(&p, text, sizeof(text), WAIT_MS), 0);
		assert_string_equal(text, WISP_MSS_PROTOCOL);
		static const char *const tries[] = { "/tls/1.0.0", "/secio/1.0.0", "/plaintext/2.0.0", "ls" };
		for (unsigned k = 0; k < WISP_MSS_MAX_PROPOSALS; k++) {
			n = ev_mss_msg(buf, sizeof(buf), tries[k % 4]);
			assert_int_equal(ev_send(&p, buf, n, WAIT_MS), 0);
			assert_int_equal(ev_mss_read(&p, text, sizeof(text), WAIT_MS), 0);
			assert_string_equal(text, "na");
		}
		n = ev_mss_msg(buf, sizeof(buf), "/tls/1.0.0");
		(void)ev_send(&p, buf, n, WAIT_MS);
		expect_closed(&p);
		check_failure(trial_failure(&r, 0), WISP_EVENT_INBOUND_FAILED, WISP_ERR_PROTOCOL, "security");
		check_peer_handshake_failure(&r);
		ev_close(&p);
		trial_end(&r);
	}
}

/* ---- 3. bad identity signature in message 3 ----------------------------- */

/* /noise, message 1, message 2: ready for message 3. */
static void up_to_msg3(fx *f, ev_peer *p)
{
	uint8_t buf[128];
	connect_peer(f, p, 0);
	assert_int_equal(ev_mss_dial(p, "/noise", WAIT_MS), 0);
	assert_int_equal(ev_noise_start(p, true), 0);
	ssize_t n = ev_noise_msg1(p, buf, sizeof(buf));
	assert_int_equal(n, 34);
	assert_int_equal(ev_send(p, buf, (size_t)n, WAIT_MS), 0);
	assert_int_equal(ev_noise_read_msg2(p, WAIT_MS), 0);
	/* the node's own payload is well-formed: it carries its key */
	assert_true(p->remote_payload_len > WISP_PUBKEY_PB_LEN);
}

static void bad_msg3_case(fx *f, ev_sig sig, int status)
{
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer p;
		up_to_msg3(f, &p);
		uint8_t buf[1024];
		ssize_t n = ev_noise_msg3(&p, sig, true, buf, sizeof(buf));
		assert_true(n > 0);
		assert_int_equal(ev_send(&p, buf, (size_t)n, WAIT_MS), 0);
		expect_closed(&p);
		check_failure(trial_failure(&r, 0), WISP_EVENT_INBOUND_FAILED, status, "handshake");
		check_peer_handshake_failure(&r);
		ev_close(&p);
		trial_end(&r);
	}
}

static void test_bad_signature(void **state)
{
	fx *f = *state;
	wt_rng_seed("bad signature");
	bad_msg3_case(f, EV_SIG_WRONG_KEY, WISP_ERR_BAD_SIGNATURE);
	bad_msg3_case(f, EV_SIG_WRONG_STATIC, WISP_ERR_BAD_SIGNATURE);
	bad_msg3_case(f, EV_SIG_GARBAGE, WISP_ERR_BAD_SIGNATURE);
	bad_msg3_case(f, EV_SIG_NONE, WISP_ERR_HANDSHAKE);
}

/* ---- 4. the node dials a listener that is not the peer it named -------- */

static void test_wrong_peer_id(void **state)
{
	fx *f = *state;
	uint16_t port;
	int lfd = ev_listen(&port);
	assert_true(lfd >= 0);
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		/* X: the peer the node asks for; the listener holds key Y. */
		wisp_privkey x;
		wisp_peer_id x_id;
		char x_text[WISP_PEER_ID_TEXT_MAX], addr[256];
		assert_int_equal(wisp_privkey_generate(&x), WISP_OK);
		assert_int_equal(wisp_peer_id_from_pubkey(&x_id, wisp_privkey_pubkey(&x)), WISP_OK);
		assert_true(wisp_peer_id_to_base58(&x_id, x_text, sizeof(x_text)) > 0);
		snprintf(addr, sizeof(addr), "/ip4/127.0.0.1/tcp/%u/p2p/%s", port, x_text);
		assert_int_equal(wisp_dial(f->n, addr, 1000 + (uint64_t)i), WISP_OK);

		ev_peer p;
		assert_int_equal(ev_accept(&p, lfd, NULL, WAIT_MS), 0);
		assert_int_equal(ev_mss_listen_noise(&p, WAIT_MS), 0);
		/* An honest Noise responder with key Y: the node learns Y in
		 * message 2 and must refuse it. */
		static const char *const muxers[] = { "/yamux/1.0.0" };
		wisp_noise_config nc = { .identity = &p.key, .muxers = muxers, .n_muxers = 1 };
		wisp_noise *nz = NULL;
		assert_int_equal(wisp_noise_new(&nz, wisp_mem_default(), false, &nc), WISP_OK);
		assert_int_equal(ev_fill(&p, 2 + 32, WAIT_MS), 0);
		ssize_t used = wisp_noise_handshake_read(nz, p.rx, p.rx_len);
		assert_int_equal(used, 34);
		ev_consume(&p, (size_t)used);
		uint8_t msg2[1024];
		ssize_t n = wisp_noise_handshake_write(nz, msg2, sizeof(msg2));
		assert_true(n > 0);
		assert_int_equal(ev_send(&p, msg2, (size_t)n, WAIT_MS), 0);
		expect_closed(&p);
		wisp_noise_free(nz);

		const failure *fl = trial_failure(&r, 0);
		check_failure(fl, WISP_EVENT_DIAL_FAILED, WISP_ERR_PEER_ID, "handshake");
		wisp_stats st;
		wisp_node_stats(f->n, &st);
		assert_int_equal(MOVED(&r, st, conns_out), 1);
		assert_int_equal(MOVED(&r, st, handshake_failures), 1);
		assert_int_equal(MOVED(&r, st, peer_errors), 1);
		assert_int_equal(MOVED(&r, st, upgraded), 0);
		ev_close(&p);
		trial_end(&r);
	}
	close(lfd);
}

/* ---- 5. truncated handshake messages ----------------------------------- */

/* Connect and agree on /noise. */
static void up_to_msg1(fx *f, ev_peer *p)
{
	connect_peer(f, p, 0);
	assert_int_equal(ev_mss_dial(p, "/noise", WAIT_MS), 0);
	assert_int_equal(ev_noise_start(p, true), 0);
}

/* Bytes after /noise, then (fin) a half-close. */
static void msg1_case(fx *f, const uint8_t *bytes, size_t n, bool fin, int status)
{
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer p;
		up_to_msg1(f, &p);
		(void)ev_send(&p, bytes, n, WAIT_MS);
		if (fin)
			(void)shutdown(p.fd, SHUT_WR);
		expect_closed(&p);
		check_failure(trial_failure(&r, 0), WISP_EVENT_INBOUND_FAILED, status, "handshake");
		check_peer_handshake_failure(&r);
		ev_close(&p);
		trial_end(&r);
	}
}

/* Message 3 cut to keep of its bytes (frame length intact); then FIN or
 * nothing at all. */
static void cut_msg3_case(fx *f, size_t keep, bool fin, int status)
{
	trial r;
	trial_begin(f, &r);
	ev_peer p;
	up_to_msg3(f, &p);
	uint8_t buf[1024];
	ssize_t n = ev_noise_msg3(&p, EV_SIG_GOOD, true, buf, sizeof(buf));
	assert_true(n > (ssize_t)keep);
	uint64_t t0 = wt_now_ns();
	assert_int_equal(ev_send(&p, buf, keep, WAIT_MS), 0);
	if (fin)
		assert_int_equal(shutdown(p.fd, SHUT_WR), 0);
	expect_closed(&p);
	const failure *x = trial_failure(&r, 0);
	check_failure(x, WISP_EVENT_INBOUND_FAILED, status, "handshake");
	wisp_stats st;
	wisp_node_stats(f->n, &st);
	assert_int_equal(MOVED(&r, st, handshake_failures), 1);
	if (status == WISP_ERR_TIMEOUT) {
		assert_int_equal(MOVED(&r, st, handshake_timeouts), 1);
		assert_int_equal(MOVED(&r, st, peer_errors), 0);
		/* the handshake timeout runs from the node's accept, which
		 * came before t0 */
		assert_true(x->at_ns - t0 >= (uint64_t)(HS_TIMEOUT_MS / 2) * 1000000u);
	} else {
		assert_int_equal(MOVED(&r, st, handshake_timeouts), 0);
		assert_int_equal(MOVED(&r, st, peer_errors), 1);
	}
	ev_close(&p);
	trial_end(&r);
}

static void test_truncated_handshake(void **state)
{
	fx *f = *state;
	uint8_t m[64] = { 0 };

	/* Message 1 shorter than its 32-byte ephemeral key. */
	m[0] = 0;
	m[1] = 20;
	msg1_case(f, m, 2 + 20, false, WISP_ERR_TRUNCATED);
	m[1] = 0;
	msg1_case(f, m, 2, false, WISP_ERR_TRUNCATED);
	/* Message 1 whose frame says 32 bytes; 10 come, then FIN. */
	m[1] = 32;
	msg1_case(f, m, 2 + 10, true, WISP_ERR_TRUNCATED);
	/* A whole message 1 whose key is a low-order point (zero): the node
	 * cannot answer it. */
	m[1] = 32;
	memset(m + 2, 0, 32);
	msg1_case(f, m, 2 + 32, false, WISP_ERR_HANDSHAKE);

	/* Message 1 and then a flood, before the node could answer: the
	 * initiator has nothing it may send until message 2 arrives. */
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer p;
		up_to_msg1(f, &p);
		size_t total = 34 + (256u << 10);
		uint8_t *b = malloc(total);
		assert_non_null(b);
		assert_int_equal(ev_noise_msg1(&p, b, 34), 34);
		memset(b + 34, 0xff, total - 34);
		(void)ev_send(&p, b, total, WAIT_MS);
		free(b);
		expect_closed(&p);
		const failure *x = trial_failure(&r, 0);
		print_message("# flood after msg1: %s\n", wisp_errname(x->status));
		check_failure(x, WISP_EVENT_INBOUND_FAILED, WISP_ERR_HANDSHAKE, "handshake");
		check_peer_handshake_failure(&r);
		ev_close(&p);
		trial_end(&r);
	}

	/* Message 3 with a frame shorter than its key and tags (64 bytes). */
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer p;
		up_to_msg3(f, &p);
		uint8_t short3[2 + 40] = { 0, 40 };
		assert_int_equal(ev_send(&p, short3, sizeof(short3), WAIT_MS), 0);
		expect_closed(&p);
		check_failure(trial_failure(&r, 0), WISP_EVENT_INBOUND_FAILED, WISP_ERR_TRUNCATED, "handshake");
		check_peer_handshake_failure(&r);
		ev_close(&p);
		trial_end(&r);
	}
	/* Message 3 cut short inside its frame, then FIN: the input ended
	 * inside a frame. */
	for (int i = 0; i < ROUNDS; i++)
		cut_msg3_case(f, 50, true, WISP_ERR_TRUNCATED);
	/* Cut short and then nothing: the handshake timeout. */
	for (int i = 0; i < 2; i++)
		cut_msg3_case(f, 50, false, WISP_ERR_TIMEOUT);
}

/* ---- 6. bad Noise frames ------------------------------------------------ */

/* A handshake, then raw bytes where transport frames belong. */
static void transport_case(fx *f, const uint8_t *bytes, size_t n, int status)
{
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer p;
		connect_peer(f, &p, 0);
		assert_int_equal(ev_handshake(&p, WAIT_MS), 0);
		(void)ev_send(&p, bytes, n, WAIT_MS);
		expect_closed(&p);
		check_failure(trial_failure(&r, 0), WISP_EVENT_DISCONNECTED, status, "session");
		check_peer_session_failure(&r);
		ev_close(&p);
		trial_end(&r);
	}
}

static void test_bad_noise_frames(void **state)
{
	fx *f = *state;
	wt_rng_seed("noise frames");
	/* The largest frame there is, whose tag does not verify. */
	static uint8_t big[2 + 65535];
	big[0] = 0xff;
	big[1] = 0xff;
	for (size_t i = 2; i < sizeof(big); i++)
		big[i] = (uint8_t)wt_rng();
	transport_case(f, big, sizeof(big), WISP_ERR_DECRYPT);
	/* A frame shorter than the 16-byte tag. */
	uint8_t tiny[2 + 10] = { 0, 10 };
	transport_case(f, tiny, sizeof(tiny), WISP_ERR_TRUNCATED);
	uint8_t zero[2] = { 0, 0 };
	transport_case(f, zero, sizeof(zero), WISP_ERR_TRUNCATED);

	/* Message 1 over its bound (32 bytes: the initiator sends no
	 * payload): refused from the length alone. */
	uint8_t m1[2 + 33] = { 0, 33 };
	msg1_case(f, m1, sizeof(m1), false, WISP_ERR_TOO_LARGE);
	uint8_t m1max[2] = { 0xff, 0xff };
	msg1_case(f, m1max, sizeof(m1max), false, WISP_ERR_TOO_LARGE);
}

/* ---- 7. yamux window violation ----------------------------------------- */

static void test_yamux_window(void **state)
{
	fx *f = *state;
	/* One data frame longer than the 256 KiB window on a fresh stream. */
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer p;
		connect_peer(f, &p, 0);
		assert_int_equal(ev_handshake(&p, WAIT_MS), 0);
		size_t total = 24 + WISP_YAMUX_INITIAL_WINDOW + 1;
		uint8_t *b = calloc(1, total);
		assert_non_null(b);
		ev_ymx(b, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_SYN, 1, 0);
		ev_ymx(b + 12, WISP_YAMUX_DATA, 0, 1, WISP_YAMUX_INITIAL_WINDOW + 1);
		(void)ev_send_sealed(&p, b, total, WAIT_MS);
		free(b);
		expect_closed(&p);
		check_failure(trial_failure(&r, 0), WISP_EVENT_DISCONNECTED, WISP_ERR_FLOW_CONTROL, "session");
		check_peer_session_failure(&r);
		ev_close(&p);
		trial_end(&r);
	}

	/* An echo stream the peer floods without reading the echoes: the node
	 * stops crediting its window once 1 MiB of echoes wait, and the peer,
	 * which ignores window updates, runs past it. */
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer p;
		connect_peer(f, &p, 0);
		assert_int_equal(ev_handshake(&p, WAIT_MS), 0);
		uint8_t open[128];
		size_t n = ev_ymx(open, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_SYN, 1, 0);
		size_t m = ev_mss_msg(open + n + 12, sizeof(open) - n - 12, WISP_MSS_PROTOCOL);
		m += ev_mss_msg(open + n + 12 + m, sizeof(open) - n - 12 - m, "/wisp/echo/1.0.0");
		ev_ymx(open + n, WISP_YAMUX_DATA, 0, 1, (uint32_t)m);
		assert_int_equal(ev_send_sealed(&p, open, n + 12 + m, WAIT_MS), 0);
		static uint8_t chunk[12 + 60000];
		ev_ymx(chunk, WISP_YAMUX_DATA, 0, 1, sizeof(chunk) - 12);
		int err = 0;
		for (unsigned k = 0; k < 200 && !err; k++) /* 12 MB: far past any window */
			err = ev_send_sealed(&p, chunk, sizeof(chunk), WAIT_MS);
		assert_true(err == -EPIPE || err == -ECONNRESET);
		expect_closed(&p);
		check_failure(trial_failure(&r, 0), WISP_EVENT_DISCONNECTED, WISP_ERR_FLOW_CONTROL, "session");
		check_peer_session_failure(&r);
		ev_close(&p);
		trial_end(&r);
	}
}

/* Other yamux rules, one broken frame each after a good handshake. */
static void test_yamux_rules(void **state)
{
	fx *f = *state;
	static const struct {
		uint8_t version, type;
		uint16_t flags;
		uint32_t id, len;
		int status;
	} cases[] = {
		{ 1, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_SYN, 1, 0, WISP_ERR_MALFORMED },   /* version */
		{ 0, 4, 0, 1, 0, WISP_ERR_MALFORMED },                                     /* type */
		{ 0, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_SYN, 2, 0, WISP_ERR_PROTOCOL },    /* the node's parity */
		{ 0, WISP_YAMUX_DATA, 0, 7, 0, WISP_ERR_PROTOCOL },                         /* never opened */
		{ 0, WISP_YAMUX_DATA, 0, 0, 0, WISP_ERR_PROTOCOL },                         /* data on the session */
		{ 0, WISP_YAMUX_PING, WISP_YAMUX_SYN, 3, 0, WISP_ERR_PROTOCOL },            /* ping on a stream */
		{ 0, WISP_YAMUX_PING, WISP_YAMUX_SYN | WISP_YAMUX_FIN, 0, 0, WISP_ERR_PROTOCOL },
		{ 0, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_SYN, 1, UINT32_MAX, WISP_ERR_PROTOCOL }, /* window past 2^32-1 */
		{ 0, WISP_YAMUX_GO_AWAY, 0, 0, WISP_YAMUX_GOAWAY_PROTOCOL, WISP_ERR_RESET },  /* the peer gives up */
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (int i = 0; i < ROUNDS; i++) {
			trial r;
			trial_begin(f, &r);
			ev_peer p;
			connect_peer(f, &p, 0);
			assert_int_equal(ev_handshake(&p, WAIT_MS), 0);
			uint8_t h[12];
			ev_ymx(h, cases[c].type, cases[c].flags, cases[c].id, cases[c].len);
			h[0] = cases[c].version;
			(void)ev_send_sealed(&p, h, sizeof(h), WAIT_MS);
			expect_closed(&p);
			check_failure(trial_failure(&r, 0), WISP_EVENT_DISCONNECTED, cases[c].status, "session");
			wisp_stats st;
			wisp_node_stats(f->n, &st);
			assert_int_equal(MOVED(&r, st, upgraded), 1);
			assert_int_equal(MOVED(&r, st, peer_errors), wisp_err_is_peer(cases[c].status) ? 1 : 0);
			ev_close(&p);
			trial_end(&r);
		}
	}
}

/* ---- 8. more streams than the cap -------------------------------------- */

typedef struct want_frames {
	uint32_t acks, rsts;
} want_frames;

static bool got_frames(ev_peer *p, void *arg)
{
	want_frames *w = arg;
	return p->acks_in >= w->acks && p->rsts_in >= w->rsts;
}

static void open_streams(ev_peer *p, unsigned count)
{
	uint8_t *b = calloc(count, 12);
	assert_non_null(b);
	for (unsigned i = 0; i < count; i++) {
		ev_ymx(b + 12 * i, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_SYN, p->next_id, 0);
		p->next_id += 2;
	}
	(void)ev_send_sealed(p, b, 12 * (size_t)count, WAIT_MS);
	free(b);
}

static void test_stream_cap(void **state)
{
	fx *f = *state;
	for (int i = 0; i < ROUNDS; i++) {
		trial r;
		trial_begin(f, &r);
		ev_peer p;
		connect_peer(f, &p, 0);
		assert_int_equal(ev_handshake(&p, WAIT_MS), 0);
		/* The node opens two streams at once, identify and gossipsub:
		 * two of the MAX_STREAMS. Wait for their SYNs so the count is
		 * exact. */
		assert_int_equal(ev_pump(&p, NULL, NULL, WAIT_MS), 0);
		while (p.syns_in < NODE_STREAMS)
			assert_int_equal(ev_pump(&p, NULL, NULL, WAIT_MS), 0);
		/* The rest are accepted (ACKed) and left negotiating. */
		open_streams(&p, MAX_STREAMS - NODE_STREAMS);
		want_frames w = { MAX_STREAMS - NODE_STREAMS, 0 };
		assert_int_equal(ev_pump(&p, got_frames, &w, WAIT_MS), 0);
		assert_int_equal(p.rsts_in, 0);
		/* Over the cap: refused with RST, the session stays. */
		open_streams(&p, 8);
		w.rsts = 8;
		assert_int_equal(ev_pump(&p, got_frames, &w, WAIT_MS), 0);
		assert_int_equal(p.acks_in, MAX_STREAMS - NODE_STREAMS);
		/* The peer keeps going: past max_refused in a row, the session
		 * fails. */
		open_streams(&p, MAX_REFUSED + 8);
		expect_closed(&p);
		assert_int_equal(p.acks_in, MAX_STREAMS - NODE_STREAMS);
		check_failure(trial_failure(&r, 0), WISP_EVENT_DISCONNECTED, WISP_ERR_STREAM_LIMIT, "session");
		check_peer_session_failure(&r);
		wisp_stats st;
		wisp_node_stats(f->n, &st);
		/* every refusal is counted: MAX_REFUSED of them, and the one
		 * that failed the session */
		assert_int_equal(MOVED(&r, st, streams_capped), MAX_REFUSED + 1);
		assert_int_equal(MOVED(&r, st, streams_refused), 0);
		ev_close(&p);
		trial_end(&r);
	}
}

/* ---- 9. a peer that never finishes the handshake ------------------------ */

enum { STALL_NOTHING, STALL_HEADER, STALL_NOISE, STALL_MSG1, STALL_MUXER, STALL_KINDS };

/* Connect and stop at kind; *t0 is when the TCP connection was made (the
 * node's handshake clock starts at its accept). */
static void stall_at(fx *f, ev_peer *p, int kind, char *addr, size_t cap, uint64_t *t0)
{
	*t0 = wt_now_ns();
	connect_peer(f, p, 0);
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	assert_int_equal(getsockname(p->fd, (struct sockaddr *)&a, &alen), 0);
	snprintf(addr, cap, "/ip4/127.0.0.1/tcp/%u", ntohs(a.sin_port));
	uint8_t buf[1024];
	ssize_t m;
	switch (kind) {
	case STALL_NOTHING:
		break;
	case STALL_HEADER:
		m = (ssize_t)ev_mss_msg(buf, sizeof(buf), WISP_MSS_PROTOCOL);
		assert_int_equal(ev_send(p, buf, (size_t)m, WAIT_MS), 0);
		break;
	case STALL_NOISE:
		assert_int_equal(ev_mss_dial(p, "/noise", WAIT_MS), 0);
		break;
	case STALL_MSG1:
	case STALL_MUXER:
		assert_int_equal(ev_mss_dial(p, "/noise", WAIT_MS), 0);
		assert_int_equal(ev_noise_start(p, true), 0);
		m = ev_noise_msg1(p, buf, sizeof(buf));
		assert_int_equal(ev_send(p, buf, (size_t)m, WAIT_MS), 0);
		assert_int_equal(ev_noise_read_msg2(p, WAIT_MS), 0);
		if (kind == STALL_MSG1)
			break;
		/* Noise done without the inline muxer, and then silence. */
		m = ev_noise_msg3(p, EV_SIG_GOOD, false, buf, sizeof(buf));
		assert_true(m > 0);
		assert_int_equal(ev_send(p, buf, (size_t)m, WAIT_MS), 0);
		p->transport = true;
		break;
	}
}

static void test_handshake_timeout(void **state)
{
	fx *f = *state;
	static const char *const stage[STALL_KINDS] = { "security", "security", "handshake", "handshake",
							"muxer" };
	for (int i = 0; i < 2; i++) {
		trial r;
		trial_begin(f, &r);
		/* Five peers at once, each stopping at another point. */
		ev_peer *p = calloc(STALL_KINDS, sizeof(*p));
		assert_non_null(p);
		char addr[STALL_KINDS][64];
		uint64_t t0[STALL_KINDS];
		for (int k = 0; k < STALL_KINDS; k++)
			stall_at(f, &p[k], k, addr[k], sizeof(addr[k]), &t0[k]);
		for (int k = 0; k < STALL_KINDS; k++)
			expect_closed(&p[k]);
		for (unsigned k = 0; k < STALL_KINDS; k++) {
			const failure *x = trial_failure(&r, k);
			int who = -1;
			for (int j = 0; j < STALL_KINDS; j++)
				if (strcmp(x->addr, addr[j]) == 0)
					who = j;
			assert_true(who >= 0);
			check_failure(x, WISP_EVENT_INBOUND_FAILED, WISP_ERR_TIMEOUT, stage[who]);
			/* not before the timeout (the event is taken after it) */
			assert_true(x->at_ns - t0[who] >= (uint64_t)HS_TIMEOUT_MS * 1000000u);
		}
		wisp_stats st;
		wisp_node_stats(f->n, &st);
		assert_int_equal(MOVED(&r, st, handshake_timeouts), STALL_KINDS);
		assert_int_equal(MOVED(&r, st, handshake_failures), STALL_KINDS);
		assert_int_equal(MOVED(&r, st, peer_errors), 0);
		assert_int_equal(MOVED(&r, st, resets), STALL_KINDS);
		for (int k = 0; k < STALL_KINDS; k++)
			ev_close(&p[k]);
		free(p);
		trial_end(&r);
	}
}

/* ---- 10. a peer that stops reading ------------------------------------- */

static void test_slow_reader(void **state)
{
	fx *f = *state;
	/* What the node may hold for this connection: the sealed frames it
	 * handed to the kernel until they reached the send budget (64 KiB
	 * pooled buffers, the last one crossing it), and small change for
	 * identify and control frames. The perf payload itself is one shared
	 * zero buffer, referenced by the stream's queue, and our window for
	 * the node (what it may have to buffer from us) is not used. */
	const uint64_t frame_buf = 65536 + 64; /* payload + buffer header, rounded up */
	const uint64_t bound = (BUDGET / 65536 + 1) * frame_buf + 64 * 1024;
	for (int i = 0; i < 2; i++) {
		trial r;
		trial_begin(f, &r);
		uint64_t bytes0 = pool_bytes(f);
		ev_peer p;
		connect_peer(f, &p, 4096);
		assert_int_equal(ev_handshake(&p, WAIT_MS), 0);
		/* Open /perf/1.0.0, grant a 1 GiB window, ask for 1 GiB and
		 * half-close: all in one frame. Then never read again. */
		uint8_t b[256];
		size_t n = ev_ymx(b, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_SYN, 1, 1u << 30);
		size_t m = ev_mss_msg(b + n + 12, sizeof(b) - n - 12, WISP_MSS_PROTOCOL);
		m += ev_mss_msg(b + n + 12 + m, sizeof(b) - n - 12 - m, "/perf/1.0.0");
		const uint64_t want = 1ull << 30;
		for (int k = 0; k < 8; k++)
			b[n + 12 + m + (size_t)k] = (uint8_t)(want >> (56 - 8 * k));
		m += 8;
		ev_ymx(b + n, WISP_YAMUX_DATA, 0, 1, (uint32_t)m);
		n += 12 + m;
		n += ev_ymx(b + n, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_FIN, 1, 0);
		uint64_t t_ask = wt_now_ns();
		assert_int_equal(ev_send_sealed(&p, b, n, WAIT_MS), 0);

		/* Sample the node's memory until it gives up on us. */
		fail_wait w = { f, r.fails + 1 };
		uint64_t high_bytes = 0, high_bufs = 0, deadline = wt_now_ns() + (uint64_t)WAIT_MS * 1000000u;
		while (!fails_reached(&w) && wt_now_ns() < deadline) {
			wisp_stats st;
			wisp_node_stats(f->n, &st);
			uint64_t pb = pool_bytes(f) - bytes0;
			if (pb > high_bytes)
				high_bytes = pb;
			if (st.pool_in_use > high_bufs)
				high_bufs = st.pool_in_use;
			struct pollfd pf = { .fd = wisp_node_event_fd(f->n), .events = POLLIN };
			(void)poll(&pf, 1, 20);
		}
		print_message("# slow reader: pool grew by at most %llu bytes (bound %llu), %llu buffers\n",
			      (unsigned long long)high_bytes, (unsigned long long)bound,
			      (unsigned long long)high_bufs);
		assert_true(high_bytes <= bound);
		const failure *x = trial_failure(&r, 0);
		check_failure(x, WISP_EVENT_DISCONNECTED, WISP_ERR_LIMIT, "session");
		/* closed for the stall, not before it */
		assert_true(x->at_ns - t_ask >= (uint64_t)STALL_MS * 1000000u);
		wisp_stats st;
		wisp_node_stats(f->n, &st);
		assert_int_equal(MOVED(&r, st, slow_closes), 1);
		assert_true(MOVED(&r, st, budget_stalls) >= 1);
		assert_int_equal(MOVED(&r, st, peer_errors), 0);
		assert_int_equal(MOVED(&r, st, resets), 1);
		expect_closed(&p);
		ev_close(&p);
		trial_end(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_garbage_multistream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_security, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_signature, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_peer_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_noise_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_yamux_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader, setup, teardown),
	};
	/* BADPEER_ONLY=test_name runs one case (e.g. in a loop, to chase a
	 * rare failure). */
	const char *only = getenv("BADPEER_ONLY");
	if (only && *only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
