/* Bad request/response input over real sockets: an evil peer
 * (tests/evilrr.h) speaks the framing of codec/rrframe.h to a wisp node in
 * both roles.
 *
 * As a requester it sends requests with a declared length over the
 * protocol's max_request (refused from the prefix alone, before any body,
 * with nothing big allocated), cut short by a FIN, followed by trailing
 * bytes, that are not a zstd frame, whose frame holds more content than
 * declared (decompression bombs) or less, a skippable frame, frames zstd
 * refuses (checksum, reserved bits and block types, a dictionary, a block
 * over 128 KiB), and bad length varints. Each is answered
 * "invalid request: <why>" and closed, counted (reqresp.bad_requests,
 * net.peer_errors), and never reaches the application; a good request on
 * a new stream is answered. Two edges are pinned down too: trailing bytes
 * in a later data frame (the request has reached the application by then;
 * the peer still gets only the refusal), and a request that stalls (reset
 * at the first-byte timeout, not counted as bad).
 *
 * As a responder it answers the node's requests with a declared chunk
 * length over max_chunk, an unknown result code, an error message over 256
 * bytes or not UTF-8, a chunk cut short by a FIN, decompression bombs, a
 * frame that is not zstd, a bad length varint, more chunks than max_chunks,
 * a chunk after an error result, nothing at all (first-byte timeout) and
 * half a chunk (chunk timeout). Each ends the request with the peer error
 * (or the timeout) that names it, after only the good chunks, is counted
 * (reqresp.bad_responses or timeouts), and resets the stream; the next
 * request is answered.
 *
 * After every case the connection is still up and the node's pooled
 * buffers are back to their baseline. Waits are for events, bytes and
 * counters, with deadlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_frameHeaderSize */
#include <zstd.h>

#include <wisp/error.h>
#include <wisp/wisp.h>

#include "codec/varint.h"
#include "tests/evilrr.h"
#include "tests/testlib.h"

#define WAIT_MS 10000
#define PROTO "/atlas/req/test/1/pb_zstd"
#define PROTO_SILENT "/atlas/req/silent/1/pb_zstd" /* a short first-byte timeout */
#define PROTO_SLOW "/atlas/req/slow/1/pb_zstd"     /* a short chunk timeout */
#define PROTO_BULK "/atlas/req/bulk/1/pb_zstd"     /* 64 KiB chunks, a 256 KiB respond window */
#define BULK_CHUNK (64u * 1024)
#define MAX_REQUEST 1024
#define MAX_CHUNK 4096
#define MAX_CHUNKS 3
#define RESPOND_TIMEOUT_MS 2000
#define SHORT_TIMEOUT_MS 300
/* No allocation this large while a bad request is read: a buffer for a
 * declared 1 MiB would be over it, and every bound here is far below (the
 * largest thing the node allocates meanwhile is zstd's streaming decoder
 * buffer, about one 128 KiB block, once per worker). */
#define BIG_ALLOC (256u * 1024)
#define MAX_EVENTS 1024

/* ---- the node's allocator: the largest single allocation ---------------- */

static _Atomic size_t biggest;

static void note(size_t n)
{
	size_t b = atomic_load_explicit(&biggest, memory_order_relaxed);
	while (n > b && !atomic_compare_exchange_weak_explicit(&biggest, &b, n, memory_order_relaxed,
							       memory_order_relaxed))
		;
}

static void *w_malloc(size_t n, void *user)
{
	(void)user;
	note(n);
	return malloc(n);
}

static void w_free(void *p, void *user)
{
	(void)user;
	free(p);
}

static void *w_calloc(size_t k, size_t n, void *user)
{
	(void)user;
	note(k * n);
	return calloc(k, n);
}

static void *w_realloc(void *p, size_t n, void *user)
{
	(void)user;
	note(n);
	return realloc(p, n);
}

static const wisp_mem watch_mem = { NULL, w_malloc, w_free, w_calloc, w_realloc };

/* ---- the node and what it heard ------------------------------------------- */

typedef struct rec {
	wisp_event_type type;
	int status;
	uint64_t cookie;
	uint64_t ref;
	int result;
	uint32_t index;
	uint32_t len;
	uint8_t data[64]; /* the first bytes */
} rec;

static wisp_node *node;
static uint16_t port;
static int connected;
static rec ev[MAX_EVENTS];
static int n_ev;
static er_peer *evil;

static wisp_node *node_at(int i)
{
	(void)i;
	return node;
}

static int respond_ready; /* WISP_EVENT_RESPOND_READY events */

static void take(int i, const wisp_event *e)
{
	(void)i;
	switch (e->type) {
	case WISP_EVENT_LISTENING: {
		const char *tcp = strstr(e->u.listen->addr, "/tcp/");
		port = tcp ? (uint16_t)atoi(tcp + 5) : 0;
		return;
	}
	case WISP_EVENT_CONNECTED:
		connected++;
		return;
	case WISP_EVENT_RESPOND_READY:
		respond_ready++;
		return;
	case WISP_EVENT_REQUEST:
	case WISP_EVENT_RESPONSE:
	case WISP_EVENT_RESPONSE_END:
		break;
	default:
		return;
	}
	assert_true(n_ev < MAX_EVENTS);
	rec *r = &ev[n_ev++];
	memset(r, 0, sizeof(*r));
	r->type = e->type;
	r->status = e->status;
	r->cookie = e->cookie;
	const uint8_t *d;
	if (e->type == WISP_EVENT_REQUEST) {
		r->ref = e->u.request->ref;
		r->len = e->u.request->len;
		d = e->u.request->data;
	} else {
		r->result = e->u.response->result;
		r->index = e->u.response->index;
		r->len = e->u.response->len;
		d = e->u.response->data;
	}
	if (r->len)
		memcpy(r->data, d, r->len < sizeof(r->data) ? r->len : sizeof(r->data));
}

