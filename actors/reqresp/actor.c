#include "actors/reqresp/actor.h"

#include <string.h>

#include <wisp/error.h>

#include "actors/reqresp/sync.h"
#include "actors/scoring/actor.h"
#include "net/reqresp.h"
#include "peerset/idtab.h"
#include "runtime/mem.h"
#include "runtime/node.h"
#include "runtime/worker.h"

#define CONNS_PER_PEER 4

typedef struct rr_peer {
	wisp_peer_id id; /* first: the table's key */
	uint32_t n_conns;
	wisp_conn_ref conns[CONNS_PER_PEER];
	uint32_t out;    /* our requests to it in flight */
	uint32_t in;     /* its requests being answered, all protocols */
	uint16_t in_proto[WISP_REQRESP_MAX_PROTOCOLS];
	/* the rate limit: a token bucket per protocol */
	float tokens[WISP_REQRESP_MAX_PROTOCOLS];
	wisp_tstamp refilled[WISP_REQRESP_MAX_PROTOCOLS];
} rr_peer;

typedef struct out_slot {
	uint32_t gen;
	bool used;
	bool sync;       /* the sync helper's: job and chunk say which */
	uint32_t worker;
	uint32_t job, chunk;
	uint64_t id;
	wisp_peer_id peer;
} out_slot;

typedef struct in_slot {
	uint32_t gen;
	bool used;
	uint32_t proto;
	wisp_peer_id peer;
} in_slot;

/* A stack of free slot numbers. */
typedef struct slot_stack {
	uint32_t *v;
	uint32_t n;
} slot_stack;

struct wisp_reqresp {
	wisp_node *node;
	wisp_actor *actor;
	wisp_idtab peers;
	out_slot *out;
	in_slot *in;
	slot_stack out_free, in_free;
	uint32_t in_total[WISP_REQRESP_MAX_PROTOCOLS];
	wisp_scoring_rep *reps; /* a copy of the scoring actor's latest (WISP_SCORING_APP_MAX) */
	uint32_t n_reps;
	uint64_t reps_gen;  /* counts REPS snapshots */
	struct wisp_syncs *syncs;
	wisp_reqresp_stats st;
};

static int stack_init(slot_stack *s, const wisp_mem *mem, uint32_t n)
{
	s->v = wisp_calloc(mem, n, sizeof(*s->v));
	if (!s->v)
		return WISP_ERR_NOMEM;
	for (uint32_t i = 0; i < n; i++)
		s->v[i] = n - 1 - i;
	s->n = n;
	return WISP_OK;
}

int wisp_reqresp_new(wisp_reqresp **out, wisp_node *node)
{
	wisp_reqresp *r = wisp_calloc(node->mem, 1, sizeof(*r));
	if (!r)
		return WISP_ERR_NOMEM;
	r->node = node;
	const wisp_options *o = &node->opt;
	r->out = wisp_calloc(node->mem, o->max_requests_out, sizeof(*r->out));
	r->in = wisp_calloc(node->mem, o->max_requests_in, sizeof(*r->in));
	r->reps = wisp_calloc(node->mem, WISP_SCORING_APP_MAX, sizeof(*r->reps));
	if (!r->out || !r->in || !r->reps || wisp_syncs_new(&r->syncs, r) || stack_init(&r->out_free, node->mem, o->max_requests_out) ||
	    stack_init(&r->in_free, node->mem, o->max_requests_in) ||
	    wisp_idtab_init(&r->peers, node->mem, sizeof(rr_peer), node->n_workers * o->max_conns)) {
		wisp_reqresp_free(r);
		return WISP_ERR_NOMEM;
	}
	*out = r;
	return WISP_OK;
}

void wisp_reqresp_free(wisp_reqresp *r)
{
	if (!r)
		return;
	const wisp_mem *mem = r->node->mem;
	wisp_free(mem, r->reps);
	wisp_syncs_free(r->syncs);
	wisp_idtab_fini(&r->peers, mem);
	wisp_free(mem, r->out_free.v);
	wisp_free(mem, r->in_free.v);
	wisp_free(mem, r->out);
	wisp_free(mem, r->in);
	wisp_free(mem, r);
}

