#include "net/shard.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <wisp/error.h>

#include "net/builtin.h"
#include "net/pubsub.h"
#include "net/reqresp.h"
#include "peerset/peers.h"
#include "runtime/mem.h"
#include "runtime/node.h"
#include "runtime/worker.h"

static wisp_shard_conn *conn_of(wisp_tcp_conn *t)
{
	return (wisp_shard_conn *)t; /* tcp is the first member */
}

/* ---- slots ------------------------------------------------------------- */

static wisp_shard_conn *slot_take(wisp_shard *s)
{
	if (s->n_free == 0) {
		wisp_stat_add(&s->stats.conn_limit, 1);
		return NULL;
	}
	wisp_shard_conn *sc = &s->slots[s->free_slots[--s->n_free]];
	uint32_t gen = sc->gen + 1, slot = sc->slot;
	memset(sc, 0, sizeof(*sc));
	sc->slot = slot;
	sc->gen = gen;
	sc->used = true;
	sc->shard = s;
	return sc;
}

static void slot_put(wisp_shard *s, wisp_shard_conn *sc)
{
	sc->used = false;
	s->free_slots[s->n_free++] = sc->slot;
}

wisp_conn_ref wisp_shard_ref(const wisp_shard_conn *sc)
{
	return wisp_conn_ref_make(sc->shard->index, sc->slot, sc->gen);
}

wisp_shard_conn *wisp_shard_find(wisp_shard *s, wisp_conn_ref ref)
{
	uint32_t slot = (uint32_t)(ref & 0xffffff), gen = (uint32_t)(ref >> 24);
	if (wisp_conn_ref_worker(ref) != s->index || slot >= s->n_slots)
		return NULL;
	wisp_shard_conn *sc = &s->slots[slot];
	if (!sc->used || sc->gen != gen || !sc->conn || sc->closing)
		return NULL;
	return sc;
}

/* ---- reporting to the peers actor -------------------------------------- */

static void report_down(wisp_shard *s, wisp_shard_conn *sc, int err)
{
	wisp_buf *b = wisp_buf_alloc(s->node->pool, sizeof(wisp_conn_down));
	if (b) {
		wisp_conn_down *d = (wisp_conn_down *)b->data;
		memset(d, 0, sizeof(*d));
		d->err = err;
		d->dialer = sc->dialer;
		d->upgraded = sc->upgraded;
		snprintf(d->stage, sizeof(d->stage), "%s", sc->conn ? wisp_conn_stage(sc->conn) : "connect");
		const wisp_peer_id *id = sc->conn ? wisp_conn_remote_id(sc->conn) : NULL;
		if (id) {
			d->peer = *id;
			d->has_peer = true;
		} else if (sc->has_expect) {
			d->peer = sc->expect;
			d->has_peer = true;
		}
		wisp_peers_addr_text((const struct sockaddr *)&sc->tcp.peer, d->addr, sizeof(d->addr));
	}
	wisp_msg m = { .type = WISP_PMSG_CONN_DOWN, .src = s->index, .a = wisp_shard_ref(sc), .b = sc->cookie, .buf = b };
	if (wisp_actor_send(&s->node->peers, &m, s->actor) != WISP_OK)
		wisp_buf_unref(b); /* counted by the mailbox */
}

static void report_up(wisp_shard *s, wisp_shard_conn *sc)
{
	wisp_buf *b = wisp_buf_alloc(s->node->pool, sizeof(wisp_conn_up));
	if (!b) {
		wisp_shard_close(sc, WISP_ERR_NOMEM, true);
		return;
	}
	wisp_conn_up *u = (wisp_conn_up *)b->data;
	memset(u, 0, sizeof(*u));
	u->peer = *wisp_conn_remote_id(sc->conn);
	u->dialer = sc->dialer;
	wisp_peers_addr_text((const struct sockaddr *)&sc->tcp.peer, u->addr, sizeof(u->addr));
	wisp_msg m = { .type = WISP_PMSG_CONN_UP, .src = s->index, .a = wisp_shard_ref(sc), .b = sc->cookie, .buf = b };
	if (wisp_actor_send(&s->node->peers, &m, s->actor) != WISP_OK) {
		wisp_buf_unref(b);
		wisp_shard_close(sc, WISP_ERR_AGAIN, true);
		return;
	}
	sc->upgraded = true;
}