static int count_of(wisp_event_type type, uint64_t cookie)
{
	int k = 0;
	for (int i = 0; i < n_ev; i++)
		k += ev[i].type == type && (type == WISP_EVENT_REQUEST || ev[i].cookie == cookie);
	return k;
}

static rec *nth(wisp_event_type type, uint64_t cookie, int k)
{
	for (int i = 0; i < n_ev; i++)
		if (ev[i].type == type && (type == WISP_EVENT_REQUEST || ev[i].cookie == cookie) && k-- == 0)
			return &ev[i];
	fail_msg("no event %d #%d (cookie %llu)", type, k, (unsigned long long)cookie);
	return NULL;
}

static bool never(void)
{
	return false;
}

/* Take the node's events and read the evil peer's socket until cond()
 * holds, blocking in poll() on both between checks. */
/* false: the evil peer reads nothing (and so grants no window) */
static bool evil_reading = true;

static bool wait_for(bool (*cond)(void), unsigned timeout_ms)
{
	uint64_t deadline = wt_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		(void)wt_wait_nodes(node_at, 1, take, never, 0);
		if (evil && !evil->p.eof && evil_reading)
			(void)er_poll(evil);
		if (cond())
			return true;
		uint64_t now = wt_now_ns();
		if (now >= deadline)
			return false;
		struct pollfd p[2] = { { .fd = wisp_node_event_fd(node), .events = POLLIN },
				       { .fd = evil && evil_reading ? evil->p.fd : -1, .events = POLLIN } };
		int left = (int)((deadline - now) / 1000000u) + 1;
		(void)poll(p, 2, left < 20 ? left : 20);
	}
}

static wisp_stats stats(void)
{
	wisp_stats st;
	wisp_node_stats(node, &st);
	return st;
}

static bool is_listening(void)
{
	return port != 0;
}

static bool is_connected(void)
{
	return connected > 0;
}

static void start(void)
{
	n_ev = 0;
	port = 0;
	connected = 0;
	wisp_options o;
	wt_node_options(&o, true);
	o.mem = &watch_mem;
	assert_int_equal(wisp_node_new(&node, &o), WISP_OK);
	wisp_reqresp_opts ro;
	wisp_reqresp_opts_default(&ro);
	ro.max_request = MAX_REQUEST;
	ro.max_chunk = MAX_CHUNK;
	ro.max_chunks = MAX_CHUNKS;
	ro.respond_timeout_ms = RESPOND_TIMEOUT_MS;
	ro.rate_per_peer = 0;
	assert_int_equal(wisp_reqresp_register(node, PROTO, &ro), 0);
	ro.first_byte_timeout_ms = SHORT_TIMEOUT_MS;
	assert_int_equal(wisp_reqresp_register(node, PROTO_SILENT, &ro), 1);
	ro.first_byte_timeout_ms = WAIT_MS;
	ro.chunk_timeout_ms = SHORT_TIMEOUT_MS;
	assert_int_equal(wisp_reqresp_register(node, PROTO_SLOW, &ro), 2);
	ro.max_chunk = BULK_CHUNK;
	ro.max_chunks = 1024;
	ro.respond_window = 4 * BULK_CHUNK;
	ro.respond_timeout_ms = WAIT_MS;
	assert_int_equal(wisp_reqresp_register(node, PROTO_BULK, &ro), 3);
	assert_int_equal(wisp_node_start(node), WISP_OK);
	assert_true(wait_for(is_listening, WAIT_MS));
	evil = er_new();
	assert_non_null(evil);
	const char *protos[] = { PROTO, PROTO_SILENT, PROTO_SLOW };
	int err = er_connect(evil, port, protos, 3, WAIT_MS);
	if (err)
		print_message("evil connect: %d %s\n", err, err < 0 ? strerror(-err) : wisp_errname(err));
	assert_int_equal(err, 0);
	assert_true(wait_for(is_connected, WAIT_MS));
}

static void stop(void)
{
	er_free(evil);
	evil = NULL;
	wisp_node_stop(node);
	wt_node_finish(node);
	node = NULL;
}

/* ---- the baseline: still connected, pooled buffers back ------------------- */

static uint64_t pool_base;

static bool at_baseline(void)
{
	wisp_stats st = stats();
	return st.pool_in_use <= pool_base && st.net.open == 1;
}

static void check_baseline(void)
{
	bool ok = wait_for(at_baseline, WAIT_MS);
	if (!ok) {
		wisp_stats st = stats();
		print_message("not back to baseline: pool %llu/%llu open %llu\n", (unsigned long long)st.pool_in_use,
			      (unsigned long long)pool_base, (unsigned long long)st.net.open);
	}
	assert_true(ok);
	assert_false(evil->p.eof);
	assert_int_equal(evil->err, 0);
}

/* ---- conditions on the evil peer's streams -------------------------------- */

static er_stream *cur;

static bool cur_ended(void)
{
	return cur->fin_in || cur->rst_in;
}

static bool cur_reset(void)
{
	return cur->rst_in;
}

static bool cur_fin(void)
{
	return cur->fin_in;
}

static uint8_t *must_malloc(size_t cap)
{
	uint8_t *b = malloc(cap);
	assert_non_null(b);
	return b;
}

/* ---- (a) the evil requester ------------------------------------------------- */

static int requests_seen;

static bool request_came(void)
{
	return count_of(WISP_EVENT_REQUEST, 0) > requests_seen;
}

