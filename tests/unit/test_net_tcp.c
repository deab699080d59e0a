/* The TCP engine over real loopback sockets, driven on the test thread: the
 * test owns the io_uring and reaps it the way a worker loop does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wisp/error.h>

#include "net/tcp.h"
#include "runtime/clock.h"

typedef struct end {
	wisp_tcp_conn c;
	bool used, connected, eof, closed;
	int connect_err, eof_err, close_err;
	uint64_t got;
	uint32_t sum;     /* running checksum of received bytes */
	uint32_t sent_cb;
} end;

typedef struct env {
	wisp_uring_features feat;
	wisp_loop loop;
	wisp_tcp tcp;
	wisp_pool *pool;
	end ends[8];
	wisp_tcp_listener lst;
	int accepted;
} env;

static end *end_of(wisp_tcp_conn *c)
{
	return (end *)((char *)c - offsetof(end, c));
}

static end *new_end(env *e)
{
	for (int i = 0; i < 8; i++)
		if (!e->ends[i].used) {
			memset(&e->ends[i], 0, sizeof(e->ends[i]));
			e->ends[i].used = true;
			return &e->ends[i];
		}
	fail_msg("out of ends");
	return NULL;
}

static void on_accepted(void *ctx, wisp_tcp_listener *l, int fd)
{
	env *e = ctx;
	(void)l;
	end *x = new_end(e);
	assert_int_equal(wisp_tcp_adopt(&e->tcp, &x->c, fd), WISP_OK);
	e->accepted++;
}

static void on_connected(void *ctx, wisp_tcp_conn *c, int err)
{
	(void)ctx;
	end *x = end_of(c);
	x->connected = true;
	x->connect_err = err;
}

static void on_recv(void *ctx, wisp_tcp_conn *c, const uint8_t *p, size_t n)
{
	(void)ctx;
	end *x = end_of(c);
	for (size_t i = 0; i < n; i++)
		x->sum = x->sum * 31 + p[i];
	x->got += n;
}

static void on_eof(void *ctx, wisp_tcp_conn *c, int err)
{
	(void)ctx;
	end *x = end_of(c);
	x->eof = true;
	x->eof_err = err;
}

static void on_sent(void *ctx, wisp_tcp_conn *c)
{
	(void)ctx;
	end_of(c)->sent_cb++;
}

static void on_closed(void *ctx, wisp_tcp_conn *c, int err)
{
	(void)ctx;
	end *x = end_of(c);
	x->closed = true;
	x->close_err = err;
}

static const wisp_tcp_ops ops = {
	.accepted = on_accepted,
	.connected = on_connected,
	.recv = on_recv,
	.eof = on_eof,
	.sent = on_sent,
	.closed = on_closed,
};

static int setup(void **state)
{
	env *e = calloc(1, sizeof(*e));
	char msg[256];
	assert_int_equal(wisp_uring_probe(&e->feat, msg, sizeof(msg)), WISP_OK);
	assert_int_equal(wisp_loop_init(&e->loop, wisp_mem_default(), &e->feat, WISP_THREAD_WORKER, 0, 0, -1, 256),
			 WISP_OK);
	struct io_uring_params p = { .flags = e->feat.setup_flags };
	assert_int_equal(io_uring_queue_init_params(256, &e->loop.ring, &p), 0);
	e->loop.ring_ready = true;
	wisp_tcp_config cfg;
	wisp_tcp_config_default(&cfg);
	cfg.buf_count = 64;
	cfg.close_linger_ns = 500 * WISP_NS_PER_MS;
	assert_int_equal(wisp_tcp_init(&e->tcp, &e->loop, wisp_mem_default(), &cfg, &ops, e), WISP_OK);
	assert_int_equal(wisp_pool_new(&e->pool, wisp_mem_default(), 64u << 20), WISP_OK);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;
	assert_int_equal(wisp_tcp_fini(&e->tcp, WISP_NS_PER_S), 0);
	for (int i = 0; i < 8; i++)
		if (e->ends[i].used)
			assert_true(e->ends[i].closed);
	wisp_pool_stats ps;
	wisp_pool_stats_get(e->pool, &ps);
	assert_int_equal(ps.in_use, 0);
	wisp_pool_free(e->pool);
	io_uring_queue_exit(&e->loop.ring);
	e->loop.ring_ready = false;
	wisp_loop_fini(&e->loop);
	free(e);
	return 0;
}