const wisp_reqresp_stats *wisp_reqresp_stats_of(const wisp_reqresp *r)
{
	return &r->st;
}

/* ---- reputation ------------------------------------------------------ */

void wisp_rr_report(wisp_reqresp *r, const wisp_peer_id *id, wisp_rep_kind kind, uint64_t latency_us)
{
	wisp_buf *b = wisp_buf_alloc(r->node->pool, sizeof(*id));
	if (!b) {
		wisp_stat_add(&r->st.dropped, 1);
		return;
	}
	memcpy(b->data, id, sizeof(*id));
	b->len = sizeof(*id);
	wisp_msg m = { .type = WISP_SMSG_REP, .a = kind, .b = latency_us, .buf = b };
	if (wisp_actor_send(&r->node->scoring, &m, r->actor) != WISP_OK) {
		wisp_buf_unref(b);
		wisp_stat_add(&r->st.dropped, 1);
	}
}

/* ---- peers ----------------------------------------------------------- */

static rr_peer *peer_get(wisp_reqresp *r, const wisp_peer_id *id, bool create)
{
	return wisp_idtab_get(&r->peers, id, create);
}

/* Forget a peer with nothing left to count. */
static void peer_maybe_drop(wisp_reqresp *r, rr_peer *p)
{
	if (p && !p->n_conns && !p->out && !p->in)
		wisp_idtab_remove(&r->peers, p);
}

static void on_conn(wisp_reqresp *r, wisp_msg *m, bool up)
{
	if (!m->buf || m->buf->len != sizeof(wisp_peer_id))
		return;
	const wisp_peer_id *id = (const wisp_peer_id *)(void *)m->buf->data;
	rr_peer *p = peer_get(r, id, up);
	if (!p)
		return;
	if (up) {
		if (p->n_conns < CONNS_PER_PEER)
			p->conns[p->n_conns++] = m->a;
		return;
	}
	for (uint32_t i = 0; i < p->n_conns; i++) {
		if (p->conns[i] == m->a) {
			p->conns[i] = p->conns[--p->n_conns];
			break;
		}
	}
	peer_maybe_drop(r, p);
}

/* ---- our requests ---------------------------------------------------- */

static void send_worker(wisp_reqresp *r, uint32_t worker, uint32_t type, uint64_t a, uint64_t b, wisp_buf *buf,
			int *err)
{
	wisp_msg m = { .type = type, .a = a, .b = b, .buf = buf };
	*err = wisp_actor_send(&r->node->worker_actors[worker], &m, r->actor);
	if (*err)
		wisp_stat_add(&r->st.dropped, 1);
}

/* A request that never reached a worker: its end event from here. */
static void request_failed(wisp_reqresp *r, const wisp_rr_req *h, uint64_t cookie, int err)
{
	wisp_buf *b = wisp_rr_response_buf(r->node, h->id, h->proto, &h->peer, 0);
	if (!b || wisp_node_emit(r->node, r->actor->loop, WISP_EVENT_RESPONSE_END, err, cookie, b) != WISP_OK)
		wisp_stat_add(&r->st.dropped, 1);
}

int wisp_rr_dispatch(wisp_reqresp *r, wisp_buf *buf, wisp_conn_ref conn, bool sync, uint32_t job, uint32_t chunk)
{
	const wisp_rr_req *h = (const wisp_rr_req *)(void *)buf->data;
	rr_peer *p = conn ? peer_get(r, &h->peer, true) : NULL;
	if (!p) {
		wisp_stat_add(&r->st.not_connected, 1);
		return WISP_ERR_NOTFOUND;
	}
	if (!r->out_free.n) {
		wisp_stat_add(&r->st.out_limit, 1);
		return WISP_ERR_LIMIT;
	}
	uint32_t slot = r->out_free.v[--r->out_free.n];
	out_slot *o = &r->out[slot];
	if (++o->gen == 0)
		o->gen = 1;
	o->used = true;
	o->sync = sync;
	o->job = job;
	o->chunk = chunk;
	o->id = h->id;
	o->peer = h->peer;
	o->worker = wisp_conn_ref_worker(conn);
	int err;
	send_worker(r, o->worker, WISP_WMSG_RR_REQUEST, conn, (uint64_t)o->gen << 32 | slot, buf, &err);
	if (err) {
		o->used = false;
		r->out_free.v[r->out_free.n++] = slot;
		peer_maybe_drop(r, p);
		return WISP_ERR_AGAIN;
	}
	p->out++;
	return WISP_OK;
}

