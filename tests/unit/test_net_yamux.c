/* yamux sessions: two endpoints pumped in process with a hand-advanced
 * clock, and single sessions fed hand-built frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "net/yamux.h"
#include "runtime/buf.h"
#include "tests/testlib.h"

#define MAXID 4096
#define KIB 1024u
#define MS WISP_NS_PER_MS

static wisp_tstamp now_ns;
static wisp_pool *pool;

/* ---- a recording endpoint ---------------------------------------------- */

struct rec {
	bool seen;     /* opened by us or accepted */
	bool fin;      /* the peer's FIN arrived */
	bool closed;   /* stream_closed arrived */
	bool acked;
	bool lazy;     /* data is consumed later, by the test */
	int err;
	uint64_t rx, tx;
	uint64_t rx_hash, tx_hash;
	uint32_t unconsumed;
	unsigned writable;
};

/* One callback, for the transcript comparisons. */
struct event {
	char kind; /* o open, d data (merged), f fin, a acked, c closed, p rtt, g go away */
	uint32_t id;
	uint64_t n;
	uint64_t hash;
	int err;
};

struct peer {
	wisp_yamux *y;
	struct rec r[MAXID];
	bool auto_consume;
	bool refuse;
	bool reset_on_data;
	bool close_on_fin;
	bool lazy_all;
	bool raw; /* payload is not the test pattern: do not check it */
	uint32_t ids[MAXID]; /* streams the application still holds */
	unsigned nids;
	unsigned closed_n;
	uint64_t last_rtt;
	unsigned rtts;
	int64_t goaway;
	int read_err;
	struct event *ev; /* NULL: no event log */
	size_t nev, evcap;
	int closed_in_cb_rc; /* what open() returned inside stream_closed */
	bool open_in_closed;
};

static uint8_t pat(uint32_t id, uint64_t off)
{
	uint64_t x = off * UINT64_C(0x9E3779B97F4A7C15) + (uint64_t)id * 0x632BE5AB;
	return (uint8_t)(x >> 29);
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	if (!h)
		h = UINT64_C(14695981039346656037);
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * UINT64_C(1099511628211);
	return h;
}

static void log_event(struct peer *p, char kind, uint32_t id, uint64_t n, const uint8_t *data, int err)
{
	if (!p->ev)
		return;
	if (kind == 'd' && p->nev && p->ev[p->nev - 1].kind == 'd' && p->ev[p->nev - 1].id == id) {
		p->ev[p->nev - 1].n += n;
		p->ev[p->nev - 1].hash = fnv(p->ev[p->nev - 1].hash, data, n);
		return;
	}
	assert_true(p->nev < p->evcap);
	p->ev[p->nev++] = (struct event){ kind, id, n, data ? fnv(0, data, n) : 0, err };
}

static void ids_add(struct peer *p, uint32_t id)
{
	assert_true(p->nids < MAXID);
	p->ids[p->nids++] = id;
}

static void ids_del(struct peer *p, uint32_t id)
{
	for (unsigned i = 0; i < p->nids; i++)
		if (p->ids[i] == id) {
			p->ids[i] = p->ids[--p->nids];
			return;
		}
	fail_msg("stream %u closed twice or never known", id);
}

static int cb_open(void *ctx, uint32_t id)
{
	struct peer *p = ctx;
	assert_true(id < MAXID);
	log_event(p, 'o', id, 0, NULL, 0);
	if (p->refuse)
		return -1;
	struct rec *r = &p->r[id];
	assert_false(r->seen);
	memset(r, 0, sizeof(*r));
	r->seen = true;
	r->lazy = p->lazy_all || (!p->auto_consume && (id * 7919u) % 3 == 0);
	ids_add(p, id);
	assert_int_equal(wisp_yamux_set_user(p->y, id, r), 0);
	return 0;
}

static int cb_data(void *ctx, uint32_t id, void *user, const uint8_t *d, size_t n)
{
	struct peer *p = ctx;
	struct rec *r = &p->r[id];
	assert_ptr_equal(user, r);
	assert_true(r->seen && !r->closed && !r->fin);
	assert_true(n > 0);
	for (size_t i = 0; i < n && !p->raw; i++)
		if (d[i] != pat(id, r->rx + i))
			fail_msg("stream %u byte %llu wrong", id, (unsigned long long)(r->rx + i));
	r->rx += n;
	r->rx_hash = fnv(r->rx_hash, d, n);
	log_event(p, 'd', id, n, d, 0);
	if (p->reset_on_data)
		return -1;
	if (r->lazy) {
		r->unconsumed += (uint32_t)n;
		return 0;
	}
	assert_int_equal(wisp_yamux_consumed(p->y, id, n), 0);
	return 0;
}

static void cb_fin(void *ctx, uint32_t id, void *user)
{
	struct peer *p = ctx;
	struct rec *r = &p->r[id];
	assert_ptr_equal(user, r);
	assert_false(r->fin);
	r->fin = true;
	log_event(p, 'f', id, 0, NULL, 0);
	if (p->close_on_fin)
		assert_int_equal(wisp_yamux_close(p->y, id), 0);
}

static void cb_writable(void *ctx, uint32_t id, void *user)
{
	struct peer *p = ctx;
	assert_ptr_equal(user, &p->r[id]);
	p->r[id].writable++;
}

static void cb_acked(void *ctx, uint32_t id, void *user)
{
	struct peer *p = ctx;
	assert_ptr_equal(user, &p->r[id]);
	assert_false(p->r[id].acked);
	p->r[id].acked = true;
	log_event(p, 'a', id, 0, NULL, 0);
}

static void cb_closed(void *ctx, uint32_t id, void *user, int err)
{
	struct peer *p = ctx;
	struct rec *r = &p->r[id];
	assert_ptr_equal(user, r);
	assert_true(r->seen);
	assert_false(r->closed);
	r->closed = true;
	r->err = err;
	r->unconsumed = 0;
	p->closed_n++;
	ids_del(p, id);
	log_event(p, 'c', id, 0, NULL, err);
	/* every call on a closed id fails cleanly, even from here */
	wisp_yamux_stats st;
	wisp_yamux_stats_get(p->y, &st);
	assert_int_equal(wisp_yamux_consumed(p->y, id, 1), WISP_ERR_NOTFOUND);
	assert_int_equal(wisp_yamux_reset(p->y, id), st.err ? WISP_ERR_CLOSED : WISP_ERR_NOTFOUND);
	if (st.err)
		assert_int_equal(err, st.err);
	if (p->open_in_closed) {
		uint32_t nid;
		p->closed_in_cb_rc = wisp_yamux_open(p->y, NULL, &nid);
	}
}

static void cb_rtt(void *ctx, uint64_t rtt)
{
	struct peer *p = ctx;
	p->last_rtt = rtt;
	p->rtts++;
	log_event(p, 'p', 0, rtt, NULL, 0);
}

static void cb_goaway(void *ctx, uint32_t code)
{
	struct peer *p = ctx;
	p->goaway = code;
	log_event(p, 'g', 0, code, NULL, 0);
}

static const wisp_yamux_callbacks cbs = {
	.stream_open = cb_open,
	.stream_data = cb_data,
	.stream_fin = cb_fin,
	.stream_writable = cb_writable,
	.stream_acked = cb_acked,
	.stream_closed = cb_closed,
	.ping_rtt = cb_rtt,
	.go_away = cb_goaway,
};

/* Defaults without background pings, so frame-exact tests see only their
 * own frames. */
static void quiet_cfg(wisp_yamux_config *c)
{
	wisp_yamux_config_default(c);
	c->keepalive_ns = 0;
	c->rtt_interval_ns = 0;
}

static struct peer *peer_new(bool client, const wisp_yamux_config *cfg, const wisp_mem *mem)
{
	struct peer *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	p->auto_consume = true;
	p->goaway = -1;
	wisp_yamux_config def;
	if (!cfg) {
		quiet_cfg(&def);
		cfg = &def;
	}
	assert_int_equal(wisp_yamux_new(&p->y, mem ? mem : wisp_mem_default(), cfg, client, &cbs, p,
					now_ns),
			 0);
	return p;
}

static void peer_free(struct peer *p)
{
	if (!p)
		return;
	wisp_yamux_free(p->y);
	free(p->ev);
	free(p);
}

static void peer_log(struct peer *p, size_t cap)
{
	p->ev = calloc(cap, sizeof(*p->ev));
	assert_non_null(p->ev);
	p->evcap = cap;
}

static uint32_t open_stream(struct peer *p)
{
	uint32_t id;
	assert_int_equal(wisp_yamux_open(p->y, NULL, &id), 0);
	assert_true(id < MAXID);
	struct rec *r = &p->r[id];
	memset(r, 0, sizeof(*r));
	r->seen = true;
	r->lazy = p->lazy_all;
	ids_add(p, id);
	assert_int_equal(wisp_yamux_set_user(p->y, id, r), 0);
	return id;
}