/* One turn of a worker loop: flush, submit, wait briefly, dispatch. */
static void turn(env *e)
{
	wisp_tcp_flush(&e->tcp);
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 10 * 1000 * 1000 };
	struct io_uring_cqe *cqe;
	io_uring_submit_and_wait_timeout(&e->loop.ring, &cqe, 1, &ts, NULL);
	unsigned head, n = 0;
	io_uring_for_each_cqe(&e->loop.ring, head, cqe)
	{
		wisp_tcp_on_cqe(&e->tcp, cqe, wisp_clock_now());
		n++;
	}
	io_uring_cq_advance(&e->loop.ring, n);
}

/* Turn until cond holds; false after timeout_ms. */
static bool run_until(env *e, bool (*cond)(env *), unsigned timeout_ms)
{
	uint64_t end_ns = wt_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (!cond(e)) {
		if (wt_now_ns() > end_ns)
			return false;
		turn(e);
	}
	return true;
}

static bool both_open(env *e)
{
	return e->accepted == 1 && e->ends[0].connected;
}

static bool all_closed(env *e)
{
	for (int i = 0; i < 8; i++)
		if (e->ends[i].used && !e->ends[i].closed)
			return false;
	return true;
}

static void listen_loopback(env *e, int family)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	assert_int_equal(wisp_tcp_listen(&e->tcp, &e->lst, (struct sockaddr *)&ss, len), WISP_OK);
}

static end *dial_listener(env *e)
{
	end *x = new_end(e);
	assert_int_equal(wisp_tcp_dial(&e->tcp, &x->c, (struct sockaddr *)&e->lst.addr, e->lst.addr_len,
				       2 * WISP_NS_PER_S),
			 WISP_OK);
	return x;
}

static uint64_t want_bytes;
static bool got_all(env *e)
{
	return e->ends[1].got == want_bytes;
}

static bool peer_eof(env *e)
{
	return e->ends[1].eof;
}

static void transfer(env *e, int family)
{
	listen_loopback(e, family);
	end *d = dial_listener(e);
	assert_true(run_until(e, both_open, 2000));
	assert_int_equal(d->connect_err, WISP_OK);
	end *a = &e->ends[1];

	/* 4 MiB in 4 KiB segments: one sendmsg carries up to WISP_TCP_IOV */
	uint32_t sum = 0;
	uint64_t total = 0, seed = 7;
	while (total < (4u << 20)) {
		while (wisp_tcp_room(&d->c) == 0)
			turn(e);
		wisp_buf *b = wisp_buf_alloc(e->pool, 4096);
		for (size_t i = 0; i < 4096; i++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			b->data[i] = (uint8_t)(seed >> 56);
			sum = sum * 31 + b->data[i];
		}
		assert_int_equal(wisp_tcp_send(&d->c, b, 0, 4096), WISP_OK);
		wisp_buf_unref(b); /* the queue holds its own reference */
		total += 4096;
	}
	want_bytes = total;
	assert_true(run_until(e, got_all, 5000));
	assert_int_equal(a->sum, sum);
	assert_true(d->sent_cb > 0);
	/* far fewer sends than segments: batching works */
	assert_true(wisp_stat_get(&e->tcp.stats.send_calls) < total / 4096);

	/* graceful close: the peer sees EOF, closes too, both finish */
	wisp_tcp_close(&d->c);
	assert_true(run_until(e, peer_eof, 2000));
	assert_int_equal(a->eof_err, WISP_OK);
	wisp_tcp_close(&a->c);
	assert_true(run_until(e, all_closed, 2000));
	assert_int_equal(d->close_err, WISP_OK);
	assert_int_equal(wisp_stat_get(&e->tcp.stats.open), 0);
}

static void test_transfer_ipv4(void **state)
{
	transfer(*state, AF_INET);
}

static void test_transfer_ipv6(void **state)
{
	env *e = *state;
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = in6addr_loopback };
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		skip(); /* no IPv6 loopback in this sandbox */
	}
	close(fd);
	transfer(e, AF_INET6);
}

static bool dial_done(env *e)
{
	return e->ends[0].closed;
}