/* A good request on a new stream is answered (by this test's application). */
static void good_request(void)
{
	static unsigned k;
	char q[32], a[32];
	int qn = snprintf(q, sizeof(q), "question %u", k), an = snprintf(a, sizeof(a), "answer %u", k);
	k++;
	requests_seen = count_of(WISP_EVENT_REQUEST, 0);
	er_stream *s;
	assert_int_equal(er_open(evil, PROTO, &s, WAIT_MS), 0);
	uint8_t b[128];
	ssize_t n = er_encode(b, sizeof(b), -1, q, (size_t)qn);
	assert_true(n > 0);
	assert_int_equal(er_send(evil, s, b, (size_t)n, WAIT_MS), 0);
	assert_int_equal(er_fin(evil, s, WAIT_MS), 0);
	assert_true(wait_for(request_came, WAIT_MS));
	rec *r = nth(WISP_EVENT_REQUEST, 0, requests_seen);
	assert_int_equal(r->len, qn);
	assert_memory_equal(r->data, q, (size_t)qn);
	assert_int_equal(wisp_respond(node, r->ref, WISP_RR_SUCCESS, a, (size_t)an, 1), WISP_OK);
	cur = s;
	assert_true(wait_for(cur_fin, WAIT_MS));
	uint8_t result, out[64];
	size_t len;
	assert_int_equal(er_take(s, true, &result, out, sizeof(out), &len), 1);
	assert_int_equal(result, WISP_RR_SUCCESS);
	assert_int_equal(len, an);
	assert_memory_equal(out, a, (size_t)an);
	assert_int_equal(s->len, 0);
	assert_false(s->rst_in);
	er_release(s);
	requests_seen++;
}

/* How a bad request goes on after its bytes. */
typedef enum then {
	THEN_FIN,    /* we half-close after them */
	THEN_WAIT,   /* nothing: the node answers from what it has */
	THEN_BODY,   /* the prefix only; the node answers at once, then we send a
		        body anyway and never close: the respond timeout resets it */
} then;

/* The node's answer to a bad request: one "invalid request: <why>" chunk,
 * then its FIN. */
static void expect_refusal(er_stream *s, int why)
{
	cur = s;
	assert_true(wait_for(cur_ended, WAIT_MS));
	assert_true(s->fin_in);
	uint8_t result, out[WISP_REQRESP_MAX_ERRMSG];
	size_t len;
	assert_int_equal(er_take(s, true, &result, out, sizeof(out), &len), 1);
	assert_int_equal(result, WISP_RR_INVALID_REQUEST);
	char want[WISP_REQRESP_MAX_ERRMSG + 1];
	snprintf(want, sizeof(want), "invalid request: %s", wisp_strerror(why));
	if (len != strlen(want) || memcmp(out, want, len) != 0)
		fail_msg("refusal '%.*s', expected '%s'", (int)len, (const char *)out, want);
	assert_int_equal(s->len, 0); /* nothing after it */
}

static void bad_request(const char *what, const uint8_t *b, size_t n, then how, int why)
{
	print_message("# evil requester: %s\n", what);
	wisp_stats st0 = stats();
	requests_seen = count_of(WISP_EVENT_REQUEST, 0);
	atomic_store(&biggest, 0);
	er_stream *s;
	assert_int_equal(er_open(evil, PROTO, &s, WAIT_MS), 0);
	assert_int_equal(er_send(evil, s, b, n, WAIT_MS), 0);
	if (how == THEN_FIN)
		assert_int_equal(er_fin(evil, s, WAIT_MS), 0);
	expect_refusal(s, why);
	/* nothing was allocated for what the peer declared or packed */
	size_t big = atomic_load(&biggest);
	if (big >= BIG_ALLOC)
		fail_msg("an allocation of %zu bytes for a refused request", big);
	if (how == THEN_BODY) {
		/* the body the prefix declared, which the node drops as it comes,
		 * and the stream left open: reset at the respond timeout */
		size_t body = 1u << 20;
		uint8_t *junk = must_malloc(body);
		for (size_t i = 0; i < body; i++)
			junk[i] = (uint8_t)wt_rng();
		int rc = er_send(evil, s, junk, body, WAIT_MS);
		assert_true(rc == 0 || rc == -ECONNRESET); /* the reset may come first */
		free(junk);
		assert_true(wait_for(cur_reset, WAIT_MS));
		big = atomic_load(&biggest);
		if (big >= BIG_ALLOC)
			fail_msg("an allocation of %zu bytes while a refused request's body came", big);
	} else if (how == THEN_WAIT) {
		assert_int_equal(er_fin(evil, s, WAIT_MS), 0);
	}
	er_release(s);
	wisp_stats st = stats();
	assert_int_equal(st.reqresp.bad_requests - st0.reqresp.bad_requests, 1);
	assert_int_equal(st.net.peer_errors - st0.net.peer_errors, 1);
	assert_int_equal(st.reqresp.requests_in, st0.reqresp.requests_in);
	assert_int_equal(st.reqresp.respond_timeouts, st0.reqresp.respond_timeouts);
	/* the connection still carries requests; the bad one never reached
	 * the application (it would have come before the good one) */
	good_request();
	assert_int_equal(count_of(WISP_EVENT_REQUEST, 0), requests_seen);
	check_baseline();
}

/* Trailing bytes in a data frame after the one that completed the request.
 * The node hands a request on as soon as its frame is complete (it does not
 * wait for the requester's FIN), so this one reached the application
 * before the bytes after it came; the peer still gets only the refusal, and
 * the application's answer goes nowhere. */
