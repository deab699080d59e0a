/* The application's request/response calls: checks, then one enqueue. */
#include <string.h>

#include <wisp/atlas.h>
#include <wisp/error.h>
#include <wisp/wisp.h>

#include "actors/reqresp/actor.h"
#include "actors/reqresp/sync.h"
#include "codec/rrframe.h"
#include "net/mss.h"
#include "net/reqresp.h"
#include "peerset/peers.h"
#include "runtime/node.h"
#include "runtime/worker.h"

void wisp_reqresp_opts_default(wisp_reqresp_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->version = WISP_REQRESP_OPTS_VERSION;
	o->serve = 1;
	o->max_request = 64 * 1024;
	o->max_chunk = WISP_REQRESP_MAX_CHUNK;
	o->max_chunks = 1024;
	o->first_byte_timeout_ms = 10000;
	o->chunk_timeout_ms = 10000;
	o->respond_timeout_ms = 10000;
	o->max_concurrent_per_peer = 8;
	o->max_concurrent = 128;
	o->rate_per_peer = 50;
	o->respond_window = 4u << 20;
}

static bool opts_ok(const wisp_reqresp_opts *o)
{
	return o->version == WISP_REQRESP_OPTS_VERSION && o->max_request <= WISP_REQRESP_MAX_CHUNK &&
	       o->max_chunk <= WISP_REQRESP_MAX_CHUNK && o->max_chunks >= 1 && o->first_byte_timeout_ms &&
	       o->chunk_timeout_ms && o->respond_timeout_ms && o->max_concurrent_per_peer >= 1 &&
	       o->max_concurrent_per_peer <= 65535 && o->max_concurrent >= 1 && o->rate_per_peer <= 1000000 &&
	       o->respond_window >= wisp_rr_charge(0) && o->respond_window <= (1u << 30);
}

int wisp_reqresp_register(wisp_node *n, const char *protocol, const wisp_reqresp_opts *o)
{
	if (atomic_load(&n->state) != NODE_NEW)
		return WISP_ERR_STATE;
	wisp_reqresp_opts def;
	if (!o) {
		wisp_reqresp_opts_default(&def);
		o = &def;
	}
	size_t len = strlen(protocol);
	if (len == 0 || len > WISP_REQRESP_PROTOCOL_MAX || protocol[0] != '/' || !opts_ok(o))
		return WISP_ERR_INVALID_ARG;
	for (uint32_t i = 0; i < n->n_rr; i++)
		if (!strcmp(n->rr[i].id, protocol))
			return WISP_ERR_EXISTS;
	if (n->n_rr == WISP_REQRESP_MAX_PROTOCOLS)
		return WISP_ERR_LIMIT;
	wisp_rr_proto *p = &n->rr[n->n_rr];
	memcpy(p->id, protocol, len + 1);
	p->o = *o;
	int err = wisp_rr_add_proto(n, p);
	if (err)
		return err;
	return (int)n->n_rr++;
}

static int proto_index(const wisp_node *n, const char *protocol)
{
	for (uint32_t i = 0; i < n->n_rr; i++)
		if (!strcmp(n->rr[i].id, protocol))
			return (int)i;
	return WISP_ERR_NOTFOUND;
}