/* Queue n pattern bytes on id, in pooled buffers of up to chunk bytes. */
static int send_pattern(struct peer *p, uint32_t id, size_t n, size_t chunk)
{
	struct rec *r = &p->r[id];
	while (n) {
		size_t k = n < chunk ? n : chunk;
		wisp_buf *b = wisp_buf_alloc(pool, k + 3);
		if (!b)
			return WISP_ERR_NOMEM;
		/* offset 3: the stream sends from inside the buffer */
		for (size_t i = 0; i < k; i++)
			b->data[3 + i] = pat(id, r->tx + i);
		uint64_t h = fnv(r->tx_hash, b->data + 3, k);
		int rc = wisp_yamux_write(p->y, id, b, 3, k);
		wisp_buf_unref(b);
		if (rc)
			return rc;
		r->tx_hash = h;
		r->tx += k;
		n -= k;
	}
	return 0;
}

static uint8_t wire[1 << 20];

/* One pull from `from`, read by `to`. Returns the bytes moved. */
static size_t xfer(struct peer *from, struct peer *to, size_t cap)
{
	ssize_t n = wisp_yamux_pull(from->y, wire, cap, now_ns);
	assert_true(n >= 0);
	if (n > 0 && !to->read_err)
		to->read_err = wisp_yamux_read(to->y, wire, (size_t)n, now_ns);
	return (size_t)n;
}

/* Move bytes both ways until both sides are quiet. */
static void pump_cap(struct peer *a, struct peer *b, size_t cap)
{
	for (int i = 0; i < 1000000; i++) {
		size_t m = xfer(a, b, cap);
		m += xfer(b, a, cap);
		if (!m)
			return;
	}
	fail_msg("pump did not settle");
}

static void pump(struct peer *a, struct peer *b)
{
	pump_cap(a, b, 65519);
	assert_int_equal(a->read_err, 0);
	assert_int_equal(b->read_err, 0);
}

static void check_pool_empty(void)
{
	wisp_pool_stats st;
	wisp_pool_stats_get(pool, &st);
	assert_int_equal(st.in_use, 0);
}

static int setup(void **state)
{
	(void)state;
	now_ns = 1000 * WISP_NS_PER_S;
	return wisp_pool_new(&pool, wisp_mem_default(), 256u << 20);
}

static int teardown(void **state)
{
	(void)state;
	wisp_pool_stats st;
	wisp_pool_stats_get(pool, &st);
	wisp_pool_free(pool);
	return st.in_use == 0 ? 0 : -1;
}

/* ---- raw frames -------------------------------------------------------- */

static size_t frame(uint8_t *out, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
	wisp_yamux_put_header(out, type, flags, id, len);
	return WISP_YAMUX_HEADER_LEN;
}

/* Pull everything a session has into buf; returns the length. */
static size_t drain(struct peer *p, uint8_t *buf, size_t cap)
{
	size_t total = 0;
	for (;;) {
		ssize_t n = wisp_yamux_pull(p->y, buf + total, cap - total, now_ns);
		assert_true(n >= 0);
		if (!n)
			return total;
		total += (size_t)n;
	}
}

/* ---- tests ------------------------------------------------------------- */

static void test_open_data_fin(void **state)
{
	(void)state;
	struct peer *c = peer_new(true, NULL, NULL), *s = peer_new(false, NULL, NULL);
	c->raw = s->raw = true; /* hello, world */
	assert_false(wisp_yamux_wants_write(c->y));

	uint32_t id = open_stream(c);
	assert_int_equal(id, 1);
	assert_true(wisp_yamux_wants_write(c->y));
	assert_int_equal(wisp_yamux_write_copy(c->y, id, pool, "hello", 5), 0);
	assert_int_equal(wisp_yamux_stream_queued(c->y, id), 5);
	assert_int_equal(wisp_yamux_queued_bytes(c->y), 5 + 12); /* data + SYN */

	/* SYN as a window update, then the data frame */
	uint8_t out[256];
	ssize_t n = wisp_yamux_pull(c->y, out, sizeof(out), now_ns);
	assert_int_equal(n, 12 + 12 + 5);
	static const uint8_t syn[] = { 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0 };
	static const uint8_t data[] = { 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o' };
	assert_memory_equal(out, syn, 12);
	assert_memory_equal(out + 12, data, sizeof(data));
	assert_int_equal(wisp_yamux_read(s->y, out, (size_t)n, now_ns), 0);
	assert_true(s->r[1].seen);
	assert_int_equal(s->r[1].rx, 5);

	/* the ACK: a window update with ACK, giving back the 5 bytes consumed */
	n = wisp_yamux_pull(s->y, out, sizeof(out), now_ns);
	static const uint8_t ack[] = { 0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 5 };
	assert_int_equal(n, 12);
	assert_memory_equal(out, ack, 12);
	assert_int_equal(wisp_yamux_read(c->y, out, 12, now_ns), 0);
	assert_true(c->r[1].acked);

	/* client half-closes: FIN on a zero-length window update */
	assert_int_equal(wisp_yamux_close(c->y, id), 0);
	assert_int_equal(wisp_yamux_close(c->y, id), 0); /* idempotent */
	assert_int_equal(wisp_yamux_write_copy(c->y, id, pool, "x", 1), WISP_ERR_CLOSED);
	n = wisp_yamux_pull(c->y, out, sizeof(out), now_ns);
	static const uint8_t fin[] = { 0, 1, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0 };
	assert_int_equal(n, 12);
	assert_memory_equal(out, fin, 12);
	assert_int_equal(wisp_yamux_read(s->y, out, 12, now_ns), 0);
	assert_true(s->r[1].fin);
	assert_false(s->r[1].closed);

	/* server answers, then closes: both ends see stream_closed(0) */
	assert_int_equal(wisp_yamux_write_copy(s->y, id, pool, "world!", 6), 0);
	assert_int_equal(wisp_yamux_close(s->y, id), 0);
	assert_true(s->r[1].closed);
	assert_int_equal(s->r[1].err, 0);
	assert_int_equal(wisp_yamux_write_copy(s->y, id, pool, "x", 1), WISP_ERR_NOTFOUND);
	/* the closed stream still sends its data, then the FIN */
	n = wisp_yamux_pull(s->y, out, sizeof(out), now_ns);
	assert_int_equal(n, 12 + 6 + 12);
	assert_int_equal(out[1], WISP_YAMUX_DATA);
	assert_int_equal(out[18 + 3], WISP_YAMUX_FIN);
	assert_int_equal(wisp_yamux_read(c->y, out, (size_t)n, now_ns), 0);
	assert_int_equal(c->r[1].rx, 6);
	assert_true(c->r[1].fin && c->r[1].closed);
	assert_int_equal(c->r[1].err, 0);

	/* the server opens one too: even ids, same dance */
	c->raw = s->raw = false;
	uint32_t sid = open_stream(s);
	assert_int_equal(sid, 2);
	assert_int_equal(send_pattern(s, sid, 100000, 4096), 0);
	assert_int_equal(wisp_yamux_close(s->y, sid), 0);
	c->close_on_fin = true;
	pump(c, s);
	assert_int_equal(c->r[2].rx, 100000);
	assert_true(c->r[2].closed && s->r[2].closed);
	assert_int_equal(c->r[2].err, 0);
	assert_int_equal(s->r[2].err, 0);

	wisp_yamux_stats st;
	wisp_yamux_stats_get(c->y, &st);
	assert_int_equal(st.streams, 0);
	assert_int_equal(st.streams_opened, 1);
	assert_int_equal(st.streams_accepted, 1);
	assert_int_equal(st.unacked, 0);
	wisp_yamux_stats_get(s->y, &st);
	assert_int_equal(st.streams, 0);
	assert_int_equal(wisp_yamux_queued_bytes(s->y), 0);
	peer_free(c);
	peer_free(s);
	check_pool_empty();
}

static void test_hundred_streams(void **state)
{
	(void)state;
	struct peer *c = peer_new(true, NULL, NULL), *s = peer_new(false, NULL, NULL);
	c->close_on_fin = s->close_on_fin = true;
	uint32_t cid[100], sid[100];
	for (int i = 0; i < 50; i++) {
		cid[i] = open_stream(c);
		sid[i] = open_stream(s);
	}
	/* lengths up to 600 KiB: more than two windows each */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(send_pattern(c, cid[i], (size_t)(i * 12289 + 1) % (600 * KIB), 3000 + i),
				 0);
		assert_int_equal(send_pattern(s, sid[i], (size_t)(i * 7919 + 17) % (600 * KIB), 65536), 0);
		assert_int_equal(wisp_yamux_close(c->y, cid[i]), 0);
		assert_int_equal(wisp_yamux_close(s->y, sid[i]), 0);
	}
	pump(c, s);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(s->r[cid[i]].rx, c->r[cid[i]].tx);
		assert_true(s->r[cid[i]].rx_hash == c->r[cid[i]].tx_hash);
		assert_int_equal(c->r[sid[i]].rx, s->r[sid[i]].tx);
		assert_true(c->r[sid[i]].rx_hash == s->r[sid[i]].tx_hash);
		assert_true(c->r[cid[i]].closed && s->r[cid[i]].closed);
		assert_int_equal(c->r[cid[i]].err, 0);
		assert_int_equal(s->r[sid[i]].err, 0);
	}
	assert_int_equal(c->closed_n, 100);
	assert_int_equal(s->closed_n, 100);
	wisp_yamux_stats st;
	wisp_yamux_stats_get(c->y, &st);
	assert_int_equal(st.streams, 0);
	assert_true(st.window_updates_out > 0);
	peer_free(c);
	peer_free(s);
	check_pool_empty();
}

