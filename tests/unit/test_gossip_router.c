/* gossipsub router: one router against scripted peers (every frame it sends
 * is captured and decoded), and a simulated network of routers in one
 * process (a hand-advanced clock, frames passed through an in-memory queue,
 * a seeded RNG whose seed is printed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>
#include <wisp/identity.h>

#include "actors/gossip/router.h"
#include "actors/gossip/rpc.h"
#include "codec/frame.h"

#define S WISP_NS_PER_S
#define MS WISP_NS_PER_MS
#define T0 (1000 * S)

static const uint8_t TOPIC[] = "topic";
#define TLEN (sizeof(TOPIC) - 1)

static void key_for(wisp_privkey *k, unsigned i)
{
	uint8_t secret[32];
	memset(secret, 0, sizeof(secret));
	secret[0] = 0x42;
	secret[30] = (uint8_t)(i >> 8);
	secret[31] = (uint8_t)(i + 1);
	assert_int_equal(wisp_privkey_from_secret(k, secret), 0);
}

static void id_for(wisp_peer_id *id, unsigned i)
{
	wisp_privkey k;
	key_for(&k, i);
	assert_int_equal(wisp_peer_id_from_pubkey(id, wisp_privkey_pubkey(&k)), 0);
	wisp_privkey_wipe(&k);
}

/* ======================================================================
 * solo: one router, scripted peers
 * ====================================================================== */

#define MAXP 64
#define MAXCAP 4096

typedef struct sent {
	uint32_t peer;
	wisp_buf *f;
	int prio;
	wisp_tstamp exp;
} sent;

typedef struct solo {
	wisp_gs_router *r;
	wisp_pool *pool;
	wisp_privkey key;
	wisp_tstamp now;
	sent out[MAXCAP];
	size_t n_out;
	wisp_gs_score_event ev[MAXCAP];
	size_t n_ev;
	double scores[MAXP];
	int delivered;
	uint8_t last_data[64];
	size_t last_len;
	/* validation / verification hooks */
	bool hold_validate, hold_verify;
	uint64_t vrefs[256];
	size_t n_vrefs;
	wisp_gs_verdict sync_verdict;
	bool sync_validate;
	int validate_calls, verify_calls;
	int reenter_rc;
	bool try_reenter;
	int px_calls, px_with_record;
	uint8_t px_last_record[32];
	size_t px_last_record_len;
	bool give_records;          /* ops.peer_record answers for even handles */
	char records[MAXP][24];
	wisp_gs_rpc *dec;
} solo;

static void s_send(void *ctx, uint32_t peer, wisp_buf *f, int prio, wisp_tstamp exp)
{
	solo *s = ctx;
	assert_true(s->n_out < MAXCAP);
	s->out[s->n_out++] = (sent){ peer, wisp_buf_ref(f), prio, exp };
}

static void s_verify(void *ctx, uint64_t ref, wisp_buf *f, const wisp_gs_message *m)
{
	solo *s = ctx;
	(void)f;
	(void)m;
	s->verify_calls++;
	if (s->hold_verify)
		s->vrefs[s->n_vrefs++] = ref;
	else {
		uint8_t scratch[4096];
		assert_int_equal(wisp_gs_router_verified(s->r, ref, wisp_gs_verify(m, scratch, sizeof(scratch)) == 0,
							 s->now),
				 0);
	}
}

static void s_validate(void *ctx, uint64_t ref, uint32_t topic, wisp_buf *f, const wisp_gs_message *m,
		       const uint8_t *id, size_t id_len, uint32_t from)
{
	solo *s = ctx;
	(void)topic, (void)f, (void)m, (void)id, (void)id_len, (void)from;
	s->validate_calls++;
	if (s->try_reenter)
		s->reenter_rc = wisp_gs_router_subscribe(s->r, (const uint8_t *)"x", 1, NULL, s->now);
	if (s->sync_validate)
		assert_int_equal(wisp_gs_router_validated(s->r, ref, s->sync_verdict, s->now), 0);
	else if (s->hold_validate)
		s->vrefs[s->n_vrefs++] = ref;
	else
		assert_int_equal(wisp_gs_router_validated(s->r, ref, WISP_GS_ACCEPT, s->now), 0);
}

static void s_deliver(void *ctx, uint32_t topic, wisp_buf *f, const wisp_gs_message *m,
		      const uint8_t *id, size_t id_len, uint32_t from)
{
	solo *s = ctx;
	(void)topic, (void)f, (void)id, (void)id_len, (void)from;
	s->delivered++;
	s->last_len = m->data.len < sizeof(s->last_data) ? m->data.len : sizeof(s->last_data);
	memcpy(s->last_data, m->data.data, s->last_len);
}

static void s_event(void *ctx, const wisp_gs_score_event *ev)
{
	solo *s = ctx;
	assert_true(s->n_ev < MAXCAP);
	s->ev[s->n_ev] = *ev;
	s->ev[s->n_ev].topic_name = NULL;
	s->n_ev++;
}

static void s_px(void *ctx, const uint8_t *id, size_t len, const uint8_t *record, size_t record_len)
{
	solo *s = ctx;
	(void)id;
	assert_true(len > 0);
	assert_true((record == NULL) == (record_len == 0));
	s->px_calls++;
	if (record) {
		s->px_with_record++;
		assert_true(record_len <= sizeof(s->px_last_record));
		memcpy(s->px_last_record, record, record_len);
		s->px_last_record_len = record_len;
	}
}

static const uint8_t *s_peer_record(void *ctx, uint32_t peer, size_t *len)
{
	solo *s = ctx;
	if (!s->give_records || peer % 2) {
		*len = 0;
		return NULL;
	}
	snprintf(s->records[peer], sizeof(s->records[peer]), "record-%u", peer);
	*len = strlen(s->records[peer]);
	return (const uint8_t *)s->records[peer];
}

static double s_score(void *ctx, uint32_t peer)
{
	solo *s = ctx;
	return s->scores[peer];
}

static void solo_config(wisp_gs_config *c)
{
	wisp_gs_config_default(c);
	c->seed = 7;
	c->max_peers = MAXP;
	c->max_topics = 16;
	c->max_remote_topics = 32;
	c->max_peer_subs = 16;
	c->mcache_cap = 256;
	c->seen_cap = 1024;
	c->max_pending = 64;
	c->max_promises = 256;
	c->max_idontwant = 256;
	c->max_idontwant_peer = 64;
	c->max_backoffs = 256;
}

static solo *solo_new(const wisp_gs_config *cfg, bool with_validate)
{
	solo *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->now = T0;
	key_for(&s->key, 1000);
	assert_int_equal(wisp_pool_new(&s->pool, wisp_mem_default(), 64u << 20), 0);
	wisp_gs_ops ops = { .send = s_send,
			    .verify = NULL,
			    .validate = with_validate ? s_validate : NULL,
			    .deliver = s_deliver,
			    .score_event = s_event,
			    .px = s_px,
			    .peer_record = s_peer_record,
			    .score = s_score };
	wisp_gs_config def;
	if (!cfg) {
		solo_config(&def);
		cfg = &def;
	}
	assert_int_equal(wisp_gs_router_new(&s->r, wisp_mem_default(), cfg, &ops, s, &s->key, s->pool, s->now), 0);
	assert_int_equal(wisp_gs_rpc_new(&s->dec, wisp_mem_default(), NULL), 0);
	return s;
}

static void solo_clear(solo *s)
{
	for (size_t i = 0; i < s->n_out; i++)
		wisp_buf_unref(s->out[i].f);
	s->n_out = 0;
	s->n_ev = 0;
}

static void solo_free(solo *s)
{
	assert_int_equal(wisp_gs_router_check(s->r), 0);
	solo_clear(s);
	wisp_gs_router_free(s->r);
	wisp_gs_rpc_free(s->dec);
	wisp_pool_stats ps;
	wisp_pool_stats_get(s->pool, &ps);
	assert_int_equal(ps.in_use, 0); /* every frame reference came back */
	wisp_pool_free(s->pool);
	wisp_privkey_wipe(&s->key);
	free(s);
}

/* Decodes captured frame i into s->dec. */
static const wisp_gs_rpc *solo_dec(solo *s, size_t i)
{
	const uint8_t *p;
	size_t n;
	ssize_t fl = wisp_frame_peek(s->out[i].f->data, s->out[i].f->len, 4 << 20, &p, &n, NULL);
	assert_int_equal(fl, (ssize_t)s->out[i].f->len);
	assert_int_equal(wisp_gs_rpc_decode(s->dec, p, n), 0);
	return s->dec;
}

typedef struct tally {
	int frames, subs, unsubs, msgs, ihave_ids, iwant_ids, graft, prune, idontwant_ids, px;
	bool prune_has_backoff;
	uint64_t prune_backoff;
} tally;

/* What the router sent to peer (all peers when peer is UINT32_MAX). */
static tally solo_tally(solo *s, uint32_t peer)
{
	tally t;
	memset(&t, 0, sizeof(t));
	for (size_t i = 0; i < s->n_out; i++) {
		if (peer != UINT32_MAX && s->out[i].peer != peer)
			continue;
		const wisp_gs_rpc *r = solo_dec(s, i);
		t.frames++;
		for (uint32_t k = 0; k < r->n_subs; k++)
			r->subs[k].subscribe ? t.subs++ : t.unsubs++;
		t.msgs += (int)r->n_msgs;
		for (uint32_t k = 0; k < r->n_ihave; k++)
			t.ihave_ids += (int)r->ihave[k].ids.n;
		for (uint32_t k = 0; k < r->n_iwant; k++)
			t.iwant_ids += (int)r->iwant[k].n;
		for (uint32_t k = 0; k < r->n_idontwant; k++)
			t.idontwant_ids += (int)r->idontwant[k].n;
		t.graft += (int)r->n_graft;
		t.prune += (int)r->n_prune;
		t.px += (int)r->n_px;
		if (r->n_prune) {
			t.prune_has_backoff = r->prune[0].has_backoff;
			t.prune_backoff = r->prune[0].backoff;
		}
	}
	return t;
}

static int count_ev(const solo *s, wisp_gs_event_type type, uint32_t peer, uint32_t *aux)
{
	int n = 0;
	for (size_t i = 0; i < s->n_ev; i++)
		if (s->ev[i].type == type && (peer == UINT32_MAX || s->ev[i].peer == peer)) {
			n++;
			if (aux)
				*aux = s->ev[i].aux;
		}
	return n;
}

/* ---- RPCs from scripted peers --------------------------------------------------- */

typedef struct rpcb {
	wisp_gs_rpc *r;
	uint8_t buf[1 << 17];
	size_t n;
} rpcb;

static rpcb *rb_new(void)
{
	rpcb *b = calloc(1, sizeof(*b));
	assert_non_null(b);
	assert_int_equal(wisp_gs_rpc_new(&b->r, wisp_mem_default(), NULL), 0);
	return b;
}

static void rb_free(rpcb *b)
{
	wisp_gs_rpc_free(b->r);
	free(b);
}

static wisp_gs_bytes bs(const void *p, size_t n)
{
	wisp_gs_bytes b = { n ? p : NULL, (uint32_t)n };
	return b;
}

static int rb_send(solo *s, uint32_t peer, rpcb *b)
{
	ssize_t n = wisp_gs_rpc_encode(b->r, b->buf, sizeof(b->buf));
	assert_true(n >= 0);
	b->n = (size_t)n;
	int rc = wisp_gs_router_handle_rpc(s->r, peer, NULL, b->buf, b->n, s->now);
	wisp_gs_rpc_clear(b->r);
	assert_int_equal(wisp_gs_router_check(s->r), 0);
	return rc;
}

