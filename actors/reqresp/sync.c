#include "actors/reqresp/sync.h"

#include <string.h>

#include <openssl/evp.h>

#include <wisp/error.h>

#include <wisp/atlas.h>

#include "runtime/mem.h"
#include "runtime/node.h"

enum { CH_PENDING = 0, CH_FLIGHT = 1, CH_DONE = 2 };

typedef struct chunk_state {
	uint8_t state;
	uint8_t attempts;
	bool bad;        /* this attempt's parts did not fit the chunk */
	bool refused;    /* this attempt got a non-zero result */
	bool busy;       /* ... "resource unavailable": the peer's limits, not a failure */
	uint8_t busy_count; /* such answers: past BUSY_MAX one counts as an attempt */
	bool local;      /* this attempt failed here (no buffer): not the peer's doing */
	uint32_t peer;   /* who has (or last had) it */
	uint32_t got;    /* bytes assembled */
	uint64_t req_id; /* the request in flight */
	wisp_buf *asm_;  /* wisp_sync_info, then the chunk's bytes */
} chunk_state;

struct wisp_sync_job {
	uint64_t id, cookie;
	uint32_t proto;
	uint32_t slot;            /* in wisp_syncs.jobs */
	bool ending;              /* the end event went out: waiting for requests in flight */
	int last_err;
	wisp_sync_spec spec;      /* the scalars; the arrays below */
	wisp_sync_chunk *chunks;
	wisp_peer_id *peers;
	chunk_state *cs;
	wisp_sync_peer_result *res;
	uint32_t *inflight;       /* per peer */
	wisp_tstamp *busy_until;  /* per peer: it said "resource unavailable", ask again after */
	double *score;            /* per peer, from the reputations */
	uint64_t score_gen;
	uint32_t *queue;          /* chunks waiting for a peer: a ring of n_chunks */
	uint32_t q_head, q_count;
	uint32_t flying, done;
	uint64_t bytes_done, bytes_total;
	wisp_tstamp started;
	wisp_tstamp stalled_since; /* chunks wait, nothing flies, no peer can take one: since when */
};

/* A peer that answers "resource unavailable" (its rate or concurrency
 * limits) is left alone this long; a chunk that hears it more than
 * BUSY_MAX times counts one attempt for each further time. */
#define BUSY_BACKOFF_NS (200 * 1000000ull)
#define BUSY_MAX 32

/* How often a stalled job looks for a peer again (one that connects, or
 * that the actor hears of after the application did). */
#define STALL_RETRY_NS (50 * 1000000ull)

struct wisp_syncs {
	wisp_reqresp *r;
	struct wisp_sync_job *jobs[WISP_SYNC_MAX_JOBS];
	wisp_timer retry;
	bool timer_ready;
};

/* ---- the job's memory ---------------------------------------------------- */

static void *carve(uint8_t **p, size_t size)
{
	void *at = *p;
	*p += (size + 15) & ~(size_t)15;
	return at;
}

struct wisp_sync_job *wisp_sync_job_new(wisp_node *n, const wisp_sync_spec *spec, uint32_t proto, uint64_t id,
					uint64_t cookie)
{
	size_t nc = spec->n_chunks, np = spec->n_peers;
	size_t size = ((sizeof(struct wisp_sync_job) + 15) & ~(size_t)15) +
		      nc * (sizeof(wisp_sync_chunk) + sizeof(chunk_state) + sizeof(uint32_t)) +
		      np * (sizeof(wisp_peer_id) + sizeof(wisp_sync_peer_result) + sizeof(uint32_t) + sizeof(double) +
			    sizeof(wisp_tstamp)) +
		      8 * 16;
	uint8_t *p = wisp_calloc(n->mem, 1, size);
	if (!p)
		return NULL;
	struct wisp_sync_job *j = carve(&p, sizeof(*j));
	j->chunks = carve(&p, nc * sizeof(*j->chunks));
	j->cs = carve(&p, nc * sizeof(*j->cs));
	j->queue = carve(&p, nc * sizeof(*j->queue));
	j->peers = carve(&p, np * sizeof(*j->peers));
	j->res = carve(&p, np * sizeof(*j->res));
	j->inflight = carve(&p, np * sizeof(*j->inflight));
	j->score = carve(&p, np * sizeof(*j->score));
	j->busy_until = carve(&p, np * sizeof(*j->busy_until));
	j->id = id;
	j->cookie = cookie;
	j->proto = proto;
	j->spec = *spec;
	j->spec.chunks = NULL;
	j->spec.peers = NULL;
	memcpy(j->chunks, spec->chunks, nc * sizeof(*j->chunks));
	memcpy(j->peers, spec->peers, np * sizeof(*j->peers));
	for (size_t i = 0; i < np; i++)
		j->res[i].peer = spec->peers[i];
	for (size_t i = 0; i < nc; i++)
		j->bytes_total += spec->chunks[i].size;
	return j;
}