static void test_window_blocks_and_resumes(void **state)
{
	(void)state;
	struct peer *c = peer_new(true, NULL, NULL), *s = peer_new(false, NULL, NULL);
	s->lazy_all = true; /* the server holds on to what it got */
	uint32_t id = open_stream(c);
	assert_int_equal(send_pattern(c, id, 1024 * KIB, 65536), 0);
	pump(c, s);
	/* exactly one window, not a byte more */
	assert_int_equal(s->r[id].rx, 256 * KIB);
	wisp_yamux_stream_info info;
	assert_int_equal(wisp_yamux_stream_info_get(c->y, id, &info), 0);
	assert_int_equal(info.send_window, 0);
	assert_int_equal(info.queued, 768 * KIB);
	assert_true(info.acked);
	assert_false(wisp_yamux_wants_write(c->y));
	assert_int_equal(wisp_yamux_stream_info_get(s->y, id, &info), 0);
	assert_int_equal(info.unconsumed, 256 * KIB);
	assert_int_equal(info.recv_credit, 0);

	/* using less than half the window sends nothing */
	assert_int_equal(wisp_yamux_consumed(s->y, id, 128 * KIB - 1), 0);
	s->r[id].unconsumed -= 128 * KIB;
	assert_false(wisp_yamux_wants_write(s->y));
	pump(c, s);
	assert_int_equal(s->r[id].rx, 256 * KIB);
	/* half: one window update of 128 KiB, and exactly that much more data */
	assert_int_equal(wisp_yamux_consumed(s->y, id, 1), 0);
	assert_true(wisp_yamux_wants_write(s->y));
	pump(c, s);
	assert_int_equal(s->r[id].rx, 384 * KIB);
	assert_int_equal(wisp_yamux_consumed(s->y, id, 256 * KIB + 1), WISP_ERR_INVALID_ARG);

	/* consuming everything as it comes lets the rest through */
	while (s->r[id].rx < 1024 * KIB) {
		struct rec *r = &s->r[id];
		uint32_t k = r->unconsumed;
		r->unconsumed = 0;
		assert_int_equal(wisp_yamux_consumed(s->y, id, k), 0);
		uint64_t before = r->rx;
		pump(c, s);
		assert_true(r->rx > before);
	}
	assert_int_equal(s->r[id].rx, 1024 * KIB);
	assert_true(s->r[id].rx_hash == c->r[id].tx_hash);
	assert_int_equal(wisp_yamux_stream_queued(c->y, id), 0);
	peer_free(c);
	peer_free(s);
	check_pool_empty();
}

/* Move 8 MiB on one stream, 1 ms per round trip of the pump; returns the
 * receiver's final window. */
static uint32_t autotune_run(bool with_rtt, uint32_t max_window, uint64_t *grows)
{
	wisp_yamux_config cfg;
	quiet_cfg(&cfg);
	cfg.max_window = max_window;
	struct peer *c = peer_new(true, &cfg, NULL), *s = peer_new(false, &cfg, NULL);
	if (with_rtt) {
		/* the receiver measures a 5 ms RTT */
		assert_int_equal(wisp_yamux_ping(s->y, now_ns), 0);
		xfer(s, c, 65519);
		now_ns += 5 * MS;
		xfer(c, s, 65519);
		assert_int_equal(s->rtts, 1);
		assert_int_equal(s->last_rtt, 5 * MS);
	}
	uint32_t id = open_stream(c);
	assert_int_equal(send_pattern(c, id, 8u << 20, 65536), 0);
	for (int i = 0; i < 100000 && s->r[id].rx < (8u << 20); i++) {
		size_t m = xfer(c, s, 65519) + xfer(s, c, 65519);
		now_ns += MS / 4;
		assert_true(m > 0);
	}
	assert_int_equal(s->r[id].rx, 8u << 20);
	wisp_yamux_stream_info info;
	assert_int_equal(wisp_yamux_stream_info_get(s->y, id, &info), 0);
	wisp_yamux_stats st;
	wisp_yamux_stats_get(s->y, &st);
	*grows = st.window_grows;
	peer_free(c);
	peer_free(s);
	check_pool_empty();
	return info.recv_window;
}

static void test_window_autotune(void **state)
{
	(void)state;
	uint64_t grows;
	/* no RTT sample: the window stays */
	assert_int_equal(autotune_run(false, 16u << 20, &grows), 256 * KIB);
	assert_int_equal(grows, 0);
	/* drained quickly against a 10 ms RTT: doubles up to the maximum */
	assert_int_equal(autotune_run(true, 1u << 20, &grows), 1u << 20);
	assert_int_equal(grows, 2);
	uint32_t w = autotune_run(true, 16u << 20, &grows);
	assert_true(w > 1u << 20 && w <= 16u << 20);
	assert_true(grows >= 3);
	/* max_window = window disables it */
	assert_int_equal(autotune_run(true, 256 * KIB, &grows), 256 * KIB);
	assert_int_equal(grows, 0);
}

static void test_bigger_initial_window(void **state)
{
	(void)state;
	wisp_yamux_config cfg;
	quiet_cfg(&cfg);
	cfg.window = 1u << 20;
	struct peer *c = peer_new(true, &cfg, NULL), *s = peer_new(false, &cfg, NULL);
	s->lazy_all = c->lazy_all = true;
	uint32_t id = open_stream(c);
	uint8_t out[64];
	/* the SYN grants the extra 768 KiB at once */
	assert_int_equal(wisp_yamux_pull(c->y, out, sizeof(out), now_ns), 12);
	assert_int_equal(out[3], WISP_YAMUX_SYN);
	assert_int_equal(out[8] << 24 | out[9] << 16 | out[10] << 8 | out[11], 768 * KIB);
	assert_int_equal(wisp_yamux_read(s->y, out, 12, now_ns), 0);
	assert_int_equal(send_pattern(s, id, 2u << 20, 65536), 0);
	assert_int_equal(send_pattern(c, id, 2u << 20, 65536), 0);
	pump(c, s);
	/* each side could send the other's full 1 MiB window */
	assert_int_equal(c->r[id].rx, 1u << 20);
	assert_int_equal(s->r[id].rx, 1u << 20);
	peer_free(c);
	peer_free(s);
	check_pool_empty();
}

static void test_reset(void **state)
{
	(void)state;
	struct peer *c = peer_new(true, NULL, NULL), *s = peer_new(false, NULL, NULL);
	uint32_t a = open_stream(c), b = open_stream(c), d = open_stream(c);

	/* reset before the SYN went out: nothing at all reaches the wire */
	assert_int_equal(wisp_yamux_reset(c->y, d), 0);
	assert_true(c->r[d].closed);
	assert_int_equal(c->r[d].err, WISP_ERR_CLOSED);
	assert_int_equal(wisp_yamux_reset(c->y, d), WISP_ERR_NOTFOUND);

	s->lazy_all = true;
	assert_int_equal(send_pattern(c, a, 512 * KIB, 65536), 0);
	assert_int_equal(send_pattern(c, b, 1000, 1000), 0);
	pump(c, s);
	assert_false(s->r[d].seen);
	assert_int_equal(s->r[a].rx, 256 * KIB);

	/* the server resets a: the client's queue is dropped, its buffers return */
	assert_int_equal(wisp_yamux_reset(s->y, a), 0);
	assert_int_equal(s->r[a].err, WISP_ERR_CLOSED);
	assert_int_equal(wisp_yamux_consumed(s->y, a, 1), WISP_ERR_NOTFOUND);
	assert_true(wisp_yamux_stream_queued(c->y, a) > 0);
	pump(c, s);
	assert_true(c->r[a].closed);
	assert_int_equal(c->r[a].err, WISP_ERR_RESET);
	assert_int_equal(wisp_yamux_stream_queued(c->y, a), 0);
	assert_int_equal(wisp_yamux_write_copy(c->y, a, pool, "x", 1), WISP_ERR_NOTFOUND);

	/* RST after the peer's FIN: the client closed b, the server resets it */
	assert_int_equal(wisp_yamux_close(c->y, b), 0);
	pump(c, s);
	assert_true(s->r[b].fin);
	assert_int_equal(wisp_yamux_reset(s->y, b), 0);
	pump(c, s);
	assert_int_equal(c->r[b].err, WISP_ERR_RESET);

	/* stream_data refusing: the stream is reset from inside the callback */
	uint32_t e = open_stream(c);
	assert_int_equal(send_pattern(c, e, 100000, 65536), 0);
	s->reset_on_data = true;
	pump(c, s);
	s->reset_on_data = false;
	assert_true(s->r[e].closed);
	assert_int_equal(s->r[e].err, WISP_ERR_CLOSED);
	assert_true(s->r[e].rx > 0);
	assert_int_equal(c->r[e].err, WISP_ERR_RESET);

	/* an RST carrying an error code in its length (go-yamux) resets the
	 * stream and never touches the window */
	uint32_t g = open_stream(c);
	pump(c, s);
	uint8_t rst[12];
	frame(rst, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_RST, g, 0xffffffffu);
	assert_int_equal(wisp_yamux_read(c->y, rst, 12, now_ns), 0);
	assert_int_equal(c->r[g].err, WISP_ERR_RESET);
	assert_int_equal(wisp_yamux_reset(s->y, g), 0);
	pump(c, s);

	/* an RST for the stream, after it closed on both sides, is ignored */
	uint8_t raw[12];
	frame(raw, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_RST, a, 0);
	assert_int_equal(wisp_yamux_read(c->y, raw, 12, now_ns), 0);
	wisp_yamux_stats st;
	wisp_yamux_stats_get(c->y, &st);
	assert_int_equal(st.resets_in, 4);
	assert_int_equal(st.streams, 0);
	wisp_yamux_stats_get(s->y, &st);
	assert_int_equal(st.resets_out, 4);
	assert_int_equal(st.streams, 0);
	peer_free(c);
	peer_free(s);
	check_pool_empty();
}