static void peer_sub(solo *s, uint32_t peer, const uint8_t *topic, size_t len, bool sub)
{
	rpcb *b = rb_new();
	b->r->subs[0].subscribe = sub;
	b->r->subs[0].topic = bs(topic, len);
	b->r->n_subs = 1;
	assert_int_equal(rb_send(s, peer, b), 0);
	rb_free(b);
}

static void peer_graft(solo *s, uint32_t peer, const uint8_t *topic, size_t len)
{
	rpcb *b = rb_new();
	b->r->graft[0] = bs(topic, len);
	b->r->n_graft = 1;
	assert_int_equal(rb_send(s, peer, b), 0);
	rb_free(b);
}

static void peer_prune(solo *s, uint32_t peer, const uint8_t *topic, size_t len, bool has_backoff,
		       uint64_t backoff, uint32_t n_px)
{
	rpcb *b = rb_new();
	wisp_gs_prune *pr = &b->r->prune[0];
	memset(pr, 0, sizeof(*pr));
	pr->topic = bs(topic, len);
	pr->has_backoff = has_backoff;
	pr->backoff = backoff;
	static wisp_peer_id ids[8];
	for (uint32_t i = 0; i < n_px; i++) {
		id_for(&ids[i], 500 + i);
		b->r->px[i].peer_id = bs(ids[i].bytes, ids[i].len);
		/* the second entry has a record (its bytes go to ops.px as they
		 * came: the owner verifies them) */
		b->r->px[i].has_record = i == 1;
		if (i == 1)
			b->r->px[i].record = bs((const uint8_t *)"signed-record", 13);
	}
	pr->px.n = n_px;
	b->r->n_px = n_px;
	b->r->n_prune = 1;
	assert_int_equal(rb_send(s, peer, b), 0);
	rb_free(b);
}

static void peer_ids(solo *s, uint32_t peer, int kind /* 1 ihave 2 iwant 5 idontwant */,
		     const uint8_t *topic, size_t len, const uint8_t *const *ids, const size_t *lens,
		     uint32_t n)
{
	rpcb *b = rb_new();
	for (uint32_t i = 0; i < n; i++)
		b->r->ids[i] = bs(ids[i], lens[i]);
	b->r->n_ids = n;
	wisp_gs_range rg = { 0, n };
	if (kind == 1) {
		b->r->ihave[0].topic = bs(topic, len);
		b->r->ihave[0].ids = rg;
		b->r->n_ihave = 1;
	} else if (kind == 2) {
		b->r->iwant[0] = rg;
		b->r->n_iwant = 1;
	} else {
		b->r->idontwant[0] = rg;
		b->r->n_idontwant = 1;
	}
	assert_int_equal(rb_send(s, peer, b), 0);
	rb_free(b);
}

/* A signed (or, sign false, NoSign) message by author key index `author`,
 * with seqno, encoded into out; *m gets the fields. */
typedef struct msgb {
	wisp_peer_id from;
	uint8_t seqno[8];
	uint8_t sig[WISP_SIG_MAX];
	uint8_t data[2048];
	uint8_t enc[4096];
	size_t enc_len;
	wisp_gs_message m;
} msgb;

static void make_msg(msgb *b, unsigned author, uint64_t seq, const uint8_t *topic, size_t tlen,
		     const void *data, size_t n, bool sign)
{
	memset(&b->m, 0, sizeof(b->m));
	assert_true(n <= sizeof(b->data));
	memcpy(b->data, data, n);
	b->m.has_data = b->m.has_topic = true;
	b->m.data = bs(b->data, n);
	b->m.topic = bs(topic, tlen);
	if (sign) {
		wisp_privkey k;
		key_for(&k, author);
		id_for(&b->from, author);
		for (int i = 7; i >= 0; i--, seq >>= 8)
			b->seqno[i] = (uint8_t)seq;
		b->m.has_from = b->m.has_seqno = b->m.has_signature = true;
		b->m.from = bs(b->from.bytes, b->from.len);
		b->m.seqno = bs(b->seqno, 8);
		uint8_t scratch[4096];
		ssize_t sl = wisp_gs_sign(&b->m, &k, scratch, sizeof(scratch), b->sig, sizeof(b->sig));
		assert_true(sl > 0);
		b->m.signature = bs(b->sig, (size_t)sl);
		wisp_privkey_wipe(&k);
	}
	ssize_t el = wisp_gs_message_encode(&b->m, true, b->enc, sizeof(b->enc));
	assert_true(el > 0);
	b->enc_len = (size_t)el;
}

static int peer_msg(solo *s, uint32_t peer, const msgb *mb)
{
	rpcb *b = rb_new();
	b->r->msgs[0] = mb->m;
	b->r->msgs[0].raw = bs(mb->enc, mb->enc_len);
	b->r->n_msgs = 1;
	int rc = rb_send(s, peer, b);
	rb_free(b);
	return rc;
}

static size_t msg_id(const msgb *mb, const wisp_gs_topic_profile *p, uint8_t *id)
{
	wisp_gs_topic_profile def;
	if (!p) {
		wisp_gs_topic_profile_default(&def);
		p = &def;
	}
	return wisp_gs_message_id(p, &mb->m, id, WISP_GS_ID_MAX);
}

static void add_peers(solo *s, uint32_t first, uint32_t n, bool outbound, uint32_t proto)
{
	for (uint32_t i = first; i < first + n; i++) {
		wisp_peer_id id;
		id_for(&id, i);
		assert_int_equal(wisp_gs_router_add_peer(s->r, i, &id, outbound, false, proto, s->now), 0);
	}
}

static void heartbeat(solo *s)
{
	s->now += S;
	assert_int_equal(wisp_gs_router_handle_expiry(s->r, s->now), 0);
	assert_int_equal(wisp_gs_router_check(s->r), 0);
}

static bool in_mesh(solo *s, uint32_t peer, const uint8_t *topic, size_t len)
{
	uint32_t m[MAXP];
	int n = wisp_gs_router_mesh_peers(s->r, topic, len, false, m, MAXP);
	for (int i = 0; i < n; i++)
		if (m[i] == peer)
			return true;
	return false;
}

static int mesh_n(solo *s, const uint8_t *topic, size_t len)
{
	return wisp_gs_router_mesh_peers(s->r, topic, len, false, NULL, 0);
}

/* ---- solo tests ----------------------------------------------------------------- */

static void test_subscriptions_announced(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 1, true, WISP_GS_PROTO_V12);
	tally t = solo_tally(s, 1);
	assert_int_equal(t.frames, 1);
	assert_int_equal(t.subs, 1);
	solo_clear(s);

	/* a new subscription goes to every peer, with a GRAFT to the ones
	 * chosen for the mesh (the peer subscribed first) */
	add_peers(s, 2, 2, true, WISP_GS_PROTO_V12);
	peer_sub(s, 2, (const uint8_t *)"b", 1, true);
	solo_clear(s);
	assert_int_equal(wisp_gs_router_subscribe(s->r, (const uint8_t *)"b", 1, NULL, s->now), 0);
	t = solo_tally(s, 2);
	assert_int_equal(t.subs, 1);
	assert_int_equal(t.graft, 1);
	assert_true(in_mesh(s, 2, (const uint8_t *)"b", 1));
	t = solo_tally(s, 3);
	assert_int_equal(t.subs, 1);
	assert_int_equal(t.graft, 0);
	solo_clear(s);

	/* unsubscribe: PRUNE with the unsubscribe backoff to the mesh */
	assert_int_equal(wisp_gs_router_unsubscribe(s->r, (const uint8_t *)"b", 1, s->now), 0);
	t = solo_tally(s, 2);
	assert_int_equal(t.unsubs, 1);
	assert_int_equal(t.prune, 1);
	assert_true(t.prune_has_backoff && t.prune_backoff == 10);
	assert_int_equal(wisp_gs_router_unsubscribe(s->r, (const uint8_t *)"b", 1, s->now), WISP_ERR_NOTFOUND);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, 0, NULL, s->now), WISP_ERR_INVALID_ARG);
	wisp_gs_topic_profile bad;
	wisp_gs_topic_profile_default(&bad);
	bad.sign = WISP_GS_SIGN_NONE; /* with the from||seqno id: no id at all */
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, &bad, s->now), WISP_ERR_INVALID_ARG);
	solo_free(s);
}

static void test_mesh_bounds_and_outbound_quota(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	/* 20 inbound and 3 outbound peers subscribe and all GRAFT us */
	add_peers(s, 1, 20, false, WISP_GS_PROTO_V11);
	add_peers(s, 21, 3, true, WISP_GS_PROTO_V11);
	for (uint32_t p = 1; p <= 23; p++)
		peer_sub(s, p, TOPIC, TLEN, true);
	solo_clear(s);
	for (uint32_t p = 1; p <= 23; p++)
		peer_graft(s, p, TOPIC, TLEN);
	/* inbound GRAFTs are refused at D_hi, outbound ones accepted */
	int n = mesh_n(s, TOPIC, TLEN);
	assert_int_equal(n, 12 + 3);
	tally t = solo_tally(s, UINT32_MAX);
	assert_int_equal(t.prune, 20 - 12);
	assert_true(t.px > 0); /* PX for refused peers (mesh full) */
	solo_clear(s);

	heartbeat(s);
	n = mesh_n(s, TOPIC, TLEN);
	assert_int_equal(n, 8); /* pruned to D */
	int out = 0;
	for (uint32_t p = 21; p <= 23; p++)
		out += in_mesh(s, p, TOPIC, TLEN);
	assert_true(out >= 2); /* D_out */
	t = solo_tally(s, UINT32_MAX);
	assert_int_equal(t.prune, 15 - 8);
	assert_int_equal(count_ev(s, WISP_GS_EV_PRUNE, UINT32_MAX, NULL), 7);

	/* negative score: pruned at the next heartbeat, no PX to it */
	uint32_t m[MAXP];
	assert_int_equal(wisp_gs_router_mesh_peers(s->r, TOPIC, TLEN, false, m, MAXP), 8);
	uint32_t bad = m[0];
	s->scores[bad] = -1;
	solo_clear(s);
	heartbeat(s);
	assert_false(in_mesh(s, bad, TOPIC, TLEN));
	t = solo_tally(s, bad);
	assert_int_equal(t.prune, 1);
	assert_int_equal(t.px, 0);
	assert_true(mesh_n(s, TOPIC, TLEN) >= 6 && mesh_n(s, TOPIC, TLEN) <= 12);

	/* peers leave: the mesh refills from the rest */
	for (uint32_t p = 1; p <= 23; p++)
		if (in_mesh(s, p, TOPIC, TLEN))
			wisp_gs_router_remove_peer(s->r, p, s->now);
	assert_int_equal(mesh_n(s, TOPIC, TLEN), 0);
	/* every peer left is in backoff with us (refused or pruned): none is
	 * grafted until the backoff and its slack are over */
	heartbeat(s);
	assert_int_equal(mesh_n(s, TOPIC, TLEN), 0);
	wisp_gs_router_stats st;
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.mesh_grafts, 0);
	s->now += 62 * S;
	heartbeat(s);
	/* D at random, plus an outbound peer if those lack one for D_out */
	int n2 = mesh_n(s, TOPIC, TLEN);
	assert_true(n2 == 8 || n2 == 9);
	assert_false(in_mesh(s, bad, TOPIC, TLEN)); /* still negative */
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.mesh_grafts, (uint64_t)n2);
	solo_free(s);
}