int wisp_request(wisp_node *n, const wisp_peer_id *peer, const char *protocol, const void *data, size_t len,
		 uint32_t timeout_ms, uint64_t cookie, uint64_t *id)
{
	if ((len && !data) || peer->len == 0 || peer->len > sizeof(peer->bytes))
		return WISP_ERR_INVALID_ARG;
	int proto = proto_index(n, protocol);
	if (proto < 0)
		return proto;
	if (len > n->rr[proto].o.max_request)
		return WISP_ERR_TOO_LARGE;
	int err = wisp_node_gate_enter(n);
	if (err)
		return err;
	wisp_buf *b = wisp_buf_alloc(n->pool, sizeof(wisp_rr_req) + len);
	if (!b) {
		wisp_node_gate_exit(n);
		return WISP_ERR_AGAIN;
	}
	wisp_rr_req *h = (wisp_rr_req *)(void *)b->data;
	memset(h, 0, sizeof(*h));
	h->id = atomic_fetch_add_explicit(&n->rr_next_id, 1, memory_order_relaxed);
	h->cookie = cookie;
	h->peer = *peer;
	h->proto = (uint32_t)proto;
	h->timeout_ms = timeout_ms;
	h->len = (uint32_t)len;
	if (len)
		memcpy(h + 1, data, len);
	b->len = (uint32_t)(sizeof(*h) + len);
	if (id)
		*id = h->id;
	wisp_msg m = { .type = WISP_PMSG_RR_REQUEST, .b = cookie, .buf = b };
	err = wisp_actor_send(&n->peers, &m, NULL);
	if (err)
		wisp_buf_unref(b);
	wisp_node_gate_exit(n);
	return err;
}

int wisp_request_cancel(wisp_node *n, uint64_t id)
{
	int err = wisp_node_gate_enter(n);
	if (err)
		return err;
	wisp_msg m = { .type = WISP_RMSG_CANCEL, .a = id };
	err = wisp_actor_send(&n->reqresp, &m, NULL);
	wisp_node_gate_exit(n);
	return err;
}

/* Take room for charge bytes in ref's respond window. Returns the slot's
 * meta (worker << 8 | protocol), with its stream's worker key in *wkey, or
 * an error: WISP_ERR_NOTFOUND (ended), WISP_ERR_AGAIN (full: RESPOND_READY
 * will follow). */
static int64_t window_take(wisp_node *n, uint64_t ref, uint32_t charge, uint64_t *wkey)
{
	uint32_t slot = wisp_rr_ref_slot(ref);
	if (slot >= n->opt.max_requests_in)
		return WISP_ERR_NOTFOUND;
	wisp_rr_shared *sh = &n->rr_in[slot];
	uint64_t w = atomic_load_explicit(&sh->word, memory_order_acquire);
	for (;;) {
		if ((uint32_t)(w >> 32) != wisp_rr_ref_gen(ref))
			return WISP_ERR_NOTFOUND;
		uint32_t meta = atomic_load_explicit(&sh->meta, memory_order_relaxed);
		*wkey = atomic_load_explicit(&sh->wkey, memory_order_relaxed);
		uint32_t proto = meta & 0xff;
		if (proto >= n->n_rr)
			return WISP_ERR_NOTFOUND;
		uint64_t q = w & WISP_RR_QUEUED_MASK;
		/* full: ask to hear when it drains (a lone chunk always fits) */
		bool full = q && q + charge > n->rr[proto].o.respond_window;
		uint64_t nw = full ? w | WISP_RR_WANT_READY : w + charge;
		if (atomic_compare_exchange_weak_explicit(&sh->word, &w, nw, memory_order_acq_rel,
							  memory_order_acquire))
			return full ? WISP_ERR_AGAIN : (int64_t)meta;
	}
}

/* Give back what window_take took (the command did not go out). */
static void window_undo(wisp_node *n, uint64_t ref, uint32_t charge)
{
	wisp_rr_shared *sh = &n->rr_in[wisp_rr_ref_slot(ref)];
	uint64_t w = atomic_load_explicit(&sh->word, memory_order_relaxed);
	while ((uint32_t)(w >> 32) == wisp_rr_ref_gen(ref) && (w & WISP_RR_QUEUED_MASK) >= charge &&
	       !atomic_compare_exchange_weak_explicit(&sh->word, &w, w - charge, memory_order_acq_rel,
						      memory_order_relaxed))
		;
}