void wisp_sync_job_free(wisp_node *n, struct wisp_sync_job *j)
{
	if (!j)
		return;
	for (uint32_t i = 0; i < j->spec.n_chunks; i++)
		wisp_buf_unref(j->cs[i].asm_);
	wisp_free(n->mem, j);
}

int wisp_syncs_new(struct wisp_syncs **out, wisp_reqresp *r)
{
	*out = wisp_calloc(wisp_rr_node(r)->mem, 1, sizeof(**out));
	if (!*out)
		return WISP_ERR_NOMEM;
	(*out)->r = r;
	return WISP_OK;
}

void wisp_syncs_free(struct wisp_syncs *s)
{
	if (!s)
		return;
	wisp_node *n = wisp_rr_node(s->r);
	for (int i = 0; i < WISP_SYNC_MAX_JOBS; i++)
		wisp_sync_job_free(n, s->jobs[i]);
	wisp_free(n->mem, s);
}

/* ---- events ----------------------------------------------------------------- */

static void fill_progress(const struct wisp_sync_job *j, wisp_sync_info *si, wisp_tstamp now)
{
	si->sync_id = j->id;
	si->chunks_done = j->done;
	si->chunks_total = j->spec.n_chunks;
	si->bytes_done = j->bytes_done;
	si->bytes_total = j->bytes_total;
	si->elapsed_ns = now - j->started;
}

/* The end event, with every peer's result. */
static void emit_done(struct wisp_syncs *s, struct wisp_sync_job *j, int status)
{
	wisp_node *n = wisp_rr_node(s->r);
	wisp_actor *a = wisp_rr_actor(s->r);
	size_t np = j->spec.n_peers;
	wisp_buf *b = wisp_buf_alloc(n->pool, sizeof(wisp_sync_info) + np * sizeof(wisp_sync_peer_result));
	if (b) {
		wisp_sync_info *si = (wisp_sync_info *)(void *)b->data;
		memset(si, 0, sizeof(*si));
		fill_progress(j, si, wisp_loop_now(a->loop));
		wisp_sync_peer_result *res = (wisp_sync_peer_result *)(si + 1);
		memcpy(res, j->res, np * sizeof(*res));
		si->peers = res;
		si->n_peers = (uint32_t)np;
		b->len = (uint32_t)(sizeof(*si) + np * sizeof(*res));
	}
	if (!b)
		wisp_stat_add_shared(&n->events_dropped, 1);
	else
		(void)wisp_node_emit(n, a->loop, WISP_EVENT_SYNC_DONE, status, j->cookie, b);
}

/* The end, once: the event; the requests still in flight are canceled and
 * the job goes when the last one is back. */
static void job_end(struct wisp_syncs *s, struct wisp_sync_job *j, int status)
{
	if (j->ending)
		return;
	j->ending = true;
	emit_done(s, j, status);
	for (uint32_t i = 0; i < j->spec.n_chunks; i++)
		if (j->cs[i].state == CH_FLIGHT)
			wisp_rr_cancel_id(s->r, j->cs[i].req_id);
	if (!j->flying) {
		if (j->slot < WISP_SYNC_MAX_JOBS)
			s->jobs[j->slot] = NULL;
		wisp_sync_job_free(wisp_rr_node(s->r), j);
	}
}

/* ---- choosing ------------------------------------------------------------- */

static void refresh_scores(struct wisp_syncs *s, struct wisp_sync_job *j)
{
	uint64_t gen = wisp_rr_reps_gen(s->r);
	if (gen == j->score_gen)
		return;
	j->score_gen = gen;
	for (uint32_t i = 0; i < j->spec.n_peers; i++) {
		const wisp_scoring_rep *rep = wisp_rr_rep_of(s->r, &j->peers[i]);
		j->score[i] = rep ? rep->score : 0;
	}
}

/* The peer for the next request: fewest in flight, then the best score;
 * not `avoid` (the one that just failed the chunk) while another can. */