static void test_prune_backoff(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 2, true, WISP_GS_PROTO_V11);
	peer_sub(s, 1, TOPIC, TLEN, true);
	peer_sub(s, 2, TOPIC, TLEN, true);
	heartbeat(s);
	assert_true(in_mesh(s, 1, TOPIC, TLEN));

	/* peer 1 prunes us with a 60 s backoff: we do not graft it back before
	 * 60 s + slack, although the mesh is below D_lo */
	peer_prune(s, 1, TOPIC, TLEN, true, 60, 0);
	assert_false(in_mesh(s, 1, TOPIC, TLEN));
	assert_int_equal(count_ev(s, WISP_GS_EV_PRUNE, 1, NULL), 1);
	solo_clear(s);
	for (int i = 0; i < 61; i++) {
		heartbeat(s);
		assert_false(in_mesh(s, 1, TOPIC, TLEN));
		assert_int_equal(solo_tally(s, 1).graft, 0);
	}
	heartbeat(s);
	heartbeat(s);
	assert_true(in_mesh(s, 1, TOPIC, TLEN));
	assert_int_equal(solo_tally(s, 1).graft, 1);
	solo_clear(s);

	/* a remote backoff is clamped: 10^12 s becomes 1 h */
	peer_prune(s, 1, TOPIC, TLEN, true, UINT64_C(1000000000000), 0);
	s->now += 3600 * S - 5 * S;
	heartbeat(s);
	assert_false(in_mesh(s, 1, TOPIC, TLEN));
	s->now += 5 * S;
	heartbeat(s);
	heartbeat(s);
	assert_true(in_mesh(s, 1, TOPIC, TLEN));

	/* the other way: we prune peer 2 (negative score) and it GRAFTs at once:
	 * refused with PRUNE, penalized twice (within graft_flood_threshold) */
	s->scores[2] = -5;
	heartbeat(s);
	assert_false(in_mesh(s, 2, TOPIC, TLEN));
	s->scores[2] = 0;
	solo_clear(s);
	s->now += S;
	peer_graft(s, 2, TOPIC, TLEN);
	assert_false(in_mesh(s, 2, TOPIC, TLEN));
	uint32_t aux = 0;
	assert_int_equal(count_ev(s, WISP_GS_EV_BEHAVIOUR, 2, &aux), 1);
	assert_int_equal(aux, 2);
	tally t = solo_tally(s, 2);
	assert_int_equal(t.prune, 1);
	assert_int_equal(t.px, 0); /* no PX after a GRAFT in backoff */
	solo_clear(s);
	/* later in the backoff (past the flood threshold): one penalty; the
	 * refusal extends the backoff */
	s->now += 20 * S;
	peer_graft(s, 2, TOPIC, TLEN);
	assert_int_equal(count_ev(s, WISP_GS_EV_BEHAVIOUR, 2, &aux), 1);
	assert_int_equal(aux, 1);
	assert_true(wisp_gs_router_backoff(s->r, 2, TOPIC, TLEN, s->now + 50 * S));
	wisp_gs_router_stats st;
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.graft_backoff, 2);
	solo_free(s);
}

static void test_backoff_survives_reconnect(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 1, true, WISP_GS_PROTO_V11);
	peer_sub(s, 1, TOPIC, TLEN, true);
	heartbeat(s);
	peer_prune(s, 1, TOPIC, TLEN, true, 60, 0);
	wisp_gs_router_remove_peer(s->r, 1, s->now);
	/* the same peer id under another handle */
	wisp_peer_id id;
	id_for(&id, 1);
	assert_int_equal(wisp_gs_router_add_peer(s->r, 9, &id, true, false, WISP_GS_PROTO_V11, s->now), 0);
	peer_sub(s, 9, TOPIC, TLEN, true);
	heartbeat(s);
	assert_false(in_mesh(s, 9, TOPIC, TLEN));
	assert_true(wisp_gs_router_backoff(s->r, 9, TOPIC, TLEN, s->now));
	solo_free(s);
}

static void test_graft_edge_cases(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 2, false, WISP_GS_PROTO_V11);
	wisp_peer_id id;
	id_for(&id, 3);
	assert_int_equal(wisp_gs_router_add_peer(s->r, 3, &id, false, true, WISP_GS_PROTO_V11, s->now), 0);
	assert_int_equal(wisp_gs_router_add_peer(s->r, 3, &id, false, true, WISP_GS_PROTO_V11, s->now),
			 WISP_ERR_EXISTS);
	assert_int_equal(wisp_gs_router_add_peer(s->r, MAXP, &id, false, true, WISP_GS_PROTO_V11, s->now),
			 WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_gs_router_add_peer(s->r, 4, &id, false, true, 0x13, s->now), WISP_ERR_INVALID_ARG);
	solo_clear(s);

	/* GRAFT for a topic we are not in: ignored, no PRUNE */
	peer_graft(s, 1, (const uint8_t *)"other", 5);
	assert_int_equal(solo_tally(s, 1).frames, 0);
	/* GRAFT without a subscription: counts as one */
	peer_graft(s, 1, TOPIC, TLEN);
	assert_true(in_mesh(s, 1, TOPIC, TLEN));
	assert_int_equal(wisp_gs_router_topic_peers(s->r, TOPIC, TLEN), 1);
	/* negative score: refused */
	s->scores[2] = -1;
	peer_graft(s, 2, TOPIC, TLEN);
	assert_false(in_mesh(s, 2, TOPIC, TLEN));
	assert_int_equal(solo_tally(s, 2).prune, 1);
	/* explicit peer: refused with PRUNE, and never grafted by us */
	peer_sub(s, 3, TOPIC, TLEN, true);
	peer_graft(s, 3, TOPIC, TLEN);
	assert_false(in_mesh(s, 3, TOPIC, TLEN));
	assert_int_equal(solo_tally(s, 3).prune, 1);
	for (int i = 0; i < 3; i++)
		heartbeat(s);
	assert_false(in_mesh(s, 3, TOPIC, TLEN));
	assert_int_equal(solo_tally(s, 3).graft, 0);
	solo_free(s);
}

static void test_px(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 1, true, WISP_GS_PROTO_V11);
	add_peers(s, 2, 1, true, WISP_GS_PROTO_V10);
	add_peers(s, 3, 5, true, WISP_GS_PROTO_V11);
	for (uint32_t p = 1; p <= 7; p++)
		peer_sub(s, p, TOPIC, TLEN, true);
	heartbeat(s);
	/* PX from a peer below accept_px_threshold: ignored */
	peer_prune(s, 1, TOPIC, TLEN, true, 60, 3);
	assert_int_equal(s->px_calls, 0);
	/* from a well-scored peer: taken */
	s->scores[3] = 1000;
	peer_prune(s, 3, TOPIC, TLEN, true, 60, 3);
	assert_int_equal(s->px_calls, 3);
	assert_int_equal(s->px_with_record, 1);
	assert_int_equal(s->px_last_record_len, 13);
	assert_memory_equal(s->px_last_record, "signed-record", 13);
	wisp_gs_router_stats st;
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.px_accepted, 3);
	assert_int_equal(st.px_ignored, 3);

	/* our PRUNE on unsubscribe: to a v1.1 peer with backoff and PX of other
	 * subscribers; to a v1.0 peer a bare PRUNE */
	solo_clear(s);
	assert_true(in_mesh(s, 2, TOPIC, TLEN));
	assert_int_equal(wisp_gs_router_unsubscribe(s->r, TOPIC, TLEN, s->now), 0);
	tally t = solo_tally(s, 2);
	assert_int_equal(t.prune, 1);
	assert_false(t.prune_has_backoff);
	assert_int_equal(t.px, 0);
	for (uint32_t p = 4; p <= 7; p++) {
		t = solo_tally(s, p);
		if (t.prune) {
			assert_true(t.prune_has_backoff);
			assert_true(t.px > 0 && t.px <= 16);
		}
	}
	solo_free(s);
}

/* Our PX carries the records the owner has (ops.peer_record); entries
 * without one still name the peer. */
static void test_px_records(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	s->give_records = true;
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 6, true, WISP_GS_PROTO_V12);
	for (uint32_t p = 1; p <= 6; p++)
		peer_sub(s, p, TOPIC, TLEN, true);
	heartbeat(s);
	solo_clear(s);
	assert_int_equal(wisp_gs_router_unsubscribe(s->r, TOPIC, TLEN, s->now), 0);
	int pruned = 0, entries = 0, with = 0;
	for (size_t i = 0; i < s->n_out; i++) {
		const wisp_gs_rpc *r = solo_dec(s, i);
		if (!r->n_prune)
			continue;
		pruned++;
		uint32_t to = s->out[i].peer;
		for (uint32_t k = 0; k < r->n_px; k++) {
			const wisp_gs_peer_info *pi = &r->px[k];
			/* which handle: the one whose id it is */
			uint32_t h = 0;
			for (uint32_t c = 1; c <= 6; c++) {
				wisp_peer_id id;
				id_for(&id, c);
				if (pi->peer_id.len == id.len && !memcmp(pi->peer_id.data, id.bytes, id.len))
					h = c;
			}
			assert_true(h != 0 && h != to); /* never the pruned peer itself */
			entries++;
			if (h % 2 == 0) {
				char want[24];
				snprintf(want, sizeof(want), "record-%u", h);
				assert_true(pi->has_record);
				assert_int_equal(pi->record.len, strlen(want));
				assert_memory_equal(pi->record.data, want, strlen(want));
				with++;
			} else {
				assert_false(pi->has_record);
			}
		}
	}
	assert_true(pruned >= 1);
	assert_int_equal(entries, pruned * 5); /* every other subscriber */
	assert_true(with > 0 && with < entries);
	wisp_gs_router_stats st;
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.px_out, (uint64_t)entries);
	assert_int_equal(st.px_out_records, (uint64_t)with);
	solo_free(s);
}

static void test_message_flow_and_dedup(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, true);
	s->hold_validate = true;
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 4, true, WISP_GS_PROTO_V12);
	for (uint32_t p = 1; p <= 4; p++)
		peer_sub(s, p, TOPIC, TLEN, true);
	heartbeat(s);
	solo_clear(s);

	msgb *mb = calloc(1, sizeof(*mb));
	make_msg(mb, 77, 1, TOPIC, TLEN, "hello", 5, true);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(s->validate_calls, 1);
	/* copies during validation: not validated again, not forwarded to them */
	assert_int_equal(peer_msg(s, 2, mb), 0);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(s->validate_calls, 1);
	assert_int_equal(s->n_vrefs, 1);
	assert_int_equal(wisp_gs_router_validated(s->r, s->vrefs[0], WISP_GS_ACCEPT, s->now), 0);
	assert_int_equal(wisp_gs_router_validated(s->r, s->vrefs[0], WISP_GS_ACCEPT, s->now), WISP_ERR_NOTFOUND);
	assert_int_equal(s->delivered, 1);
	assert_memory_equal(s->last_data, "hello", 5);
	assert_int_equal(solo_tally(s, 1).msgs, 0);
	assert_int_equal(solo_tally(s, 2).msgs, 0);
	assert_int_equal(solo_tally(s, 3).msgs, 1);
	assert_int_equal(solo_tally(s, 4).msgs, 1);
	assert_int_equal(count_ev(s, WISP_GS_EV_FIRST_DELIVERY, 1, NULL), 1);
	assert_int_equal(count_ev(s, WISP_GS_EV_DUPLICATE, 2, NULL), 1);
	/* the forwarded bytes are the message as it came */
	for (size_t i = 0; i < s->n_out; i++) {
		const wisp_gs_rpc *r = solo_dec(s, i);
		if (r->n_msgs)
			assert_true(r->msgs[0].raw.len == mb->enc_len &&
				    !memcmp(r->msgs[0].raw.data, mb->enc, mb->enc_len));
	}
	/* and one frame shared by both peers */
	wisp_buf *shared = NULL;
	for (size_t i = 0; i < s->n_out; i++)
		if (s->out[i].peer == 3 || s->out[i].peer == 4) {
			if (!shared)
				shared = s->out[i].f;
			else
				assert_ptr_equal(shared, s->out[i].f);
		}
	/* a later copy: a duplicate, no work */
	solo_clear(s);
	assert_int_equal(peer_msg(s, 3, mb), 0);
	assert_int_equal(s->validate_calls, 1);
	assert_int_equal(s->n_out, 0);
	assert_int_equal(count_ev(s, WISP_GS_EV_DUPLICATE, 3, NULL), 1);

	/* IWANT for it is answered from the mcache; unknown ids are counted */
	const uint8_t *ids[2];
	size_t lens[2];
	uint8_t id[WISP_GS_ID_MAX];
	lens[0] = msg_id(mb, NULL, id);
	ids[0] = id;
	ids[1] = (const uint8_t *)"no-such-id";
	lens[1] = 10;
	peer_ids(s, 4, 2, NULL, 0, ids, lens, 2);
	assert_int_equal(solo_tally(s, 4).msgs, 1);
	wisp_gs_router_stats st;
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.iwant_unknown, 1);
	assert_int_equal(st.iwant_served, 1);

	/* messages for topics we are not in are dropped */
	make_msg(mb, 77, 2, (const uint8_t *)"elsewhere", 9, "x", 1, true);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.msg_not_subscribed, 1);
	free(mb);
	solo_free(s);
}

