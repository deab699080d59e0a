#include "net/reqresp.h"

#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "actors/reqresp/actor.h"
#include "codec/rrframe.h"
#include "runtime/bufring.h"
#include "runtime/mem.h"
#include "runtime/node.h"

/* Level of zstd for requests and chunks: the fastest; chunks are often
 * hashes and state that compress little. */
#define RR_ZSTD_LEVEL 1
/* Streams filed on a worker at once beyond the actor's slots: inbound
 * streams whose request is still being read or judged. */
#define RR_SPARE_STREAMS 4096u
/* Chunks queued per stream at most (the window bounds bytes first). */
#define RR_MAX_QUEUED 65536u

typedef struct rr_stream {
	wisp_shard *s;
	wisp_stream *st;     /* NULL until filed with one; the stream's user is this */
	uint32_t slot, gen;  /* the worker key */
	uint32_t proto;
	bool outbound;
	bool ended;          /* outbound: the end was reported */
	bool read_done;      /* inbound: the request was read whole */
	bool admitted;       /* inbound: the actor counts it (ref is an in slot) */
	bool end_queued;     /* inbound: the last chunk is queued: close after it */
	bool closing;        /* inbound: our FIN is out */
	bool to_actor;       /* outbound: chunks and end go to the actor (sync), not the application */
	uint8_t last_result;
	uint64_t ref;        /* the actor's out or in ref */
	uint64_t id, cookie; /* outbound */
	wisp_peer_id peer;
	wisp_rr_reader rd;
	wisp_buf *req;       /* outbound: the encoded request, until written */
	wisp_timer timer;
	wisp_tstamp started, deadline; /* deadline: the whole response, 0 none */
	uint64_t first_us;   /* outbound: first byte after this many us (0: none yet) */
	uint32_t chunks;
	uint64_t bytes;
	/* inbound: encoded chunks waiting for the stream; each entry's
	 * `expires` carries the chunk's content length instead */
	wisp_bufring q;
} rr_stream;

struct wisp_rr_shard {
	rr_stream **tab;     /* by worker key slot */
	uint32_t *gens;
	uint32_t *free;
	uint32_t cap, n_free;
	rr_stream *cache;    /* released structs, chained through st */
	rr_stream **by_out;  /* by the actor's out slot */
	rr_stream **by_in;   /* by the actor's in slot */
	wisp_zstd *z;
};

/* ---- helpers ----------------------------------------------------------- */

static wisp_node *node_of(const wisp_shard *s)
{
	return s->node;
}

static const wisp_rr_proto *proto_of(const rr_stream *rs)
{
	return &node_of(rs->s)->rr[rs->proto];
}

static uint64_t key_of(const rr_stream *rs)
{
	return (uint64_t)rs->gen << 32 | rs->slot;
}

static uint64_t ms_ns(uint32_t ms)
{
	return (uint64_t)ms * WISP_NS_PER_MS;
}

static void to_actor(wisp_shard *s, uint32_t type, uint64_t a, uint64_t b, wisp_buf *buf)
{
	wisp_msg m = { .type = type, .src = s->index, .a = a, .b = b, .buf = buf };
	if (wisp_actor_send(&node_of(s)->reqresp, &m, s->actor) != WISP_OK) {
		wisp_stat_add(&s->rrs.dropped, 1);
		wisp_buf_unref(buf);
	}
}

static void timer_fired(wisp_timer *t, wisp_tstamp now);

static rr_stream *rs_new(wisp_shard *s, bool outbound, uint32_t proto)
{
	struct wisp_rr_shard *w = s->rr;
	if (!w->n_free) {
		wisp_stat_add(&s->rrs.dropped, 1);
		return NULL;
	}
	rr_stream *rs = w->cache;
	if (rs)
		w->cache = (rr_stream *)(void *)rs->st;
	else if (!(rs = wisp_malloc(node_of(s)->mem, sizeof(*rs)))) {
		wisp_stat_add(&s->rrs.dropped, 1);
		return NULL;
	}
	memset(rs, 0, sizeof(*rs));
	rs->s = s;
	rs->slot = w->free[--w->n_free];
	rs->gen = w->gens[rs->slot];
	rs->outbound = outbound;
	rs->proto = proto;
	rs->started = wisp_loop_now(s->loop);
	wisp_timer_init(&rs->timer, timer_fired, rs);
	w->tab[rs->slot] = rs;
	const wisp_rr_proto *p = proto_of(rs);
	wisp_rr_reader_init(&rs->rd, node_of(s)->pool, outbound, outbound ? p->o.max_chunk : p->o.max_request);
	return rs;
}