/* ---- connection life --------------------------------------------------- */

static void conn_timer(wisp_timer *t, wisp_tstamp now);

/* Output that found the buffer pool exhausted is tried again this soon. */
#define POOL_RETRY_NS (2 * WISP_NS_PER_MS)

static void arm_timer(wisp_shard_conn *sc)
{
	if (!sc->conn || sc->closing)
		return;
	wisp_tstamp at = wisp_conn_expiry(sc->conn);
	if (sc->over_budget_since && sc->over_budget_since + sc->shard->stall_ns < at)
		at = sc->over_budget_since + sc->shard->stall_ns;
	if (sc->pool_retry_at && sc->pool_retry_at < at)
		at = sc->pool_retry_at;
	if (at == UINT64_MAX) {
		wisp_loop_timer_disarm(sc->shard->loop, &sc->timer);
		return;
	}
	if (!wisp_timer_armed(&sc->timer) || sc->timer.deadline != at)
		(void)wisp_loop_timer_arm(sc->shard->loop, &sc->timer, at);
}

void wisp_shard_mark(wisp_shard_conn *sc)
{
	if (sc->dirty || sc->closing)
		return;
	sc->dirty = true;
	sc->next_dirty = sc->shard->dirty;
	sc->shard->dirty = sc;
}

void wisp_shard_close(wisp_shard_conn *sc, int err, bool abort)
{
	if (sc->closing) {
		if (abort)
			wisp_tcp_abort(&sc->tcp, err);
		return;
	}
	sc->closing = true;
	sc->err = err;
	wisp_loop_timer_disarm(sc->shard->loop, &sc->timer);
	if (abort || !sc->conn || !wisp_conn_is_open(sc->conn)) {
		wisp_tcp_abort(&sc->tcp, err);
		return;
	}
	/* Graceful: GO_AWAY and whatever is pending go out, then FIN. */
	wisp_conn_go_away(sc->conn);
	int perr;
	wisp_buf *b;
	while (wisp_tcp_room(&sc->tcp) && (b = wisp_conn_pull(sc->conn, wisp_loop_now(sc->shard->loop), &perr))) {
		int serr = wisp_tcp_send(&sc->tcp, b, 0, b->len);
		wisp_buf_unref(b);
		if (serr)
			break; /* what does not fit is dropped with the connection */
	}
	wisp_tcp_close(&sc->tcp);
}

/* A connection failed in the protocol layer: count it, close it. */
static void conn_failed(wisp_shard_conn *sc, int err)
{
	wisp_shard *s = sc->shard;
	if (!sc->upgraded) {
		if (err == WISP_ERR_TIMEOUT)
			wisp_stat_add(&s->stats.handshake_timeouts, 1);
		else
			wisp_stat_add(&s->stats.handshake_failures, 1);
	}
	if (wisp_err_is_peer(err))
		wisp_stat_add(&s->stats.peer_errors, 1);
	wisp_shard_close(sc, err, true);
}

static void on_upgraded(void *ctx, wisp_conn *c)
{
	wisp_shard_conn *sc = ctx;
	(void)c;
	wisp_stat_add(&sc->shard->stats.upgraded, 1);
	/* The request/response actor hears of the connection before the peers
	 * actor, which tells the application: a wisp_request() made on
	 * WISP_EVENT_CONNECTED finds the peer (a failed report closes the
	 * connection, and wisp_rr_closed() follows). */
	wisp_rr_upgraded(sc);
	report_up(sc->shard, sc);
	if (!sc->closing) {
		wisp_builtin_upgraded(sc);
		wisp_pubsub_upgraded(sc);
	}
}