static void test_verdicts_and_retry(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, true);
	s->hold_validate = true;
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 3, true, WISP_GS_PROTO_V12);
	for (uint32_t p = 1; p <= 3; p++)
		peer_sub(s, p, TOPIC, TLEN, true);
	heartbeat(s);
	msgb *mb = calloc(1, sizeof(*mb));
	uint8_t id[WISP_GS_ID_MAX];

	/* IGNORE_RETRY: the id stays unseen and the next copy is validated */
	make_msg(mb, 5, 1, TOPIC, TLEN, "retry", 5, true);
	size_t idl = msg_id(mb, NULL, id);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(wisp_gs_router_seen(s->r, id, idl), 1); /* in validation */
	assert_int_equal(wisp_gs_router_validated(s->r, s->vrefs[--s->n_vrefs], WISP_GS_IGNORE_RETRY, s->now), 0);
	assert_int_equal(wisp_gs_router_seen(s->r, id, idl), 0);
	assert_int_equal(peer_msg(s, 2, mb), 0);
	assert_int_equal(s->validate_calls, 2);
	/* IGNORE: seen, no penalty */
	assert_int_equal(wisp_gs_router_validated(s->r, s->vrefs[--s->n_vrefs], WISP_GS_IGNORE, s->now), 0);
	assert_int_equal(wisp_gs_router_seen(s->r, id, idl), 1);
	assert_int_equal(count_ev(s, WISP_GS_EV_INVALID, UINT32_MAX, NULL), 0);
	assert_int_equal(s->delivered, 0);

	/* REJECT: penalized, as are later copies */
	make_msg(mb, 5, 2, TOPIC, TLEN, "bad", 3, true);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(peer_msg(s, 2, mb), 0); /* during validation */
	solo_clear(s);
	assert_int_equal(wisp_gs_router_validated(s->r, s->vrefs[--s->n_vrefs], WISP_GS_REJECT, s->now), 0);
	assert_int_equal(count_ev(s, WISP_GS_EV_INVALID, 1, NULL), 1);
	assert_int_equal(count_ev(s, WISP_GS_EV_INVALID, 2, NULL), 1);
	assert_int_equal(solo_tally(s, UINT32_MAX).msgs, 0);
	assert_int_equal(peer_msg(s, 3, mb), 0);
	assert_int_equal(count_ev(s, WISP_GS_EV_INVALID, 3, NULL), 1);
	assert_int_equal(wisp_gs_router_validated(s->r, 12345, WISP_GS_ACCEPT, s->now), WISP_ERR_NOTFOUND);
	assert_int_equal(wisp_gs_router_validated(s->r, 0, (wisp_gs_verdict)9, s->now), WISP_ERR_INVALID_ARG);

	/* no verdict: dropped at the validation timeout; a late verdict is refused */
	make_msg(mb, 5, 3, TOPIC, TLEN, "slow", 4, true);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	uint64_t ref = s->vrefs[--s->n_vrefs];
	for (int i = 0; i < 31; i++)
		heartbeat(s);
	wisp_gs_router_stats st;
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.msg_validate_timeout, 1);
	assert_int_equal(wisp_gs_router_validated(s->r, ref, WISP_GS_ACCEPT, s->now), WISP_ERR_NOTFOUND);

	/* answers from inside the callback are queued and applied; other calls
	 * from inside are refused */
	s->hold_validate = false;
	s->sync_validate = true;
	s->sync_verdict = WISP_GS_ACCEPT;
	s->try_reenter = true;
	make_msg(mb, 5, 4, TOPIC, TLEN, "sync", 4, true);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(s->delivered, 1);
	assert_int_equal(s->reenter_rc, WISP_ERR_STATE);
	free(mb);
	solo_free(s);
}

static void test_strict_sign(void **state)
{
	(void)state;
	wisp_gs_config c;
	solo_config(&c);
	solo *s = solo_new(&c, true);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 4, true, WISP_GS_PROTO_V12);
	for (uint32_t p = 1; p <= 4; p++)
		peer_sub(s, p, TOPIC, TLEN, true);
	heartbeat(s);
	solo_clear(s);

	/* a forged copy first (the signature of another key, same from/seqno):
	 * rejected and scored, reaches no one, and does not shadow the genuine
	 * message that follows */
	msgb *good = calloc(1, sizeof(*good)), *bad = calloc(1, sizeof(*bad));
	make_msg(good, 9, 42, TOPIC, TLEN, "genuine", 7, true);
	*bad = *good;
	bad->m.data = bs(bad->data, 7);
	bad->m.from = bs(bad->from.bytes, bad->from.len);
	bad->m.seqno = bs(bad->seqno, 8);
	bad->sig[10] ^= 0x01;
	bad->m.signature = bs(bad->sig, good->m.signature.len);
	bad->m.topic = bs(TOPIC, TLEN);
	ssize_t el = wisp_gs_message_encode(&bad->m, true, bad->enc, sizeof(bad->enc));
	assert_true(el > 0);
	bad->enc_len = (size_t)el;
	assert_int_equal(peer_msg(s, 1, bad), 0);
	assert_int_equal(count_ev(s, WISP_GS_EV_INVALID, 1, NULL), 1);
	assert_int_equal(s->ev[0].aux, WISP_GS_INVALID_SIGNATURE);
	assert_int_equal(s->validate_calls, 0);
	assert_int_equal(s->delivered, 0);
	assert_int_equal(solo_tally(s, UINT32_MAX).msgs, 0);
	uint8_t id[WISP_GS_ID_MAX];
	size_t idl = msg_id(good, NULL, id);
	assert_int_equal(wisp_gs_router_seen(s->r, id, idl), 0);
	assert_int_equal(peer_msg(s, 2, good), 0);
	assert_int_equal(s->delivered, 1);
	assert_int_equal(solo_tally(s, UINT32_MAX).msgs, 3); /* to 1, 3, 4 */

	/* policy: StrictSign needs from, an 8-byte seqno and a signature */
	solo_clear(s);
	msgb *nos = calloc(1, sizeof(*nos));
	make_msg(nos, 0, 0, TOPIC, TLEN, "unsigned", 8, false);
	assert_int_equal(peer_msg(s, 3, nos), 0);
	assert_int_equal(count_ev(s, WISP_GS_EV_INVALID, 3, NULL), 1);
	assert_int_equal(s->ev[0].aux, WISP_GS_INVALID_POLICY);
	wisp_gs_router_stats st;
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.msg_policy, 1);
	assert_int_equal(st.msg_bad_signature, 1);
	free(good);
	free(bad);
	free(nos);
	solo_free(s);
}

static void test_verify_callback_after_dedup(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	wisp_gs_router_free(s->r);
	wisp_gs_ops ops = { .send = s_send, .verify = s_verify, .deliver = s_deliver, .score_event = s_event,
			    .score = s_score };
	wisp_gs_config c;
	solo_config(&c);
	assert_int_equal(wisp_gs_router_new(&s->r, wisp_mem_default(), &c, &ops, s, &s->key, s->pool, s->now), 0);
	s->hold_verify = true;
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 3, true, WISP_GS_PROTO_V12);
	for (uint32_t p = 1; p <= 3; p++)
		peer_sub(s, p, TOPIC, TLEN, true);
	heartbeat(s);
	msgb *mb = calloc(1, sizeof(*mb));
	make_msg(mb, 9, 1, TOPIC, TLEN, "v", 1, true);
	/* three copies, one signature check */
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(peer_msg(s, 2, mb), 0);
	assert_int_equal(peer_msg(s, 3, mb), 0);
	assert_int_equal(s->verify_calls, 1);
	assert_int_equal(wisp_gs_router_validated(s->r, s->vrefs[0], WISP_GS_ACCEPT, s->now), WISP_ERR_NOTFOUND);
	assert_int_equal(wisp_gs_router_verified(s->r, s->vrefs[0], true, s->now), 0);
	assert_int_equal(wisp_gs_router_verified(s->r, s->vrefs[0], true, s->now), WISP_ERR_NOTFOUND);
	assert_int_equal(s->delivered, 1);
	/* after acceptance copies are duplicates without a signature check */
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(s->verify_calls, 1);
	/* an owner that answers inside the callback */
	s->hold_verify = false;
	make_msg(mb, 9, 2, TOPIC, TLEN, "w", 1, true);
	assert_int_equal(peer_msg(s, 2, mb), 0);
	assert_int_equal(s->verify_calls, 2);
	assert_int_equal(s->delivered, 2);
	/* a message claiming to be ours that we never sent: dropped, and our
	 * own messages are never forwarded back to us... nor to their author */
	make_msg(mb, 1000, 7, TOPIC, TLEN, "me?", 3, true);
	assert_int_equal(peer_msg(s, 2, mb), 0);
	assert_int_equal(s->verify_calls, 2);
	assert_int_equal(s->delivered, 2);
	wisp_gs_router_stats st;
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.msg_self, 1);
	/* a message by peer 3's key arriving from peer 1: not sent to peer 3 */
	solo_clear(s);
	make_msg(mb, 3, 1, TOPIC, TLEN, "by3", 3, true);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(s->delivered, 3);
	assert_int_equal(solo_tally(s, 2).msgs, 1);
	assert_int_equal(solo_tally(s, 3).msgs, 0);
	free(mb);
	solo_free(s);
}