static void test_refused_by_app(void **state)
{
	(void)state;
	struct peer *c = peer_new(true, NULL, NULL), *s = peer_new(false, NULL, NULL);
	s->refuse = true;
	uint32_t id = open_stream(c);
	assert_int_equal(send_pattern(c, id, 5000, 5000), 0);
	pump(c, s);
	assert_true(c->r[id].closed);
	assert_int_equal(c->r[id].err, WISP_ERR_RESET);
	assert_false(s->r[id].seen);
	wisp_yamux_stats st;
	wisp_yamux_stats_get(s->y, &st);
	assert_int_equal(st.streams_refused_app, 1);
	assert_int_equal(st.streams, 0);
	wisp_yamux_stats_get(c->y, &st);
	assert_int_equal(st.unacked, 0);
	peer_free(c);
	peer_free(s);
	check_pool_empty();
}

static void test_shared_buffer_and_writable(void **state)
{
	(void)state;
	wisp_yamux_config cfg;
	quiet_cfg(&cfg);
	cfg.writable_mark = 10000;
	struct peer *c = peer_new(true, &cfg, NULL), *s = peer_new(false, &cfg, NULL);
	uint32_t ids[3];
	for (int i = 0; i < 3; i++)
		ids[i] = open_stream(c);
	/* one buffer on three streams, each from its own offset */
	wisp_buf *b = wisp_buf_alloc(pool, 64);
	for (int i = 0; i < 64; i++)
		b->data[i] = (uint8_t)i;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(wisp_yamux_write(c->y, ids[i], b, (size_t)i, 10), 0);
		assert_int_equal(wisp_yamux_write(c->y, ids[i], b, 60, 5), WISP_ERR_INVALID_ARG);
		assert_int_equal(wisp_yamux_write(c->y, ids[i], b, 65, 0), WISP_ERR_INVALID_ARG);
		assert_int_equal(wisp_yamux_write(c->y, ids[i], b, 64, 0), 0);
	}
	assert_int_equal(atomic_load(&b->refs), 4);
	uint8_t copy[64];
	memcpy(copy, b->data, 64);
	wisp_buf_unref(b);
	assert_int_equal(wisp_yamux_reset(c->y, ids[2]), 0); /* drops its reference */
	assert_int_equal(atomic_load(&b->refs), 2);
	uint8_t out[256];
	ssize_t n = wisp_yamux_pull(c->y, out, sizeof(out), now_ns);
	assert_int_equal(n, 2 * 12 + 2 * 22);
	assert_memory_equal(out + 24 + 12, copy, 10);
	assert_memory_equal(out + 24 + 22 + 12, copy + 1, 10);
	check_pool_empty();

	/* stream_writable: once, when the queue falls to the mark */
	uint32_t id = open_stream(c);
	assert_int_equal(send_pattern(c, id, 40000, 4000), 0);
	for (int i = 0; i < 100 && wisp_yamux_stream_queued(c->y, id); i++)
		xfer(c, s, 4000);
	assert_int_equal(wisp_yamux_stream_queued(c->y, id), 0);
	assert_int_equal(c->r[id].writable, 1);
	assert_int_equal(send_pattern(c, id, 5000, 4000), 0); /* never above the mark */
	pump(c, s);
	assert_int_equal(c->r[id].writable, 1);
	assert_int_equal(s->r[id].rx, 45000);

	/* a small cap still moves data: frames as long as it allows */
	assert_int_equal(send_pattern(c, id, 1000, 1000), 0);
	for (int i = 0; i < 100 && wisp_yamux_stream_queued(c->y, id); i++) {
		ssize_t k = wisp_yamux_pull(c->y, out, 50, now_ns);
		assert_true(k == 50 || (k > 12 && !wisp_yamux_stream_queued(c->y, id)));
		assert_int_equal(wisp_yamux_read(s->y, out, (size_t)k, now_ns), 0);
	}
	assert_int_equal(s->r[id].rx, 46000);

	/* a pull buffer too small for a header */
	assert_int_equal(wisp_yamux_ping(c->y, now_ns), 0);
	assert_int_equal(wisp_yamux_pull(c->y, out, 11, now_ns), WISP_ERR_NOBUF);
	pump(c, s);
	peer_free(c);
	peer_free(s);
	check_pool_empty();
}

static void test_ping_rtt(void **state)
{
	(void)state;
	struct peer *c = peer_new(true, NULL, NULL), *s = peer_new(false, NULL, NULL);
	assert_int_equal(wisp_yamux_ping(c->y, now_ns), 0);
	assert_int_equal(wisp_yamux_ping(c->y, now_ns), 0); /* joins the first */
	uint8_t out[64];
	ssize_t n = wisp_yamux_pull(c->y, out, sizeof(out), now_ns);
	static const uint8_t ping[] = { 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0 };
	assert_int_equal(n, 12);
	assert_memory_equal(out, ping, 12);
	now_ns += 3 * MS;
	assert_int_equal(wisp_yamux_read(s->y, out, 12, now_ns), 0);
	n = wisp_yamux_pull(s->y, out, sizeof(out), now_ns);
	static const uint8_t pong[] = { 0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0 };
	assert_int_equal(n, 12);
	assert_memory_equal(out, pong, 12);
	now_ns += 4 * MS;
	assert_int_equal(wisp_yamux_read(c->y, out, 12, now_ns), 0);
	assert_int_equal(c->rtts, 1);
	assert_int_equal(c->last_rtt, 7 * MS);
	/* the same reply again matches nothing: dropped, counted */
	assert_int_equal(wisp_yamux_read(c->y, out, 12, now_ns), 0);
	assert_int_equal(c->rtts, 1);
	wisp_yamux_stats st;
	wisp_yamux_stats_get(c->y, &st);
	assert_int_equal(st.frames_ignored, 1);
	assert_int_equal(st.rtt_ns, 7 * MS);
	/* the next ping carries the next value */
	assert_int_equal(wisp_yamux_ping(c->y, now_ns), 0);
	n = wisp_yamux_pull(c->y, out, sizeof(out), now_ns);
	assert_int_equal(out[11], 1);
	peer_free(c);
	peer_free(s);
}