static void rs_free(rr_stream *rs)
{
	wisp_shard *s = rs->s;
	struct wisp_rr_shard *w = s->rr;
	wisp_loop_timer_disarm(s->loop, &rs->timer);
	wisp_rr_reader_fini(&rs->rd);
	wisp_buf_unref(rs->req);
	wisp_bufring_clear(node_of(s)->mem, &rs->q);
	if (rs->outbound && rs->ref && w->by_out[wisp_rr_ref_slot(rs->ref)] == rs)
		w->by_out[wisp_rr_ref_slot(rs->ref)] = NULL;
	if (!rs->outbound && rs->admitted && w->by_in[wisp_rr_ref_slot(rs->ref)] == rs)
		w->by_in[wisp_rr_ref_slot(rs->ref)] = NULL;
	w->tab[rs->slot] = NULL;
	w->gens[rs->slot]++;
	w->free[w->n_free++] = rs->slot;
	rs->st = (wisp_stream *)(void *)w->cache;
	w->cache = rs;
}

static rr_stream *rs_by_key(wisp_shard *s, uint64_t key)
{
	struct wisp_rr_shard *w = s->rr;
	uint32_t slot = (uint32_t)key;
	if (slot >= w->cap || !w->tab[slot] || w->gens[slot] != (uint32_t)(key >> 32))
		return NULL;
	return w->tab[slot];
}

static void arm(rr_stream *rs, wisp_tstamp at)
{
	if (rs->deadline && rs->deadline < at)
		at = rs->deadline;
	if (wisp_loop_timer_arm(rs->s->loop, &rs->timer, at) != WISP_OK)
		wisp_stat_add(&rs->s->rrs.dropped, 1); /* no timer: the connection's own limits still apply */
}

/* ---- outbound: our requests ---------------------------------------------- */

wisp_buf *wisp_rr_response_buf(wisp_node *n, uint64_t id, uint32_t proto, const wisp_peer_id *peer, size_t len)
{
	wisp_buf *b = wisp_buf_alloc(n->pool, sizeof(wisp_response_info) + len);
	if (!b)
		return NULL;
	wisp_response_info *ri = (wisp_response_info *)b->data;
	memset(ri, 0, sizeof(*ri));
	ri->id = id;
	ri->protocol = n->rr[proto].id;
	ri->protocol_index = proto;
	ri->peer = *peer;
	ri->data = len ? (const uint8_t *)(ri + 1) : NULL;
	ri->len = (uint32_t)len;
	b->len = (uint32_t)(sizeof(*ri) + len);
	return b;
}

static wisp_buf *response_buf(wisp_shard *s, const rr_stream *rs, size_t len)
{
	return wisp_rr_response_buf(node_of(s), rs->id, rs->proto, &rs->peer, len);
}

static void count_end(wisp_shard *s, int status)
{
	wisp_rr_wstats *st = &s->rrs;
	if (status == WISP_OK) {
		wisp_stat_add(&st->responses_ok, 1);
		return;
	}
	wisp_stat_add(&st->failed, 1);
	if (status == WISP_ERR_TIMEOUT)
		wisp_stat_add(&st->timeouts, 1);
	else if (status == WISP_ERR_CANCELED)
		wisp_stat_add(&st->canceled, 1);
	else if (status == WISP_ERR_REFUSED)
		wisp_stat_add(&st->refused, 1);
	else if (status == WISP_ERR_RESET)
		wisp_stat_add(&st->resets, 1);
	else if (wisp_err_is_peer(status))
		wisp_stat_add(&st->bad_responses, 1);
}

/* Report the end of our request once: the application's end event, and
 * OUT_DONE for the actor's books (and the peer's score). */