static int conn_create(wisp_shard_conn *sc, bool dialer)
{
	wisp_shard *s = sc->shard;
	wisp_conn_callbacks cb = { .upgraded = on_upgraded };
	int err = wisp_conn_new(&sc->conn, s->node->mem, &s->ccfg, dialer, sc->has_expect ? &sc->expect : NULL, &cb,
				sc, wisp_loop_now(s->loop));
	if (err)
		return err;
	wisp_conn_set_user(sc->conn, sc);
	wisp_timer_init(&sc->timer, conn_timer, sc);
	arm_timer(sc);
	wisp_shard_mark(sc);
	return WISP_OK;
}

static void conn_timer(wisp_timer *t, wisp_tstamp now)
{
	wisp_shard_conn *sc = t->arg;
	wisp_shard *s = sc->shard;
	if (sc->closing || !sc->conn)
		return;
	if (sc->pool_retry_at && now >= sc->pool_retry_at)
		sc->pool_retry_at = 0; /* marked below: the flush at the end of this turn retries */
	if (sc->over_budget_since && now >= sc->over_budget_since + s->stall_ns) {
		/* The peer has not taken our bytes for stall_ns: it is not
		 * reading. Memory stays bounded; the connection goes. */
		wisp_stat_add(&s->stats.slow_closes, 1);
		wisp_shard_close(sc, WISP_ERR_LIMIT, true);
		return;
	}
	int err = wisp_conn_handle_expiry(sc->conn, now);
	if (err) {
		conn_failed(sc, err);
		return;
	}
	wisp_shard_mark(sc);
	arm_timer(sc);
}

/* ---- TCP engine callbacks ---------------------------------------------- */

static void t_accepted(void *ctx, wisp_tcp_listener *l, int fd)
{
	wisp_shard *s = ctx;
	(void)l;
	wisp_node *n = s->node;
	/* Deal accepted sockets round robin over the workers. */
	uint32_t to = s->next_adopt++ % n->n_workers;
	if (to == s->index) {
		wisp_shard_adopt(s, fd);
		return;
	}
	wisp_msg m = { .type = WISP_WMSG_ADOPT, .src = s->index, .a = (uint64_t)fd };
	if (wisp_actor_send(&n->worker_actors[to], &m, s->actor) != WISP_OK)
		wisp_shard_adopt(s, fd); /* that worker is full: keep it here */
}

static void t_connected(void *ctx, wisp_tcp_conn *t, int err)
{
	wisp_shard *s = ctx;
	wisp_shard_conn *sc = conn_of(t);
	if (err) {
		wisp_stat_add(&s->stats.dial_failures, 1);
		sc->err = err;
		return; /* closed() follows and reports */
	}
	wisp_stat_add(&s->stats.conns_out, 1);
	err = conn_create(sc, true);
	if (err)
		wisp_shard_close(sc, err, true);
}

static void t_recv(void *ctx, wisp_tcp_conn *t, const uint8_t *p, size_t n)
{
	(void)ctx;
	wisp_shard_conn *sc = conn_of(t);
	if (!sc->conn || sc->closing)
		return;
	int err = wisp_conn_read(sc->conn, p, n, wisp_loop_now(sc->shard->loop));
	if (err) {
		conn_failed(sc, err);
		return;
	}
	wisp_shard_mark(sc);
	arm_timer(sc);
}