static void test_refused(void **state)
{
	env *e = *state;
	/* a port nobody listens on: bind one, read it, close it */
	listen_loopback(e, AF_INET);
	struct sockaddr_storage addr = e->lst.addr;
	socklen_t len = e->lst.addr_len;
	wisp_tcp_unlisten(&e->lst);
	while (e->lst.fd >= 0)
		turn(e);
	end *d = new_end(e);
	assert_int_equal(wisp_tcp_dial(&e->tcp, &d->c, (struct sockaddr *)&addr, len, WISP_NS_PER_S), WISP_OK);
	assert_true(run_until(e, dial_done, 2000));
	assert_true(d->connected);
	assert_int_equal(d->connect_err, WISP_ERR_REFUSED);
	assert_int_equal(d->close_err, WISP_ERR_REFUSED);
	assert_int_equal(wisp_stat_get(&e->tcp.stats.dial_errors), 1);
}

static bool peer_reset(env *e)
{
	return e->ends[1].eof;
}

static void test_abort_resets_peer(void **state)
{
	env *e = *state;
	listen_loopback(e, AF_INET);
	end *d = dial_listener(e);
	assert_true(run_until(e, both_open, 2000));
	wisp_tcp_abort(&d->c, WISP_ERR_PROTOCOL);
	assert_true(run_until(e, peer_reset, 2000));
	assert_int_equal(e->ends[1].eof_err, WISP_ERR_RESET);
	assert_true(d->closed);
	assert_int_equal(d->close_err, WISP_ERR_PROTOCOL);
	assert_true(run_until(e, all_closed, 2000)); /* the engine aborts the peer on the error */
	assert_int_equal(e->ends[1].close_err, WISP_ERR_RESET);
	assert_int_equal(wisp_stat_get(&e->tcp.stats.resets), 2);
}

/* The kernel's buffers are full: a send has been in flight, with no byte
 * moving, for 30 consecutive turns (each waits up to 10 ms for a CQE). */
static uint64_t last_out;
static int still_turns;
static bool stalled(env *e)
{
	wisp_tcp_conn *c = &e->ends[0].c;
	if (c->sending && c->queued > 0 && c->bytes_out == last_out)
		still_turns++;
	else
		still_turns = 0;
	last_out = c->bytes_out;
	return still_turns >= 30;
}

static void test_peer_not_reading(void **state)
{
	env *e = *state;
	/* a plain socket that never reads */
	listen_loopback(e, AF_INET);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&e->lst.addr, e->lst.addr_len), 0);
	bool ok = false;
	for (int i = 0; i < 200 && !ok; i++) {
		turn(e);
		ok = e->accepted == 1;
	}
	assert_true(ok);
	/* the accepted side is ends[0] here */
	end *w = &e->ends[0];
	wisp_buf *b = wisp_buf_alloc(e->pool, 65536);
	memset(b->data, 0xab, 65536);
	uint64_t start = wt_now_ns();
	while (!stalled(e) && wt_now_ns() - start < 5000000000ull) {
		while (wisp_tcp_room(&w->c) > 0)
			assert_int_equal(wisp_tcp_send(&w->c, b, 0, 65536), WISP_OK);
		turn(e);
	}
	assert_true(stalled(e));
	/* the queue stops at its segment bound: the owner is told to wait */
	assert_int_equal(wisp_tcp_send(&w->c, b, 0, 65536), WISP_ERR_AGAIN);
	assert_true(w->c.queued <= (uint64_t)WISP_TCP_SEGS * 65536);
	wisp_buf_unref(b);
	/* aborting a connection with a send in flight releases everything */
	wisp_tcp_abort(&w->c, WISP_ERR_LIMIT);
	assert_true(run_until(e, all_closed, 2000));
	assert_int_equal(w->close_err, WISP_ERR_LIMIT);
	close(fd);
}

static void test_linger_timeout(void **state)
{
	env *e = *state;
	/* a peer that never closes its side: graceful close ends after the
	 * linger timeout */
	listen_loopback(e, AF_INET);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&e->lst.addr, e->lst.addr_len), 0);
	while (e->accepted == 0)
		turn(e);
	uint64_t t0 = wt_now_ns();
	wisp_tcp_close(&e->ends[0].c);
	assert_true(run_until(e, all_closed, 3000));
	assert_true(wt_now_ns() - t0 >= 400 * 1000000ull);
	char c;
	assert_int_equal(read(fd, &c, 1), 0); /* it got our FIN */
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_transfer_ipv4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transfer_ipv6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_resets_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_not_reading, setup, teardown),
		cmocka_unit_test_setup_teardown(test_linger_timeout, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