static void trailing_later(const uint8_t *req, size_t n)
{
	print_message("# evil requester: trailing bytes in a later data frame\n");
	wisp_stats st0 = stats();
	requests_seen = count_of(WISP_EVENT_REQUEST, 0);
	er_stream *s;
	assert_int_equal(er_open(evil, PROTO, &s, WAIT_MS), 0);
	assert_int_equal(er_send(evil, s, req, n, WAIT_MS), 0);
	assert_int_equal(er_send(evil, s, "xx", 2, WAIT_MS), 0);
	assert_int_equal(er_fin(evil, s, WAIT_MS), 0);
	expect_refusal(s, WISP_ERR_TRAILING);
	assert_true(wait_for(request_came, WAIT_MS));
	rec *r = nth(WISP_EVENT_REQUEST, 0, requests_seen);
	int rc = wisp_respond(node, r->ref, WISP_RR_SUCCESS, "late", 4, 1);
	assert_true(rc == WISP_OK || rc == WISP_ERR_NOTFOUND);
	er_release(s);
	wisp_stats st = stats();
	assert_int_equal(st.reqresp.bad_requests - st0.reqresp.bad_requests, 1);
	assert_int_equal(st.net.peer_errors - st0.net.peer_errors, 1);
	good_request();
	assert_int_equal(count_of(WISP_EVENT_REQUEST, 0), requests_seen);
	check_baseline();
}

/* A requester that starts and stalls: the whole request is due within the
 * first-byte timeout (PROTO_SILENT's is short), then the stream is reset,
 * with no answer; a slow peer is not counted as a bad one. */
static void stalled_request(const uint8_t *req, size_t n)
{
	print_message("# evil requester: half a request, then silence\n");
	wisp_stats st0 = stats();
	requests_seen = count_of(WISP_EVENT_REQUEST, 0);
	er_stream *s;
	assert_int_equal(er_open(evil, PROTO_SILENT, &s, WAIT_MS), 0);
	assert_int_equal(er_send(evil, s, req, n / 2, WAIT_MS), 0);
	cur = s;
	assert_true(wait_for(cur_ended, WAIT_MS));
	assert_true(s->rst_in);
	assert_int_equal(s->len, 0);
	er_release(s);
	wisp_stats st = stats();
	assert_int_equal(st.reqresp.bad_requests, st0.reqresp.bad_requests);
	assert_int_equal(st.reqresp.requests_in, st0.reqresp.requests_in);
	good_request();
	assert_int_equal(count_of(WISP_EVENT_REQUEST, 0), requests_seen);
	check_baseline();
}

static size_t put_len(uint8_t *b, uint64_t n)
{
	return wisp_uvarint_put(b, n);
}

static int ready_events;

static bool ready_came(void)
{
	return respond_ready > ready_events;
}

static bool cur_all_in(void)
{
	return cur->fin_in || cur->rst_in;
}

/* The respond window against a requester that stops reading: its yamux
 * window closes, the connection's send budget fills behind it, the
 * request's chunks stop going into the stream, and wisp_respond() says
 * AGAIN (within a bounded number of chunks: nothing grows without bound);
 * once the peer reads again, RESPOND_READY, and every chunk arrives in
 * order. */
static void test_respond_window(void **state)
{
	(void)state;
	start();
	er_stream *s;
	assert_int_equal(er_open(evil, PROTO_BULK, &s, WAIT_MS), 0);
	uint8_t b[64];
	ssize_t n = er_encode(b, sizeof(b), -1, "bulk", 4);
	assert_int_equal(er_send(evil, s, b, (size_t)n, WAIT_MS), 0);
	assert_int_equal(er_fin(evil, s, WAIT_MS), 0);
	requests_seen = count_of(WISP_EVENT_REQUEST, 0);
	assert_true(wait_for(request_came, WAIT_MS));
	uint64_t ref = nth(WISP_EVENT_REQUEST, 0, requests_seen)->ref;
	evil_reading = false;
	static uint8_t chunk[BULK_CHUNK];
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)wt_rng(); /* incompressible: zstd keeps its size on the wire */
	uint32_t sent = 0;
	int rc;
	/* the stream window (256 KiB), the connection's budget (4 MiB) and the
	 * respond window (256 KiB) hold about 72 chunks: AGAIN well before 200 */
	for (;;) {
		for (size_t i = 0; i < sizeof(chunk); i += 4096)
			chunk[i] = (uint8_t)sent;
		rc = wisp_respond(node, ref, WISP_RR_SUCCESS, chunk, sizeof(chunk), 0);
		if (rc != WISP_OK)
			break;
		sent++;
		assert_true(sent < 200);
		(void)wait_for(never, 1); /* the node's events; the worker drains into the stream */
	}
	assert_int_equal(rc, WISP_ERR_AGAIN);
	assert_true(sent >= 4);
	ready_events = respond_ready;
	evil_reading = true;
	assert_true(wait_for(ready_came, WAIT_MS));
	/* the rest, and the end */
	for (uint32_t k = 0; k < 8; k++) {
		for (size_t i = 0; i < sizeof(chunk); i += 4096)
			chunk[i] = (uint8_t)sent;
		while ((rc = wisp_respond(node, ref, WISP_RR_SUCCESS, chunk, sizeof(chunk), k == 7)) == WISP_ERR_AGAIN)
			assert_true(wait_for(ready_came, WAIT_MS));
		assert_int_equal(rc, WISP_OK);
		ready_events = respond_ready;
		sent++;
	}
	cur = s;
	assert_true(wait_for(cur_all_in, WAIT_MS));
	assert_true(s->fin_in);
	static uint8_t out[BULK_CHUNK];
	uint8_t result;
	size_t len;
	for (uint32_t k = 0; k < sent; k++) {
		assert_int_equal(er_take(s, true, &result, out, sizeof(out), &len), 1);
		assert_int_equal(result, WISP_RR_SUCCESS);
		assert_int_equal(len, BULK_CHUNK);
		assert_int_equal(out[0], (uint8_t)k);
	}
	assert_int_equal(s->len, 0);
	er_release(s);
	stop();
}