static void test_keepalive_and_timeout(void **state)
{
	(void)state;
	wisp_yamux_config cfg;
	quiet_cfg(&cfg);
	cfg.keepalive_ns = 1000 * MS;
	cfg.ping_timeout_ns = 500 * MS;
	wisp_tstamp t0 = now_ns;
	struct peer *c = peer_new(true, &cfg, NULL), *s = peer_new(false, NULL, NULL);
	assert_int_equal(wisp_yamux_expiry(c->y), t0 + 1000 * MS);
	assert_int_equal(wisp_yamux_expiry(s->y), WISP_YAMUX_NEVER);
	uint32_t id = open_stream(c);
	pump(c, s);

	/* early: nothing */
	now_ns = t0 + 999 * MS;
	assert_int_equal(wisp_yamux_handle_expiry(c->y, now_ns), 0);
	assert_false(wisp_yamux_wants_write(c->y));
	/* idle for the keep-alive interval: a ping, answered */
	now_ns = t0 + 1000 * MS;
	assert_int_equal(wisp_yamux_handle_expiry(c->y, now_ns), 0);
	assert_int_equal(wisp_yamux_expiry(c->y), now_ns + 500 * MS);
	xfer(c, s, 100);
	now_ns += 20 * MS;
	pump(c, s);
	assert_int_equal(c->rtts, 1);
	assert_int_equal(c->last_rtt, 20 * MS);
	/* received bytes push the next keep-alive back */
	assert_int_equal(wisp_yamux_expiry(c->y), now_ns + 1000 * MS);

	/* the next ping goes unanswered */
	now_ns = wisp_yamux_expiry(c->y);
	assert_int_equal(wisp_yamux_handle_expiry(c->y, now_ns), 0);
	uint8_t out[64];
	assert_int_equal(wisp_yamux_pull(c->y, out, sizeof(out), now_ns), 12);
	now_ns += 499 * MS;
	assert_int_equal(wisp_yamux_handle_expiry(c->y, now_ns), 0);
	now_ns += 1 * MS;
	assert_int_equal(wisp_yamux_handle_expiry(c->y, now_ns), WISP_ERR_TIMEOUT);
	assert_true(c->r[id].closed);
	assert_int_equal(c->r[id].err, WISP_ERR_TIMEOUT);
	assert_int_equal(wisp_yamux_expiry(c->y), WISP_YAMUX_NEVER);
	assert_int_equal(wisp_yamux_handle_expiry(c->y, now_ns), WISP_ERR_TIMEOUT);
	/* only a GO_AWAY (internal error) is left to send */
	static const uint8_t ga[] = { 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 };
	assert_int_equal(drain(c, out, sizeof(out)), 12);
	assert_memory_equal(out, ga, 12);
	assert_int_equal(wisp_yamux_read(c->y, out, 12, now_ns), WISP_ERR_TIMEOUT);
	uint32_t nid;
	assert_int_equal(wisp_yamux_open(c->y, NULL, &nid), WISP_ERR_CLOSED);
	assert_int_equal(wisp_yamux_ping(c->y, now_ns), WISP_ERR_CLOSED);

	/* the peer sees the GO_AWAY: its streams are reset */
	assert_int_equal(wisp_yamux_read(s->y, ga, 12, now_ns), WISP_ERR_RESET);
	assert_int_equal(s->goaway, 2);
	assert_int_equal(s->r[id].err, WISP_ERR_RESET);
	assert_false(wisp_yamux_wants_write(s->y));
	peer_free(c);
	peer_free(s);
}

static void test_rtt_ping_at_start(void **state)
{
	(void)state;
	wisp_yamux_config cfg;
	wisp_yamux_config_default(&cfg);
	struct peer *c = peer_new(true, &cfg, NULL), *s = peer_new(false, &cfg, NULL);
	/* with the defaults both ends measure the RTT straight away */
	assert_int_equal(wisp_yamux_expiry(c->y), now_ns);
	assert_int_equal(wisp_yamux_handle_expiry(c->y, now_ns), 0);
	assert_int_equal(wisp_yamux_handle_expiry(s->y, now_ns), 0);
	xfer(c, s, 1000);
	xfer(s, c, 1000);
	now_ns += 2 * MS;
	pump(c, s);
	assert_int_equal(c->rtts, 1);
	assert_int_equal(s->rtts, 1);
	/* the next measurement: 30 s later */
	assert_int_equal(wisp_yamux_expiry(c->y), now_ns - 2 * MS + cfg.rtt_interval_ns);
	peer_free(c);
	peer_free(s);
}