static void out_report(rr_stream *rs, int status)
{
	if (rs->ended)
		return;
	rs->ended = true;
	wisp_shard *s = rs->s;
	wisp_loop_timer_disarm(s->loop, &rs->timer);
	count_end(s, status);
	wisp_tstamp now = wisp_loop_now(s->loop);
	wisp_buf *b = rs->to_actor ? NULL : response_buf(s, rs, 0);
	if (b) {
		wisp_response_info *ri = (wisp_response_info *)b->data;
		ri->result = (wisp_rr_result)rs->last_result;
		ri->index = rs->chunks;
		ri->bytes = rs->bytes;
		ri->elapsed_ns = now - rs->started;
	}
	if (!rs->to_actor &&
	    (!b || wisp_node_emit(node_of(s), s->loop, WISP_EVENT_RESPONSE_END, status, rs->cookie, b) != WISP_OK))
		wisp_stat_add(&s->rrs.dropped, 1);
	uint64_t first = rs->first_us < UINT32_MAX ? rs->first_us : UINT32_MAX;
	to_actor(s, WISP_RMSG_OUT_DONE, rs->ref, (uint64_t)(uint32_t)status | first << 32, NULL);
	if (rs->ref)
		s->rr->by_out[wisp_rr_ref_slot(rs->ref)] = NULL;
}

/* End our request with an error: report it, then reset the stream (whose
 * closed() releases rs: do not touch rs afterwards). */
static void out_fail(rr_stream *rs, int status)
{
	out_report(rs, status);
	if (rs->st)
		wisp_stream_reset(rs->st);
	else
		rs_free(rs);
}

static void penalize(wisp_shard *s, const rr_stream *rs, int err)
{
	wisp_buf *b = wisp_buf_alloc(node_of(s)->pool, sizeof(wisp_peer_id));
	if (!b)
		return;
	memcpy(b->data, &rs->peer, sizeof(rs->peer));
	b->len = sizeof(rs->peer);
	to_actor(s, WISP_RMSG_BAD_PEER, 0, (uint64_t)rs->proto << 32 | (uint32_t)err, b);
}

void wisp_rr_request(wisp_shard *s, wisp_conn_ref conn, uint64_t out_ref, wisp_buf *req)
{
	const wisp_rr_req *h = (const wisp_rr_req *)req->data;
	wisp_node *n = node_of(s);
	wisp_shard_conn *sc = wisp_shard_find(s, conn);
	rr_stream *rs = rs_new(s, true, h->proto);
	int err = WISP_ERR_LIMIT;
	if (rs) {
		rs->ref = out_ref;
		rs->id = h->id;
		rs->cookie = h->cookie;
		rs->peer = h->peer;
		rs->to_actor = h->to_actor;
		if (h->timeout_ms)
			rs->deadline = rs->started + ms_ns(h->timeout_ms);
		s->rr->by_out[wisp_rr_ref_slot(out_ref)] = rs;
		err = WISP_ERR_NOTFOUND;
	}
	if (rs && sc) {
		rs->req = wisp_rr_encode(n->pool, s->rr->z, -1, h + 1, h->len, &err);
		wisp_stream *st;
		if (rs->req && (err = wisp_conn_open_stream(sc->conn, n->rr[h->proto].p, 0, &st)) == WISP_OK) {
			rs->st = st;
			st->user = rs;
			wisp_stat_add(&s->rrs.opened, 1);
			arm(rs, rs->started + ms_ns(n->rr[h->proto].o.first_byte_timeout_ms));
			wisp_shard_mark(sc);
			wisp_buf_unref(req);
			return;
		}
		if (err == WISP_ERR_AGAIN)
			err = WISP_ERR_LIMIT; /* yamux's backlog of unacknowledged streams */
	}
	if (rs) {
		out_report(rs, err);
		rs_free(rs);
	} else {
		/* no stream to report from: the end event is built from the request */
		rr_stream tmp = { .s = s, .ref = out_ref, .id = h->id, .cookie = h->cookie, .peer = h->peer,
				  .proto = h->proto, .started = wisp_loop_now(s->loop) };
		out_report(&tmp, err);
	}
	wisp_buf_unref(req);
}

void wisp_rr_cancel(wisp_shard *s, uint64_t out_ref)
{
	uint32_t slot = wisp_rr_ref_slot(out_ref);
	rr_stream *rs = slot < node_of(s)->opt.max_requests_out ? s->rr->by_out[slot] : NULL;
	if (rs && rs->ref == out_ref && !rs->ended) {
		wisp_shard_conn *sc = rs->st ? wisp_conn_user(rs->st->conn) : NULL;
		out_fail(rs, WISP_ERR_CANCELED);
		if (sc)
			wisp_shard_mark(sc);
	}
}

/* Write the request and half-close; the connection's budget may defer it
 * to writable(). */