static void test_evil_requester(void **state)
{
	(void)state;
	start();
	good_request();
	pool_base = stats().pool_in_use;
	static uint8_t b[4096], content[MAX_REQUEST];
	for (size_t i = 0; i < sizeof(content); i++)
		content[i] = (uint8_t)wt_rng();
	size_t n;
	ssize_t z;

	/* a declared length over max_request: refused from the prefix alone */
	n = put_len(b, WISP_REQRESP_MAX_CHUNK);
	bad_request("declared length 1 MiB, over max_request", b, n, THEN_BODY, WISP_ERR_TOO_LARGE);
	n = put_len(b, MAX_REQUEST + 1);
	bad_request("declared length max_request + 1, then FIN", b, n, THEN_FIN, WISP_ERR_TOO_LARGE);

	/* a request cut short by a FIN: in the prefix, in the frame */
	b[0] = 0x80;
	bad_request("FIN inside the length prefix", b, 1, THEN_FIN, WISP_ERR_TRUNCATED);
	z = er_encode(b, sizeof(b), -1, content, 100);
	assert_true(z > 0);
	bad_request("FIN inside the zstd frame", b, (size_t)z / 2, THEN_FIN, WISP_ERR_TRUNCATED);
	bad_request("FIN after the prefix", b, put_len(b, 100), THEN_FIN, WISP_ERR_TRUNCATED);
	/* an empty stream: no request at all */
	bad_request("FIN before any byte", b, 0, THEN_FIN, WISP_ERR_TRUNCATED);

	/* bytes after a complete request, in the same data frame */
	z = er_encode(b, sizeof(b), -1, content, 100);
	memcpy(b + z, "xx", 2);
	bad_request("trailing bytes after a complete request", b, (size_t)z + 2, THEN_FIN, WISP_ERR_TRAILING);
	z = er_encode(b, sizeof(b), -1, content, 100);
	memcpy(b + z, b, (size_t)z);
	bad_request("two requests on one stream", b, 2 * (size_t)z, THEN_FIN, WISP_ERR_TRAILING);
	z = er_encode(b, sizeof(b), -1, content, 100);
	trailing_later(b, (size_t)z);

	z = er_encode(b, sizeof(b), -1, content, 100);
	stalled_request(b, (size_t)z);

	/* not a zstd frame */
	n = put_len(b, 16);
	memcpy(b + n, "0123456789abcdef0123", 20);
	bad_request("not a zstd frame", b, n + 20, THEN_WAIT, WISP_ERR_DECOMPRESS);
	/* a skippable frame (magic 0x184D2A50, 4-byte size, payload) */
	n = put_len(b, 8);
	static const uint8_t skippable[] = { 0x50, 0x2a, 0x4d, 0x18, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8 };
	memcpy(b + n, skippable, sizeof(skippable));
	bad_request("a skippable frame", b, n + sizeof(skippable), THEN_WAIT, WISP_ERR_DECOMPRESS);
	/* a skippable frame before a good one */
	n = put_len(b, 100);
	memcpy(b + n, skippable, sizeof(skippable));
	z = er_zstd(b + n + sizeof(skippable), sizeof(b) - n - sizeof(skippable), content, 100, ER_Z_SIZE, 0);
	assert_true(z > 0);
	bad_request("a skippable frame, then the request's", b, n + sizeof(skippable) + (size_t)z, THEN_FIN,
		    WISP_ERR_DECOMPRESS);

	/* decompression bombs: more content than declared */
	size_t bomb_len = 16u << 20;
	uint8_t *zeros = calloc(1, bomb_len);
	assert_non_null(zeros);
	uint8_t *bomb = must_malloc(64 * 1024);
	n = put_len(bomb, 100);
	z = er_zstd(bomb + n, 64 * 1024 - n, zeros, bomb_len, 0, 0);
	assert_true(z > 0);
	/* its frame is longer than zstd's worst case for 100 bytes: cut off
	 * while it is read */
	bad_request("16 MiB of zeros declared as 100 bytes", bomb, n + (size_t)z, THEN_FIN, WISP_ERR_TOO_LARGE);
	n = put_len(bomb, 100);
	z = er_zstd(bomb + n, 64 * 1024 - n, zeros, 16 * 1024, 0, 10);
	assert_true(z > 0 && (size_t)z < 163);
	/* a small window makes it fit the bound: the decoder stops at 100 */
	bad_request("16 KiB of zeros in 1 KiB blocks declared as 100 bytes", bomb, n + (size_t)z, THEN_FIN,
		    WISP_ERR_TOO_LARGE);
	n = put_len(bomb, 100);
	z = er_zstd(bomb + n, 64 * 1024 - n, zeros, bomb_len, ER_Z_SIZE, 0);
	assert_true(z > 0);
	bad_request("16 MiB declared as 100, with its content size", bomb, n + (size_t)z, THEN_FIN,
		    WISP_ERR_DECOMPRESS);
	free(bomb);
	free(zeros);

	/* less content than declared */
	n = put_len(b, 100);
	z = er_zstd(b + n, sizeof(b) - n, content, 50, 0, 0);
	bad_request("50 bytes declared as 100", b, n + (size_t)z, THEN_FIN, WISP_ERR_DECOMPRESS);
	n = put_len(b, 100);
	z = er_zstd(b + n, sizeof(b) - n, content, 50, ER_Z_SIZE, 0);
	bad_request("50 bytes declared as 100, with its content size", b, n + (size_t)z, THEN_WAIT,
		    WISP_ERR_DECOMPRESS);
	n = put_len(b, 0);
	z = er_zstd(b + n, sizeof(b) - n, content, 1, 0, 0);
	bad_request("1 byte declared as 0", b, n + (size_t)z, THEN_FIN, WISP_ERR_TOO_LARGE);

	/* frames zstd refuses: a bad checksum, a reserved header bit, a
	 * dictionary, a reserved block type, a block over 128 KiB */
	n = put_len(b, 100);
	z = er_zstd(b + n, sizeof(b) - n, content, 100, ER_Z_SIZE | ER_Z_CHECKSUM, 0);
	b[n + (size_t)z - 1] ^= 1;
	bad_request("a bad content checksum", b, n + (size_t)z, THEN_FIN, WISP_ERR_DECOMPRESS);
	z = er_zstd(b + n, sizeof(b) - n, content, 100, ER_Z_SIZE, 0);
	b[n + 4] |= 0x08;
	bad_request("a reserved bit in the frame header", b, n + (size_t)z, THEN_WAIT, WISP_ERR_DECOMPRESS);
	z = er_zstd(b + n, sizeof(b) - n, content, 100, ER_Z_SIZE, 0);
	size_t at = n + 5 + (b[n + 4] & 0x20 ? 0 : 1); /* after the window descriptor */
	memmove(b + at + 1, b + at, n + (size_t)z - at);
	b[at] = 7; /* a one-byte dictionary id */
	b[n + 4] |= 1;
	bad_request("a dictionary id", b, n + (size_t)z + 1, THEN_FIN, WISP_ERR_DECOMPRESS);
	z = er_zstd(b + n, sizeof(b) - n, content, 100, ER_Z_SIZE, 0);
	size_t hs = ZSTD_frameHeaderSize(b + n, (size_t)z);
	assert_false(ZSTD_isError(hs));
	b[n + hs] |= 0x06;
	bad_request("a reserved block type", b, n + (size_t)z, THEN_WAIT, WISP_ERR_DECOMPRESS);
	z = er_zstd(b + n, sizeof(b) - n, content, 100, 0, 0);
	hs = ZSTD_frameHeaderSize(b + n, (size_t)z);
	uint32_t raw = 1 | (128u * 1024 + 1) << 3; /* last, raw, 128 KiB + 1 */
	b[n + hs] = (uint8_t)raw;
	b[n + hs + 1] = (uint8_t)(raw >> 8);
	b[n + hs + 2] = (uint8_t)(raw >> 16);
	bad_request("a raw block of 128 KiB + 1", b, n + hs + 3, THEN_WAIT, WISP_ERR_DECOMPRESS);

	/* a length prefix that is not minimal: 100 in two bytes, 0 in two */
	b[0] = 0xe4;
	b[1] = 0x00;
	z = er_zstd(b + 2, sizeof(b) - 2, content, 100, ER_Z_SIZE, 0);
	bad_request("a non-minimal length varint", b, 2 + (size_t)z, THEN_WAIT, WISP_ERR_VARINT);
	b[0] = 0x80;
	b[1] = 0x00;
	bad_request("a non-minimal zero length", b, 2, THEN_WAIT, WISP_ERR_VARINT);
	/* ten continuation bytes: longer than any uvarint */
	memset(b, 0xff, 10);
	bad_request("a length varint over 9 bytes", b, 10, THEN_WAIT, WISP_ERR_VARINT);

	stop();
}

