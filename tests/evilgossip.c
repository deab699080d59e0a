#include "tests/evilgossip.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "actors/gossip/router.h"
#include "codec/frame.h"
#include "net/yamux.h"
#include "tests/testlib.h"

/* Window given back to the node once this much was read. */
#define GRANT_STEP (64u * 1024)
/* Our data frames carry at most this much (one Noise frame). */
#define CHUNK (WISP_NOISE_MAX_PLAINTEXT - WISP_YAMUX_HEADER_LEN)

static eg_peer *of(ev_peer *p)
{
	return (eg_peer *)p; /* ev_peer is the first member */
}

/* ---- streams -------------------------------------------------------------- */

static eg_stream *stream_find(eg_peer *e, uint32_t id)
{
	for (int i = 0; i < EG_MAX_STREAMS; i++)
		if (e->st[i].used && e->st[i].id == id)
			return &e->st[i];
	return NULL;
}

static eg_stream *stream_add(eg_peer *e, uint32_t id, bool ours)
{
	for (int i = 0; i < EG_MAX_STREAMS; i++) {
		eg_stream *s = &e->st[i];
		if (s->used)
			continue;
		free(s->buf);
		memset(s, 0, sizeof(*s));
		s->used = true;
		s->id = id;
		s->ours = ours;
		s->window = WISP_YAMUX_INITIAL_WINDOW;
		return s;
	}
	return NULL;
}

/* A small data frame on stream id, also from inside the pump: negotiation
 * messages, which fit in any fresh window. */
static int send_on(eg_peer *e, uint32_t id, const void *b, size_t n)
{
	uint8_t f[WISP_YAMUX_HEADER_LEN + 2 * (WISP_MSS_MAX_MSG + 16)];
	if (n > sizeof(f) - WISP_YAMUX_HEADER_LEN)
		return WISP_ERR_NOBUF;
	ev_ymx(f, WISP_YAMUX_DATA, 0, id, (uint32_t)n);
	memcpy(f + WISP_YAMUX_HEADER_LEN, b, n);
	eg_stream *s = stream_find(e, id);
	if (s)
		s->window -= (int64_t)n; /* negotiation bytes count against the window too */
	return ev_send_sealed(&e->p, f, WISP_YAMUX_HEADER_LEN + n, 2000);
}

static int window_update(eg_peer *e, uint32_t id, uint32_t bytes)
{
	uint8_t h[WISP_YAMUX_HEADER_LEN];
	ev_ymx(h, WISP_YAMUX_WINDOW_UPDATE, 0, id, bytes);
	return ev_send_sealed(&e->p, h, sizeof(h), 2000);
}

static int flush_mss(eg_peer *e, eg_stream *s)
{
	uint8_t out[2 * (WISP_MSS_MAX_MSG + 16)];
	size_t n = wisp_mss_write(&s->mss, out, sizeof(out));
	return n ? send_on(e, s->id, out, n) : 0;
}

/* The node proposes a protocol on a stream it opened: only ours. */
static int match_proto(void *ctx, const char *id, size_t len)
{
	eg_peer *e = ctx;
	return strlen(e->proto) == len && memcmp(id, e->proto, len) == 0 ? 0 : -1;
}

static void count_rpc(eg_peer *e, const wisp_gs_rpc *r)
{
	eg_counts *g = &e->got;
	g->rpcs++;
	for (uint32_t i = 0; i < r->n_subs; i++) {
		if (r->subs[i].subscribe)
			g->subs++;
		else
			g->unsubs++;
	}
	g->msgs += r->n_msgs;
	g->ihave += r->n_ihave;
	for (uint32_t i = 0; i < r->n_ihave; i++)
		g->ihave_ids += r->ihave[i].ids.n;
	g->iwant += r->n_iwant;
	for (uint32_t i = 0; i < r->n_iwant; i++)
		g->iwant_ids += r->iwant[i].n;
	for (uint32_t i = 0; i < r->n_idontwant; i++)
		g->idontwant_ids += r->idontwant[i].n;
	if (r->n_graft) {
		g->graft += r->n_graft;
		g->last_graft_ns = wt_now_ns();
	}
	if (r->n_prune) {
		g->prune += r->n_prune;
		g->last_prune_ns = wt_now_ns();
		const wisp_gs_prune *pr = &r->prune[r->n_prune - 1];
		g->last_prune_backoff = pr->has_backoff ? pr->backoff : 0;
	}
}