static void out_send(rr_stream *rs)
{
	if (!rs->req)
		return;
	int err = wisp_stream_write(rs->st, rs->req, 0, rs->req->len);
	if (err == WISP_ERR_LIMIT)
		return;
	wisp_buf_unref(rs->req);
	rs->req = NULL;
	if (err) {
		out_fail(rs, err);
		return;
	}
	wisp_stream_close(rs->st);
}

/* One complete chunk: decode it into an event for the application. */
static int out_chunk(rr_stream *rs)
{
	wisp_shard *s = rs->s;
	wisp_buf *frame = rs->rd.frame;
	rs->rd.frame = NULL;
	if (rs->chunks >= proto_of(rs)->o.max_chunks || rs->last_result) {
		/* too many chunks, or one after an error result */
		wisp_buf_unref(frame);
		return WISP_ERR_PROTOCOL;
	}
	size_t len = (size_t)rs->rd.len;
	wisp_buf *b = response_buf(s, rs, len);
	if (!b) {
		wisp_buf_unref(frame);
		wisp_stat_add(&s->rrs.dropped, 1);
		return WISP_ERR_NOMEM;
	}
	wisp_response_info *ri = (wisp_response_info *)b->data;
	int err = wisp_rr_decode(s->rr->z, rs->rd.result, frame->data, frame->len, (uint8_t *)(ri + 1), len);
	wisp_buf_unref(frame);
	if (err) {
		wisp_buf_unref(b);
		return err;
	}
	ri->result = (wisp_rr_result)rs->rd.result;
	ri->index = rs->chunks++;
	ri->elapsed_ns = wisp_loop_now(s->loop) - rs->started;
	rs->last_result = rs->rd.result;
	rs->bytes += len;
	wisp_stat_add(&s->rrs.chunks_in, 1);
	wisp_stat_add(&s->rrs.bytes_in, len);
	if (rs->to_actor) {
		wisp_msg m = { .type = WISP_RMSG_SYNC_PART, .src = s->index, .a = rs->ref, .buf = b };
		if (wisp_actor_send(&node_of(s)->reqresp, &m, s->actor) == WISP_OK)
			return WISP_OK;
		wisp_buf_unref(b);
		wisp_stat_add(&s->rrs.dropped, 1);
		return WISP_ERR_AGAIN;
	}
	if (wisp_node_emit(node_of(s), s->loop, WISP_EVENT_RESPONSE, WISP_OK, rs->cookie, b) != WISP_OK) {
		/* the application's ring is full: the response cannot be whole */
		wisp_stat_add(&s->rrs.dropped, 1);
		return WISP_ERR_AGAIN;
	}
	return WISP_OK;
}

static void out_data(rr_stream *rs, const uint8_t *p, size_t n)
{
	wisp_shard *s = rs->s;
	if (!rs->first_us)
		rs->first_us = (wisp_loop_now(s->loop) - rs->started) / 1000 + 1;
	while (n) {
		size_t used = 0;
		int rc = wisp_rr_reader_feed(&rs->rd, p, n, &used);
		p += used;
		n -= used;
		if (rc == 1)
			rc = out_chunk(rs);
		if (rc < 0) {
			if (wisp_err_is_peer(rc))
				penalize(s, rs, rc);
			out_fail(rs, rc);
			return;
		}
	}
	arm(rs, wisp_loop_now(s->loop) + ms_ns(proto_of(rs)->o.chunk_timeout_ms));
}

static void out_fin(rr_stream *rs)
{
	if (wisp_rr_reader_idle(&rs->rd)) {
		out_report(rs, WISP_OK);
		return; /* our side closed after the request: the stream is done */
	}
	penalize(rs->s, rs, WISP_ERR_TRUNCATED);
	out_fail(rs, WISP_ERR_TRUNCATED);
}

/* ---- inbound: peers' requests -------------------------------------------- */

/* Give back respond-window room for a chunk that went into the stream, and
 * say RESPOND_READY when the application was told AGAIN and half the
 * window is free. */