static void on_request(wisp_reqresp *r, wisp_msg *m)
{
	wisp_buf *buf = m->buf;
	m->buf = NULL;
	wisp_stat_add(&r->st.requests_out, 1);
	wisp_rr_req h = *(const wisp_rr_req *)(void *)buf->data;
	int err = wisp_rr_dispatch(r, buf, m->a, false, 0, 0);
	if (err) {
		wisp_buf_unref(buf);
		request_failed(r, &h, h.cookie, err);
	}
}

void wisp_rr_cancel_id(wisp_reqresp *r, uint64_t id)
{
	for (uint32_t i = 0; i < r->node->opt.max_requests_out; i++) {
		out_slot *o = &r->out[i];
		if (o->used && o->id == id) {
			int err;
			send_worker(r, o->worker, WISP_WMSG_RR_CANCEL, (uint64_t)o->gen << 32 | i, 0, NULL, &err);
			return;
		}
	}
}

static void on_out_done(wisp_reqresp *r, uint64_t ref, uint64_t b)
{
	uint32_t slot = wisp_rr_ref_slot(ref);
	if (slot >= r->node->opt.max_requests_out)
		return;
	out_slot *o = &r->out[slot];
	if (!o->used || o->gen != wisp_rr_ref_gen(ref))
		return;
	o->used = false;
	r->out_free.v[r->out_free.n++] = slot;
	/* peer errors were reported as BAD_PEER; local ends say nothing of it */
	int status = (int)(int32_t)(uint32_t)b;
	if (status == WISP_OK)
		wisp_rr_report(r, &o->peer, WISP_REP_OK, b >> 32);
	else if (status == WISP_ERR_TIMEOUT || status == WISP_ERR_RESET || status == WISP_ERR_REFUSED)
		wisp_rr_report(r, &o->peer, WISP_REP_FAILED, 0);
	if (o->sync)
		wisp_sync_out_done(r->syncs, o->job, o->chunk, &o->peer, status);
	rr_peer *p = peer_get(r, &o->peer, false);
	if (p && p->out) {
		p->out--;
		peer_maybe_drop(r, p);
	}
}

/* ---- peers' requests ---------------------------------------------- */

static void refuse(wisp_reqresp *r, uint32_t worker, uint64_t wkey, wisp_rr_result result, const char *why)
{
	size_t len = strlen(why);
	wisp_buf *b = wisp_buf_alloc(r->node->pool, len);
	if (b) {
		memcpy(b->data, why, len);
		b->len = (uint32_t)len;
	}
	int err;
	send_worker(r, worker, WISP_WMSG_RR_REFUSE, wkey, result, b, &err);
	if (err)
		wisp_buf_unref(b); /* the worker's respond timeout resets the stream */
}

/* The rate limit: take a token from the peer's bucket for proto. */
static bool take_token(rr_peer *p, uint32_t proto, uint32_t rate, wisp_tstamp now)
{
	if (!rate)
		return true;
	float cap = 2.0f * (float)rate;
	if (!p->refilled[proto]) {
		p->tokens[proto] = cap;
	} else {
		float add = (float)(now - p->refilled[proto]) * (float)rate / 1e9f;
		p->tokens[proto] = p->tokens[proto] + add > cap ? cap : p->tokens[proto] + add;
	}
	p->refilled[proto] = now;
	if (p->tokens[proto] < 1.0f)
		return false;
	p->tokens[proto] -= 1.0f;
	return true;
}