static void test_strict_no_sign(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, true);
	wisp_gs_topic_profile p;
	wisp_gs_topic_profile_default(&p);
	p.sign = WISP_GS_SIGN_NONE;
	p.msgid = WISP_GS_MSGID_CONTENT;
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, &p, s->now), 0);
	add_peers(s, 1, 2, true, WISP_GS_PROTO_V12);
	peer_sub(s, 1, TOPIC, TLEN, true);
	peer_sub(s, 2, TOPIC, TLEN, true);
	heartbeat(s);
	solo_clear(s);

	msgb *mb = calloc(1, sizeof(*mb));
	/* signed (from, seqno, signature present): refused */
	make_msg(mb, 3, 1, TOPIC, TLEN, "signed", 6, true);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	/* each field alone is enough to refuse */
	const char *which[] = { "from", "seqno", "signature", "key" };
	for (int i = 0; i < 4; i++) {
		make_msg(mb, 0, 0, TOPIC, TLEN, which[i], strlen(which[i]), false);
		wisp_gs_bytes x = bs("xx", 2);
		if (i == 0)
			mb->m.has_from = true, mb->m.from = x;
		if (i == 1)
			mb->m.has_seqno = true, mb->m.seqno = x;
		if (i == 2)
			mb->m.has_signature = true, mb->m.signature = x;
		if (i == 3)
			mb->m.has_key = true, mb->m.key = x;
		ssize_t el = wisp_gs_message_encode(&mb->m, true, mb->enc, sizeof(mb->enc));
		mb->enc_len = (size_t)el;
		assert_int_equal(peer_msg(s, 1, mb), 0);
	}
	assert_int_equal(count_ev(s, WISP_GS_EV_INVALID, 1, NULL), 5);
	assert_int_equal(s->validate_calls, 0);
	assert_int_equal(solo_tally(s, 2).msgs, 0);
	/* a clean one is accepted; its id is the SHA-256 of the data */
	make_msg(mb, 0, 0, TOPIC, TLEN, "clean", 5, false);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(s->delivered, 1);
	assert_int_equal(solo_tally(s, 2).msgs, 1);
	uint8_t id[WISP_GS_ID_MAX];
	assert_int_equal(msg_id(mb, &p, id), 32);
	assert_int_equal(wisp_gs_router_seen(s->r, id, 32), 1);

	/* our own publish on it: no from/seqno/signature; same data again is a
	 * duplicate (content id) */
	solo_clear(s);
	wisp_gs_publish_result res;
	assert_int_equal(wisp_gs_router_publish(s->r, TOPIC, TLEN, (const uint8_t *)"mine", 4, s->now, &res), 0);
	assert_int_equal(res.status, WISP_GS_PUB_OK);
	assert_int_equal(res.peers, 2);
	const wisp_gs_rpc *r = solo_dec(s, 0);
	assert_int_equal(r->n_msgs, 1);
	assert_false(r->msgs[0].has_from || r->msgs[0].has_seqno || r->msgs[0].has_signature || r->msgs[0].has_key);
	assert_int_equal(wisp_gs_router_publish(s->r, TOPIC, TLEN, (const uint8_t *)"mine", 4, s->now, &res),
			 WISP_ERR_EXISTS);
	assert_int_equal(res.status, WISP_GS_PUB_DUPLICATE);
	free(mb);
	solo_free(s);
}

static void test_idontwant(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	wisp_gs_topic_profile p;
	wisp_gs_topic_profile_default(&p);
	p.idontwant_threshold = 100;
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, &p, s->now), 0);
	add_peers(s, 1, 3, true, WISP_GS_PROTO_V12);
	add_peers(s, 4, 1, true, WISP_GS_PROTO_V11);
	for (uint32_t q = 1; q <= 4; q++)
		peer_sub(s, q, TOPIC, TLEN, true);
	heartbeat(s);
	solo_clear(s);

	uint8_t big[500];
	memset(big, 'b', sizeof(big));
	msgb *mb = calloc(1, sizeof(*mb));
	make_msg(mb, 8, 1, TOPIC, TLEN, big, sizeof(big), true);
	uint8_t id[WISP_GS_ID_MAX];
	const uint8_t *ids[1] = { id };
	size_t lens[1] = { msg_id(mb, NULL, id) };
	/* peer 2 says IDONTWANT first */
	peer_ids(s, 2, 5, NULL, 0, ids, lens, 1);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	tally t1 = solo_tally(s, 1), t2 = solo_tally(s, 2), t3 = solo_tally(s, 3), t4 = solo_tally(s, 4);
	/* the big message makes us send IDONTWANT to v1.2 mesh peers, not to
	 * its source nor to v1.1 peers */
	assert_int_equal(t1.idontwant_ids, 0);
	assert_int_equal(t2.idontwant_ids, 1);
	assert_int_equal(t3.idontwant_ids, 1);
	assert_int_equal(t4.idontwant_ids, 0);
	/* forwarded to 3 and 4, not to 2 which did not want it */
	assert_int_equal(t2.msgs, 0);
	assert_int_equal(t3.msgs, 1);
	assert_int_equal(t4.msgs, 1);
	wisp_gs_router_stats st;
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.msg_idontwant_skipped, 1);

	/* small messages: no IDONTWANT */
	solo_clear(s);
	make_msg(mb, 8, 2, TOPIC, TLEN, "small", 5, true);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(solo_tally(s, UINT32_MAX).idontwant_ids, 0);

	/* bounded: per-heartbeat budget and per-peer live cap */
	wisp_gs_router_free(s->r);
	wisp_gs_config c;
	solo_config(&c);
	c.max_idontwant_ids = 10;
	c.max_idontwant_peer = 15;
	wisp_gs_ops ops = { .send = s_send, .deliver = s_deliver, .score_event = s_event, .score = s_score };
	solo_clear(s);
	assert_int_equal(wisp_gs_router_new(&s->r, wisp_mem_default(), &c, &ops, s, &s->key, s->pool, s->now), 0);
	add_peers(s, 1, 1, true, WISP_GS_PROTO_V12);
	static uint8_t many[40][4];
	const uint8_t *mids[40];
	size_t mlens[40];
	for (int i = 0; i < 40; i++) {
		memcpy(many[i], &i, 4);
		mids[i] = many[i];
		mlens[i] = 4;
	}
	peer_ids(s, 1, 5, NULL, 0, mids, mlens, 40);
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.idontwant_in, 40);
	assert_int_equal(st.idontwant_dropped, 30);
	assert_int_equal(st.idontwant, 10);
	heartbeat(s);
	peer_ids(s, 1, 5, NULL, 0, mids + 10, mlens + 10, 10);
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.idontwant, 15); /* the peer's live cap */
	/* they expire */
	for (int i = 0; i < 4; i++)
		heartbeat(s);
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.idontwant, 0);
	free(mb);
	solo_free(s);
}

static void test_publish_flood_fanout_explicit(void **state)
{
	(void)state;
	wisp_gs_config c;
	solo_config(&c);
	c.default_profile.flood_publish = false;
	solo *s = solo_new(&c, false);
	add_peers(s, 1, 12, true, WISP_GS_PROTO_V12);
	wisp_peer_id id;
	id_for(&id, 13);
	assert_int_equal(wisp_gs_router_add_peer(s->r, 13, &id, false, true, WISP_GS_PROTO_V12, s->now), 0);
	const uint8_t t2[] = "fan";
	for (uint32_t p = 1; p <= 13; p++)
		peer_sub(s, p, t2, 3, true);
	solo_clear(s);

	/* fanout: not subscribed, mesh publish: D fanout peers + the explicit */
	wisp_gs_publish_result res;
	assert_int_equal(wisp_gs_router_publish(s->r, t2, 3, (const uint8_t *)"f1", 2, s->now, &res), 0);
	assert_int_equal(res.status, WISP_GS_PUB_OK);
	assert_int_equal(res.peers, 8 + 1);
	uint32_t fan[MAXP];
	int nf = wisp_gs_router_mesh_peers(s->r, t2, 3, true, fan, MAXP);
	assert_int_equal(nf, 8);
	for (int i = 0; i < nf; i++)
		assert_int_not_equal(fan[i], 13); /* explicit peers are never fanout/mesh */
	assert_int_equal(solo_tally(s, 13).msgs, 1);
	/* own message: prio class 1, signed, from = our id */
	const wisp_gs_rpc *r = solo_dec(s, 0);
	assert_int_equal(WISP_GS_PRIO_CLASS(s->out[0].prio), WISP_GS_PRIO_PUBLISH);
	assert_true(r->msgs[0].has_signature && r->msgs[0].seqno.len == 8);
	uint8_t scratch[4096];
	assert_int_equal(wisp_gs_verify(&r->msgs[0], scratch, sizeof(scratch)), 0);
	const wisp_peer_id *self = wisp_gs_router_peer_id(s->r);
	assert_true(r->msgs[0].from.len == self->len && !memcmp(r->msgs[0].from.data, self->bytes, self->len));
	/* the same fanout for the next publish; gossip about it at heartbeat
	 * to non-fanout peers */
	solo_clear(s);
	assert_int_equal(wisp_gs_router_publish(s->r, t2, 3, (const uint8_t *)"f2", 2, s->now, &res), 0);
	for (int i = 0; i < nf; i++)
		assert_int_equal(solo_tally(s, fan[i]).msgs, 1);
	solo_clear(s);
	heartbeat(s);
	assert_true(solo_tally(s, UINT32_MAX).ihave_ids > 0);
	/* forgotten fanout_ttl after the last publish */
	s->now += 60 * S;
	heartbeat(s);
	assert_int_equal(wisp_gs_router_mesh_peers(s->r, t2, 3, true, NULL, 0), 0);

	/* flood publish on a subscribed topic: every subscriber scoring at
	 * least publish_threshold, plus explicit peers whatever their score */
	wisp_gs_topic_profile p;
	wisp_gs_topic_profile_default(&p);
	p.flood_publish = true;
	p.priority = 7;
	assert_int_equal(wisp_gs_router_subscribe(s->r, t2, 3, &p, s->now), 0);
	s->scores[5] = -9000;
	s->scores[13] = -9000;
	solo_clear(s);
	assert_int_equal(wisp_gs_router_publish(s->r, t2, 3, (const uint8_t *)"f3", 2, s->now, &res), 0);
	assert_int_equal(res.peers, 12);
	assert_int_equal(solo_tally(s, 5).msgs, 0);
	assert_int_equal(solo_tally(s, 13).msgs, 1);
	for (size_t i = 0; i < s->n_out; i++)
		assert_int_equal(WISP_GS_PRIO_TOPIC(s->out[i].prio), 7);

	/* forwarding always includes explicit peers */
	s->scores[5] = 0;
	solo_clear(s);
	msgb *mb = calloc(1, sizeof(*mb));
	make_msg(mb, 30, 1, t2, 3, "fw", 2, true);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(solo_tally(s, 13).msgs, 1);
	free(mb);

	/* results: too large, no peers, no key */
	uint8_t *big = calloc(1, (1 << 20) + 1);
	assert_int_equal(wisp_gs_router_publish(s->r, t2, 3, big, (1 << 20) + 1, s->now, &res), WISP_ERR_LIMIT);
	assert_int_equal(res.status, WISP_GS_PUB_TOO_LARGE);
	free(big);
	assert_int_equal(wisp_gs_router_publish(s->r, (const uint8_t *)"lonely", 6, (const uint8_t *)"x", 1,
						 s->now, &res),
			 0);
	assert_int_equal(res.status, WISP_GS_PUB_NO_PEERS);
	wisp_gs_router_free(s->r);
	wisp_gs_ops ops = { .send = s_send };
	assert_int_equal(wisp_gs_router_new(&s->r, wisp_mem_default(), &c, &ops, s, NULL, s->pool, s->now), 0);
	assert_int_equal(wisp_gs_router_publish(s->r, t2, 3, (const uint8_t *)"x", 1, s->now, &res), WISP_ERR_STATE);
	assert_int_equal(res.status, WISP_GS_PUB_NO_KEY);
	solo_free(s);
}