static void t_eof(void *ctx, wisp_tcp_conn *t, int err)
{
	(void)ctx;
	wisp_shard_conn *sc = conn_of(t);
	if (sc->closing)
		return;
	/* Input that ends inside a message or frame: the peer cut it short. */
	if (!err && sc->conn && wisp_conn_input_partial(sc->conn)) {
		conn_failed(sc, WISP_ERR_TRUNCATED);
		return;
	}
	/* A peer that leaves before the session is up failed the handshake:
	 * counted like any other handshake failure. */
	if (sc->conn && !sc->upgraded) {
		conn_failed(sc, err ? err : WISP_ERR_RESET);
		return;
	}
	/* libp2p has no use for a half-open connection: the peer is gone. */
	wisp_shard_close(sc, err ? err : WISP_ERR_RESET, err != 0);
}

static void t_sent(void *ctx, wisp_tcp_conn *t)
{
	(void)ctx;
	wisp_shard_conn *sc = conn_of(t);
	if (sc->conn && !sc->closing) {
		/* The kernel took bytes: the peer reads. A stall is time without
		 * that, not time at the budget, which a busy connection to a
		 * fast peer may spend most of its life at. */
		if (sc->over_budget_since)
			sc->over_budget_since = wisp_loop_now(sc->shard->loop);
		wisp_conn_set_pending(sc->conn, wisp_tcp_queued(t));
		wisp_shard_mark(sc);
	}
}

static void t_closed(void *ctx, wisp_tcp_conn *t, int err)
{
	wisp_shard *s = ctx;
	wisp_shard_conn *sc = conn_of(t);
	if (!sc->err)
		sc->err = err;
	wisp_loop_timer_disarm(s->loop, &sc->timer);
	if (sc->conn) {
		/* Counted before the report goes out, so that whoever sees the
		 * event sees the counters too. Streams over a cap are refused
		 * in two places: "na" for a protocol's cap (the connection),
		 * an RST for max_streams_per_conn (yamux). */
		wisp_conn_stats cs;
		wisp_yamux_stats ys;
		wisp_conn_stats_get(sc->conn, &cs, &ys);
		wisp_stat_add(&s->stats.streams_refused, cs.streams_refused);
		wisp_stat_add(&s->stats.streams_capped, cs.streams_capped + ys.streams_refused);
	}
	/* Report while the connection still says who and where. */
	report_down(s, sc, sc->err ? sc->err : WISP_ERR_RESET);
	if (sc->conn) {
		wisp_builtin_closed(sc);
		wisp_pubsub_closed(sc);
		wisp_rr_closed(sc);
		wisp_conn_free(sc->conn);
		sc->conn = NULL;
	}
	slot_put(s, sc);
}

static const wisp_tcp_ops tcp_ops = {
	.accepted = t_accepted,
	.connected = t_connected,
	.recv = t_recv,
	.eof = t_eof,
	.sent = t_sent,
	.closed = t_closed,
};

/* ---- flush ------------------------------------------------------------- */

/* The connection cannot send: the clock of the stall timeout starts (if it
 * is not running already). */
static void stall_begin(wisp_shard *s, wisp_shard_conn *sc, wisp_tstamp now)
{
	if (sc->over_budget_since)
		return;
	sc->over_budget_since = now;
	wisp_stat_add(&s->stats.budget_stalls, 1);
	arm_timer(sc);
}