static void window_release(rr_stream *rs, uint32_t charge)
{
	wisp_node *n = node_of(rs->s);
	wisp_rr_shared *sh = &n->rr_in[wisp_rr_ref_slot(rs->ref)];
	uint64_t w = atomic_load_explicit(&sh->word, memory_order_relaxed), nw;
	bool ready;
	do {
		if ((uint32_t)(w >> 32) != wisp_rr_ref_gen(rs->ref))
			return;
		uint64_t q = w & WISP_RR_QUEUED_MASK;
		q = q > charge ? q - charge : 0;
		ready = (w & WISP_RR_WANT_READY) && q <= proto_of(rs)->o.respond_window / 2;
		nw = (w & ~(WISP_RR_QUEUED_MASK | (ready ? WISP_RR_WANT_READY : 0))) | q;
	} while (!atomic_compare_exchange_weak_explicit(&sh->word, &w, nw, memory_order_acq_rel,
						       memory_order_relaxed));
	if (!ready)
		return;
	wisp_buf *b = wisp_buf_alloc(n->pool, sizeof(wisp_request_info));
	if (b) {
		wisp_request_info *ri = (wisp_request_info *)b->data;
		memset(ri, 0, sizeof(*ri));
		ri->ref = rs->ref;
		ri->protocol = proto_of(rs)->id;
		ri->protocol_index = rs->proto;
		ri->peer = rs->peer;
		b->len = sizeof(*ri);
	}
	if (!b || wisp_node_emit(n, rs->s->loop, WISP_EVENT_RESPOND_READY, WISP_OK, 0, b) != WISP_OK)
		wisp_stat_add(&rs->s->rrs.dropped, 1);
}

/* Move queued chunks into the stream while the connection takes them;
 * close after the last. A failed write resets the stream, which releases
 * rs: callers must not touch rs afterwards. */
static void in_feed(rr_stream *rs)
{
	wisp_shard *s = rs->s;
	wisp_bufring_entry *e;
	while ((e = wisp_bufring_front(&rs->q))) {
		int err = wisp_stream_write(rs->st, e->buf, 0, e->buf->len);
		if (err == WISP_ERR_LIMIT)
			return; /* writable() resumes */
		size_t len = (size_t)e->expires;
		wisp_buf_unref(e->buf);
		wisp_bufring_pop(&rs->q);
		if (err) {
			wisp_stream_reset(rs->st); /* closed() releases rs */
			return;
		}
		wisp_stat_add(&s->rrs.chunks_out, 1);
		wisp_stat_add(&s->rrs.bytes_out, len);
		if (rs->admitted)
			window_release(rs, wisp_rr_charge(len));
	}
	if (rs->end_queued && !rs->closing) {
		rs->closing = true;
		wisp_stream_close(rs->st);
	}
}

/* Queue one encoded chunk (and the end after it when last). */
static int in_queue(rr_stream *rs, int result, const void *p, size_t n, bool last)
{
	wisp_node *node = node_of(rs->s);
	int err = 0;
	wisp_buf *b = wisp_rr_encode(node->pool, rs->s->rr->z, result, p, n, &err);
	if (!b)
		return err;
	err = wisp_bufring_push(node->mem, &rs->q, b, n, RR_MAX_QUEUED);
	wisp_buf_unref(b);
	if (err)
		return err;
	if (last || result)
		rs->end_queued = true;
	return WISP_OK;
}

/* Answer with an error chunk and close (a request we will not serve). */
static void in_refuse(rr_stream *rs, int result, const char *msg)
{
	wisp_shard_conn *sc = wisp_conn_user(rs->st->conn);
	if (in_queue(rs, result, msg, strlen(msg), true) != WISP_OK) {
		wisp_stream_reset(rs->st);
	} else {
		/* a peer that keeps its side open is reset at the respond timeout */
		arm(rs, wisp_loop_now(rs->s->loop) + ms_ns(proto_of(rs)->o.respond_timeout_ms));
		in_feed(rs);
	}
	wisp_shard_mark(sc);
}

static void in_bad(rr_stream *rs, int err)
{
	wisp_stat_add(&rs->s->rrs.bad_requests, 1);
	wisp_stat_add(&rs->s->stats.peer_errors, 1);
	penalize(rs->s, rs, err);
	rs->read_done = true; /* nothing more is read */
	char msg[96];
	snprintf(msg, sizeof(msg), "invalid request: %s", wisp_strerror(err));
	in_refuse(rs, WISP_RR_INVALID_REQUEST, msg);
}