static void test_gossip_and_promises(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 20, true, WISP_GS_PROTO_V12);
	for (uint32_t p = 1; p <= 20; p++)
		peer_sub(s, p, TOPIC, TLEN, true);
	heartbeat(s);
	assert_int_equal(mesh_n(s, TOPIC, TLEN), 8);

	/* IHAVE from a non-mesh peer for unseen ids: we IWANT them */
	uint32_t gossiper = 0;
	for (uint32_t p = 1; p <= 20 && !gossiper; p++)
		if (!in_mesh(s, p, TOPIC, TLEN))
			gossiper = p;
	msgb *mb = calloc(3, sizeof(*mb));
	uint8_t idb[3][WISP_GS_ID_MAX];
	const uint8_t *ids[3];
	size_t lens[3];
	for (int i = 0; i < 3; i++) {
		make_msg(&mb[i], 40, (uint64_t)i + 1, TOPIC, TLEN, "g", 1, true);
		lens[i] = msg_id(&mb[i], NULL, idb[i]);
		ids[i] = idb[i];
	}
	solo_clear(s);
	peer_ids(s, gossiper, 1, TOPIC, TLEN, ids, lens, 3);
	assert_int_equal(solo_tally(s, gossiper).iwant_ids, 3);
	/* asked again (another peer, same ids): not asked twice */
	uint32_t other = gossiper + 1;
	while (in_mesh(s, other, TOPIC, TLEN))
		other++;
	solo_clear(s);
	peer_ids(s, other, 1, TOPIC, TLEN, ids, lens, 3);
	assert_int_equal(solo_tally(s, other).iwant_ids, 0);
	/* it delivers none of them: one broken promise (one id per IHAVE is
	 * tracked, chosen at random so a peer cannot answer just that one) */
	for (int i = 0; i < 4; i++)
		heartbeat(s);
	assert_int_equal(count_ev(s, WISP_GS_EV_BROKEN_PROMISE, gossiper, NULL), 1);
	/* delivered in time: no broken promise */
	solo_clear(s);
	make_msg(&mb[0], 41, 1, TOPIC, TLEN, "h", 1, true);
	lens[0] = msg_id(&mb[0], NULL, idb[0]);
	peer_ids(s, gossiper, 1, TOPIC, TLEN, ids, lens, 1);
	assert_int_equal(solo_tally(s, gossiper).iwant_ids, 1);
	assert_int_equal(peer_msg(s, gossiper, &mb[0]), 0);
	for (int i = 0; i < 4; i++)
		heartbeat(s);
	assert_int_equal(count_ev(s, WISP_GS_EV_BROKEN_PROMISE, UINT32_MAX, NULL), 0);

	/* IHAVE budget: max_ihave_messages per heartbeat, then ignored */
	solo_clear(s);
	for (int i = 0; i < 12; i++) {
		uint8_t x[8];
		memcpy(x, &i, sizeof(i));
		memcpy(x + 4, "zzzz", 4);
		const uint8_t *one[1] = { x };
		size_t ol[1] = { 8 };
		peer_ids(s, other, 1, TOPIC, TLEN, one, ol, 1);
	}
	assert_int_equal(solo_tally(s, other).iwant_ids, 10);
	/* from a peer below gossip_threshold: ignored */
	s->scores[other] = -5000;
	heartbeat(s);
	solo_clear(s);
	uint8_t y[4] = { 9, 9, 9, 9 };
	const uint8_t *yy[1] = { y };
	size_t yl[1] = { 4 };
	peer_ids(s, other, 1, TOPIC, TLEN, yy, yl, 1);
	assert_int_equal(solo_tally(s, other).iwant_ids, 0);

	/* our gossip: IHAVE about our publish to non-mesh peers only */
	s->scores[other] = 0;
	wisp_gs_publish_result res;
	assert_int_equal(wisp_gs_router_publish(s->r, TOPIC, TLEN, (const uint8_t *)"p", 1, s->now, &res), 0);
	solo_clear(s);
	heartbeat(s);
	int gossiped = 0;
	for (uint32_t p = 1; p <= 20; p++) {
		tally t = solo_tally(s, p);
		if (in_mesh(s, p, TOPIC, TLEN))
			assert_int_equal(t.ihave_ids, 0);
		gossiped += t.ihave_ids > 0;
	}
	assert_int_equal(gossiped, 6); /* max(D_lazy, 0.25 * 12) */
	free(mb);
	solo_free(s);
}

static void test_opportunistic_graft(void **state)
{
	(void)state;
	wisp_gs_config c;
	solo_config(&c);
	c.opportunistic_graft_ticks = 3;
	solo *s = solo_new(&c, false);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 16, true, WISP_GS_PROTO_V11);
	for (uint32_t p = 1; p <= 16; p++)
		peer_sub(s, p, TOPIC, TLEN, true);
	heartbeat(s);
	assert_int_equal(mesh_n(s, TOPIC, TLEN), 8);
	for (uint32_t p = 1; p <= 16; p++)
		s->scores[p] = in_mesh(s, p, TOPIC, TLEN) ? 1 : 50;
	heartbeat(s);
	heartbeat(s);
	assert_int_equal(mesh_n(s, TOPIC, TLEN), 10);
	solo_free(s);
}

static void test_graylist_and_caps(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 3, true, WISP_GS_PROTO_V12);
	s->scores[1] = -20000;
	peer_sub(s, 1, TOPIC, TLEN, true);
	assert_int_equal(wisp_gs_router_topic_peers(s->r, TOPIC, TLEN), 0);
	msgb *mb = calloc(1, sizeof(*mb));
	make_msg(mb, 3, 1, TOPIC, TLEN, "gray", 4, true);
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(s->delivered, 0);
	wisp_gs_router_stats st;
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.rpc_graylisted, 2);
	assert_int_equal(st.msg_in, 0);
	/* the same peer scored back up is heard again */
	s->scores[1] = 0;
	assert_int_equal(peer_msg(s, 1, mb), 0);
	assert_int_equal(s->delivered, 1);

	/* a subscription flood: capped per peer (16) and by the remote topic
	 * table (32), everything counted */
	rpcb *b = rb_new();
	static char names[100][16];
	for (int i = 0; i < 100; i++) {
		snprintf(names[i], sizeof(names[i]), "spam-%d", i);
		b->r->subs[i].subscribe = true;
		b->r->subs[i].topic = bs(names[i], strlen(names[i]));
	}
	b->r->n_subs = 100;
	assert_int_equal(rb_send(s, 2, b), 0);
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.subs_capped, 100 - 16);
	for (int i = 16; i < 100; i++) {
		b->r->subs[i - 16].subscribe = true;
		b->r->subs[i - 16].topic = bs(names[i], strlen(names[i]));
	}
	b->r->n_subs = 84;
	assert_int_equal(rb_send(s, 3, b), 0);
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.topics, 1 + 32); /* ours + 32 only peers know */
	assert_int_equal(st.topics_capped, 0);
	for (int i = 32; i < 100; i++) {
		b->r->subs[i - 32].subscribe = true;
		b->r->subs[i - 32].topic = bs(names[i], strlen(names[i]));
	}
	b->r->n_subs = 68;
	assert_int_equal(rb_send(s, 1, b), 0);
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.topics, 1 + 32);
	assert_int_equal(st.topics_capped, 68);
	/* our own topics do not compete with those */
	assert_int_equal(wisp_gs_router_subscribe(s->r, (const uint8_t *)"mine", 4, NULL, s->now), 0);
	/* unsubscribing everything frees the table */
	for (int i = 0; i < 100; i++) {
		b->r->subs[i].subscribe = false;
		b->r->subs[i].topic = bs(names[i], strlen(names[i]));
	}
	b->r->n_subs = 100;
	assert_int_equal(rb_send(s, 2, b), 0);
	for (int i = 0; i < 100; i++) {
		b->r->subs[i].subscribe = false;
		b->r->subs[i].topic = bs(names[i], strlen(names[i]));
	}
	b->r->n_subs = 100;
	assert_int_equal(rb_send(s, 3, b), 0);
	for (int i = 0; i < 100; i++) {
		b->r->subs[i].subscribe = false;
		b->r->subs[i].topic = bs(names[i], strlen(names[i]));
	}
	b->r->n_subs = 100;
	assert_int_equal(rb_send(s, 1, b), 0);
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.topics, 2); /* ours */
	rb_free(b);

	/* malformed RPCs: typed errors, counted, the router carries on */
	const uint8_t junk1[] = { 0x0a, 0x05, 0x08 };
	const uint8_t junk2[] = { 0x12, 0x02, 0x08, 0x00 };
	assert_int_equal(wisp_gs_router_handle_rpc(s->r, 2, NULL, junk1, sizeof(junk1), s->now), WISP_ERR_TRUNCATED);
	assert_int_equal(wisp_gs_router_handle_rpc(s->r, 2, NULL, junk2, sizeof(junk2), s->now), WISP_ERR_WIRE_TYPE);
	uint8_t *huge = calloc(1, (2u << 20));
	assert_int_equal(wisp_gs_router_handle_rpc(s->r, 2, NULL, huge, 2u << 20, s->now), WISP_ERR_TOO_LARGE);
	free(huge);
	assert_int_equal(wisp_gs_router_handle_rpc(s->r, 40, NULL, junk1, sizeof(junk1), s->now), WISP_ERR_INVALID_ARG);
	wisp_gs_router_stats_get(s->r, &st);
	assert_int_equal(st.rpc_bad, 3);
	make_msg(mb, 3, 2, TOPIC, TLEN, "after", 5, true);
	assert_int_equal(peer_msg(s, 2, mb), 0);
	assert_int_equal(s->delivered, 2);
	free(mb);
	solo_free(s);
}

static void test_pool_exhausted(void **state)
{
	(void)state;
	solo *s = solo_new(NULL, false);
	assert_int_equal(wisp_gs_router_subscribe(s->r, TOPIC, TLEN, NULL, s->now), 0);
	add_peers(s, 1, 2, true, WISP_GS_PROTO_V12);
	peer_sub(s, 1, TOPIC, TLEN, true);
	solo_clear(s);
	/* hold every large buffer of the pool */
	wisp_buf *held[128];
	int nh = 0;
	while (nh < 128 && (held[nh] = wisp_buf_alloc(s->pool, 1 << 20)))
		nh++;
	assert_true(nh > 0 && nh < 128);
	uint8_t *big = calloc(1, 900 << 10);
	wisp_gs_publish_result res;
	assert_int_equal(wisp_gs_router_publish(s->r, TOPIC, TLEN, big, 900 << 10, s->now, &res), WISP_ERR_NOMEM);
	assert_int_equal(res.status, WISP_GS_PUB_NO_MEMORY);
	free(big);
	for (int i = 0; i < nh; i++)
		wisp_buf_unref(held[i]);
	solo_free(s);
}

/* Every allocation of new, subscribe and add_peer fails in turn: errors are
 * clean (cmocka reports leaks), and once the router exists nothing in
 * subscribe or add_peer needs memory but frames, whose failure is counted. */
static void test_alloc_failures(void **state)
{
	(void)state;
	wisp_gs_config c;
	solo_config(&c);
	wisp_privkey key;
	key_for(&key, 1);
	solo ctx;
	memset(&ctx, 0, sizeof(ctx));
	wisp_gs_ops ops = { .send = s_send };
	unsigned long fail_at = 1;
	for (;; fail_at++) {
		wt_failmem fm;
		wt_failmem_init(&fm, fail_at);
		wisp_pool *pool;
		if (wisp_pool_new(&pool, &fm.mem, 8u << 20)) {
			continue;
		}
		wisp_gs_router *r;
		int rc = wisp_gs_router_new(&r, &fm.mem, &c, &ops, &ctx, &key, pool, T0);
		if (rc) {
			assert_int_equal(rc, WISP_ERR_NOMEM);
			assert_null(r);
			wisp_pool_free(pool);
			continue;
		}
		wisp_peer_id id;
		id_for(&id, 2);
		assert_int_equal(wisp_gs_router_subscribe(r, TOPIC, TLEN, NULL, T0), 0);
		assert_int_equal(wisp_gs_router_add_peer(r, 2, &id, true, false, WISP_GS_PROTO_V12, T0), 0);
		assert_int_equal(wisp_gs_router_subscribe(r, (const uint8_t *)"two", 3, NULL, T0), 0);
		wisp_gs_router_stats st;
		wisp_gs_router_stats_get(r, &st);
		bool frames_failed = st.send_nomem > 0;
		for (size_t i = 0; i < ctx.n_out; i++)
			wisp_buf_unref(ctx.out[i].f);
		ctx.n_out = 0;
		wisp_gs_router_free(r);
		wisp_pool_free(pool);
		if (!frames_failed && fm.calls < fm.fail_at)
			break; /* nothing failed: every allocation was tried */
	}
	assert_true(fail_at > 20);
	wisp_privkey_wipe(&key);
}