static void flush_conn(wisp_shard *s, wisp_shard_conn *sc, wisp_tstamp now)
{
	if (sc->closing || !sc->conn)
		return;
	wisp_conn_set_pending(sc->conn, wisp_tcp_queued(&sc->tcp));
	for (;;) {
		uint64_t queued = wisp_tcp_queued(&sc->tcp);
		if (queued >= s->budget || wisp_tcp_room(&sc->tcp) == 0) {
			/* The kernel holds a budget's worth: wait for a send to
			 * complete (t_sent marks us again). */
			if (wisp_conn_wants_write(sc->conn))
				stall_begin(s, sc, now);
			return;
		}
		int err;
		wisp_buf *b = wisp_conn_pull(sc->conn, now, &err);
		if (!b) {
			if (err == WISP_ERR_NOMEM) {
				/* Pool exhausted: retry on the next send completion,
				 * or in POOL_RETRY_NS when none is pending (an idle
				 * connection whose window updates could not go out
				 * stalled its peer for good). */
				wisp_stat_add(&s->stats.pool_stalls, 1);
				if (!sc->pool_retry_at) {
					sc->pool_retry_at = now + POOL_RETRY_NS;
					arm_timer(sc);
				}
				return;
			}
			if (err) {
				conn_failed(sc, err);
				return;
			}
			break;
		}
		err = wisp_tcp_send(&sc->tcp, b, 0, b->len);
		wisp_buf_unref(b);
		if (err) {
			conn_failed(sc, err);
			return;
		}
	}
	size_t before = wisp_conn_queued(sc->conn);
	wisp_conn_set_pending(sc->conn, wisp_tcp_queued(&sc->tcp));
	/* That may have run writable() callbacks that wrote more: pull it in
	 * this turn (shard_flush comes back to us), or it would wait for the
	 * next event on the connection. */
	if (wisp_conn_queued(sc->conn) > before)
		wisp_shard_mark(sc);
	/* Everything pulled is with the kernel. The budget also counts what
	 * waits inside the connection, so a stream can be refused (and wait)
	 * while the kernel holds less than a budget: that is a stall too,
	 * as long as the kernel holds bytes. Without this check a peer that
	 * stopped reading a stream of small frames (gossip) was never closed:
	 * its frames were dropped for ever. */
	if (!sc->closing && sc->conn && wisp_conn_budget_blocked(sc->conn) && wisp_tcp_queued(&sc->tcp) > 0) {
		stall_begin(s, sc, now);
	} else if (sc->over_budget_since) {
		sc->over_budget_since = 0;
		arm_timer(sc);
	}
}

static bool shard_flush(void *arg, wisp_tstamp now)
{
	wisp_shard *s = arg;
	bool did = s->dirty != NULL;
	while (s->dirty) {
		wisp_shard_conn *sc = s->dirty;
		s->dirty = sc->next_dirty;
		sc->dirty = false;
		sc->next_dirty = NULL;
		flush_conn(s, sc, now);
	}
	wisp_tcp_flush(&s->tcp);
	return did && s->dirty != NULL;
}

static void shard_io(void *arg, const struct io_uring_cqe *cqe, wisp_tstamp now)
{
	wisp_shard *s = arg;
	wisp_tcp_on_cqe(&s->tcp, cqe, now);
}

/* ---- commands ---------------------------------------------------------- */

void wisp_shard_adopt(wisp_shard *s, int fd)
{
	wisp_shard_conn *sc = slot_take(s);
	if (!sc) {
		close(fd);
		return;
	}
	if (wisp_tcp_adopt(&s->tcp, &sc->tcp, fd) != WISP_OK) {
		wisp_stat_add(&s->stats.adopt_failures, 1);
		slot_put(s, sc);
		return;
	}
	wisp_stat_add(&s->stats.conns_in, 1);
	int err = conn_create(sc, false);
	if (err)
		wisp_shard_close(sc, err, true);
}

void wisp_shard_dial(wisp_shard *s, const struct sockaddr *addr, socklen_t len, const wisp_peer_id *expect,
		     uint64_t cookie)
{
	wisp_shard_conn *sc = slot_take(s);
	if (!sc) {
		wisp_shard_conn tmp = { .shard = s, .cookie = cookie, .dialer = true };
		if (expect) {
			tmp.expect = *expect;
			tmp.has_expect = true;
		}
		memcpy(&tmp.tcp.peer, addr, len < sizeof(tmp.tcp.peer) ? len : sizeof(tmp.tcp.peer));
		report_down(s, &tmp, WISP_ERR_LIMIT);
		return;
	}
	sc->dialer = true;
	sc->cookie = cookie;
	if (expect) {
		sc->expect = *expect;
		sc->has_expect = true;
	}
	int err = wisp_tcp_dial(&s->tcp, &sc->tcp, addr, len, s->node->net.dial_timeout_ns);
	if (err) {
		memcpy(&sc->tcp.peer, addr, len < sizeof(sc->tcp.peer) ? len : sizeof(sc->tcp.peer));
		report_down(s, sc, err);
		slot_put(s, sc);
	}
}