/* The request is read whole: to the actor for admission. */
static void in_request(rr_stream *rs)
{
	wisp_shard *s = rs->s;
	wisp_node *n = node_of(s);
	wisp_buf *frame = rs->rd.frame;
	rs->rd.frame = NULL;
	rs->read_done = true;
	size_t len = (size_t)rs->rd.len;
	wisp_buf *b = wisp_buf_alloc(n->pool, sizeof(wisp_request_info) + len);
	if (!b) {
		wisp_buf_unref(frame);
		wisp_stat_add(&s->rrs.dropped, 1);
		in_refuse(rs, WISP_RR_UNAVAILABLE, "resource unavailable: out of buffers");
		return;
	}
	wisp_request_info *ri = (wisp_request_info *)b->data;
	memset(ri, 0, sizeof(*ri));
	int err = wisp_rr_decode(s->rr->z, 0, frame->data, frame->len, (uint8_t *)(ri + 1), len);
	wisp_buf_unref(frame);
	if (err) {
		wisp_buf_unref(b);
		in_bad(rs, err);
		return;
	}
	wisp_stat_add(&s->rrs.requests_in, 1);
	ri->protocol = proto_of(rs)->id;
	ri->protocol_index = rs->proto;
	ri->peer = rs->peer;
	ri->data = len ? (const uint8_t *)(ri + 1) : NULL;
	ri->len = (uint32_t)len;
	b->len = (uint32_t)(sizeof(*ri) + len);
	/* the application's answer is due within the respond timeout */
	arm(rs, wisp_loop_now(s->loop) + ms_ns(proto_of(rs)->o.respond_timeout_ms));
	wisp_msg m = { .type = WISP_RMSG_INBOUND, .src = s->index, .a = key_of(rs), .b = rs->proto, .buf = b };
	if (wisp_actor_send(&n->reqresp, &m, s->actor) != WISP_OK) {
		wisp_buf_unref(b);
		wisp_stat_add(&s->rrs.dropped, 1);
		in_refuse(rs, WISP_RR_UNAVAILABLE, "resource unavailable: busy");
	}
}

static void in_data(rr_stream *rs, const uint8_t *p, size_t n)
{
	if (rs->read_done) {
		/* bytes after the request: trailing (or after our refusal) */
		if (!rs->end_queued)
			in_bad(rs, WISP_ERR_TRAILING);
		return;
	}
	size_t used = 0;
	int rc = wisp_rr_reader_feed(&rs->rd, p, n, &used);
	if (rc == 1 && used < n) {
		wisp_buf_unref(rs->rd.frame);
		rs->rd.frame = NULL;
		rc = WISP_ERR_TRAILING;
	}
	if (rc < 0) {
		if (rc == WISP_ERR_NOMEM) {
			wisp_stat_add(&rs->s->rrs.dropped, 1);
			rs->read_done = true;
			in_refuse(rs, WISP_RR_UNAVAILABLE, "resource unavailable: out of buffers");
		} else {
			in_bad(rs, rc);
		}
		return;
	}
	if (rc == 1)
		in_request(rs);
}

/* File an inbound stream under its in slot: from the actor's ADMIT, or
 * from the application's first chunk when that came first. False when the
 * stream is not the one admitted (gone, refused, or filed under another). */
static bool admit(wisp_shard *s, uint64_t wkey, uint64_t in_ref)
{
	rr_stream *rs = rs_by_key(s, wkey);
	if (!rs || rs->outbound || !rs->read_done)
		return false;
	if (rs->admitted)
		return rs->ref == in_ref;
	if (rs->end_queued)
		return false;
	rs->admitted = true;
	rs->ref = in_ref;
	s->rr->by_in[wisp_rr_ref_slot(in_ref)] = rs;
	return true;
}

void wisp_rr_admit(wisp_shard *s, uint64_t wkey, uint64_t in_ref)
{
	/* the stream went (or was refused) meanwhile: free the slot */
	if (!admit(s, wkey, in_ref))
		to_actor(s, WISP_RMSG_IN_DONE, in_ref, (uint32_t)WISP_ERR_RESET, NULL);
}

void wisp_rr_refuse(wisp_shard *s, uint64_t wkey, uint32_t result, wisp_buf *msg)
{
	rr_stream *rs = rs_by_key(s, wkey);
	if (rs && !rs->outbound && !rs->end_queued) {
		char text[WISP_RR_MAX_ERRMSG + 1];
		size_t len = msg && msg->len <= WISP_RR_MAX_ERRMSG ? msg->len : 0;
		if (len)
			memcpy(text, msg->data, len);
		text[len] = 0;
		in_refuse(rs, (int)result, text);
	}
	wisp_buf_unref(msg);
}