/* ---- (b) the evil responder ------------------------------------------------ */

static uint64_t cookie_now;

static bool ended_now(void)
{
	return count_of(WISP_EVENT_RESPONSE_END, cookie_now) > 0;
}

static er_stream *accepted;

static bool stream_came(void)
{
	if (!accepted)
		accepted = er_next_accepted(evil);
	return accepted || ended_now();
}

static bool accepted_fin(void)
{
	return accepted->fin_in || accepted->rst_in;
}

/* The node asks us (on proto, with cookie): its stream, once its request
 * was read whole and its side closed (or, only with PROTO_SILENT's short
 * first-byte timeout, once it reset the stream). NULL when the request
 * ended without reaching us (its end event is then at hand). */
static er_stream *asked(const char *proto, uint64_t cookie)
{
	static unsigned k;
	char q[32];
	int qn = snprintf(q, sizeof(q), "ask %u", k++);
	cookie_now = cookie;
	accepted = NULL;
	assert_int_equal(wisp_request(node, &evil->id, proto, q, (size_t)qn, 0, cookie, NULL), WISP_OK);
	assert_true(wait_for(stream_came, WAIT_MS));
	if (!accepted)
		return NULL;
	assert_true(wait_for(accepted_fin, WAIT_MS));
	er_stream *s = accepted;
	if (!s->fin_in && !strcmp(proto, PROTO_SILENT))
		return s;
	assert_true(s->fin_in);
	uint8_t result, out[64];
	size_t len;
	assert_int_equal(er_take(s, false, &result, out, sizeof(out), &len), 1);
	assert_int_equal(len, qn);
	assert_memory_equal(out, q, (size_t)qn);
	assert_int_equal(s->len, 0);
	return s;
}

static uint64_t next_cookie = 1;

/* The node asks and our answer is good: one chunk, then our FIN. */
static void good_response(void)
{
	uint64_t cookie = next_cookie++;
	er_stream *s = asked(PROTO, cookie);
	assert_non_null(s);
	uint8_t b[128];
	ssize_t n = er_encode(b, sizeof(b), WISP_RR_SUCCESS, "fine", 4);
	assert_true(n > 0);
	assert_int_equal(er_send(evil, s, b, (size_t)n, WAIT_MS), 0);
	assert_int_equal(er_fin(evil, s, WAIT_MS), 0);
	assert_true(wait_for(ended_now, WAIT_MS));
	rec *e = nth(WISP_EVENT_RESPONSE_END, cookie, 0);
	assert_int_equal(e->status, WISP_OK);
	assert_int_equal(e->index, 1);
	assert_int_equal(count_of(WISP_EVENT_RESPONSE, cookie), 1);
	rec *c = nth(WISP_EVENT_RESPONSE, cookie, 0);
	assert_int_equal(c->result, WISP_RR_SUCCESS);
	assert_int_equal(c->len, 4);
	assert_memory_equal(c->data, "fine", 4);
	er_release(s);
}