static void test_go_away(void **state)
{
	(void)state;
	struct peer *c = peer_new(true, NULL, NULL), *s = peer_new(false, NULL, NULL);
	c->close_on_fin = s->close_on_fin = true;
	uint32_t id = open_stream(c);
	pump(c, s);
	assert_int_equal(wisp_yamux_go_away(c->y, WISP_YAMUX_GOAWAY_NORMAL), 0);
	assert_int_equal(wisp_yamux_go_away(c->y, 1), 0); /* only once */
	uint32_t nid;
	assert_int_equal(wisp_yamux_open(c->y, NULL, &nid), WISP_ERR_CLOSED);
	uint8_t out[64];
	static const uint8_t ga[] = { 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	assert_int_equal(drain(c, out, sizeof(out)), 12);
	assert_memory_equal(out, ga, 12);
	assert_int_equal(wisp_yamux_read(s->y, out, 12, now_ns), 0);
	assert_int_equal(s->goaway, 0);
	assert_int_equal(wisp_yamux_open(s->y, NULL, &nid), WISP_ERR_CLOSED);

	/* open streams carry on */
	assert_int_equal(send_pattern(s, id, 300000, 65536), 0);
	assert_int_equal(send_pattern(c, id, 300000, 65536), 0);
	assert_int_equal(wisp_yamux_close(c->y, id), 0);
	pump(c, s);
	assert_int_equal(c->r[id].rx, 300000);
	assert_int_equal(s->r[id].rx, 300000);
	assert_int_equal(c->r[id].err, 0);
	assert_int_equal(s->r[id].err, 0);

	/* a SYN after our GO_AWAY is refused with RST */
	uint8_t raw[12];
	frame(raw, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_SYN, 2, 0);
	assert_int_equal(wisp_yamux_read(c->y, raw, 12, now_ns), 0);
	static const uint8_t rst[] = { 0, 1, 0, 8, 0, 0, 0, 2, 0, 0, 0, 0 };
	assert_int_equal(drain(c, out, sizeof(out)), 12);
	assert_memory_equal(out, rst, 12);
	wisp_yamux_stats st;
	wisp_yamux_stats_get(c->y, &st);
	assert_int_equal(st.streams_refused, 1);
	assert_int_equal(st.err, 0);
	/* a second GO_AWAY from the peer is ignored */
	assert_int_equal(wisp_yamux_read(s->y, ga, 12, now_ns), 0);
	peer_free(c);
	peer_free(s);
	check_pool_empty();
}

static void test_max_streams(void **state)
{
	(void)state;
	wisp_yamux_config cfg;
	quiet_cfg(&cfg);
	cfg.max_streams = 4;
	cfg.max_refused = 3;
	struct peer *c = peer_new(true, NULL, NULL), *s = peer_new(false, &cfg, NULL);
	uint32_t ids[8];
	for (int i = 0; i < 6; i++)
		ids[i] = open_stream(c);
	pump(c, s);
	for (int i = 0; i < 4; i++)
		assert_true(s->r[ids[i]].seen && !c->r[ids[i]].closed);
	for (int i = 4; i < 6; i++) {
		assert_false(s->r[ids[i]].seen);
		assert_int_equal(c->r[ids[i]].err, WISP_ERR_RESET);
	}
	wisp_yamux_stats st;
	wisp_yamux_stats_get(s->y, &st);
	assert_int_equal(st.streams_refused, 2);
	assert_int_equal(st.streams, 4);
	/* our own opens count too */
	uint32_t nid;
	assert_int_equal(wisp_yamux_open(s->y, NULL, &nid), WISP_ERR_LIMIT);

	/* an accepted stream ends the run of refusals */
	assert_int_equal(wisp_yamux_reset(c->y, ids[0]), 0);
	pump(c, s);
	ids[6] = open_stream(c);
	pump(c, s);
	assert_true(s->r[ids[6]].seen);

	/* four refusals in a row is one too many */
	for (int i = 0; i < 3; i++)
		open_stream(c);
	pump(c, s);
	assert_int_equal(s->read_err, 0);
	open_stream(c);
	pump_cap(c, s, 65519);
	assert_int_equal(s->read_err, WISP_ERR_STREAM_LIMIT);
	assert_int_equal(c->read_err, WISP_ERR_RESET);
	assert_int_equal(c->goaway, WISP_YAMUX_GOAWAY_PROTOCOL);
	wisp_yamux_stats_get(s->y, &st);
	assert_int_equal(st.streams_refused, 2 + 4);
	assert_int_equal(s->r[ids[1]].err, WISP_ERR_STREAM_LIMIT);
	assert_int_equal(c->r[ids[1]].err, WISP_ERR_RESET);
	assert_int_equal(s->nids, 0);
	assert_int_equal(c->nids, 0);
	peer_free(c);
	peer_free(s);
}

static void test_ack_backlog(void **state)
{
	(void)state;
	wisp_yamux_config cfg;
	quiet_cfg(&cfg);
	cfg.ack_backlog = 3;
	struct peer *c = peer_new(true, &cfg, NULL), *s = peer_new(false, NULL, NULL);
	uint32_t ids[3], nid;
	for (int i = 0; i < 3; i++)
		ids[i] = open_stream(c);
	assert_int_equal(wisp_yamux_open(c->y, NULL, &nid), WISP_ERR_AGAIN);
	wisp_yamux_stats st;
	wisp_yamux_stats_get(c->y, &st);
	assert_int_equal(st.unacked, 3);
	/* a reset stream no longer waits for its ACK */
	assert_int_equal(wisp_yamux_reset(c->y, ids[2]), 0);
	ids[2] = open_stream(c);
	assert_int_equal(wisp_yamux_open(c->y, NULL, &nid), WISP_ERR_AGAIN);
	/* the SYNs reach the peer, the ACKs come back */
	xfer(c, s, 65519);
	assert_int_equal(wisp_yamux_open(c->y, NULL, &nid), WISP_ERR_AGAIN);
	xfer(s, c, 65519);
	for (int i = 0; i < 3; i++)
		assert_true(c->r[ids[i]].acked);
	wisp_yamux_stats_get(c->y, &st);
	assert_int_equal(st.unacked, 0);
	for (int i = 0; i < 3; i++)
		open_stream(c);
	assert_int_equal(wisp_yamux_open(c->y, NULL, &nid), WISP_ERR_AGAIN);
	peer_free(c);
	peer_free(s);
}

/* ---- malformed input --------------------------------------------------- */

struct bad_case {
	const char *name;
	bool client;  /* the session under test */
	size_t ctrl;  /* max_ctrl_bytes, 0 = default */
	int err;      /* expected from read */
	int goaway;   /* expected GO_AWAY code, -1 none */
	uint8_t in[96];
	size_t len;
};

static size_t build(uint8_t *out, const uint32_t (*f)[4], size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += frame(out + len, (uint8_t)f[i][0], (uint16_t)f[i][1], f[i][2], f[i][3]);
	return len;
}

static void run_bad(const char *name, bool client, size_t ctrl, const uint8_t *in, size_t len, int err,
		    int goaway)
{
	wisp_yamux_config cfg;
	quiet_cfg(&cfg);
	if (ctrl)
		cfg.max_ctrl_bytes = ctrl;
	struct peer *p = peer_new(client, &cfg, NULL);
	p->raw = true;
	uint32_t own = open_stream(p); /* a stream to see closed */
	int rc = wisp_yamux_read(p->y, in, len, now_ns);
	if (rc != err)
		fail_msg("%s: read returned %s, expected %s", name, wisp_errname(rc), wisp_errname(err));
	if (err) {
		assert_true(p->r[own].closed);
		assert_int_equal(p->r[own].err, err);
		uint8_t out[64];
		size_t n = drain(p, out, sizeof(out));
		if (goaway < 0) {
			assert_int_equal(n, 0);
		} else {
			assert_int_equal(n, 12);
			uint8_t ga[12];
			frame(ga, WISP_YAMUX_GO_AWAY, 0, 0, (uint32_t)goaway);
			assert_memory_equal(out, ga, 12);
		}
		assert_int_equal(wisp_yamux_read(p->y, in, len, now_ns), err);
		wisp_yamux_stats st;
		wisp_yamux_stats_get(p->y, &st);
		assert_int_equal(st.err, err);
		assert_int_equal(st.streams, 0);
	} else {
		assert_false(p->r[own].closed);
	}
	peer_free(p);
}

#define F(t, fl, id, l) { WISP_YAMUX_##t, fl, id, l }
#define D WISP_YAMUX_DATA
#define SYN WISP_YAMUX_SYN
#define ACK WISP_YAMUX_ACK
#define FIN WISP_YAMUX_FIN
#define RST WISP_YAMUX_RST

static void test_malformed(void **state)
{
	(void)state;
	uint8_t in[1 << 20];
	size_t n;
	const int P = WISP_ERR_PROTOCOL, M = WISP_ERR_MALFORMED;

	/* header field checks */
	n = frame(in, WISP_YAMUX_PING, SYN, 0, 0);
	in[0] = 1;
	run_bad("version 1", false, 0, in, n, M, 1);
	n = frame(in, 4, 0, 0, 0);
	run_bad("type 4", false, 0, in, n, M, 1);
	n = frame(in, 0xff, SYN, 1, 0);
	run_bad("type 255", false, 0, in, n, M, 1);

	struct {
		const char *name;
		bool client;
		uint32_t f[4][4];
		size_t nf;
		int err;
	} cases[] = {
		{ "ping on a stream", false, { F(PING, SYN, 1, 7) }, 1, P },
		{ "go away on a stream", false, { F(GO_AWAY, 0, 3, 0) }, 1, P },
		{ "data on id 0", false, { F(DATA, 0, 0, 0) }, 1, P },
		{ "window update on id 0", false, { F(WINDOW_UPDATE, SYN, 0, 0) }, 1, P },
		{ "SYN with our parity (server)", false, { F(WINDOW_UPDATE, SYN, 2, 0) }, 1, P },
		{ "SYN with our parity (client)", true, { F(DATA, SYN, 5, 0) }, 1, P },
		{ "SYN for an open id", false, { F(WINDOW_UPDATE, SYN, 1, 0), F(DATA, SYN, 1, 0) }, 2, P },
		{ "SYN for our open stream", true, { F(WINDOW_UPDATE, SYN, 1, 0) }, 1, P },
		{ "data without SYN on a new id", false, { F(DATA, 0, 1, 0) }, 1, P },
		{ "window update without SYN on a new id", false,
		  { F(WINDOW_UPDATE, SYN, 1, 0), F(WINDOW_UPDATE, 0, 3, 0) }, 2, P },
		{ "FIN without SYN on a new id", false, { F(WINDOW_UPDATE, FIN, 7, 0) }, 1, P },
		{ "data on our id never opened", false, { F(DATA, 0, 4, 0) }, 1, P },
		{ "data on our id never opened (client)", true, { F(WINDOW_UPDATE, ACK, 3, 0) }, 1, P },
		{ "window overflow", false, { F(WINDOW_UPDATE, SYN, 1, 0xffffffffu - 256 * KIB + 1) }, 1, P },
		{ "window overflow later", true,
		  { F(WINDOW_UPDATE, ACK, 1, 0x7fffffff), F(WINDOW_UPDATE, 0, 1, 0x7fffffff) }, 2, P },
		{ "ping without flags", false, { F(PING, 0, 0, 1) }, 1, P },
		{ "ping with SYN and ACK", false, { F(PING, SYN | ACK, 0, 1) }, 1, P },
		{ "ping with FIN", false, { F(PING, SYN | FIN, 0, 1) }, 1, P },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = build(in, cases[i].f, cases[i].nf);
		run_bad(cases[i].name, cases[i].client, 0, in, n, cases[i].err, 1);
	}

	/* data beyond the window: in one frame, and over several */
	n = frame(in, D, SYN, 1, 256 * KIB + 1);
	run_bad("SYN data over the window", false, 0, in, n, WISP_ERR_FLOW_CONTROL, 1);
	n = frame(in, D, SYN, 1, 200 * KIB);
	memset(in + n, 0, 200 * KIB);
	n += 200 * KIB;
	n += frame(in + n, D, 0, 1, 56 * KIB + 1);
	run_bad("data over the window", false, 0, in, n, WISP_ERR_FLOW_CONTROL, 1);
	/* exactly the window is fine */
	n = frame(in, D, SYN, 1, 200 * KIB);
	memset(in + n, 0, 200 * KIB);
	n += 200 * KIB;
	n += frame(in + n, D, 0, 1, 56 * KIB);
	memset(in + n, 0, 56 * KIB);
	n += 56 * KIB;
	run_bad("data up to the window", false, 0, in, n, 0, -1);

	/* data after the peer's FIN, in a later frame and in the same read */
	n = frame(in, WISP_YAMUX_WINDOW_UPDATE, SYN | FIN, 1, 0);
	n += frame(in + n, D, 0, 1, 1);
	in[n++] = 0;
	run_bad("data after FIN", false, 0, in, n, P, 1);
	n = frame(in, D, SYN | FIN, 1, 0);
	n += frame(in + n, D, 0, 1, 0); /* empty data after FIN is harmless */
	n += frame(in + n, WISP_YAMUX_WINDOW_UPDATE, 0, 1, 10); /* so is a window update */
	n += frame(in + n, D, FIN, 1, 0); /* and a second FIN */
	run_bad("empty frames after FIN", false, 0, in, n, 0, -1);

	/* ping flood while nobody pulls: 10 replies fit, the 11th does not */
	n = 0;
	for (int i = 0; i < 10; i++)
		n += frame(in + n, WISP_YAMUX_PING, SYN, 0, (uint32_t)i);
	run_bad("10 pings", false, 120, in, n, 0, -1);
	n += frame(in + n, WISP_YAMUX_PING, SYN, 0, 10);
	run_bad("11 pings", false, 120, in, n, WISP_ERR_LIMIT, 2);

	/* the peer's GO_AWAY with an error: no GO_AWAY back */
	n = frame(in, WISP_YAMUX_GO_AWAY, 0, 0, 1);
	run_bad("go away protocol error", false, 0, in, n, WISP_ERR_RESET, -1);
	n = frame(in, WISP_YAMUX_GO_AWAY, 0, 0, 77);
	run_bad("go away unknown code", true, 0, in, n, WISP_ERR_RESET, -1);

	/* tolerated: RST for unknown streams, SYN with RST, stray pong, frames
	 * for closed streams */
	n = frame(in, WISP_YAMUX_WINDOW_UPDATE, RST, 99, 0);
	n += frame(in + n, D, RST, 1001, 3);
	memset(in + n, 0, 3);
	n += 3;
	n += frame(in + n, D, SYN | RST, 5, 2);
	memset(in + n, 0, 2);
	n += 2;
	n += frame(in + n, WISP_YAMUX_PING, ACK, 0, 12345);
	n += frame(in + n, D, 0, 3, 4); /* 3 <= highest remote id 5 */
	memset(in + n, 0, 4);
	n += 4;
	n += frame(in + n, WISP_YAMUX_GO_AWAY, 0, 0, 0);
	run_bad("tolerated", false, 0, in, n, 0, -1);
}

/* ---- input split anywhere ---------------------------------------------- */

static size_t transcript(uint8_t *t, size_t cap, bool with_error)
{
	/* a client session writes a realistic mix; its output is the transcript */
	struct peer *c = peer_new(true, NULL, NULL);
	uint32_t a = open_stream(c), b = open_stream(c), d = open_stream(c);
	assert_int_equal(send_pattern(c, a, 3000, 700), 0);
	assert_int_equal(send_pattern(c, b, 10, 10), 0);
	assert_int_equal(wisp_yamux_ping(c->y, now_ns), 0);
	size_t n = drain(c, t, cap);
	assert_int_equal(send_pattern(c, b, 2000, 2000), 0);
	assert_int_equal(wisp_yamux_close(c->y, b), 0);
	assert_int_equal(send_pattern(c, d, 1, 1), 0);
	n += drain(c, t + n, cap - n);
	assert_int_equal(wisp_yamux_reset(c->y, d), 0);
	n += drain(c, t + n, cap - n);
	if (with_error) {
		n += frame(t + n, WISP_YAMUX_DATA, 0, 1, 100);
		memset(t + n, 0, 100);
		n += 100;
		n += frame(t + n, WISP_YAMUX_DATA, 0, 41, 1); /* never opened */
		t[n++] = 0;
	}
	peer_free(c);
	return n;
}

struct outcome {
	struct event ev[64];
	size_t nev;
	int rc;
	uint8_t out[512];
	size_t nout;
};

static void feed(const uint8_t *t, size_t n, const size_t *cuts, size_t ncuts, struct outcome *o)
{
	struct peer *s = peer_new(false, NULL, NULL);
	s->raw = true;
	peer_log(s, 64);
	size_t from = 0;
	o->rc = 0;
	for (size_t i = 0; i <= ncuts && !o->rc; i++) {
		size_t to = i < ncuts ? cuts[i] : n;
		o->rc = wisp_yamux_read(s->y, t + from, to - from, now_ns);
		from = to;
	}
	o->nout = drain(s, o->out, sizeof(o->out));
	memcpy(o->ev, s->ev, s->nev * sizeof(*s->ev));
	o->nev = s->nev;
	peer_free(s);
}

static void same(const struct outcome *a, const struct outcome *b, size_t at)
{
	bool ok = a->rc == b->rc && a->nev == b->nev && a->nout == b->nout &&
		  !memcmp(a->out, b->out, a->nout);
	for (size_t i = 0; ok && i < a->nev; i++) {
		const struct event *x = &a->ev[i], *y = &b->ev[i];
		ok = x->kind == y->kind && x->id == y->id && x->n == y->n && x->hash == y->hash &&
		     x->err == y->err;
	}
	if (!ok)
		fail_msg("input cut at %zu gives a different result", at);
}

static void test_split_anywhere(void **state)
{
	(void)state;
	static uint8_t t[16384];
	for (int with_error = 0; with_error < 2; with_error++) {
		size_t n = transcript(t, sizeof(t), with_error);
		struct outcome whole, cut;
		feed(t, n, NULL, 0, &whole);
		assert_int_equal(whole.rc, with_error ? WISP_ERR_PROTOCOL : 0);
		assert_true(whole.nev >= 8);
		for (size_t k = 0; k <= n; k++) {
			feed(t, n, &k, 1, &cut);
			same(&whole, &cut, k);
		}
		/* one byte per read */
		size_t *cuts = malloc(n * sizeof(*cuts));
		for (size_t k = 0; k < n; k++)
			cuts[k] = k;
		feed(t, n, cuts, n, &cut);
		same(&whole, &cut, 0);
		/* every pair of cuts in a window around the first frames */
		for (size_t i = 0; i < 80; i++)
			for (size_t j = i; j < 80; j++) {
				size_t two[2] = { i, j };
				feed(t, n, two, 2, &cut);
				same(&whole, &cut, i * 1000 + j);
			}
		free(cuts);
	}
	check_pool_empty();
}

/* ---- re-entrancy -------------------------------------------------------- */

static void test_callbacks_reenter(void **state)
{
	(void)state;
	struct peer *c = peer_new(true, NULL, NULL), *s = peer_new(false, NULL, NULL);
	for (int i = 0; i < 20; i++) {
		uint32_t id = open_stream(c);
		assert_int_equal(send_pattern(c, id, 1000, 1000), 0);
	}
	pump(c, s);
	/* a protocol error fails the server; stream_closed runs for each of
	 * the 20 streams while they try to open more */
	s->open_in_closed = true;
	uint8_t raw[12];
	frame(raw, WISP_YAMUX_DATA, 0, 0, 0);
	assert_int_equal(wisp_yamux_read(s->y, raw, 12, now_ns), WISP_ERR_PROTOCOL);
	assert_int_equal(s->closed_n, 20);
	assert_int_equal(s->closed_in_cb_rc, WISP_ERR_CLOSED);
	/* read, pull and handle_expiry are refused inside callbacks: checked
	 * through the fuzz target; here the GO_AWAY reaches the client */
	pump_cap(c, s, 65519);
	assert_int_equal(c->read_err, WISP_ERR_RESET);
	assert_int_equal(c->closed_n, 20);
	peer_free(c);
	peer_free(s);
	check_pool_empty();
}

static struct peer *reentry_peer;
static int reentry_rc[3];

static void cb_closed_reenter(void *ctx, uint32_t id, void *user, int err)
{
	(void)ctx;
	(void)id;
	(void)user;
	(void)err;
	uint8_t b[16] = { 0 };
	reentry_rc[0] = wisp_yamux_read(reentry_peer->y, b, 0, now_ns);
	reentry_rc[1] = (int)wisp_yamux_pull(reentry_peer->y, b, sizeof(b), now_ns);
	reentry_rc[2] = wisp_yamux_handle_expiry(reentry_peer->y, now_ns);
}

static void test_nested_calls_refused(void **state)
{
	(void)state;
	wisp_yamux_callbacks cb = { .stream_closed = cb_closed_reenter };
	struct peer *p = calloc(1, sizeof(*p));
	wisp_yamux_config cfg;
	quiet_cfg(&cfg);
	assert_int_equal(wisp_yamux_new(&p->y, wisp_mem_default(), &cfg, true, &cb, p, now_ns), 0);
	reentry_peer = p;
	uint32_t id;
	assert_int_equal(wisp_yamux_open(p->y, NULL, &id), 0);
	assert_int_equal(wisp_yamux_reset(p->y, id), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(reentry_rc[i], WISP_ERR_STATE);
	assert_false(wisp_yamux_wants_write(p->y));
	wisp_yamux_free(p->y);
	free(p);
}

/* ---- allocation failures ------------------------------------------------ */

static void test_alloc_failures(void **state)
{
	(void)state;
	unsigned long fail_at;
	for (fail_at = 1;; fail_at++) {
		wt_failmem fm;
		wt_failmem_init(&fm, fail_at);
		wisp_yamux_config cfg;
		quiet_cfg(&cfg);
		cfg.max_ctrl_bytes = 12 * 64;
		struct peer *s = calloc(1, sizeof(*s));
		s->auto_consume = true;
		s->goaway = -1;
		int rc = wisp_yamux_new(&s->y, &fm.mem, &cfg, false, &cbs, s, now_ns);
		if (rc) {
			assert_int_equal(rc, WISP_ERR_NOMEM);
			free(s);
			continue;
		}
		struct peer *c = peer_new(true, NULL, NULL);
		c->close_on_fin = s->close_on_fin = true;
		/* 40 inbound streams (some refused when memory fails), pings */
		for (int i = 0; i < 40; i++) {
			uint32_t id = open_stream(c);
			assert_int_equal(send_pattern(c, id, 3000, 1000), 0);
			assert_int_equal(wisp_yamux_close(c->y, id), 0);
		}
		for (int i = 0; i < 30; i++)
			assert_int_equal(wisp_yamux_ping(s->y, now_ns), 0);
		/* 20 outbound streams, with writes that may fail */
		for (int i = 0; i < 20; i++) {
			uint32_t id;
			rc = wisp_yamux_open(s->y, NULL, &id);
			if (rc) {
				assert_int_equal(rc, WISP_ERR_NOMEM);
				continue;
			}
			struct rec *r = &s->r[id];
			memset(r, 0, sizeof(*r));
			r->seen = true;
			ids_add(s, id);
			assert_int_equal(wisp_yamux_set_user(s->y, id, r), 0);
			for (int k = 0; k < 8; k++) {
				rc = send_pattern(s, id, 100, 100);
				if (rc) {
					assert_int_equal(rc, WISP_ERR_NOMEM);
					break;
				}
			}
			assert_int_equal(wisp_yamux_close(s->y, id), 0);
		}
		pump_cap(c, s, 65519);
		/* every stream ended on both sides, cleanly or refused; or the
		 * control queue could not grow and the session failed */
		assert_int_equal(c->nids, 0);
		assert_int_equal(s->nids, 0);
		if (s->read_err) {
			assert_int_equal(s->read_err, WISP_ERR_NOMEM);
			assert_int_equal(c->read_err, WISP_ERR_RESET);
		} else {
			assert_int_equal(c->read_err, 0);
		}
		peer_free(c);
		wisp_yamux_free(s->y);
		free(s);
		check_pool_empty();
		if (fm.calls < fail_at)
			break;
	}
	assert_true(fail_at > 10);
}

/* ---- randomized --------------------------------------------------------- */

static void rand_step(struct peer *p, struct peer *q)
{
	uint64_t r = wt_rng();
	unsigned op = (unsigned)(r % 100);
	r >>= 8;
	if (op < 8) {
		if (p->nids >= 180)
			return;
		uint32_t id;
		int rc = wisp_yamux_open(p->y, NULL, &id);
		if (rc) {
			assert_true(rc == WISP_ERR_AGAIN || rc == WISP_ERR_LIMIT);
			return;
		}
		assert_true(id < MAXID);
		struct rec *re = &p->r[id];
		memset(re, 0, sizeof(*re));
		re->seen = true;
		re->lazy = (r & 3) == 0;
		ids_add(p, id);
		assert_int_equal(wisp_yamux_set_user(p->y, id, re), 0);
		return;
	}
	if (!p->nids)
		return;
	uint32_t id = p->ids[r % p->nids];
	r >>= 16;
	struct rec *re = &p->r[id];
	wisp_yamux_stream_info info;
	assert_int_equal(wisp_yamux_stream_info_get(p->y, id, &info), 0);
	if (op < 45) {
		if (info.local_closed || info.queued > 256 * KIB)
			return;
		int rc = send_pattern(p, id, 1 + r % 40000, 1 + (r >> 16) % 20000);
		assert_true(rc == 0 || rc == WISP_ERR_NOMEM); /* the pool may run dry */
	} else if (op < 50) {
		assert_int_equal(wisp_yamux_close(p->y, id), 0);
	} else if (op < 52) {
		assert_int_equal(wisp_yamux_reset(p->y, id), 0);
		assert_true(re->closed);
	} else if (op < 65) {
		if (re->unconsumed) {
			uint32_t k = 1 + (uint32_t)(r % re->unconsumed);
			re->unconsumed -= k;
			assert_int_equal(wisp_yamux_consumed(p->y, id, k), 0);
		}
	} else {
		/* move bytes p -> q, in up to three reads, with a random cap */
		size_t cap = 12 + r % 70000;
		ssize_t n = wisp_yamux_pull(p->y, wire, cap, now_ns);
		assert_true(n >= 0 && (size_t)n <= cap);
		uint64_t r2 = wt_rng();
		size_t c1 = (size_t)(r2 % (uint64_t)(n + 1));
		size_t c2 = c1 + (size_t)((r2 >> 32) % (uint64_t)((size_t)n - c1 + 1));
		assert_int_equal(wisp_yamux_read(q->y, wire, c1, now_ns), 0);
		assert_int_equal(wisp_yamux_read(q->y, wire + c1, c2 - c1, now_ns), 0);
		assert_int_equal(wisp_yamux_read(q->y, wire + c2, (size_t)n - c2, now_ns), 0);
		now_ns += r % (2 * MS);
	}
}

static void flush_lazy(struct peer *p)
{
	p->lazy_all = false;
	for (unsigned i = 0; i < p->nids; i++) {
		struct rec *re = &p->r[p->ids[i]];
		re->lazy = false;
		if (re->unconsumed) {
			assert_int_equal(wisp_yamux_consumed(p->y, p->ids[i], re->unconsumed), 0);
			re->unconsumed = 0;
		}
	}
}

static void test_randomized(void **state)
{
	(void)state;
	wt_rng_seed("yamux randomized");
	wisp_yamux_config cfg;
	wisp_yamux_config_default(&cfg); /* with RTT pings and auto-tune */
	cfg.keepalive_ns = 0;
	struct peer *a = peer_new(true, &cfg, NULL), *b = peer_new(false, &cfg, NULL);
	a->auto_consume = b->auto_consume = false; /* some streams lazy */
	for (int i = 0; i < 20000; i++) {
		if (wt_rng() & 1)
			rand_step(a, b);
		else
			rand_step(b, a);
		if (i % 1000 == 0) {
			assert_int_equal(wisp_yamux_handle_expiry(a->y, now_ns), 0);
			assert_int_equal(wisp_yamux_handle_expiry(b->y, now_ns), 0);
		}
	}
	/* wind down: everything consumed, every stream closed */
	a->close_on_fin = b->close_on_fin = true;
	for (int round = 0; round < 100 && (a->nids || b->nids); round++) {
		flush_lazy(a);
		flush_lazy(b);
		struct peer *both[2] = { a, b };
		for (int k = 0; k < 2; k++) {
			/* close() may deliver stream_closed, which edits ids[] */
			static uint32_t copy[MAXID];
			unsigned n = both[k]->nids;
			memcpy(copy, both[k]->ids, n * sizeof(copy[0]));
			for (unsigned i = 0; i < n; i++)
				assert_int_equal(wisp_yamux_close(both[k]->y, copy[i]), 0);
		}
		pump(a, b);
	}
	assert_int_equal(a->nids, 0);
	assert_int_equal(b->nids, 0);
	/* integrity: what arrived is what was sent (all of it, when the FIN
	 * arrived); errors pair up */
	unsigned streams = 0;
	for (uint32_t id = 1; id < MAXID; id++) {
		struct rec *x = &a->r[id], *y = &b->r[id];
		if (!x->seen && !y->seen)
			continue;
		streams++;
		if (x->seen && y->seen) {
			assert_true(y->rx <= x->tx && x->rx <= y->tx);
			if (y->fin)
				assert_true(y->rx == x->tx && y->rx_hash == x->tx_hash);
			if (x->fin)
				assert_true(x->rx == y->tx && x->rx_hash == y->tx_hash);
			if (x->err == WISP_ERR_RESET)
				assert_int_equal(y->err, WISP_ERR_CLOSED);
			if (y->err == WISP_ERR_RESET)
				assert_int_equal(x->err, WISP_ERR_CLOSED);
			if (!x->err)
				assert_true(y->err == 0 || y->err == WISP_ERR_CLOSED);
		} else {
			/* reset before its SYN went out */
			struct rec *only = x->seen ? x : y;
			assert_int_equal(only->err, WISP_ERR_CLOSED);
			assert_int_equal(only->rx, 0);
		}
	}
	printf("# %u streams\n", streams);
	wisp_yamux_stats sa, sb;
	wisp_yamux_stats_get(a->y, &sa);
	wisp_yamux_stats_get(b->y, &sb);
	assert_int_equal(sa.streams + sb.streams, 0);
	assert_int_equal(sa.err + sb.err, 0);
	assert_true(sa.rtt_ns > 0 && sb.rtt_ns > 0);
	peer_free(a);
	peer_free(b);
	check_pool_empty();
}

static void test_config(void **state)
{
	(void)state;
	wisp_yamux_config cfg;
	wisp_yamux *y;
	struct {
		uint32_t version, window, max_window, max_streams, ack;
		size_t ctrl;
	} bad[] = {
		{ 2, 256 * KIB, 256 * KIB, 1, 1, 12 },
		{ 1, 256 * KIB - 1, 256 * KIB, 1, 1, 12 },
		{ 1, 512 * KIB, 256 * KIB, 1, 1, 12 },
		{ 1, 256 * KIB, 256 * KIB, 0, 1, 12 },
		{ 1, 256 * KIB, 256 * KIB, (1u << 20) + 1, 1, 12 },
		{ 1, 256 * KIB, 256 * KIB, 1, 0, 12 },
		{ 1, 256 * KIB, 256 * KIB, 1, 1, 11 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wisp_yamux_config_default(&cfg);
		cfg.version = bad[i].version;
		cfg.window = bad[i].window;
		cfg.max_window = bad[i].max_window;
		cfg.max_streams = bad[i].max_streams;
		cfg.ack_backlog = bad[i].ack;
		cfg.max_ctrl_bytes = bad[i].ctrl;
		assert_int_equal(wisp_yamux_new(&y, wisp_mem_default(), &cfg, true, NULL, NULL, 0),
				 WISP_ERR_INVALID_ARG);
		assert_null(y);
	}
	/* NULL config and callbacks: defaults, data dropped and consumed */
	assert_int_equal(wisp_yamux_new(&y, wisp_mem_default(), NULL, false, NULL, NULL, now_ns), 0);
	uint8_t in[12 + 300];
	frame(in, WISP_YAMUX_DATA, SYN, 1, 300);
	memset(in + 12, 7, 300);
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(wisp_yamux_read(y, in, sizeof(in), now_ns), 0);
		in[3] = 0;
		uint8_t out[4096];
		while (wisp_yamux_pull(y, out, sizeof(out), now_ns) > 0)
			;
	}
	wisp_yamux_free(y);
	wisp_yamux_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_data_fin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hundred_streams, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_blocks_and_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_autotune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bigger_initial_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_by_app, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_buffer_and_writable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_rtt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rtt_ping_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_go_away, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_streams, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_anywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callbacks_reenter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nested_calls_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_randomized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