static int pick_peer(struct wisp_syncs *s, struct wisp_sync_job *j, int64_t avoid)
{
	refresh_scores(s, j);
	int best = -1, fallback = -1;
	wisp_tstamp now = wisp_loop_now(wisp_rr_actor(s->r)->loop);
	for (uint32_t i = 0; i < j->spec.n_peers; i++) {
		if (j->res[i].dropped || j->inflight[i] >= j->spec.per_peer || j->busy_until[i] > now ||
		    !wisp_rr_conn_of(s->r, &j->peers[i]))
			continue;
		if ((int64_t)i == avoid) {
			fallback = (int)i;
			continue;
		}
		if (best < 0 || j->inflight[i] < j->inflight[best] ||
		    (j->inflight[i] == j->inflight[best] && j->score[i] > j->score[best]))
			best = (int)i;
	}
	return best >= 0 ? best : fallback;
}

/* The request for chunk c: a CheckpointRequest. */
static wisp_buf *chunk_request(wisp_node *n, const struct wisp_sync_job *j, uint32_t c, uint32_t peer,
			       uint64_t id)
{
	const wisp_sync_chunk *ch = &j->chunks[c];
	wisp_atlas_checkpoint_request m = { .height = j->spec.height, .chunk_id = { ch->id, ch->id_len } };
	size_t len = wisp_atlas_checkpoint_request_size(&m);
	wisp_buf *b = wisp_buf_alloc(n->pool, sizeof(wisp_rr_req) + len);
	if (!b)
		return NULL;
	wisp_rr_req *h = (wisp_rr_req *)(void *)b->data;
	memset(h, 0, sizeof(*h));
	h->id = id;
	h->cookie = j->id;
	h->peer = j->peers[peer];
	h->proto = j->proto;
	h->timeout_ms = j->spec.chunk_timeout_ms;
	h->len = (uint32_t)len;
	h->to_actor = 1;
	ssize_t k = wisp_atlas_checkpoint_request_encode(&m, (uint8_t *)(h + 1), len);
	h->len = k > 0 ? (uint32_t)k : 0;
	b->len = (uint32_t)(sizeof(*h) + h->len);
	return b;
}

/* Give waiting chunks to peers with room. */
static void pump(struct wisp_syncs *s, struct wisp_sync_job *j)
{
	wisp_node *n = wisp_rr_node(s->r);
	while (j->q_count && !j->ending) {
		uint32_t c = j->queue[j->q_head];
		chunk_state *cs = &j->cs[c];
		int p = pick_peer(s, j, cs->attempts ? (int64_t)cs->peer : -1);
		if (p < 0)
			break;
		uint64_t id = atomic_fetch_add_explicit(&n->rr_next_id, 1, memory_order_relaxed);
		wisp_buf *b = chunk_request(n, j, c, (uint32_t)p, id);
		wisp_conn_ref conn = wisp_rr_conn_of(s->r, &j->peers[p]);
		int err = b ? wisp_rr_dispatch(s->r, b, conn, true, j->slot, c) : WISP_ERR_AGAIN;
		if (err) {
			wisp_buf_unref(b);
			break; /* the node's cap or a full mailbox: the next request that ends retries */
		}
		j->q_head = (j->q_head + 1) % j->spec.n_chunks;
		j->q_count--;
		cs->state = CH_FLIGHT;
		cs->peer = (uint32_t)p;
		cs->got = 0;
		cs->bad = cs->refused = cs->busy = cs->local = false;
		cs->req_id = id;
		j->inflight[p]++;
		j->flying++;
	}
	/* Nothing in flight and nobody to ask: a peer may still connect (or
	 * the actor hear of one the application saw connect); after a chunk
	 * timeout of that, it cannot finish. */
	if (j->q_count && !j->flying && !j->ending) {
		wisp_tstamp now = wisp_loop_now(wisp_rr_actor(s->r)->loop);
		if (!j->stalled_since)
			j->stalled_since = now;
		if (now - j->stalled_since >= (uint64_t)j->spec.chunk_timeout_ms * 1000000u) {
			job_end(s, j, j->last_err ? j->last_err : WISP_ERR_NOTFOUND);
			return;
		}
		if (!wisp_timer_armed(&s->retry))
			(void)wisp_loop_timer_arm(wisp_rr_actor(s->r)->loop, &s->retry, now + STALL_RETRY_NS);
	} else {
		j->stalled_since = 0;
	}
}

static void pump_all(struct wisp_syncs *s)
{
	for (int i = 0; i < WISP_SYNC_MAX_JOBS; i++)
		if (s->jobs[i] && !s->jobs[i]->ending)
			pump(s, s->jobs[i]);
}