static void on_inbound(wisp_reqresp *r, wisp_msg *m, wisp_tstamp now)
{
	wisp_node *n = r->node;
	wisp_buf *buf = m->buf;
	m->buf = NULL;
	uint32_t proto = (uint32_t)m->b, worker = m->src;
	wisp_request_info *ri = (wisp_request_info *)(void *)buf->data;
	const wisp_reqresp_opts *o = &n->rr[proto].o;
	rr_peer *p = peer_get(r, &ri->peer, true);
	const char *why = NULL;
	if (!p) {
		why = "resource unavailable: too many peers";
		wisp_stat_add(&r->st.busy, 1);
	} else if (!take_token(p, proto, o->rate_per_peer, now)) {
		why = "resource unavailable: rate limited";
		wisp_stat_add(&r->st.rate_limited, 1);
	} else if (p->in_proto[proto] >= o->max_concurrent_per_peer || r->in_total[proto] >= o->max_concurrent ||
		   !r->in_free.n) {
		why = "resource unavailable: too many requests at once";
		wisp_stat_add(&r->st.busy, 1);
	}
	if (why) {
		refuse(r, worker, m->a, WISP_RR_UNAVAILABLE, why);
		wisp_rr_report(r, &ri->peer, WISP_REP_OVER_LIMIT, 0);
		wisp_buf_unref(buf);
		peer_maybe_drop(r, p);
		return;
	}
	uint32_t slot = r->in_free.v[--r->in_free.n];
	in_slot *s = &r->in[slot];
	if (++s->gen == 0)
		s->gen = 1;
	s->used = true;
	s->proto = proto;
	s->peer = ri->peer;
	uint64_t ref = (uint64_t)s->gen << 32 | slot;
	wisp_rr_shared *sh = &n->rr_in[slot];
	atomic_store_explicit(&sh->meta, worker << 8 | proto, memory_order_relaxed);
	atomic_store_explicit(&sh->wkey, m->a, memory_order_relaxed);
	atomic_store_explicit(&sh->word, (uint64_t)s->gen << 32, memory_order_release);
	int err;
	send_worker(r, worker, WISP_WMSG_RR_ADMIT, m->a, ref, NULL, &err);
	if (err) {
		atomic_store_explicit(&sh->word, 0, memory_order_release);
		s->used = false;
		r->in_free.v[r->in_free.n++] = slot;
		wisp_buf_unref(buf);
		peer_maybe_drop(r, p);
		return;
	}
	p->in++;
	p->in_proto[proto]++;
	r->in_total[proto]++;
	wisp_stat_add(&r->st.admitted, 1);
	ri->ref = ref;
	if (wisp_node_emit(n, r->actor->loop, WISP_EVENT_REQUEST, WISP_OK, 0, buf) != WISP_OK) {
		/* the application cannot hear of it: answer for it */
		static const char busy[] = "resource unavailable: busy";
		wisp_buf *b = wisp_buf_alloc(n->pool, sizeof(wisp_rr_chunk) + sizeof(busy) - 1);
		if (b) {
			((wisp_rr_chunk *)(void *)b->data)->wkey = m->a;
			memcpy(b->data + sizeof(wisp_rr_chunk), busy, sizeof(busy) - 1);
			b->len = sizeof(wisp_rr_chunk) + sizeof(busy) - 1;
		}
		send_worker(r, worker, WISP_WMSG_RR_RESPOND, ref, WISP_RR_UNAVAILABLE | WISP_RR_FLAG_LAST, b, &err);
		if (err)
			wisp_buf_unref(b);
	}
}

static void on_in_done(wisp_reqresp *r, uint64_t ref)
{
	uint32_t slot = wisp_rr_ref_slot(ref);
	if (slot >= r->node->opt.max_requests_in)
		return;
	in_slot *s = &r->in[slot];
	if (!s->used || s->gen != wisp_rr_ref_gen(ref))
		return;
	s->used = false;
	atomic_store_explicit(&r->node->rr_in[slot].word, 0, memory_order_release);
	r->in_free.v[r->in_free.n++] = slot;
	r->in_total[s->proto]--;
	rr_peer *p = peer_get(r, &s->peer, false);
	if (p) {
		p->in--;
		p->in_proto[s->proto]--;
		peer_maybe_drop(r, p);
	}
}

/* ---- the actor ------------------------------------------------------- */

static int rr_start(wisp_actor *a, wisp_tstamp now)
{
	(void)now;
	wisp_reqresp *r = a->state;
	r->actor = a;
	return WISP_OK;
}