void wisp_rr_respond(wisp_shard *s, uint64_t in_ref, uint32_t flags, wisp_buf *chunk)
{
	uint32_t slot = wisp_rr_ref_slot(in_ref);
	const wisp_rr_chunk *h = (const wisp_rr_chunk *)(void *)chunk->data;
	if (slot >= node_of(s)->opt.max_requests_in || chunk->len < sizeof(*h) ||
	    (!s->rr->by_in[slot] && !admit(s, h->wkey, in_ref))) {
		wisp_stat_add(&s->rrs.late, 1);
		wisp_buf_unref(chunk);
		return;
	}
	rr_stream *rs = s->rr->by_in[slot];
	if (rs->ref != in_ref || rs->end_queued) {
		wisp_stat_add(&s->rrs.late, 1);
		wisp_buf_unref(chunk);
		return;
	}
	wisp_shard_conn *sc = wisp_conn_user(rs->st->conn);
	int err = WISP_OK;
	if (flags & WISP_RR_FLAG_END_ONLY)
		rs->end_queued = true;
	else
		err = in_queue(rs, (int)(flags & 0xff), h + 1, chunk->len - sizeof(*h), flags & WISP_RR_FLAG_LAST);
	wisp_buf_unref(chunk);
	if (err) {
		wisp_stat_add(&s->rrs.dropped, 1);
		wisp_stream_reset(rs->st);
		wisp_shard_mark(sc);
		return;
	}
	if (rs->end_queued)
		wisp_loop_timer_disarm(s->loop, &rs->timer);
	else
		arm(rs, wisp_loop_now(s->loop) + ms_ns(proto_of(rs)->o.respond_timeout_ms));
	in_feed(rs);
	wisp_shard_mark(sc);
}

/* ---- stream handlers ---------------------------------------------------- */

static void timer_fired(wisp_timer *t, wisp_tstamp now)
{
	(void)now;
	rr_stream *rs = t->arg;
	/* outside the connection's callbacks: its output needs a flush */
	wisp_shard_conn *sc = rs->st ? wisp_conn_user(rs->st->conn) : NULL;
	if (rs->outbound) {
		out_fail(rs, WISP_ERR_TIMEOUT);
	} else {
		if (rs->read_done && !rs->end_queued)
			wisp_stat_add(&rs->s->rrs.respond_timeouts, 1);
		wisp_stream_reset(rs->st);
	}
	if (sc)
		wisp_shard_mark(sc);
}

static int rr_open(wisp_stream *st)
{
	wisp_shard_conn *sc = wisp_conn_user(st->conn);
	if (st->outbound) {
		out_send(st->user);
		return WISP_OK;
	}
	wisp_node *n = sc->shard->node;
	uint32_t proto = (uint32_t)((const wisp_rr_proto *)st->proto->ctx - n->rr);
	rr_stream *rs = rs_new(sc->shard, false, proto);
	if (!rs)
		return WISP_ERR_LIMIT;
	rs->st = st;
	rs->peer = *wisp_conn_remote_id(sc->conn);
	st->user = rs;
	/* the request must come within the first-byte timeout */
	arm(rs, rs->started + ms_ns(n->rr[proto].o.first_byte_timeout_ms));
	return WISP_OK;
}

static void rr_data(wisp_stream *st, const uint8_t *p, size_t n)
{
	rr_stream *rs = st->user;
	wisp_stream_consumed(st, n);
	if (!rs)
		return;
	if (rs->outbound) {
		if (!rs->ended)
			out_data(rs, p, n);
	} else {
		in_data(rs, p, n);
	}
}

static void rr_fin(wisp_stream *st)
{
	rr_stream *rs = st->user;
	if (!rs)
		return;
	if (rs->outbound) {
		if (!rs->ended)
			out_fin(rs);
	} else if (!rs->read_done) {
		in_bad(rs, WISP_ERR_TRUNCATED);
	}
}

static void rr_writable(wisp_stream *st)
{
	rr_stream *rs = st->user;
	if (!rs)
		return;
	if (rs->outbound)
		out_send(rs);
	else
		in_feed(rs);
}