static int respond(wisp_node *n, uint64_t ref, uint32_t flags, const void *data, size_t len)
{
	int err = wisp_node_gate_enter(n);
	if (err)
		return err;
	uint32_t charge = flags & WISP_RR_FLAG_END_ONLY ? 0 : wisp_rr_charge(len);
	uint64_t wkey;
	int64_t meta = window_take(n, ref, charge, &wkey);
	if (meta < 0) {
		wisp_node_gate_exit(n);
		return (int)meta;
	}
	if ((flags & 0xff) == WISP_RR_SUCCESS && !(flags & WISP_RR_FLAG_END_ONLY) &&
	    len > n->rr[meta & 0xff].o.max_chunk) {
		window_undo(n, ref, charge);
		wisp_node_gate_exit(n);
		return WISP_ERR_TOO_LARGE;
	}
	wisp_buf *b = wisp_buf_alloc(n->pool, sizeof(wisp_rr_chunk) + len);
	if (!b) {
		window_undo(n, ref, charge);
		wisp_node_gate_exit(n);
		return WISP_ERR_AGAIN;
	}
	((wisp_rr_chunk *)(void *)b->data)->wkey = wkey;
	if (len)
		memcpy(b->data + sizeof(wisp_rr_chunk), data, len);
	b->len = (uint32_t)(sizeof(wisp_rr_chunk) + len);
	wisp_msg m = { .type = WISP_WMSG_RR_RESPOND, .a = ref, .b = flags, .buf = b };
	err = wisp_actor_send(&n->worker_actors[(uint32_t)meta >> 8], &m, NULL);
	if (err) {
		wisp_buf_unref(b);
		window_undo(n, ref, charge);
	}
	wisp_node_gate_exit(n);
	return err;
}

int wisp_respond(wisp_node *n, uint64_t ref, wisp_rr_result result, const void *data, size_t len, int last)
{
	if ((unsigned)result > WISP_RR_UNAVAILABLE || (len && !data) || len > WISP_REQRESP_MAX_CHUNK)
		return len > WISP_REQRESP_MAX_CHUNK ? WISP_ERR_TOO_LARGE : WISP_ERR_INVALID_ARG;
	if (result != WISP_RR_SUCCESS && (len > WISP_REQRESP_MAX_ERRMSG || !wisp_utf8_valid(data, len)))
		return WISP_ERR_INVALID_ARG;
	return respond(n, ref, (uint32_t)result | (last || result ? WISP_RR_FLAG_LAST : 0), data, len);
}

int wisp_respond_end(wisp_node *n, uint64_t ref)
{
	return respond(n, ref, WISP_RR_FLAG_END_ONLY, NULL, 0);
}

void wisp_reqresp_stats_fill(const wisp_node *n, wisp_stats *out)
{
	for (uint32_t i = 0; n->worker_state && i < n->n_workers; i++) {
		const wisp_rr_wstats *w = &n->worker_state[i].shard.rrs;
		out->reqresp.responses_ok += wisp_stat_get(&w->responses_ok);
		out->reqresp.failed += wisp_stat_get(&w->failed);
		out->reqresp.timeouts += wisp_stat_get(&w->timeouts);
		out->reqresp.canceled += wisp_stat_get(&w->canceled);
		out->reqresp.refused += wisp_stat_get(&w->refused);
		out->reqresp.resets += wisp_stat_get(&w->resets);
		out->reqresp.bad_responses += wisp_stat_get(&w->bad_responses);
		out->reqresp.chunks_in += wisp_stat_get(&w->chunks_in);
		out->reqresp.bytes_in += wisp_stat_get(&w->bytes_in);
		out->reqresp.requests_in += wisp_stat_get(&w->requests_in);
		out->reqresp.bad_requests += wisp_stat_get(&w->bad_requests);
		out->reqresp.respond_timeouts += wisp_stat_get(&w->respond_timeouts);
		out->reqresp.chunks_out += wisp_stat_get(&w->chunks_out);
		out->reqresp.bytes_out += wisp_stat_get(&w->bytes_out);
		out->reqresp.dropped += wisp_stat_get(&w->dropped);
	}
	if (!n->rr_state)
		return;
	const wisp_reqresp_stats *a = wisp_reqresp_stats_of(n->rr_state);
	uint64_t early = wisp_stat_get(&a->not_connected) + wisp_stat_get(&a->out_limit);
	out->reqresp.requests_out = wisp_stat_get(&a->requests_out);
	out->reqresp.failed += early;
	out->reqresp.out_limit = wisp_stat_get(&a->out_limit);
	out->reqresp.admitted = wisp_stat_get(&a->admitted);
	out->reqresp.busy = wisp_stat_get(&a->busy);
	out->reqresp.rate_limited = wisp_stat_get(&a->rate_limited);
	out->reqresp.dropped += wisp_stat_get(&a->dropped);
}