/* Cut the RPC frames out of the node's meshsub stream. */
static int read_rpcs(eg_peer *e, eg_stream *s)
{
	size_t off = 0;
	for (;;) {
		const uint8_t *pl;
		size_t plen;
		ssize_t r = wisp_frame_peek(s->buf + off, s->len - off, e->rpc->lim.max_rpc, &pl, &plen, NULL);
		if (r < 0)
			return (int)r; /* the node never sends a frame over the limit */
		if (r == 0)
			break;
		off += (size_t)r;
		if (wisp_gs_rpc_decode(e->rpc, pl, plen) != 0) {
			e->got.bad_rpcs++;
			continue;
		}
		count_rpc(e, e->rpc);
		if (e->on_rpc)
			e->on_rpc(e, e->rpc, e->arg);
	}
	memmove(s->buf, s->buf + off, s->len - off);
	s->len -= off;
	return 0;
}

static int on_frame(ev_peer *p, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
	eg_peer *e = of(p);
	if (type == WISP_YAMUX_PING || type == WISP_YAMUX_GO_AWAY)
		return 0;
	eg_stream *s = stream_find(e, id);
	if (!s && (flags & WISP_YAMUX_SYN) && !(id & 1)) {
		/* the node opens a stream: accept it and listen */
		s = stream_add(e, id, false);
		if (!s)
			return WISP_ERR_LIMIT;
		wisp_mss_listener_init(&s->mss, match_proto, e);
		uint8_t h[WISP_YAMUX_HEADER_LEN];
		ev_ymx(h, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_ACK, id, 0);
		int err = ev_send_sealed(p, h, sizeof(h), 2000);
		if (err)
			return err;
	}
	if (!s)
		return 0;
	if (type == WISP_YAMUX_WINDOW_UPDATE)
		s->window += len;
	if (flags & (WISP_YAMUX_FIN | WISP_YAMUX_RST)) {
		s->ended = true;
		if (s != e->mine && s != e->theirs && s->ours == false)
			s->used = false; /* a refused stream of the node's: its slot is free */
	}
	return 0;
}

static int on_data(ev_peer *p, uint32_t id, const uint8_t *b, size_t n)
{
	eg_peer *e = of(p);
	eg_stream *s = stream_find(e, id);
	if (!s || !n)
		return 0;
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + n)
			cap *= 2;
		uint8_t *nb = realloc(s->buf, cap);
		if (!nb)
			return WISP_ERR_NOMEM;
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, b, n);
	s->len += n;
	if (e->auto_window) {
		s->credit += (uint32_t)n;
		if (s->credit >= GRANT_STEP) {
			int err = window_update(e, id, s->credit);
			if (err)
				return err;
			s->credit = 0;
		}
	}
	if (!s->open) {
		ssize_t r = wisp_mss_read(&s->mss, s->buf, s->len);
		if (r < 0) {
			/* refused ("na" to our proposal): the stream is dead */
			s->ended = true;
			s->len = 0;
			return s->ours ? (int)r : 0;
		}
		memmove(s->buf, s->buf + r, s->len - (size_t)r);
		s->len -= (size_t)r;
		int err = flush_mss(e, s);
		if (err)
			return err;
		if (!wisp_mss_done(&s->mss))
			return 0;
		s->open = true;
		s->gossip = true; /* only meshsub is ever accepted */
		if (!s->ours)
			e->theirs = s;
	}
	if (s->gossip && !s->ours)
		return read_rpcs(e, s);
	s->len = 0; /* bytes on our write-only stream: ignored */
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

eg_peer *eg_new(void)
{
	eg_peer *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->p.fd = -1;
	e->auto_window = true;
	wisp_gs_limits lim;
	wisp_gs_limits_default(&lim);
	e->enc = malloc((size_t)lim.max_rpc + 16);
	if (!e->enc || wisp_gs_rpc_new(&e->rpc, wisp_mem_default(), NULL) != 0 ||
	    wisp_gs_rpc_new(&e->out, wisp_mem_default(), NULL) != 0) {
		eg_free(e);
		return NULL;
	}
	return e;
}

void eg_close(eg_peer *e)
{
	ev_close(&e->p);
}

void eg_free(eg_peer *e)
{
	if (!e)
		return;
	eg_close(e);
	for (int i = 0; i < EG_MAX_STREAMS; i++)
		free(e->st[i].buf);
	wisp_gs_rpc_free(e->rpc);
	wisp_gs_rpc_free(e->out);
	free(e->enc);
	free(e);
}

static bool mine_open(eg_peer *e, void *arg)
{
	eg_stream *s = arg;
	return e->err || s->open || s->ended;
}