static void rr_closed(wisp_stream *st, int err)
{
	rr_stream *rs = st->user;
	if (!rs)
		return;
	st->user = NULL;
	rs->st = NULL;
	if (rs->outbound) {
		if (!rs->ended)
			out_report(rs, err == WISP_ERR_CLOSED ? WISP_ERR_RESET : err ? err : WISP_ERR_TRUNCATED);
	} else if (rs->admitted) {
		to_actor(rs->s, WISP_RMSG_IN_DONE, rs->ref, (uint32_t)err, NULL);
	}
	rs_free(rs);
}

static const wisp_stream_ops rr_ops = {
	.open = rr_open,
	.data = rr_data,
	.fin = rr_fin,
	.writable = rr_writable,
	.closed = rr_closed,
};

int wisp_rr_add_proto(wisp_node *n, wisp_rr_proto *p)
{
	/* Our limits answer "resource unavailable" well below this cap; it
	 * only bounds what one connection may hold open. */
	uint32_t cap = 2 * p->o.max_concurrent_per_peer + 64;
	int err = wisp_proto_add(&n->protos, p->id, &rr_ops, p, cap);
	if (err)
		return err;
	wisp_proto *e = (wisp_proto *)wisp_proto_find(&n->protos, p->id, strlen(p->id));
	e->outbound_only = !p->o.serve;
	p->p = e;
	return WISP_OK;
}

/* ---- the worker's state ------------------------------------------------- */

int wisp_rr_shard_start(wisp_shard *s)
{
	wisp_node *n = node_of(s);
	if (!n->n_rr)
		return WISP_OK;
	struct wisp_rr_shard *w = wisp_calloc(n->mem, 1, sizeof(*w));
	if (!w)
		return WISP_ERR_NOMEM;
	s->rr = w;
	w->cap = n->opt.max_requests_in + n->opt.max_requests_out + RR_SPARE_STREAMS;
	w->tab = wisp_calloc(n->mem, w->cap, sizeof(*w->tab));
	w->gens = wisp_calloc(n->mem, w->cap, sizeof(*w->gens));
	w->free = wisp_calloc(n->mem, w->cap, sizeof(*w->free));
	w->by_out = wisp_calloc(n->mem, n->opt.max_requests_out, sizeof(*w->by_out));
	w->by_in = wisp_calloc(n->mem, n->opt.max_requests_in, sizeof(*w->by_in));
	w->z = wisp_zstd_new(n->mem, RR_ZSTD_LEVEL);
	if (!w->tab || !w->gens || !w->free || !w->by_out || !w->by_in || !w->z)
		return WISP_ERR_NOMEM;
	for (uint32_t i = 0; i < w->cap; i++)
		w->free[i] = w->cap - 1 - i;
	w->n_free = w->cap;
	return WISP_OK;
}

void wisp_rr_shard_stop(wisp_shard *s)
{
	struct wisp_rr_shard *w = s->rr;
	if (!w)
		return;
	wisp_node *n = node_of(s);
	/* streams are gone with their connections by now */
	while (w->cache) {
		rr_stream *rs = w->cache;
		w->cache = (rr_stream *)(void *)rs->st;
		wisp_free(n->mem, rs);
	}
	wisp_free(n->mem, w->tab);
	wisp_free(n->mem, w->gens);
	wisp_free(n->mem, w->free);
	wisp_free(n->mem, w->by_out);
	wisp_free(n->mem, w->by_in);
	wisp_zstd_free(w->z);
	wisp_free(n->mem, w);
	s->rr = NULL;
}

/* ---- connections ---------------------------------------------------------- */

static void conn_note(wisp_shard_conn *sc, uint32_t type)
{
	wisp_shard *s = sc->shard;
	wisp_buf *b = wisp_buf_alloc(node_of(s)->pool, sizeof(wisp_peer_id));
	if (!b) {
		wisp_stat_add(&s->rrs.dropped, 1);
		return;
	}
	memcpy(b->data, wisp_conn_remote_id(sc->conn), sizeof(wisp_peer_id));
	b->len = sizeof(wisp_peer_id);
	to_actor(s, type, wisp_shard_ref(sc), 0, b);
}

void wisp_rr_upgraded(wisp_shard_conn *sc)
{
	if (!sc->shard->rr)
		return;
	conn_note(sc, WISP_RMSG_CONN_UP);
	sc->rr_up = true;
}

void wisp_rr_closed(wisp_shard_conn *sc)
{
	if (sc->rr_up)
		conn_note(sc, WISP_RMSG_CONN_DOWN);
	sc->rr_up = false;
}