static void test_config_checks(void **state)
{
	(void)state;
	wisp_gs_config c;
	wisp_gs_ops ops = { .send = s_send };
	wisp_pool *pool;
	assert_int_equal(wisp_pool_new(&pool, wisp_mem_default(), 8u << 20), 0);
	wisp_gs_router *r;
	wisp_gs_config_default(&c);
	c.d_lo = 9;
	assert_int_equal(wisp_gs_router_new(&r, wisp_mem_default(), &c, &ops, NULL, NULL, pool, 0), WISP_ERR_INVALID_ARG);
	wisp_gs_config_default(&c);
	c.d_out = 6;
	assert_int_equal(wisp_gs_router_new(&r, wisp_mem_default(), &c, &ops, NULL, NULL, pool, 0), WISP_ERR_INVALID_ARG);
	wisp_gs_config_default(&c);
	c.mcache_gossip = 6;
	assert_int_equal(wisp_gs_router_new(&r, wisp_mem_default(), &c, &ops, NULL, NULL, pool, 0), WISP_ERR_INVALID_ARG);
	wisp_gs_config_default(&c);
	c.version = 99;
	assert_int_equal(wisp_gs_router_new(&r, wisp_mem_default(), &c, &ops, NULL, NULL, pool, 0), WISP_ERR_INVALID_ARG);
	wisp_gs_config_default(&c);
	c.lim.max_id = WISP_GS_ID_MAX + 1;
	assert_int_equal(wisp_gs_router_new(&r, wisp_mem_default(), &c, &ops, NULL, NULL, pool, 0), WISP_ERR_INVALID_ARG);
	wisp_gs_config_default(&c);
	c.default_profile.sign = WISP_GS_SIGN_NONE;
	assert_int_equal(wisp_gs_router_new(&r, wisp_mem_default(), &c, &ops, NULL, NULL, pool, 0), WISP_ERR_INVALID_ARG);
	wisp_gs_ops none = { 0 };
	wisp_gs_config_default(&c);
	assert_int_equal(wisp_gs_router_new(&r, wisp_mem_default(), &c, &none, NULL, NULL, pool, 0), WISP_ERR_INVALID_ARG);
	/* defaults, seed 0 (getrandom) */
	assert_int_equal(wisp_gs_router_new(&r, wisp_mem_default(), NULL, &ops, NULL, NULL, pool, 5 * S), 0);
	assert_true(wisp_gs_router_expiry(r) == 5 * S + 100 * MS);
	assert_int_equal(wisp_gs_router_handle_expiry(r, 5 * S), 0); /* early: nothing */
	assert_int_equal(wisp_gs_router_peer_id(r)->len, 0);
	wisp_gs_router_free(r);
	wisp_gs_router_free(NULL);
	wisp_pool_free(pool);
}

/* ======================================================================
 * sim: a network of routers
 * ====================================================================== */

#define MAXN 20
#define NMSG 64

typedef struct node {
	struct net *net;
	int idx;
	wisp_gs_router *r;
	wisp_privkey key;
	bool up[MAXN];        /* connected to node j (handle j) */
	int got[NMSG];        /* deliveries of message k */
	bool own[NMSG];       /* it published message k */
	int dup_got;          /* deliveries of unknown payloads */
	int invalid_ev;       /* INVALID score events it emitted */
} node;

typedef struct qe {
	int from, to;
	wisp_buf *f;
} qe;

typedef struct net {
	node n[MAXN];
	int nn;
	wisp_pool *pool;
	wisp_tstamp now;
	qe *q;
	size_t qh, qn, qcap;
	/* drop message frames to this node while set */
	int blackhole;
	uint64_t dropped;
	wisp_gs_rpc *dec;
} net;

static void n_send(void *ctx, uint32_t peer, wisp_buf *f, int prio, wisp_tstamp exp)
{
	node *nd = ctx;
	net *w = nd->net;
	(void)prio, (void)exp;
	assert_true(peer < (uint32_t)w->nn && nd->up[peer]);
	if (w->qh + w->qn == w->qcap) {
		memmove(w->q, w->q + w->qh, w->qn * sizeof(*w->q));
		w->qh = 0;
		if (w->qn == w->qcap) {
			w->qcap *= 2;
			w->q = realloc(w->q, w->qcap * sizeof(*w->q));
			assert_non_null(w->q);
		}
	}
	w->q[w->qh + w->qn++] = (qe){ nd->idx, (int)peer, wisp_buf_ref(f) };
}

static void n_deliver(void *ctx, uint32_t topic, wisp_buf *f, const wisp_gs_message *m,
		      const uint8_t *id, size_t id_len, uint32_t from)
{
	node *nd = ctx;
	(void)topic, (void)f, (void)id, (void)id_len, (void)from;
	unsigned k;
	if (m->data.len > 4 && !memcmp(m->data.data, "msg-", 4) && sscanf((const char *)m->data.data + 4, "%u", &k) == 1 &&
	    k < NMSG)
		nd->got[k]++;
	else
		nd->dup_got++;
}

static void n_event(void *ctx, const wisp_gs_score_event *ev)
{
	node *nd = ctx;
	if (ev->type == WISP_GS_EV_INVALID)
		nd->invalid_ev++;
}

static void net_init(net *w, int nn, wisp_gs_config *c)
{
	memset(w, 0, sizeof(*w));
	w->nn = nn;
	w->now = T0;
	w->blackhole = -1;
	w->qcap = 1024;
	w->q = malloc(w->qcap * sizeof(*w->q));
	assert_int_equal(wisp_pool_new(&w->pool, wisp_mem_default(), 256u << 20), 0);
	assert_int_equal(wisp_gs_rpc_new(&w->dec, wisp_mem_default(), NULL), 0);
	wisp_gs_ops ops = { .send = n_send, .deliver = n_deliver, .score_event = n_event };
	for (int i = 0; i < nn; i++) {
		node *nd = &w->n[i];
		nd->net = w;
		nd->idx = i;
		key_for(&nd->key, (unsigned)i);
		c->seed = wt_rng() | 1;
		assert_int_equal(wisp_gs_router_new(&nd->r, wisp_mem_default(), c, &ops, nd, &nd->key, w->pool, w->now), 0);
	}
}

static void net_free(net *w)
{
	for (int i = 0; i < w->nn; i++)
		assert_int_equal(wisp_gs_router_check(w->n[i].r), 0);
	for (size_t i = 0; i < w->qn; i++)
		wisp_buf_unref(w->q[w->qh + i].f);
	for (int i = 0; i < w->nn; i++) {
		wisp_gs_router_free(w->n[i].r);
		wisp_privkey_wipe(&w->n[i].key);
	}
	wisp_pool_stats ps;
	wisp_pool_stats_get(w->pool, &ps);
	assert_int_equal(ps.in_use, 0);
	wisp_pool_free(w->pool);
	wisp_gs_rpc_free(w->dec);
	free(w->q);
}

static void net_link(net *w, int a, int b)
{
	if (a == b || w->n[a].up[b])
		return;
	wisp_peer_id ia, ib;
	id_for(&ia, (unsigned)a);
	id_for(&ib, (unsigned)b);
	w->n[a].up[b] = w->n[b].up[a] = true;
	assert_int_equal(wisp_gs_router_add_peer(w->n[a].r, (uint32_t)b, &ib, true, false, WISP_GS_PROTO_V12, w->now), 0);
	assert_int_equal(wisp_gs_router_add_peer(w->n[b].r, (uint32_t)a, &ia, false, false, WISP_GS_PROTO_V12, w->now), 0);
}

static void net_unlink(net *w, int a, int b)
{
	if (!w->n[a].up[b])
		return;
	w->n[a].up[b] = w->n[b].up[a] = false;
	wisp_gs_router_remove_peer(w->n[a].r, (uint32_t)b, w->now);
	wisp_gs_router_remove_peer(w->n[b].r, (uint32_t)a, w->now);
}

static bool has_msgs(net *w, wisp_buf *f)
{
	const uint8_t *p;
	size_t n;
	assert_true(wisp_frame_peek(f->data, f->len, 4 << 20, &p, &n, NULL) > 0);
	assert_int_equal(wisp_gs_rpc_decode(w->dec, p, n), 0);
	return w->dec->n_msgs > 0;
}

/* Delivers every queued frame (and what they cause) in order. Frames to a
 * peer that went away are dropped, as a closed stream would. */
static void net_pump(net *w)
{
	while (w->qn) {
		qe e = w->q[w->qh++];
		w->qn--;
		if (w->n[e.to].up[e.from] && !(e.to == w->blackhole && has_msgs(w, e.f))) {
			const uint8_t *p;
			size_t n;
			assert_true(wisp_frame_peek(e.f->data, e.f->len, 4 << 20, &p, &n, NULL) > 0);
			assert_int_equal(wisp_gs_router_handle_rpc(w->n[e.to].r, (uint32_t)e.from, e.f, p, n, w->now), 0);
		} else if (e.to == w->blackhole) {
			w->dropped++;
		}
		wisp_buf_unref(e.f);
	}
	w->qh = 0;
}

static void net_tick(net *w)
{
	w->now += S;
	for (int i = 0; i < w->nn; i++)
		assert_int_equal(wisp_gs_router_handle_expiry(w->n[i].r, w->now), 0);
	net_pump(w);
}

static int net_degree(net *w, int i)
{
	int d = 0;
	for (int j = 0; j < w->nn; j++)
		d += w->n[i].up[j];
	return d;
}

/* Right after the heartbeats (before the GRAFTs and PRUNEs they sent are
 * delivered), every mesh is what maintenance leaves: at most D_hi, and at
 * least D_lo unless every other subscribed neighbour is in backoff with the
 * node (the spec forbids grafting those). Returns how many nodes sit below
 * D_lo for that reason. */
static int check_meshes_after_heartbeat(net *w, const wisp_gs_config *c)
{
	int short_of_peers = 0;
	for (int i = 0; i < w->nn; i++) {
		uint32_t m[MAXN];
		int n = wisp_gs_router_mesh_peers(w->n[i].r, TOPIC, TLEN, false, m, MAXN);
		if (n > (int)c->d_hi)
			fprintf(stderr, "node %d: mesh %d after heartbeat\n", i, n);
		assert_true(n <= (int)c->d_hi);
		if (n >= (int)c->d_lo)
			continue;
		short_of_peers++;
		for (int j = 0; j < w->nn; j++) {
			bool in = false;
			for (int k = 0; k < n; k++)
				in |= m[k] == (uint32_t)j;
			if (w->n[i].up[j] && !in)
				assert_true(wisp_gs_router_backoff(w->n[i].r, (uint32_t)j, TOPIC, TLEN, w->now));
		}
	}
	return short_of_peers;
}

/* Once the control traffic is delivered, meshes are symmetric: a in b's
 * mesh iff b in a's. */
static void check_meshes_symmetric(net *w)
{
	for (int i = 0; i < w->nn; i++) {
		uint32_t m[MAXN];
		int n = wisp_gs_router_mesh_peers(w->n[i].r, TOPIC, TLEN, false, m, MAXN);
		for (int k = 0; k < n && k < MAXN; k++) {
			uint32_t mm[MAXN];
			int nj = wisp_gs_router_mesh_peers(w->n[m[k]].r, TOPIC, TLEN, false, mm, MAXN);
			bool back = false;
			for (int x = 0; x < nj; x++)
				back |= mm[x] == (uint32_t)i;
			assert_true(back);
		}
	}
}