int eg_open_stream(eg_peer *e, unsigned timeout_ms)
{
	eg_stream *s = stream_add(e, e->p.next_id, true);
	if (!s)
		return WISP_ERR_LIMIT;
	e->p.next_id += 2;
	/* the proposal goes pipelined with the header, right after the SYN */
	const char *protos[] = { e->proto };
	int err = wisp_mss_dialer_init(&s->mss, protos, 1);
	if (err)
		return err;
	uint8_t h[WISP_YAMUX_HEADER_LEN];
	ev_ymx(h, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_SYN, s->id, 0);
	if ((err = ev_send_sealed(&e->p, h, sizeof(h), timeout_ms)) || (err = flush_mss(e, s)))
		return err;
	if ((err = eg_pump(e, mine_open, s, timeout_ms)))
		return err;
	if (e->err)
		return e->err;
	if (!s->open)
		return WISP_ERR_REFUSED;
	if (e->mine)
		e->mine->used = false; /* the old one is gone */
	e->mine = s;
	return 0;
}

static bool theirs_open(eg_peer *e, void *arg)
{
	(void)arg;
	return e->err || (e->theirs && e->theirs->open);
}

int eg_connect(eg_peer *e, uint16_t port, int rcvbuf, const char *proto, unsigned timeout_ms)
{
	uint64_t deadline = wt_deadline(timeout_ms);
	int err = ev_connect(&e->p, port, rcvbuf);
	if (err)
		return err;
	e->proto = proto;
	e->p.on_frame = on_frame;
	e->p.on_data = on_data;
	if ((err = wisp_peer_id_from_pubkey(&e->id, wisp_privkey_pubkey(&e->p.key))))
		return err;
	if ((err = ev_handshake(&e->p, wt_ms_left(deadline))))
		return err;
	if ((err = eg_open_stream(e, wt_ms_left(deadline))))
		return err;
	if ((err = eg_pump(e, theirs_open, NULL, wt_ms_left(deadline))))
		return err;
	return e->err;
}

/* ---- the pump --------------------------------------------------------------- */

struct cond_arg {
	bool (*cond)(eg_peer *e, void *arg);
	void *arg;
};

static bool cond_adapter(ev_peer *p, void *arg)
{
	struct cond_arg *c = arg;
	return c->cond(of(p), c->arg);
}

int eg_pump(eg_peer *e, bool (*cond)(eg_peer *e, void *arg), void *arg, unsigned timeout_ms)
{
	struct cond_arg c = { cond, arg };
	int err = ev_pump(&e->p, cond ? cond_adapter : NULL, &c, timeout_ms);
	if (err && !e->err && err != -ETIMEDOUT)
		e->err = err;
	return err;
}

static bool never(eg_peer *e, void *arg)
{
	(void)e;
	(void)arg;
	return false;
}

int eg_poll(eg_peer *e)
{
	int err = eg_pump(e, never, NULL, 0);
	return err == -ETIMEDOUT ? 0 : err;
}

int eg_grant(eg_peer *e, uint32_t bytes)
{
	if (!e->theirs)
		return WISP_ERR_STATE;
	return window_update(e, e->theirs->id, bytes);
}

/* ---- sending ---------------------------------------------------------------- */

static bool has_window(eg_peer *e, void *arg)
{
	(void)arg;
	return e->mine->window > 0 || e->mine->ended;
}

int eg_send_stream(eg_peer *e, const void *b, size_t n, unsigned timeout_ms)
{
	static uint8_t frame[WISP_YAMUX_HEADER_LEN + CHUNK];
	uint64_t deadline = wt_deadline(timeout_ms);
	const uint8_t *p = b;
	eg_stream *s = e->mine;
	if (!s || !s->open)
		return WISP_ERR_STATE;
	while (n) {
		if (s->window <= 0) {
			int err = eg_pump(e, has_window, NULL, wt_ms_left(deadline));
			if (err)
				return err;
		}
		if (s->ended)
			return -ECONNRESET;
		size_t k = n < CHUNK ? n : CHUNK;
		if ((int64_t)k > s->window)
			k = (size_t)s->window;
		ev_ymx(frame, WISP_YAMUX_DATA, 0, s->id, (uint32_t)k);
		memcpy(frame + WISP_YAMUX_HEADER_LEN, p, k);
		int err = ev_send_sealed(&e->p, frame, WISP_YAMUX_HEADER_LEN + k, wt_ms_left(deadline));
		if (err)
			return err;
		s->window -= (int64_t)k;
		p += k;
		n -= k;
	}
	return 0;
}

int eg_send_frame(eg_peer *e, const void *payload, size_t n, unsigned timeout_ms)
{
	uint8_t pre[10];
	ssize_t k = wisp_frame_put_prefix(pre, sizeof(pre), n);
	if (k < 0)
		return (int)k;
	int err = eg_send_stream(e, pre, (size_t)k, timeout_ms);
	return err ? err : eg_send_stream(e, payload, n, timeout_ms);
}