/* ---- the protocol's answers ------------------------------------------------- */

static void on_retry(wisp_timer *t, wisp_tstamp now)
{
	(void)now;
	pump_all(t->arg);
}

void wisp_sync_begin(struct wisp_syncs *s, struct wisp_sync_job *j, wisp_tstamp now)
{
	if (!s->timer_ready) {
		wisp_timer_init(&s->retry, on_retry, s);
		s->timer_ready = true;
	}
	j->started = now;
	int slot = -1;
	for (int i = 0; i < WISP_SYNC_MAX_JOBS && slot < 0; i++)
		if (!s->jobs[i])
			slot = i;
	if (slot < 0) {
		j->slot = WISP_SYNC_MAX_JOBS; /* not filed */
		job_end(s, j, WISP_ERR_LIMIT);
		return;
	}
	j->slot = (uint32_t)slot;
	s->jobs[slot] = j;
	for (uint32_t i = 0; i < j->spec.n_chunks; i++)
		j->queue[i] = i;
	j->q_count = j->spec.n_chunks;
	pump(s, j);
}

void wisp_sync_cancel_job(struct wisp_syncs *s, uint64_t sync_id)
{
	for (int i = 0; i < WISP_SYNC_MAX_JOBS; i++)
		if (s->jobs[i] && s->jobs[i]->id == sync_id) {
			job_end(s, s->jobs[i], WISP_ERR_CANCELED);
			return;
		}
}

static struct wisp_sync_job *job_at(struct wisp_syncs *s, uint32_t job, uint32_t chunk)
{
	struct wisp_sync_job *j = job < WISP_SYNC_MAX_JOBS ? s->jobs[job] : NULL;
	return j && chunk < j->spec.n_chunks ? j : NULL;
}

int wisp_sync_part(struct wisp_syncs *s, uint32_t job, uint32_t chunk, wisp_buf *buf)
{
	struct wisp_sync_job *j = job_at(s, job, chunk);
	const wisp_response_info *ri = (const wisp_response_info *)(const void *)buf->data;
	chunk_state *cs = j ? &j->cs[chunk] : NULL;
	int err = WISP_OK;
	if (!cs || cs->state != CH_FLIGHT || j->ending) {
		wisp_buf_unref(buf);
		return WISP_OK;
	}
	if (ri->result != WISP_RR_SUCCESS) {
		cs->refused = true; /* the end follows */
		cs->busy = ri->result == WISP_RR_UNAVAILABLE;
		wisp_buf_unref(buf);
		return WISP_OK;
	}
	wisp_atlas_checkpoint_part part;
	uint32_t size = j->chunks[chunk].size;
	int rc = wisp_atlas_checkpoint_part_decode(ri->data, ri->len, &part);
	const uint8_t *data = part.data.p;
	size_t len = part.data.len;
	if (rc || part.offset != cs->got || len > size - cs->got) {
		cs->bad = true;
		err = WISP_ERR_BAD_CONTENT;
	} else if (len) {
		wisp_node *n = wisp_rr_node(s->r);
		if (!cs->asm_ && !(cs->asm_ = wisp_buf_alloc(n->pool, sizeof(wisp_sync_info) + size))) {
			cs->local = true;
			err = WISP_ERR_NOMEM;
		} else {
			memcpy(cs->asm_->data + sizeof(wisp_sync_info) + cs->got, data, len);
			cs->got += (uint32_t)len;
		}
	}
	wisp_buf_unref(buf);
	return err;
}

static bool chunk_ok(const struct wisp_sync_job *j, uint32_t c)
{
	const chunk_state *cs = &j->cs[c];
	const wisp_sync_chunk *ch = &j->chunks[c];
	if (cs->bad || cs->refused || cs->local || cs->got != ch->size || !cs->asm_)
		return false;
	uint8_t md[32];
	unsigned int mdlen = 0;
	if (!EVP_Digest(cs->asm_->data + sizeof(wisp_sync_info), ch->size, md, &mdlen, EVP_sha256(), NULL))
		return false;
	return mdlen == 32 && !memcmp(md, ch->sha256, 32);
}