/* A heartbeat on every node, the mesh checks, then the traffic. */
static int net_tick_checked(net *w, const wisp_gs_config *c)
{
	w->now += S;
	for (int i = 0; i < w->nn; i++)
		assert_int_equal(wisp_gs_router_handle_expiry(w->n[i].r, w->now), 0);
	int low = check_meshes_after_heartbeat(w, c);
	net_pump(w);
	check_meshes_symmetric(w);
	for (int i = 0; i < w->nn; i++)
		assert_int_equal(wisp_gs_router_check(w->n[i].r), 0);
	return low;
}

static void publish_all(net *w, int first, int count, int avoid)
{
	for (int k = first; k < first + count; k++) {
		char data[16];
		int len = snprintf(data, sizeof(data), "msg-%d", k);
		int who;
		do
			who = (int)(wt_rng() % (uint64_t)w->nn);
		while (who == avoid);
		wisp_gs_publish_result res;
		assert_int_equal(wisp_gs_router_publish(w->n[who].r, TOPIC, TLEN, (const uint8_t *)data, (size_t)len,
							 w->now, &res),
				 0);
		assert_int_equal(res.status, WISP_GS_PUB_OK);
		w->n[who].own[k] = true; /* own messages are not delivered */
		net_pump(w);
	}
}

static void check_exactly_once(net *w, int first, int count)
{
	for (int i = 0; i < w->nn; i++) {
		for (int k = first; k < first + count; k++) {
			int want = w->n[i].own[k] ? 0 : 1;
			if (w->n[i].got[k] != want)
				fprintf(stderr, "node %d message %d: %d deliveries\n", i, k, w->n[i].got[k]);
			assert_int_equal(w->n[i].got[k], want);
		}
		assert_int_equal(w->n[i].dup_got, 0);
	}
}

static void sim_config(wisp_gs_config *c)
{
	wisp_gs_config_default(c);
	c->max_peers = MAXN;
	c->max_topics = 8;
	c->max_remote_topics = 8;
	c->max_peer_subs = 8;
	c->mcache_cap = 1024;
	c->seen_cap = 4096;
	c->max_pending = 64;
	c->max_promises = 1024;
	c->max_idontwant = 1024;
	c->max_backoffs = 512;
}

static void test_sim_delivery_and_churn(void **state)
{
	(void)state;
	wt_rng_seed("test_sim_delivery_and_churn");
	wisp_gs_config c;
	sim_config(&c);
	net *w = calloc(1, sizeof(*w));
	net_init(w, 20, &c);
	/* a ring (keeps the graph connected through churn) plus random links:
	 * every node dials 6 others */
	for (int i = 0; i < w->nn; i++) {
		net_link(w, i, (i + 1) % w->nn);
		for (int k = 0; k < 6; k++)
			net_link(w, i, (int)(wt_rng() % (uint64_t)w->nn));
	}
	for (int i = 0; i < w->nn; i++)
		assert_int_equal(wisp_gs_router_subscribe(w->n[i].r, TOPIC, TLEN, NULL, w->now), 0);
	net_pump(w);
	for (int t = 0; t < 5; t++)
		net_tick_checked(w, &c);
	int low = net_tick_checked(w, &c);
	printf("# sim: %d nodes below D_lo after the start\n", low);

	/* flood publish (default) */
	publish_all(w, 0, 20, -1);
	check_exactly_once(w, 0, 20);

	/* churn: drop a third of the non-ring links, add new ones, heartbeats */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < w->nn; i++)
			for (int j = i + 2; j < w->nn; j++)
				if (w->n[i].up[j] && !(i == 0 && j == w->nn - 1) && wt_rng() % 3 == 0)
					net_unlink(w, i, j);
		for (int i = 0; i < w->nn; i++)
			while (net_degree(w, i) < 8)
				net_link(w, i, (int)(wt_rng() % (uint64_t)w->nn));
		net_pump(w); /* the new peers' subscriptions */
		for (int t = 0; t < 3; t++)
			net_tick_checked(w, &c);
	}
	/* past the backoffs the churn caused, meshes refill */
	for (int t = 0; t < 65; t++)
		low = net_tick_checked(w, &c);
	printf("# sim: %d nodes below D_lo (all their other neighbours in backoff)\n", low);

	/* mesh publish: every node's own messages go to its mesh only */
	for (int i = 0; i < w->nn; i++) {
		wisp_gs_topic_profile p;
		wisp_gs_topic_profile_default(&p);
		p.flood_publish = false;
		assert_int_equal(wisp_gs_router_subscribe(w->n[i].r, TOPIC, TLEN, &p, w->now), 0);
	}
	publish_all(w, 20, 20, -1);
	check_exactly_once(w, 20, 20);
	for (int t = 0; t < 3; t++)
		net_tick_checked(w, &c);

	wisp_gs_router_stats st;
	uint64_t forwarded = 0, dup = 0;
	for (int i = 0; i < w->nn; i++) {
		wisp_gs_router_stats_get(w->n[i].r, &st);
		forwarded += st.msg_forwarded;
		dup += st.msg_duplicate;
		assert_int_equal(st.rpc_bad, 0);
	}
	printf("# sim: %d nodes, 40 messages, %llu forwards, %llu duplicates\n", w->nn,
	       (unsigned long long)forwarded, (unsigned long long)dup);
	net_free(w);
	free(w);
}

/* A node whose direct deliveries are all lost gets the message through
 * IHAVE/IWANT at the next heartbeats. Small meshes in a full graph so most
 * peers are gossip peers. */
static void test_sim_ihave_iwant_recovery(void **state)
{
	(void)state;
	wt_rng_seed("test_sim_ihave_iwant_recovery");
	wisp_gs_config c;
	sim_config(&c);
	c.d = 3, c.d_lo = 2, c.d_hi = 4, c.d_score = 1, c.d_out = 1, c.d_lazy = 4;
	net *w = calloc(1, sizeof(*w));
	net_init(w, 12, &c);
	for (int i = 0; i < w->nn; i++)
		for (int j = i + 1; j < w->nn; j++)
			net_link(w, i, j);
	/* js-libp2p's StrictSign message id: PublicKey protobuf || seqno */
	wisp_gs_topic_profile p;
	wisp_gs_topic_profile_default(&p);
	p.msgid = WISP_GS_MSGID_KEY_SEQNO;
	for (int i = 0; i < w->nn; i++)
		assert_int_equal(wisp_gs_router_subscribe(w->n[i].r, TOPIC, TLEN, &p, w->now), 0);
	net_pump(w);
	for (int t = 0; t < 3; t++)
		net_tick_checked(w, &c);

	int x = 5;
	w->blackhole = x;
	publish_all(w, 0, 3, x);
	assert_true(w->dropped > 0);
	for (int k = 0; k < 3; k++)
		assert_int_equal(w->n[x].got[k], 0);
	w->blackhole = -1;
	for (int t = 0; t < 3; t++)
		net_tick(w);
	check_exactly_once(w, 0, 3);
	wisp_gs_router_stats st;
	wisp_gs_router_stats_get(w->n[x].r, &st);
	assert_true(st.iwant_out_ids >= 3);
	assert_int_equal(st.promises_broken, 0);
	uint64_t served = 0;
	for (int i = 0; i < w->nn; i++) {
		wisp_gs_router_stats_get(w->n[i].r, &st);
		served += st.iwant_served;
	}
	assert_true(served >= 3);
	net_free(w);
	free(w);
}

/* A forged message (node 3's from and seqno, data changed after signing)
 * handed to node 0 as if a neighbour sent it: rejected and scored there,
 * delivered and forwarded nowhere. */
static void test_sim_forgery_reaches_no_one(void **state)
{
	(void)state;
	wt_rng_seed("test_sim_forgery_reaches_no_one");
	wisp_gs_config c;
	sim_config(&c);
	net *w = calloc(1, sizeof(*w));
	net_init(w, 10, &c);
	for (int i = 0; i < w->nn; i++) {
		net_link(w, i, (i + 1) % w->nn);
		for (int k = 0; k < 4; k++)
			net_link(w, i, (int)(wt_rng() % (uint64_t)w->nn));
	}
	for (int i = 0; i < w->nn; i++)
		assert_int_equal(wisp_gs_router_subscribe(w->n[i].r, TOPIC, TLEN, NULL, w->now), 0);
	net_pump(w);
	for (int t = 0; t < 3; t++)
		net_tick(w);
	uint64_t fw_before = 0;
	wisp_gs_router_stats st;
	for (int i = 0; i < w->nn; i++) {
		wisp_gs_router_stats_get(w->n[i].r, &st);
		fw_before += st.msg_forwarded;
	}

	msgb *mb = calloc(1, sizeof(*mb));
	make_msg(mb, 3, 77, TOPIC, TLEN, "msg-1", 5, true);
	mb->data[4] = '2'; /* "msg-2": the signature covers "msg-1" */
	ssize_t el = wisp_gs_message_encode(&mb->m, true, mb->enc, sizeof(mb->enc));
	assert_true(el > 0);
	rpcb *b = rb_new();
	b->r->msgs[0] = mb->m;
	b->r->msgs[0].raw = bs(mb->enc, (size_t)el);
	b->r->n_msgs = 1;
	ssize_t n = wisp_gs_rpc_encode(b->r, b->buf, sizeof(b->buf));
	assert_true(n > 0);
	int from = 1;
	assert_true(w->n[0].up[from]);
	assert_int_equal(wisp_gs_router_handle_rpc(w->n[0].r, (uint32_t)from, NULL, b->buf, (size_t)n, w->now), 0);
	net_pump(w);
	for (int t = 0; t < 3; t++)
		net_tick(w);
	uint64_t fw_after = 0;
	for (int i = 0; i < w->nn; i++) {
		assert_int_equal(w->n[i].got[1] + w->n[i].got[2] + w->n[i].dup_got, 0);
		wisp_gs_router_stats_get(w->n[i].r, &st);
		fw_after += st.msg_forwarded;
	}
	assert_true(fw_after == fw_before);
	assert_int_equal(w->n[0].invalid_ev, 1);
	wisp_gs_router_stats_get(w->n[0].r, &st);
	assert_int_equal(st.msg_bad_signature, 1);
	rb_free(b);
	free(mb);
	net_free(w);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subscriptions_announced),
		cmocka_unit_test(test_mesh_bounds_and_outbound_quota),
		cmocka_unit_test(test_prune_backoff),
		cmocka_unit_test(test_backoff_survives_reconnect),
		cmocka_unit_test(test_graft_edge_cases),
		cmocka_unit_test(test_px),
		cmocka_unit_test(test_px_records),
		cmocka_unit_test(test_message_flow_and_dedup),
		cmocka_unit_test(test_verdicts_and_retry),
		cmocka_unit_test(test_strict_sign),
		cmocka_unit_test(test_verify_callback_after_dedup),
		cmocka_unit_test(test_strict_no_sign),
		cmocka_unit_test(test_idontwant),
		cmocka_unit_test(test_publish_flood_fanout_explicit),
		cmocka_unit_test(test_gossip_and_promises),
		cmocka_unit_test(test_opportunistic_graft),
		cmocka_unit_test(test_graylist_and_caps),
		cmocka_unit_test(test_pool_exhausted),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_config_checks),
		cmocka_unit_test(test_sim_delivery_and_churn),
		cmocka_unit_test(test_sim_ihave_iwant_recovery),
		cmocka_unit_test(test_sim_forgery_reaches_no_one),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