/* The first request, right after WISP_EVENT_CONNECTED. The node's
 * request/response actor hears of a connection before the application
 * does, but not through the same mailbox lane as the application's
 * request, so a request can still (rarely) overtake that news: then it
 * ends WISP_ERR_NOTFOUND and is asked again. */
static void first_response(void)
{
	uint64_t t0 = wt_now_ns();
	for (;;) {
		uint64_t cookie = next_cookie++;
		er_stream *s = asked(PROTO, cookie);
		if (s) {
			uint8_t b[128];
			ssize_t n = er_encode(b, sizeof(b), WISP_RR_SUCCESS, "first", 5);
			assert_int_equal(er_send(evil, s, b, (size_t)n, WAIT_MS), 0);
			assert_int_equal(er_fin(evil, s, WAIT_MS), 0);
			assert_true(wait_for(ended_now, WAIT_MS));
			assert_int_equal(nth(WISP_EVENT_RESPONSE_END, cookie, 0)->status, WISP_OK);
			er_release(s);
			return;
		}
		assert_int_equal(nth(WISP_EVENT_RESPONSE_END, cookie, 0)->status, WISP_ERR_NOTFOUND);
		assert_true(wt_now_ns() - t0 < (uint64_t)WAIT_MS * 1000000u);
	}
}

/* A bad answer: the bytes, then a FIN when fin. The end names want after
 * `good` chunks, which are the only ones the application saw. */
static void bad_response(const char *what, const char *proto, const uint8_t *b, size_t n, bool fin, int want,
			 uint32_t good)
{
	print_message("# evil responder: %s\n", what);
	wisp_stats st0 = stats();
	uint64_t cookie = next_cookie++;
	er_stream *s = asked(proto, cookie);
	assert_non_null(s);
	if (n)
		assert_int_equal(er_send(evil, s, b, n, WAIT_MS), 0);
	if (fin)
		assert_int_equal(er_fin(evil, s, WAIT_MS), 0);
	assert_true(wait_for(ended_now, WAIT_MS));
	rec *e = nth(WISP_EVENT_RESPONSE_END, cookie, 0);
	if (e->status != want)
		fail_msg("ended %s, expected %s", wisp_errname(e->status), wisp_errname(want));
	assert_int_equal(e->index, good);
	assert_int_equal(count_of(WISP_EVENT_RESPONSE, cookie), good);
	for (uint32_t i = 0; i < good; i++) {
		rec *c = nth(WISP_EVENT_RESPONSE, cookie, (int)i);
		assert_int_equal(c->index, i);
		assert_true(c->len >= 4 && !memcmp(c->data, "good", 4));
	}
	/* the stream is reset */
	cur = s;
	assert_true(wait_for(cur_reset, WAIT_MS));
	er_release(s);
	wisp_stats st = stats();
	assert_int_equal(st.reqresp.failed - st0.reqresp.failed, 1);
	if (want == WISP_ERR_TIMEOUT) {
		assert_int_equal(st.reqresp.timeouts - st0.reqresp.timeouts, 1);
		assert_int_equal(st.reqresp.bad_responses, st0.reqresp.bad_responses);
	} else {
		assert_int_equal(st.reqresp.bad_responses - st0.reqresp.bad_responses, 1);
		assert_int_equal(st.reqresp.timeouts, st0.reqresp.timeouts);
	}
	assert_int_equal(st.reqresp.chunks_in - st0.reqresp.chunks_in, good);
	/* the node keeps working */
	good_response();
	check_baseline();
}

/* A good chunk ("good <i>" padded to len) at b; returns its size. */
static size_t good_chunk(uint8_t *b, size_t cap, unsigned i, size_t len)
{
	char c[MAX_CHUNK];
	memset(c, 'g', sizeof(c));
	int k = snprintf(c, sizeof(c), "good %u", i);
	if (len < (size_t)k)
		len = (size_t)k;
	ssize_t n = er_encode(b, cap, WISP_RR_SUCCESS, c, len);
	assert_true(n > 0);
	return (size_t)n;
}