int eg_send_out(eg_peer *e, unsigned timeout_ms)
{
	ssize_t n = wisp_gs_rpc_encode(e->out, e->enc, e->out->lim.max_rpc + 16);
	wisp_gs_rpc_clear(e->out);
	if (n < 0)
		return (int)n;
	return eg_send_frame(e, e->enc, (size_t)n, timeout_ms);
}

static wisp_gs_bytes str_bytes(const char *s)
{
	wisp_gs_bytes b = { (const uint8_t *)s, (uint32_t)strlen(s) };
	return b;
}

int eg_subscribe(eg_peer *e, const char *topic, bool sub, unsigned timeout_ms)
{
	wisp_gs_rpc *o = e->out;
	o->subs[o->n_subs++] = (wisp_gs_subopt){ .subscribe = sub, .topic = str_bytes(topic) };
	return eg_send_out(e, timeout_ms);
}

int eg_publish(eg_peer *e, const wisp_gs_message *m, unsigned timeout_ms)
{
	wisp_gs_rpc *o = e->out;
	o->msgs[o->n_msgs] = *m;
	o->msgs[o->n_msgs++].raw = (wisp_gs_bytes){ 0 };
	return eg_send_out(e, timeout_ms);
}

int eg_graft(eg_peer *e, const char *topic, unsigned timeout_ms)
{
	wisp_gs_rpc *o = e->out;
	o->graft[o->n_graft++] = str_bytes(topic);
	return eg_send_out(e, timeout_ms);
}

int eg_prune(eg_peer *e, const char *topic, uint64_t backoff_s, unsigned timeout_ms)
{
	wisp_gs_rpc *o = e->out;
	o->prune[o->n_prune++] = (wisp_gs_prune){
		.topic = str_bytes(topic), .has_backoff = backoff_s != 0, .backoff = backoff_s };
	return eg_send_out(e, timeout_ms);
}

int eg_ihave(eg_peer *e, const char *topic, const wisp_gs_bytes *ids, uint32_t n, unsigned timeout_ms)
{
	wisp_gs_rpc *o = e->out;
	if (n > o->lim.max_ids)
		return WISP_ERR_INVALID_ARG;
	memcpy(o->ids, ids, n * sizeof(*ids));
	o->n_ids = n;
	o->ihave[o->n_ihave++] = (wisp_gs_ihave){ .topic = str_bytes(topic), .ids = { 0, n } };
	return eg_send_out(e, timeout_ms);
}

int eg_iwant(eg_peer *e, const wisp_gs_bytes *ids, uint32_t n, unsigned timeout_ms)
{
	wisp_gs_rpc *o = e->out;
	if (n > o->lim.max_ids)
		return WISP_ERR_INVALID_ARG;
	memcpy(o->ids, ids, n * sizeof(*ids));
	o->n_ids = n;
	o->iwant[o->n_iwant++] = (wisp_gs_range){ 0, n };
	return eg_send_out(e, timeout_ms);
}

int eg_msg_sign(eg_peer *e, eg_msg *x, const char *topic, const void *data, size_t n)
{
	memset(x, 0, sizeof(*x));
	snprintf(x->topic, sizeof(x->topic), "%s", topic);
	memcpy(x->from, e->id.bytes, e->id.len);
	uint64_t q = ++e->seqno;
	for (int i = 0; i < 8; i++)
		x->seqno[i] = (uint8_t)(q >> (56 - 8 * i));
	wisp_gs_message *m = &x->m;
	m->has_from = m->has_data = m->has_seqno = m->has_topic = m->has_signature = true;
	m->from = (wisp_gs_bytes){ x->from, e->id.len };
	m->data = (wisp_gs_bytes){ n ? data : NULL, (uint32_t)n };
	m->seqno = (wisp_gs_bytes){ x->seqno, 8 };
	m->topic = str_bytes(x->topic);
	size_t need = wisp_gs_sign_bytes_size(m);
	uint8_t *scratch = malloc(need);
	if (!scratch)
		return WISP_ERR_NOMEM;
	ssize_t sl = wisp_gs_sign(m, &e->p.key, scratch, need, x->sig, sizeof(x->sig));
	free(scratch);
	if (sl < 0)
		return (int)sl;
	m->signature = (wisp_gs_bytes){ x->sig, (uint32_t)sl };
	wisp_gs_topic_profile prof;
	wisp_gs_topic_profile_default(&prof); /* from || seqno, as the node's default */
	x->id_len = wisp_gs_message_id(&prof, m, x->id, sizeof(x->id));
	return x->id_len ? 0 : WISP_ERR_INTERNAL;
}