/* A verified chunk to the application. False when it cannot hear of it. */
static bool deliver(struct wisp_syncs *s, struct wisp_sync_job *j, uint32_t c)
{
	chunk_state *cs = &j->cs[c];
	wisp_node *n = wisp_rr_node(s->r);
	wisp_actor *a = wisp_rr_actor(s->r);
	j->done++;
	j->bytes_done += j->chunks[c].size;
	wisp_buf *b = cs->asm_;
	wisp_sync_info *si = (wisp_sync_info *)(void *)b->data;
	memset(si, 0, sizeof(*si));
	fill_progress(j, si, wisp_loop_now(a->loop));
	si->index = c;
	si->peer = j->peers[cs->peer];
	si->data = (const uint8_t *)(si + 1);
	si->len = j->chunks[c].size;
	b->len = (uint32_t)(sizeof(*si) + si->len);
	wisp_buf_ref(b);
	if (wisp_node_emit(n, a->loop, WISP_EVENT_SYNC_CHUNK, WISP_OK, j->cookie, b) != WISP_OK) {
		/* the application's ring is full: fetch it again later */
		j->done--;
		j->bytes_done -= j->chunks[c].size;
		return false;
	}
	wisp_buf_unref(b);
	cs->asm_ = NULL;
	cs->state = CH_DONE;
	return true;
}

void wisp_sync_out_done(struct wisp_syncs *s, uint32_t job, uint32_t chunk, const wisp_peer_id *peer, int status)
{
	(void)peer;
	struct wisp_sync_job *j = job_at(s, job, chunk);
	if (!j || j->cs[chunk].state != CH_FLIGHT)
		return;
	chunk_state *cs = &j->cs[chunk];
	uint32_t p = cs->peer;
	j->inflight[p]--;
	j->flying--;
	cs->state = CH_PENDING;
	if (j->ending) {
		wisp_buf_unref(cs->asm_);
		cs->asm_ = NULL;
		if (!j->flying) {
			s->jobs[j->slot] = NULL;
			wisp_sync_job_free(wisp_rr_node(s->r), j);
		}
		pump_all(s);
		return;
	}
	bool verified = status == WISP_OK && chunk_ok(j, chunk);
	if (verified && deliver(s, j, chunk)) {
		j->res[p].chunks++;
	} else {
		bool peer_fault = wisp_err_is_peer(status);
		bool counts = true;
		if (verified || cs->local) {
			/* ours: no buffer, or the application's ring was full */
		} else if (cs->busy && status == WISP_OK) {
			/* the peer's limits: leave it alone a while */
			j->busy_until[p] = wisp_loop_now(wisp_rr_actor(s->r)->loop) + BUSY_BACKOFF_NS;
			counts = cs->busy_count >= BUSY_MAX;
			if (!counts)
				cs->busy_count++;
			j->last_err = WISP_ERR_REFUSED;
		} else if (cs->bad || peer_fault || (status == WISP_OK && !cs->refused)) {
			/* parts that did not fit, broken framing, or a whole
			 * response of the wrong size or hash */
			j->res[p].bad++;
			if (!peer_fault) /* the worker reported those already */
				wisp_rr_report(s->r, &j->peers[p], WISP_REP_BAD, 0);
			if (j->res[p].bad >= j->spec.bad_limit)
				j->res[p].dropped = 1;
			j->last_err = peer_fault ? status : WISP_ERR_BAD_CONTENT;
		} else {
			/* refused, timed out, reset */
			j->res[p].failed++;
			j->last_err = cs->refused ? WISP_ERR_REFUSED : status;
		}
		wisp_buf_unref(cs->asm_);
		cs->asm_ = NULL;
		if (counts && ++cs->attempts >= j->spec.max_attempts) {
			job_end(s, j, j->last_err ? j->last_err : WISP_ERR_AGAIN);
			pump_all(s);
			return;
		}
		j->queue[(j->q_head + j->q_count) % j->spec.n_chunks] = chunk;
		j->q_count++;
	}
	if (j->done == j->spec.n_chunks)
		job_end(s, j, WISP_OK);
	pump_all(s);
}

void wisp_syncs_stop(struct wisp_syncs *s)
{
	wisp_node *n = wisp_rr_node(s->r);
	if (s->timer_ready)
		wisp_loop_timer_disarm(wisp_rr_actor(s->r)->loop, &s->retry);
	for (int i = 0; i < WISP_SYNC_MAX_JOBS; i++) {
		struct wisp_sync_job *j = s->jobs[i];
		if (!j)
			continue;
		if (!j->ending)
			emit_done(s, j, WISP_ERR_CLOSED);
		s->jobs[i] = NULL;
		wisp_sync_job_free(n, j);
	}
}