static void on_sync_part(wisp_reqresp *r, wisp_msg *m)
{
	uint32_t slot = wisp_rr_ref_slot(m->a);
	if (slot >= r->node->opt.max_requests_out)
		return;
	out_slot *o = &r->out[slot];
	if (!o->used || !o->sync || o->gen != wisp_rr_ref_gen(m->a))
		return;
	wisp_buf *b = m->buf;
	m->buf = NULL; /* the sync helper takes it */
	if (wisp_sync_part(r->syncs, o->job, o->chunk, b) != WISP_OK) {
		/* the part does not fit the chunk: stop its request (OUT_DONE
		 * follows, and the sync counts the chunk bad) */
		int err;
		send_worker(r, o->worker, WISP_WMSG_RR_CANCEL, m->a, 0, NULL, &err);
	}
}

wisp_node *wisp_rr_node(const wisp_reqresp *r)
{
	return r->node;
}

wisp_actor *wisp_rr_actor(const wisp_reqresp *r)
{
	return r->actor;
}

uint64_t wisp_rr_reps_gen(const wisp_reqresp *r)
{
	return r->reps_gen;
}

wisp_conn_ref wisp_rr_conn_of(wisp_reqresp *r, const wisp_peer_id *id)
{
	const rr_peer *p = peer_get(r, id, false);
	return p && p->n_conns ? p->conns[0] : 0;
}

const wisp_scoring_rep *wisp_rr_rep_of(const wisp_reqresp *r, const wisp_peer_id *id)
{
	for (uint32_t i = 0; i < r->n_reps; i++)
		if (wisp_peer_id_equal(&r->reps[i].id, id))
			return &r->reps[i];
	return NULL;
}

static void rr_stop(wisp_actor *a, wisp_tstamp now)
{
	(void)now;
	wisp_reqresp *r = a->state;
	wisp_syncs_stop(r->syncs);
	r->n_reps = 0;
}

static void rr_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	wisp_reqresp *r = a->state;
	switch (m->type) {
	case WISP_RMSG_CONN_UP:
	case WISP_RMSG_CONN_DOWN:
		on_conn(r, m, m->type == WISP_RMSG_CONN_UP);
		break;
	case WISP_RMSG_INBOUND:
		if (m->buf)
			on_inbound(r, m, now);
		break;
	case WISP_RMSG_IN_DONE:
		on_in_done(r, m->a);
		break;
	case WISP_RMSG_OUT_DONE:
		on_out_done(r, m->a, m->b);
		break;
	case WISP_RMSG_BAD_PEER:
		wisp_stat_add(&r->st.bad_peers, 1);
		if (m->buf && m->buf->len == sizeof(wisp_peer_id))
			wisp_rr_report(r, (const wisp_peer_id *)(void *)m->buf->data, WISP_REP_BAD, 0);
		break;
	case WISP_RMSG_REPS:
		/* copied: a pool buffer held for the node's life would look like
		 * one in use to whoever watches the pool */
		r->n_reps = 0;
		if (m->buf && m->a <= WISP_SCORING_APP_MAX && m->buf->len >= m->a * sizeof(wisp_scoring_rep)) {
			memcpy(r->reps, m->buf->data, m->a * sizeof(wisp_scoring_rep));
			r->n_reps = (uint32_t)m->a;
		}
		r->reps_gen++;
		break;
	case WISP_RMSG_REQUEST:
		if (m->buf)
			on_request(r, m);
		break;
	case WISP_RMSG_CANCEL:
		wisp_rr_cancel_id(r, m->a);
		break;
	case WISP_RMSG_SYNC:
		wisp_sync_begin(r->syncs, (struct wisp_sync_job *)(uintptr_t)m->a, now);
		break;
	case WISP_RMSG_SYNC_CANCEL:
		wisp_sync_cancel_job(r->syncs, m->a);
		break;
	case WISP_RMSG_SYNC_PART:
		if (m->buf)
			on_sync_part(r, m);
		break;
	default:
		break;
	}
}

const wisp_actor_ops wisp_reqresp_ops = {
	.name = "reqresp",
	.start = rr_start,
	.msg = rr_msg,
	.stop = rr_stop,
};