/* ---- sync ------------------------------------------------------------------ */

void wisp_sync_spec_default(wisp_sync_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->version = WISP_SYNC_SPEC_VERSION;
	s->per_peer = 4;
	s->chunk_timeout_ms = 30000;
	s->max_attempts = 8;
	s->bad_limit = 2;
}

static bool spec_ok(const wisp_sync_spec *s)
{
	if (s->version != WISP_SYNC_SPEC_VERSION || !s->chunks || s->n_chunks < 1 ||
	    s->n_chunks > WISP_SYNC_MAX_CHUNKS || !s->peers || s->n_peers < 1 || s->n_peers > WISP_SYNC_MAX_PEERS ||
	    s->per_peer < 1 || s->per_peer > 1024 || !s->chunk_timeout_ms || s->max_attempts < 1 ||
	    s->max_attempts > 255 || s->bad_limit < 1)
		return false;
	for (uint32_t i = 0; i < s->n_chunks; i++)
		if (s->chunks[i].id_len < 1 || s->chunks[i].id_len > sizeof(s->chunks[i].id) || s->chunks[i].size < 1 ||
		    s->chunks[i].size > WISP_REQRESP_MAX_CHUNK)
			return false;
	for (uint32_t i = 0; i < s->n_peers; i++)
		if (s->peers[i].len == 0 || s->peers[i].len > sizeof(s->peers[i].bytes))
			return false;
	return true;
}

int wisp_sync_start(wisp_node *n, const wisp_sync_spec *spec, uint64_t cookie, uint64_t *sync_id)
{
	if (!spec_ok(spec))
		return WISP_ERR_INVALID_ARG;
	int proto = proto_index(n, spec->protocol ? spec->protocol : WISP_ATLAS_PROTO_CHECKPOINT);
	if (proto < 0)
		return proto;
	int err = wisp_node_gate_enter(n);
	if (err)
		return err;
	uint64_t id = atomic_fetch_add_explicit(&n->rr_next_id, 1, memory_order_relaxed);
	struct wisp_sync_job *j = wisp_sync_job_new(n, spec, (uint32_t)proto, id, cookie);
	if (!j) {
		wisp_node_gate_exit(n);
		return WISP_ERR_NOMEM;
	}
	wisp_msg m = { .type = WISP_RMSG_SYNC, .a = (uint64_t)(uintptr_t)j, .b = cookie };
	err = wisp_actor_send(&n->reqresp, &m, NULL);
	if (err)
		wisp_sync_job_free(n, j);
	else if (sync_id)
		*sync_id = id;
	wisp_node_gate_exit(n);
	return err;
}

int wisp_sync_cancel(wisp_node *n, uint64_t sync_id)
{
	int err = wisp_node_gate_enter(n);
	if (err)
		return err;
	wisp_msg m = { .type = WISP_RMSG_SYNC_CANCEL, .a = sync_id };
	err = wisp_actor_send(&n->reqresp, &m, NULL);
	wisp_node_gate_exit(n);
	return err;
}