static void test_evil_responder(void **state)
{
	(void)state;
	start();
	first_response();
	pool_base = stats().pool_in_use;
	static uint8_t b[16 * 1024], content[2 * MAX_CHUNK];
	for (size_t i = 0; i < sizeof(content); i++)
		content[i] = (uint8_t)wt_rng();
	size_t n;
	ssize_t z;

	/* a declared chunk length over max_chunk: the prefix is enough */
	b[0] = WISP_RR_SUCCESS;
	n = 1 + put_len(b + 1, MAX_CHUNK + 1);
	bad_response("chunk length max_chunk + 1", PROTO, b, n, false, WISP_ERR_TOO_LARGE, 0);
	b[0] = WISP_RR_SUCCESS;
	n = 1 + put_len(b + 1, WISP_UVARINT_MAX);
	bad_response("chunk length 2^63 - 1", PROTO, b, n, false, WISP_ERR_TOO_LARGE, 0);

	/* unknown result codes */
	b[0] = 4;
	bad_response("result code 4", PROTO, b, 1, false, WISP_ERR_UNKNOWN_CODE, 0);
	n = good_chunk(b, sizeof(b), 0, 10);
	b[n] = 255;
	bad_response("a good chunk, then result code 255", PROTO, b, n + 1, false, WISP_ERR_UNKNOWN_CODE, 1);

	/* error messages: over 256 bytes, not UTF-8 */
	memset(content, 'e', 300);
	b[0] = WISP_RR_SERVER_ERROR;
	n = 1 + put_len(b + 1, WISP_REQRESP_MAX_ERRMSG + 1);
	bad_response("an error message of 257 bytes (prefix)", PROTO, b, n, false, WISP_ERR_TOO_LARGE, 0);
	z = er_encode(b, sizeof(b), WISP_RR_INVALID_REQUEST, content, WISP_REQRESP_MAX_ERRMSG + 1);
	bad_response("an error message of 257 bytes", PROTO, b, (size_t)z, true, WISP_ERR_TOO_LARGE, 0);
	z = er_encode(b, sizeof(b), WISP_RR_SERVER_ERROR, "bad \xff\xfe", 6);
	bad_response("an error message that is not UTF-8", PROTO, b, (size_t)z, true, WISP_ERR_MALFORMED, 0);
	z = er_encode(b, sizeof(b), WISP_RR_UNAVAILABLE, "\xed\xa0\x80", 3);
	bad_response("an error message with a surrogate", PROTO, b, (size_t)z, true, WISP_ERR_MALFORMED, 0);

	/* a chunk cut short by a FIN */
	n = good_chunk(b, sizeof(b), 0, 100);
	z = er_encode(b + n, sizeof(b) - n, WISP_RR_SUCCESS, content, 1000);
	bad_response("a good chunk, then half a chunk and FIN", PROTO, b, n + (size_t)z / 2, true,
		     WISP_ERR_TRUNCATED, 1);
	b[0] = WISP_RR_SUCCESS;
	bad_response("a result byte and FIN", PROTO, b, 1, true, WISP_ERR_TRUNCATED, 0);

	/* decompression bombs */
	size_t bomb_len = 16u << 20;
	uint8_t *zeros = calloc(1, bomb_len);
	assert_non_null(zeros);
	b[0] = WISP_RR_SUCCESS;
	n = 1 + put_len(b + 1, 100);
	z = er_zstd(b + n, sizeof(b) - n, zeros, bomb_len, 0, 0);
	assert_true(z > 0);
	bad_response("16 MiB of zeros declared as 100 bytes", PROTO, b, n + (size_t)z, false, WISP_ERR_TOO_LARGE, 0);
	b[0] = WISP_RR_SUCCESS;
	n = 1 + put_len(b + 1, MAX_CHUNK);
	z = er_zstd(b + n, sizeof(b) - n, zeros, 64 * 1024, 0, 10);
	assert_true(z > 0);
	bad_response("64 KiB of zeros in 1 KiB blocks declared as max_chunk", PROTO, b, n + (size_t)z, false,
		     WISP_ERR_TOO_LARGE, 0);
	b[0] = WISP_RR_SUCCESS;
	n = 1 + put_len(b + 1, 100);
	z = er_zstd(b + n, sizeof(b) - n, zeros, bomb_len, ER_Z_SIZE, 0);
	bad_response("16 MiB declared as 100, with its content size", PROTO, b, n + (size_t)z, false,
		     WISP_ERR_DECOMPRESS, 0);
	free(zeros);
	b[0] = WISP_RR_SUCCESS;
	n = 1 + put_len(b + 1, 100);
	z = er_zstd(b + n, sizeof(b) - n, content, 50, 0, 0);
	bad_response("50 bytes declared as 100", PROTO, b, n + (size_t)z, true, WISP_ERR_DECOMPRESS, 0);
	b[0] = WISP_RR_SUCCESS;
	n = 1 + put_len(b + 1, 8);
	memcpy(b + n, "not zstd at all", 15);
	bad_response("not a zstd frame", PROTO, b, n + 15, false, WISP_ERR_DECOMPRESS, 0);
	b[0] = WISP_RR_SUCCESS;
	b[1] = 0x81;
	b[2] = 0x00;
	bad_response("a non-minimal length varint", PROTO, b, 3, false, WISP_ERR_VARINT, 0);

	/* more chunks than max_chunks: the ones within the limit arrive */
	n = 0;
	for (unsigned i = 0; i <= MAX_CHUNKS; i++)
		n += good_chunk(b + n, sizeof(b) - n, i, 20);
	bad_response("max_chunks + 1 chunks", PROTO, b, n, true, WISP_ERR_PROTOCOL, MAX_CHUNKS);

	/* a chunk after an error result (which ends the response) */
	z = er_encode(b, sizeof(b), WISP_RR_UNAVAILABLE, "good but busy", 13);
	n = (size_t)z + good_chunk(b + z, sizeof(b) - (size_t)z, 1, 20);
	bad_response("a chunk after an error result", PROTO, b, n, true, WISP_ERR_PROTOCOL, 1);

	/* silence: the first-byte timeout; half a chunk: the chunk timeout */
	bad_response("no answer", PROTO_SILENT, NULL, 0, false, WISP_ERR_TIMEOUT, 0);
	n = good_chunk(b, sizeof(b), 0, 100);
	z = er_encode(b + n, sizeof(b) - n, WISP_RR_SUCCESS, content, 1000);
	bad_response("a good chunk, then half a chunk and silence", PROTO_SLOW, b, n + (size_t)z / 2, false,
		     WISP_ERR_TIMEOUT, 1);

	stop();
}

int main(void)
{
	wt_rng_seed("rt_reqresp_bad");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_evil_requester),
		cmocka_unit_test(test_evil_responder),
		cmocka_unit_test(test_respond_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