/* ---- start / stop ------------------------------------------------------ */

int wisp_shard_start(wisp_shard *s, wisp_node *n, uint32_t index, wisp_loop *loop, wisp_actor *actor)
{
	memset(s, 0, sizeof(*s));
	s->node = n;
	s->index = index;
	s->loop = loop;
	s->actor = actor;
	s->budget = n->net.conn_send_budget;
	s->stall_ns = n->net.stall_timeout_ns;
	wisp_conn_config_default(&s->ccfg);
	s->ccfg.identity = &n->identity;
	s->ccfg.protos = &n->protos;
	s->ccfg.pool = n->pool;
	s->ccfg.handshake_timeout_ns = n->net.handshake_timeout_ns;
	s->ccfg.send_budget = n->net.conn_send_budget;
	s->ccfg.yamux.max_streams = n->net.max_streams_per_conn;
	s->n_slots = n->net.max_conns_per_worker;
	s->slots = wisp_calloc(n->mem, s->n_slots, sizeof(*s->slots));
	s->free_slots = wisp_calloc(n->mem, s->n_slots, sizeof(*s->free_slots));
	if (!s->slots || !s->free_slots)
		return WISP_ERR_NOMEM;
	for (uint32_t i = 0; i < s->n_slots; i++) {
		s->slots[i].slot = i;
		s->free_slots[i] = s->n_slots - 1 - i;
	}
	s->n_free = s->n_slots;
	wisp_tcp_config tc;
	wisp_tcp_config_default(&tc);
	int err = wisp_tcp_init(&s->tcp, loop, n->mem, &tc, &tcp_ops, s);
	if (err)
		return err;
	s->tcp_up = true;
	if ((err = wisp_builtin_shard_start(s)) || (err = wisp_rr_shard_start(s)))
		return err;
	wisp_loop_set_io(loop, shard_io, s);
	wisp_loop_set_flush(loop, shard_flush, s);
	if (index == 0 && n->net.n_listen) {
		s->listeners = wisp_calloc(n->mem, n->net.n_listen, sizeof(*s->listeners));
		if (!s->listeners)
			return WISP_ERR_NOMEM;
		for (uint32_t i = 0; i < n->net.n_listen; i++) {
			err = wisp_tcp_listen_fd(&s->tcp, &s->listeners[i], n->net.listen_fds[i]);
			n->net.listen_fds[i] = -1; /* the engine owns it now, even on error */
			if (err)
				return err;
			s->n_listeners++;
		}
	}
	return WISP_OK;
}

void wisp_shard_stop(wisp_shard *s)
{
	if (s->tcp_up) {
		/* Connections get their closed() callbacks (and report down)
		 * from inside the engine's teardown. */
		wisp_tcp_fini(&s->tcp, WISP_NS_PER_S);
		s->tcp_up = false;
	}
	wisp_loop_set_flush(s->loop, NULL, NULL);
	if (s->slots)
		for (uint32_t i = 0; i < s->n_slots; i++)
			if (s->slots[i].used && s->slots[i].conn) {
				wisp_builtin_closed(&s->slots[i]);
				wisp_pubsub_closed(&s->slots[i]);
				wisp_rr_closed(&s->slots[i]);
				wisp_conn_free(s->slots[i].conn);
				s->slots[i].conn = NULL;
			}
	wisp_builtin_shard_stop(s);
	wisp_rr_shard_stop(s);
	wisp_free(s->node->mem, s->listeners);
	wisp_free(s->node->mem, s->slots);
	wisp_free(s->node->mem, s->free_slots);
	s->listeners = NULL;
	s->slots = NULL;
	s->free_slots = NULL;
}
