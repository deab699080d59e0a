#include "actors/gossip/router.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <wisp/error.h>

#include "codec/varint.h"
#include "runtime/mem.h"

#define NIL UINT32_MAX

/* ---- small helpers -------------------------------------------------------------- */

static wisp_tstamp sat_add(wisp_tstamp a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint32_t pow2_at_least(uint64_t n)
{
	uint32_t p = 16;
	while (p < n && p < (1u << 31))
		p <<= 1;
	return p;
}

/* A 128-bit keyed fingerprint (SipHash-2-4, 128-bit output). Message ids,
 * backoff keys and topic names come from peers: a keyed hash keeps them from
 * choosing collisions or probe chains. */
typedef struct fp128 {
	uint64_t a, b;
} fp128;

#define ROTL(x, n) (uint64_t)(((x) << (n)) | ((x) >> (64 - (n))))
#define SIPROUND                                                                                 \
	do {                                                                                     \
		v0 += v1;                                                                        \
		v1 = ROTL(v1, 13);                                                               \
		v1 ^= v0;                                                                        \
		v0 = ROTL(v0, 32);                                                               \
		v2 += v3;                                                                        \
		v3 = ROTL(v3, 16);                                                               \
		v3 ^= v2;                                                                        \
		v0 += v3;                                                                        \
		v3 = ROTL(v3, 21);                                                               \
		v3 ^= v0;                                                                        \
		v2 += v1;                                                                        \
		v1 = ROTL(v1, 17);                                                               \
		v1 ^= v2;                                                                        \
		v2 = ROTL(v2, 32);                                                               \
	} while (0)

static uint64_t load64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static fp128 siphash128(const uint64_t k[2], const uint8_t *in, size_t n)
{
	uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ k[0];
	uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ k[1];
	uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ k[0];
	uint64_t v3 = UINT64_C(0x7465646279746573) ^ k[1];
	uint64_t b = (uint64_t)n << 56;
	size_t i = 0;

	v1 ^= 0xee;
	for (; i + 8 <= n; i += 8) {
		uint64_t m = load64le(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t s = 0; i < n; i++, s += 8)
		b |= (uint64_t)in[i] << s;
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xee;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	fp128 out;
	out.a = v0 ^ v1 ^ v2 ^ v3;
	v1 ^= 0xdd;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	out.b = v0 ^ v1 ^ v2 ^ v3;
	return out;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

/* ---- fingerprint map: fp128 -> index -------------------------------------------- */

/* Open addressing with linear probing and backward-shift deletion. Slots hold
 * a tag and the index; the full key lives in keys[index] (one per entry of
 * the structure the map indexes). The table has at least twice as many slots
 * as entries, so probes stay short and a free slot always exists. */
struct fpslot {
	uint32_t tag, val;
};

struct fpmap {
	struct fpslot *s;
	fp128 *keys;
	uint32_t mask;
};

static int fpmap_init(const wisp_mem *mem, struct fpmap *f, uint32_t cap)
{
	uint32_t size = pow2_at_least((uint64_t)cap * 2);
	f->s = wisp_malloc(mem, (size_t)size * sizeof(*f->s));
	f->keys = wisp_calloc(mem, cap, sizeof(*f->keys));
	if (!f->s || !f->keys)
		return WISP_ERR_NOMEM;
	for (uint32_t i = 0; i < size; i++)
		f->s[i].val = NIL;
	f->mask = size - 1;
	return 0;
}

static void fpmap_fini(const wisp_mem *mem, struct fpmap *f)
{
	wisp_free(mem, f->s);
	wisp_free(mem, f->keys);
}

static uint32_t fpmap_slot(const struct fpmap *f, fp128 k)
{
	uint32_t tag = (uint32_t)(k.a >> 32);
	for (uint32_t i = (uint32_t)k.a & f->mask;; i = (i + 1) & f->mask) {
		const struct fpslot *s = &f->s[i];
		if (s->val == NIL)
			return NIL;
		if (s->tag == tag && f->keys[s->val].a == k.a && f->keys[s->val].b == k.b)
			return i;
	}
}

static uint32_t fpmap_find(const struct fpmap *f, fp128 k)
{
	uint32_t i = fpmap_slot(f, k);
	return i == NIL ? NIL : f->s[i].val;
}

/* k must not be in the map. */
static void fpmap_put(struct fpmap *f, fp128 k, uint32_t val)
{
	f->keys[val] = k;
	uint32_t i = (uint32_t)k.a & f->mask;
	while (f->s[i].val != NIL)
		i = (i + 1) & f->mask;
	f->s[i].tag = (uint32_t)(k.a >> 32);
	f->s[i].val = val;
}

static void fpmap_del(struct fpmap *f, fp128 k)
{
	uint32_t i = fpmap_slot(f, k);
	if (i == NIL)
		return;
	for (;;) {
		f->s[i].val = NIL;
		uint32_t j = i;
		for (;;) {
			j = (j + 1) & f->mask;
			if (f->s[j].val == NIL)
				return;
			uint32_t h = (uint32_t)f->keys[f->s[j].val].a & f->mask;
			/* s[j] may move back to i unless its home lies
			 * cyclically in (i, j] */
			bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
			if (!stays)
				break;
		}
		f->s[i] = f->s[j];
		i = j;
	}
}

/* ---- router state --------------------------------------------------------------- */

enum {
	F_MESH = 1,        /* in our mesh of the topic */
	F_FANOUT = 2,      /* in our fanout of the topic */
	F_GRAFT = 4,       /* GRAFT to send (this call) */
	F_PRUNE = 8,       /* PRUNE to send */
	F_PRUNE_PX = 16,   /* ... with PX */
	F_PRUNE_UNSUB = 32,/* ... with the unsubscribe backoff */
	F_IHAVE = 64,      /* IHAVE to send (heartbeat) */
};
#define F_SEND (F_GRAFT | F_PRUNE | F_PRUNE_PX | F_PRUNE_UNSUB | F_IHAVE)

/* One peer's subscription to one topic. A peer's records are the block
 * recs[peer * max_peer_subs ..][0..n_recs); each is also on its topic's
 * doubly linked list. */
struct rec {
	uint32_t peer, topic;
	uint32_t tprev, tnext;
	uint8_t flags;
};

struct peer {
	bool used, outbound, expl;
	uint8_t proto;
	uint32_t gen; /* bumped at removal: stale references fail the check */
	wisp_peer_id id;
	uint32_t n_recs;
	/* budgets, reset every heartbeat */
	uint32_t ihave_in, iasked, iwant_served, idw_in, ihave_out;
	uint32_t idw_live; /* IDONTWANT entries held for it */
	double hb_score;   /* score at the last heartbeat */
};

struct topic {
	bool used, subscribed, fanout, local;
	uint32_t len;
	uint64_t hash;
	uint32_t head; /* first rec, or NIL */
	uint32_t n_subs, n_mesh, n_fanout;
	uint32_t n_backoff, n_pending, n_mcache; /* references that keep it */
	wisp_tstamp fanout_pub;
	wisp_gs_topic_profile prof;
	uint32_t g_first, g_n; /* heartbeat: its ids in gossip[] */
};

enum { SEEN_OWN = 1, SEEN_ACCEPTED, SEEN_REJECTED, SEEN_IGNORED };

struct seen_e {
	wisp_tstamp exp;
	uint8_t status;
};

struct mc_e {
	wisp_buf *frame;
	uint64_t seq;
	wisp_tstamp first;
	uint32_t topic;
	uint16_t id_len;
};

enum { P_FREE, P_VERIFY, P_VALIDATE, P_QUEUED };
enum { C_VERIFIED, C_VALIDATED };
#define DUP_MAX 8

struct pend {
	uint8_t state, kind, verdict;
	bool ok;
	uint8_t n_dup;
	uint16_t id_len;
	uint32_t gen, topic, from, from_gen;
	wisp_tstamp first;
	wisp_buf *frame;
	wisp_gs_message m;
	uint32_t dup[DUP_MAX], dup_gen[DUP_MAX];
};

struct prom {
	wisp_tstamp deadline;
	uint32_t peer, gen;
	bool scored, live;
};

struct idw {
	wisp_tstamp exp;
	uint32_t peer, gen;
};

struct boff {
	bool used;
	uint32_t topic;
	wisp_tstamp exp, set_at;
};

/* A FIFO ring of entries indexed by a fingerprint map (seen ids, mcache,
 * promises, IDONTWANTs: each expires in insertion order). */
struct fifo {
	uint32_t cap, head, n;
	struct fpmap map;
};

static uint32_t fifo_at(const struct fifo *q, uint32_t i)
{
	uint32_t s = q->head + i;
	return s >= q->cap ? s - q->cap : s;
}

/* The output builder: control RPCs for one peer, split when a limit of
 * cfg.lim (which peers enforce) would be passed. */
struct outb {
	uint32_t peer;
	size_t bytes;
};

struct wisp_gs_router {
	const wisp_mem *mem;
	wisp_gs_config cfg;
	wisp_gs_ops ops;
	void *ctx;
	wisp_pool *pool;
	bool has_key;
	wisp_privkey key;
	wisp_peer_id self;
	uint64_t rng;
	uint64_t sipk[2];
	uint64_t seqno;
	int depth;
	wisp_tstamp next_hb;
	uint64_t tick;

	struct peer *peers;
	struct rec *recs;

	struct topic *topics;
	uint8_t *names;
	uint32_t cap_topics, n_topics, n_local, n_remote;
	uint32_t *tslots, tmask;
	uint32_t *tfree, n_tfree;

	struct fifo seen;
	struct seen_e *seen_e;

	struct fifo mc;
	struct mc_e *mc_e;
	uint8_t *mc_ids;
	uint64_t mc_seq;
	uint64_t *mc_hist;

	struct pend *pend;
	uint8_t *pend_ids;
	struct fpmap pmap;
	uint32_t *pfree, n_pfree;
	uint32_t *cq, cq_head, cq_n;

	struct fifo prom;
	struct prom *prom_e;

	struct fifo idw;
	struct idw *idw_e;

	struct boff *boff;
	struct fpmap bmap;
	uint32_t *bfree, n_bfree;

	wisp_gs_rpc *in, *out;
	struct outb ob;

	uint32_t *scr;     /* max_peers: record or peer indices */
	uint32_t *gossip;  /* mcache_cap: mcache slots grouped by topic */
	uint32_t *iwscr;   /* lim.max_ids */
	uint32_t *gscr;    /* lim.max_graft */

	wisp_gs_router_stats st;
};

/* ---- randomness ----------------------------------------------------------------- */

static uint64_t rnd(wisp_gs_router *r)
{
	uint64_t x = r->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->rng = x;
	return x * UINT64_C(0x2545F4914F6CDD1D);
}

static uint32_t rnd_below(wisp_gs_router *r, uint32_t n)
{
	return (uint32_t)(((rnd(r) >> 32) * (uint64_t)n) >> 32);
}

static void shuffle(wisp_gs_router *r, uint32_t *a, uint32_t n)
{
	for (uint32_t i = n; i > 1; i--) {
		uint32_t j = rnd_below(r, i);
		uint32_t t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}

/* ---- defaults and checks -------------------------------------------------------- */

void wisp_gs_topic_profile_default(wisp_gs_topic_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->version = WISP_GS_PROFILE_VERSION;
	p->sign = WISP_GS_SIGN_STRICT;
	p->msgid = WISP_GS_MSGID_DEFAULT;
	p->idontwant_threshold = 1000;
	p->flood_publish = true;
}

void wisp_gs_config_default(wisp_gs_config *c)
{
	memset(c, 0, sizeof(*c));
	c->version = WISP_GS_CONFIG_VERSION;
	c->d = 8;
	c->d_lo = 6;
	c->d_hi = 12;
	c->d_score = 4;
	c->d_out = 2;
	c->d_lazy = 6;
	c->heartbeat_ns = WISP_NS_PER_S;
	c->heartbeat_delay_ns = 100 * WISP_NS_PER_MS;
	c->fanout_ttl_ns = 60 * WISP_NS_PER_S;
	c->mcache_len = 5;
	c->mcache_gossip = 3;
	c->seen_ttl_ns = 120 * WISP_NS_PER_S;
	c->prune_backoff_ns = 60 * WISP_NS_PER_S;
	c->unsubscribe_backoff_ns = 10 * WISP_NS_PER_S;
	c->backoff_min_ns = WISP_NS_PER_S;
	c->backoff_max_ns = 3600 * WISP_NS_PER_S;
	c->backoff_slack_ns = 2 * WISP_NS_PER_S;
	c->graft_flood_ns = 10 * WISP_NS_PER_S;
	c->opportunistic_graft_ticks = 60;
	c->opportunistic_graft_peers = 2;
	c->gossip_factor = 0.25;
	c->max_ihave_length = 5000;
	c->max_ihave_messages = 10;
	c->max_iwant_serve = 1000;
	c->iwant_followup_ns = 3 * WISP_NS_PER_S;
	c->do_px = true;
	c->px_peers = 16;
	c->max_idontwant_ids = 1000;
	c->idontwant_ttl_ns = 3 * WISP_NS_PER_S;
	c->validate_timeout_ns = 30 * WISP_NS_PER_S;
	c->forward_ttl_ns = 3 * WISP_NS_PER_S;
	c->gossip_threshold = -4000;
	c->publish_threshold = -8000;
	c->graylist_threshold = -16000;
	c->accept_px_threshold = 100;
	c->opportunistic_graft_threshold = 5;
	c->max_peers = 256;
	c->max_topics = 256;
	c->max_remote_topics = 512;
	c->max_peer_subs = 128;
	c->mcache_cap = 8192;
	c->seen_cap = 65536;
	c->max_pending = 1024;
	c->max_promises = 8192;
	c->max_idontwant = 16384;
	c->max_idontwant_peer = 2048;
	c->max_backoffs = 4096;
	wisp_gs_limits_default(&c->lim);
	wisp_gs_topic_profile_default(&c->default_profile);
}

static int profile_check(const wisp_gs_topic_profile *p)
{
	if (p->version != WISP_GS_PROFILE_VERSION)
		return WISP_ERR_INVALID_ARG;
	if (p->sign != WISP_GS_SIGN_STRICT && p->sign != WISP_GS_SIGN_NONE)
		return WISP_ERR_INVALID_ARG;
	switch (p->msgid) {
	case WISP_GS_MSGID_DEFAULT:
	case WISP_GS_MSGID_KEY_SEQNO:
		/* StrictNoSign messages have neither from nor seqno */
		if (p->sign == WISP_GS_SIGN_NONE)
			return WISP_ERR_INVALID_ARG;
		break;
	case WISP_GS_MSGID_CONTENT:
		break;
	case WISP_GS_MSGID_CUSTOM:
		if (!p->msgid_fn)
			return WISP_ERR_INVALID_ARG;
		break;
	default:
		return WISP_ERR_INVALID_ARG;
	}
	return 0;
}

static int config_check(const wisp_gs_config *c)
{
	if (c->version != WISP_GS_CONFIG_VERSION)
		return WISP_ERR_INVALID_ARG;
	if (c->d_lo < 1 || c->d_lo > c->d || c->d > c->d_hi || c->d_score > c->d ||
	    c->d_out >= c->d_lo || c->d_out > c->d / 2 || c->d_hi > 1024)
		return WISP_ERR_INVALID_ARG;
	if (!c->heartbeat_ns || !c->mcache_len || c->mcache_gossip > c->mcache_len ||
	    c->mcache_len > 1024)
		return WISP_ERR_INVALID_ARG;
	if (!(c->gossip_factor >= 0 && c->gossip_factor <= 1))
		return WISP_ERR_INVALID_ARG;
	if (c->backoff_min_ns > c->backoff_max_ns)
		return WISP_ERR_INVALID_ARG;
	if (!c->max_peers || c->max_peers > (1u << 20) || !c->max_peer_subs ||
	    (uint64_t)c->max_peers * c->max_peer_subs > (1u << 26) || !c->max_topics ||
	    (uint64_t)c->max_topics + c->max_remote_topics > (1u << 20))
		return WISP_ERR_INVALID_ARG;
	const uint32_t caps[] = { c->mcache_cap,   c->seen_cap,      c->max_pending,
				  c->max_promises, c->max_idontwant, c->max_backoffs };
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (!caps[i] || caps[i] > (1u << 26))
			return WISP_ERR_INVALID_ARG;
	if (wisp_gs_limits_check(&c->lim) || c->lim.max_id > WISP_GS_ID_MAX ||
	    c->lim.max_topic > 65535 || c->px_peers > c->lim.max_px)
		return WISP_ERR_INVALID_ARG;
	return profile_check(&c->default_profile);
}

/* ---- message ids ---------------------------------------------------------------- */

size_t wisp_gs_message_id(const wisp_gs_topic_profile *p, const wisp_gs_message *m, uint8_t *out,
			  size_t cap)
{
	const uint8_t *k = NULL;
	size_t kn = 0;

	switch (p->msgid) {
	case WISP_GS_MSGID_DEFAULT:
		if (m->from.len + (size_t)m->seqno.len == 0 || m->from.len + (size_t)m->seqno.len > cap)
			return 0;
		if (m->from.len)
			memcpy(out, m->from.data, m->from.len);
		if (m->seqno.len)
			memcpy(out + m->from.len, m->seqno.data, m->seqno.len);
		return m->from.len + (size_t)m->seqno.len;
	case WISP_GS_MSGID_KEY_SEQNO:
		/* js-libp2p: the author's PublicKey protobuf, from the identity
		 * multihash in `from` when it embeds one, else `key` */
		if (m->from.len >= 2 && m->from.data[0] == 0x00 && m->from.data[1] < 0x80 &&
		    (size_t)m->from.data[1] + 2 == m->from.len) {
			k = m->from.data + 2;
			kn = m->from.data[1];
		} else if (m->has_key && m->key.len) {
			k = m->key.data;
			kn = m->key.len;
		}
		if (!kn || !m->seqno.len || kn + m->seqno.len > cap)
			return 0;
		memcpy(out, k, kn);
		memcpy(out + kn, m->seqno.data, m->seqno.len);
		return kn + m->seqno.len;
	case WISP_GS_MSGID_CONTENT: {
		static const uint8_t empty[1];
		if (cap < SHA256_DIGEST_LENGTH)
			return 0;
		SHA256(m->data.len ? m->data.data : empty, m->data.len, out);
		return SHA256_DIGEST_LENGTH;
	}
	case WISP_GS_MSGID_CUSTOM: {
		size_t n = p->msgid_fn ? p->msgid_fn(p->msgid_ctx, m, out, cap) : 0;
		return n <= cap ? n : 0;
	}
	}
	return 0;
}

static fp128 fp_id(const wisp_gs_router *r, const uint8_t *id, size_t n)
{
	static const uint8_t empty[1];
	return siphash128(r->sipk, n ? id : empty, n);
}

/* ---- topics --------------------------------------------------------------------- */

static uint64_t topic_hash(const wisp_gs_router *r, const uint8_t *name, size_t len)
{
	static const uint8_t empty[1];
	return siphash128(r->sipk, len ? name : empty, len).b;
}

static uint8_t *tname(const wisp_gs_router *r, uint32_t t)
{
	return r->names + (size_t)t * r->cfg.lim.max_topic;
}

static int64_t topic_find(const wisp_gs_router *r, const uint8_t *name, size_t len)
{
	if (len > r->cfg.lim.max_topic)
		return WISP_ERR_NOTFOUND;
	uint64_t h = topic_hash(r, name, len);
	for (uint32_t i = (uint32_t)h & r->tmask;; i = (i + 1) & r->tmask) {
		uint32_t t = r->tslots[i];
		if (t == NIL)
			return WISP_ERR_NOTFOUND;
		const struct topic *tp = &r->topics[t];
		if (tp->hash == h && tp->len == len && (!len || !memcmp(tname(r, t), name, len)))
			return t;
	}
}

/* Counts a topic as ours (subscribed or fanout) or only the peers'. */
static void topic_update_local(wisp_gs_router *r, struct topic *t)
{
	bool local = t->subscribed || t->fanout;
	if (local == t->local)
		return;
	t->local = local;
	if (local) {
		r->n_local++;
		r->n_remote--;
	} else {
		r->n_local--;
		r->n_remote++;
	}
}

static int64_t topic_create(wisp_gs_router *r, const uint8_t *name, size_t len, bool local)
{
	if (!r->n_tfree || (local && r->n_local >= r->cfg.max_topics) ||
	    (!local && r->n_remote >= r->cfg.max_remote_topics))
		return WISP_ERR_LIMIT;
	uint32_t t = r->tfree[--r->n_tfree];
	struct topic *tp = &r->topics[t];
	memset(tp, 0, sizeof(*tp));
	tp->used = true;
	tp->len = (uint32_t)len;
	tp->hash = topic_hash(r, name, len);
	tp->head = NIL;
	tp->prof = r->cfg.default_profile;
	if (len)
		memcpy(tname(r, t), name, len);
	uint32_t i = (uint32_t)tp->hash & r->tmask;
	while (r->tslots[i] != NIL)
		i = (i + 1) & r->tmask;
	r->tslots[i] = t;
	r->n_topics++;
	r->n_remote++; /* until marked local */
	return t;
}

/* Forgets t once nothing refers to it. */
static void topic_release(wisp_gs_router *r, uint32_t t)
{
	struct topic *tp = &r->topics[t];
	if (!tp->used || tp->subscribed || tp->fanout || tp->n_subs || tp->n_backoff ||
	    tp->n_pending || tp->n_mcache)
		return;
	uint32_t i = (uint32_t)tp->hash & r->tmask;
	while (r->tslots[i] != t)
		i = (i + 1) & r->tmask;
	for (;;) {
		r->tslots[i] = NIL;
		uint32_t j = i;
		for (;;) {
			j = (j + 1) & r->tmask;
			if (r->tslots[j] == NIL)
				goto done;
			uint32_t h = (uint32_t)r->topics[r->tslots[j]].hash & r->tmask;
			bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
			if (!stays)
				break;
		}
		r->tslots[i] = r->tslots[j];
		i = j;
	}
done:
	tp->used = false;
	r->n_topics--;
	r->n_remote--;
	r->tfree[r->n_tfree++] = t;
}

/* ---- scores and events ---------------------------------------------------------- */

static double score(const wisp_gs_router *r, uint32_t peer)
{
	return r->ops.score ? r->ops.score(r->ctx, peer) : 0.0;
}

static void event(wisp_gs_router *r, wisp_gs_event_type type, uint32_t peer, uint32_t t,
		  uint32_t aux, wisp_tstamp now)
{
	if (!r->ops.score_event)
		return;
	wisp_gs_score_event ev = { .type = type, .peer = peer, .topic = t, .aux = aux, .now = now };
	if (t != WISP_GS_NO_TOPIC) {
		ev.topic_name = tname(r, t);
		ev.topic_len = r->topics[t].len;
	}
	r->ops.score_event(r->ctx, &ev);
}

/* ---- subscription records ------------------------------------------------------- */

static struct rec *peer_recs(const wisp_gs_router *r, uint32_t peer)
{
	return &r->recs[(size_t)peer * r->cfg.max_peer_subs];
}

static uint32_t rec_find(const wisp_gs_router *r, uint32_t peer, uint32_t t)
{
	const struct rec *b = peer_recs(r, peer);
	for (uint32_t k = 0; k < r->peers[peer].n_recs; k++)
		if (b[k].topic == t)
			return peer * r->cfg.max_peer_subs + k;
	return NIL;
}

static uint32_t rec_add(wisp_gs_router *r, uint32_t peer, uint32_t t)
{
	struct peer *p = &r->peers[peer];
	if (p->n_recs >= r->cfg.max_peer_subs)
		return NIL;
	uint32_t ri = peer * r->cfg.max_peer_subs + p->n_recs++;
	struct rec *e = &r->recs[ri];
	struct topic *tp = &r->topics[t];
	e->peer = peer;
	e->topic = t;
	e->flags = 0;
	e->tprev = NIL;
	e->tnext = tp->head;
	if (tp->head != NIL)
		r->recs[tp->head].tprev = ri;
	tp->head = ri;
	tp->n_subs++;
	return ri;
}

static void mesh_add(wisp_gs_router *r, uint32_t ri, wisp_tstamp now)
{
	struct rec *e = &r->recs[ri];
	e->flags |= F_MESH;
	r->topics[e->topic].n_mesh++;
	r->st.mesh++;
	event(r, WISP_GS_EV_GRAFT, e->peer, e->topic, 0, now);
}

static void mesh_del(wisp_gs_router *r, uint32_t ri, wisp_gs_prune_reason why, wisp_tstamp now)
{
	struct rec *e = &r->recs[ri];
	e->flags &= (uint8_t)~F_MESH;
	r->topics[e->topic].n_mesh--;
	r->st.mesh--;
	event(r, WISP_GS_EV_PRUNE, e->peer, e->topic, why, now);
}

static void fanout_del(wisp_gs_router *r, uint32_t ri)
{
	r->recs[ri].flags &= (uint8_t)~F_FANOUT;
	r->topics[r->recs[ri].topic].n_fanout--;
	r->st.fanout--;
}

/* Removes record ri; the peer's last record moves into its place. The topic
 * may be released. */
static void rec_del(wisp_gs_router *r, uint32_t ri, wisp_gs_prune_reason why, wisp_tstamp now)
{
	struct rec *e = &r->recs[ri];
	uint32_t t = e->topic, peer = e->peer;
	struct topic *tp = &r->topics[t];
	if (e->flags & F_MESH)
		mesh_del(r, ri, why, now);
	if (e->flags & F_FANOUT)
		fanout_del(r, ri);
	if (e->tprev != NIL)
		r->recs[e->tprev].tnext = e->tnext;
	else
		tp->head = e->tnext;
	if (e->tnext != NIL)
		r->recs[e->tnext].tprev = e->tprev;
	tp->n_subs--;

	struct peer *p = &r->peers[peer];
	uint32_t last = peer * r->cfg.max_peer_subs + --p->n_recs;
	if (last != ri) {
		struct rec *m = &r->recs[last];
		*e = *m;
		if (e->tprev != NIL)
			r->recs[e->tprev].tnext = ri;
		else
			r->topics[e->topic].head = ri;
		if (e->tnext != NIL)
			r->recs[e->tnext].tprev = ri;
	}
	topic_release(r, t);
}

/* ---- backoff -------------------------------------------------------------------- */

/* Keyed by (peer id, topic), not by handle: a peer that reconnects under a
 * new handle is still in backoff, and so are we with it. */
static fp128 boff_key(const wisp_gs_router *r, uint32_t peer, uint32_t t)
{
	uint8_t b[WISP_PEER_ID_MAX + 4];
	const wisp_peer_id *id = &r->peers[peer].id;
	memcpy(b, id->bytes, id->len);
	memcpy(b + id->len, &t, 4);
	return siphash128(r->sipk, b, (size_t)id->len + 4);
}

static struct boff *boff_get(const wisp_gs_router *r, uint32_t peer, uint32_t t)
{
	uint32_t i = fpmap_find(&r->bmap, boff_key(r, peer, t));
	return i == NIL ? NULL : &r->boff[i];
}

/* Backoff with peer on t until now + dur (an existing later expiry stays). */
static void boff_add(wisp_gs_router *r, uint32_t peer, uint32_t t, uint64_t dur, wisp_tstamp now)
{
	fp128 k = boff_key(r, peer, t);
	wisp_tstamp exp = sat_add(now, dur);
	uint32_t i = fpmap_find(&r->bmap, k);
	if (i != NIL) {
		if (r->boff[i].exp < exp)
			r->boff[i].exp = exp;
		r->boff[i].set_at = now;
		return;
	}
	if (!r->n_bfree) {
		r->st.backoff_dropped++;
		return;
	}
	i = r->bfree[--r->n_bfree];
	r->boff[i] = (struct boff){ .used = true, .topic = t, .exp = exp, .set_at = now };
	r->topics[t].n_backoff++;
	fpmap_put(&r->bmap, k, i);
}

/* We may graft peer on t: no backoff, or past it by the slack (the peer
 * clears its backoff at its own heartbeat). */
static bool boff_blocks_graft(const wisp_gs_router *r, uint32_t peer, uint32_t t, wisp_tstamp now)
{
	const struct boff *b = boff_get(r, peer, t);
	return b && now < sat_add(b->exp, r->cfg.backoff_slack_ns);
}

static void boff_sweep(wisp_gs_router *r, wisp_tstamp now)
{
	for (uint32_t i = 0; i < r->cfg.max_backoffs; i++) {
		struct boff *b = &r->boff[i];
		if (!b->used || now < sat_add(b->exp, r->cfg.backoff_slack_ns))
			continue;
		fpmap_del(&r->bmap, r->bmap.keys[i]);
		b->used = false;
		r->bfree[r->n_bfree++] = i;
		r->topics[b->topic].n_backoff--;
		topic_release(r, b->topic);
	}
}

/* ---- seen cache ----------------------------------------------------------------- */

static void seen_pop(wisp_gs_router *r)
{
	uint32_t s = r->seen.head;
	fpmap_del(&r->seen.map, r->seen.map.keys[s]);
	r->seen.head = fifo_at(&r->seen, 1);
	r->seen.n--;
}

static void seen_add(wisp_gs_router *r, fp128 k, uint8_t status, wisp_tstamp now)
{
	uint32_t i = fpmap_find(&r->seen.map, k);
	if (i != NIL) {
		r->seen_e[i].status = status;
		return;
	}
	if (r->seen.n == r->seen.cap) {
		if (r->seen_e[r->seen.head].exp > now)
			r->st.seen_evicted++;
		seen_pop(r);
	}
	uint32_t s = fifo_at(&r->seen, r->seen.n++);
	r->seen_e[s].exp = sat_add(now, r->cfg.seen_ttl_ns);
	r->seen_e[s].status = status;
	fpmap_put(&r->seen.map, k, s);
}

static void seen_sweep(wisp_gs_router *r, wisp_tstamp now)
{
	while (r->seen.n && r->seen_e[r->seen.head].exp <= now)
		seen_pop(r);
}

/* ---- message cache -------------------------------------------------------------- */

static void mc_pop(wisp_gs_router *r)
{
	uint32_t s = r->mc.head;
	struct mc_e *e = &r->mc_e[s];
	fpmap_del(&r->mc.map, r->mc.map.keys[s]);
	wisp_buf_unref(e->frame);
	e->frame = NULL;
	r->mc.head = fifo_at(&r->mc, 1);
	r->mc.n--;
	r->topics[e->topic].n_mcache--;
	topic_release(r, e->topic);
}

/* Caches frame (takes its own reference) under id. */
static void mc_put(wisp_gs_router *r, fp128 k, const uint8_t *id, size_t id_len, uint32_t t,
		   wisp_buf *frame, wisp_tstamp first)
{
	if (fpmap_find(&r->mc.map, k) != NIL)
		return;
	if (r->mc.n == r->mc.cap) {
		r->st.mcache_evicted++;
		mc_pop(r);
	}
	uint32_t s = fifo_at(&r->mc, r->mc.n++);
	struct mc_e *e = &r->mc_e[s];
	e->frame = wisp_buf_ref(frame);
	e->seq = r->mc_seq++;
	e->first = first;
	e->topic = t;
	e->id_len = (uint16_t)id_len;
	memcpy(r->mc_ids + (size_t)s * r->cfg.lim.max_id, id, id_len);
	r->topics[t].n_mcache++;
	fpmap_put(&r->mc.map, k, s);
}

/* A new heartbeat window; messages older than mcache_len windows go. */
static void mc_shift(wisp_gs_router *r)
{
	uint32_t n = r->cfg.mcache_len;
	memmove(r->mc_hist + 1, r->mc_hist, (size_t)(n - 1) * sizeof(*r->mc_hist));
	r->mc_hist[0] = r->mc_seq;
	uint64_t keep = r->mc_hist[n - 1];
	while (r->mc.n && r->mc_e[r->mc.head].seq < keep)
		mc_pop(r);
}

/* ---- promises (IWANT follow-up) ------------------------------------------------- */

static void prom_pop(wisp_gs_router *r, wisp_tstamp now, bool score_it)
{
	uint32_t s = r->prom.head;
	struct prom *e = &r->prom_e[s];
	if (e->live) {
		fpmap_del(&r->prom.map, r->prom.map.keys[s]);
		if (score_it && e->scored && r->peers[e->peer].used && r->peers[e->peer].gen == e->gen) {
			r->st.promises_broken++;
			event(r, WISP_GS_EV_BROKEN_PROMISE, e->peer, WISP_GS_NO_TOPIC, 1, now);
		}
	}
	r->prom.head = fifo_at(&r->prom, 1);
	r->prom.n--;
}

static bool prom_add(wisp_gs_router *r, fp128 k, uint32_t peer, bool scored, wisp_tstamp now)
{
	if (r->prom.n == r->prom.cap) {
		if (r->prom_e[r->prom.head].deadline > now) {
			r->st.promises_dropped++;
			return false;
		}
		prom_pop(r, now, true);
	}
	uint32_t s = fifo_at(&r->prom, r->prom.n++);
	r->prom_e[s] = (struct prom){ .deadline = sat_add(now, r->cfg.iwant_followup_ns),
				      .peer = peer,
				      .gen = r->peers[peer].gen,
				      .scored = scored,
				      .live = true };
	fpmap_put(&r->prom.map, k, s);
	return true;
}

/* Any copy of the message arriving keeps the promise. */
static void prom_fulfil(wisp_gs_router *r, fp128 k)
{
	uint32_t s = fpmap_find(&r->prom.map, k);
	if (s == NIL)
		return;
	fpmap_del(&r->prom.map, k);
	r->prom_e[s].live = false;
}

static void prom_sweep(wisp_gs_router *r, wisp_tstamp now)
{
	while (r->prom.n && r->prom_e[r->prom.head].deadline <= now)
		prom_pop(r, now, true);
}

/* ---- IDONTWANT sets ------------------------------------------------------------- */

static fp128 idw_key(const wisp_gs_router *r, fp128 k, uint32_t peer)
{
	fp128 x = { mix64(k.a ^ ((uint64_t)peer << 32 | r->peers[peer].gen)), k.b ^ peer };
	return x;
}

static void idw_pop(wisp_gs_router *r)
{
	uint32_t s = r->idw.head;
	struct idw *e = &r->idw_e[s];
	fpmap_del(&r->idw.map, r->idw.map.keys[s]);
	if (r->peers[e->peer].used && r->peers[e->peer].gen == e->gen)
		r->peers[e->peer].idw_live--;
	r->idw.head = fifo_at(&r->idw, 1);
	r->idw.n--;
}

static bool idw_has(const wisp_gs_router *r, fp128 k, uint32_t peer)
{
	return r->idw.n && fpmap_find(&r->idw.map, idw_key(r, k, peer)) != NIL;
}

static void idw_sweep(wisp_gs_router *r, wisp_tstamp now)
{
	while (r->idw.n && r->idw_e[r->idw.head].exp <= now)
		idw_pop(r);
}

/* ---- output --------------------------------------------------------------------- */

static void send_frame(wisp_gs_router *r, uint32_t peer, wisp_buf *f, int prio, wisp_tstamp exp)
{
	r->ops.send(r->ctx, peer, f, prio, exp);
}

static void ob_begin(wisp_gs_router *r, uint32_t peer)
{
	wisp_gs_rpc_clear(r->out);
	r->ob.peer = peer;
	r->ob.bytes = 0;
}

static void ob_flush(wisp_gs_router *r)
{
	wisp_gs_rpc *o = r->out;
	if (o->n_subs || o->n_msgs || o->n_ihave || o->n_iwant || o->n_graft || o->n_prune ||
	    o->n_idontwant) {
		wisp_buf *f;
		if (wisp_gs_rpc_frame(o, r->pool, &f)) {
			r->st.send_nomem++;
		} else {
			r->st.rpc_out++;
			send_frame(r, r->ob.peer, f, WISP_GS_PRIO_CONTROL, 0);
			wisp_buf_unref(f);
		}
	}
	wisp_gs_rpc_clear(o);
	r->ob.bytes = 0;
}

/* Makes room for one entry of `bytes` encoded bytes whose array holds *n of
 * cap: flushes the RPC so far when either would be passed. */
static void ob_room(wisp_gs_router *r, uint32_t n, uint32_t cap, size_t bytes)
{
	if (n >= cap || r->ob.bytes + bytes + 16 > r->cfg.lim.max_rpc)
		ob_flush(r);
	r->ob.bytes += bytes + 16;
}

static wisp_gs_bytes topic_bytes(const wisp_gs_router *r, uint32_t t)
{
	wisp_gs_bytes b = { r->topics[t].len ? tname(r, t) : NULL, r->topics[t].len };
	return b;
}

static void ob_sub(wisp_gs_router *r, uint32_t t, bool sub)
{
	ob_room(r, r->out->n_subs, r->out->lim.max_subs, r->topics[t].len);
	wisp_gs_subopt *s = &r->out->subs[r->out->n_subs++];
	s->subscribe = sub;
	s->topic = topic_bytes(r, t);
}

static void ob_graft(wisp_gs_router *r, uint32_t t)
{
	ob_room(r, r->out->n_graft, r->out->lim.max_graft, r->topics[t].len);
	r->out->graft[r->out->n_graft++] = topic_bytes(r, t);
}

/* The record ops.peer_record gives for peer, if it may be sent. */
static const uint8_t *px_record(wisp_gs_router *r, uint32_t peer, size_t *len)
{
	*len = 0;
	if (!r->ops.peer_record)
		return NULL;
	const uint8_t *rec = r->ops.peer_record(r->ctx, peer, len);
	if (!rec || *len == 0 || *len > WISP_GS_MAX_PEER_RECORD) {
		*len = 0;
		return NULL;
	}
	return rec;
}

/* px_record() within one PRUNE's share of an RPC: the records of a PRUNE
 * take at most half of max_rpc (the rest go as bare ids), so a PRUNE always
 * fits an RPC whatever px_peers and the records' sizes. *used adds up
 * what was taken; the same calls in the same order decide the same. */
static const uint8_t *px_prune_record(wisp_gs_router *r, uint32_t peer, size_t *used, size_t *len)
{
	const uint8_t *rec = px_record(r, peer, len);
	if (rec && *used + *len > r->cfg.lim.max_rpc / 2) {
		*len = 0;
		return NULL;
	}
	*used += *len;
	return rec;
}

/* PRUNE for t, with backoff and PX (up to px_peers subscribers of t scoring
 * >= 0, random, each with its signed peer record when the owner has one)
 * for peers that speak v1.1. */
static void ob_prune(wisp_gs_router *r, uint32_t t, uint64_t backoff_ns, bool px)
{
	wisp_gs_rpc *o = r->out;
	uint32_t peer = r->ob.peer;
	bool v11 = r->peers[peer].proto >= WISP_GS_PROTO_V11;
	uint32_t npx = 0;
	size_t px_bytes = 0;

	if (v11 && px && r->cfg.do_px && r->cfg.px_peers) {
		for (uint32_t ri = r->topics[t].head; ri != NIL; ri = r->recs[ri].tnext) {
			uint32_t p = r->recs[ri].peer;
			if (p != peer && !r->peers[p].expl && score(r, p) >= 0)
				r->scr[npx++] = p;
		}
		shuffle(r, r->scr, npx);
		if (npx > r->cfg.px_peers)
			npx = r->cfg.px_peers;
		size_t rec_bytes = 0;
		for (uint32_t i = 0; i < npx; i++) {
			size_t rl;
			(void)px_prune_record(r, r->scr[i], &rec_bytes, &rl);
			px_bytes += WISP_PEER_ID_MAX + 8 + rl;
		}
	}
	ob_room(r, o->n_prune, o->lim.max_prune, r->topics[t].len + px_bytes);
	if (o->n_px + npx > o->lim.max_px) {
		ob_flush(r);
		r->ob.bytes += r->topics[t].len + px_bytes + 16;
	}
	wisp_gs_prune *pr = &o->prune[o->n_prune++];
	memset(pr, 0, sizeof(*pr));
	pr->topic = topic_bytes(r, t);
	if (v11) {
		pr->has_backoff = true;
		pr->backoff = backoff_ns / WISP_NS_PER_S;
	}
	pr->px.first = o->n_px;
	size_t rec_bytes = 0;
	for (uint32_t i = 0; i < npx; i++) {
		wisp_gs_peer_info *pi = &o->px[o->n_px++];
		memset(pi, 0, sizeof(*pi));
		pi->peer_id.data = r->peers[r->scr[i]].id.bytes;
		pi->peer_id.len = r->peers[r->scr[i]].id.len;
		size_t rl;
		const uint8_t *rec = px_prune_record(r, r->scr[i], &rec_bytes, &rl);
		if (rec) {
			/* the owner keeps these bytes until this router call
			 * returns, and the RPC is encoded before that */
			pi->has_record = true;
			pi->record.data = rec;
			pi->record.len = (uint32_t)rl;
			r->st.px_out_records++;
		}
		r->st.px_out++;
		pr->px.n++;
	}
}

/* Appends one id to the open IWANT (or IDONTWANT) entry, opening one when
 * the last entry is not of that kind or the RPC was flushed. */
static void ob_id(wisp_gs_router *r, bool iwant, const uint8_t *id, size_t len)
{
	wisp_gs_rpc *o = r->out;
	if (o->n_ids >= o->lim.max_ids || r->ob.bytes + len + 8 > r->cfg.lim.max_rpc)
		ob_flush(r);
	uint32_t *n = iwant ? &o->n_iwant : &o->n_idontwant;
	wisp_gs_range *arr = iwant ? o->iwant : o->idontwant;
	uint32_t cap = iwant ? o->lim.max_iwant : o->lim.max_idontwant;
	if (!*n || arr[*n - 1].first + arr[*n - 1].n != o->n_ids) {
		if (*n >= cap)
			ob_flush(r);
		arr[*n].first = o->n_ids;
		arr[*n].n = 0;
		(*n)++;
		r->ob.bytes += 8;
	}
	o->ids[o->n_ids].data = id;
	o->ids[o->n_ids].len = (uint32_t)len;
	o->n_ids++;
	arr[*n - 1].n++;
	r->ob.bytes += len + 4;
}

/* IHAVE for t with the mcache entries gossip[first..first+n), at most the
 * peer's remaining budget for this heartbeat. */
static void ob_ihave(wisp_gs_router *r, uint32_t t, uint32_t first, uint32_t n)
{
	wisp_gs_rpc *o = r->out;
	struct peer *p = &r->peers[r->ob.peer];
	uint32_t left = r->cfg.max_ihave_length > p->ihave_out ? r->cfg.max_ihave_length - p->ihave_out : 0;
	if (n > left)
		n = left;
	uint32_t i = 0;
	while (i < n) {
		if (o->n_ihave >= o->lim.max_ihave || o->n_ids >= o->lim.max_ids ||
		    r->ob.bytes + r->topics[t].len + 32 > r->cfg.lim.max_rpc)
			ob_flush(r);
		wisp_gs_ihave *ih = &o->ihave[o->n_ihave++];
		ih->topic = topic_bytes(r, t);
		ih->ids.first = o->n_ids;
		ih->ids.n = 0;
		r->ob.bytes += r->topics[t].len + 16;
		for (; i < n && o->n_ids < o->lim.max_ids; i++) {
			uint32_t s = r->gossip[first + i];
			size_t len = r->mc_e[s].id_len;
			if (r->ob.bytes + len + 4 > r->cfg.lim.max_rpc)
				break;
			o->ids[o->n_ids].data = r->mc_ids + (size_t)s * r->cfg.lim.max_id;
			o->ids[o->n_ids].len = (uint32_t)len;
			o->n_ids++;
			ih->ids.n++;
			r->ob.bytes += len + 4;
		}
	}
	p->ihave_out += n;
}

/* Writes what the F_SEND flags of peer's records ask for into the builder
 * and clears them. */
static void ob_flags(wisp_gs_router *r, uint32_t peer)
{
	struct rec *b = peer_recs(r, peer);
	for (uint32_t k = 0; k < r->peers[peer].n_recs; k++) {
		struct rec *e = &b[k];
		if (!(e->flags & F_SEND))
			continue;
		if (e->flags & F_GRAFT)
			ob_graft(r, e->topic);
		if (e->flags & F_PRUNE)
			ob_prune(r, e->topic,
				 e->flags & F_PRUNE_UNSUB ? r->cfg.unsubscribe_backoff_ns
							  : r->cfg.prune_backoff_ns,
				 e->flags & F_PRUNE_PX);
		if (e->flags & F_IHAVE) {
			const struct topic *tp = &r->topics[e->topic];
			ob_ihave(r, e->topic, tp->g_first, tp->g_n);
		}
		e->flags &= (uint8_t)~F_SEND;
	}
}

/* ---- mesh changes by us --------------------------------------------------------- */

static void graft_rec(wisp_gs_router *r, uint32_t ri, wisp_tstamp now)
{
	mesh_add(r, ri, now);
	r->recs[ri].flags |= F_GRAFT;
	r->st.mesh_grafts++;
}

static void prune_rec(wisp_gs_router *r, uint32_t ri, bool px, wisp_gs_prune_reason why,
		      wisp_tstamp now)
{
	struct rec *e = &r->recs[ri];
	bool unsub = why == WISP_GS_PRUNED_UNSUB;
	mesh_del(r, ri, why, now);
	e->flags |= F_PRUNE | (px ? F_PRUNE_PX : 0) | (unsub ? F_PRUNE_UNSUB : 0);
	e->flags &= (uint8_t)~F_GRAFT;
	boff_add(r, e->peer, e->topic, unsub ? r->cfg.unsubscribe_backoff_ns : r->cfg.prune_backoff_ns,
		 now);
	r->st.mesh_prunes++;
}

/* ---- the enter/leave discipline and verdict queue ------------------------------- */

static void drain(wisp_gs_router *r, wisp_tstamp now);

static void enter(wisp_gs_router *r)
{
	r->depth++;
}

static void leave(wisp_gs_router *r, wisp_tstamp now)
{
	if (--r->depth == 0 && r->cq_n)
		drain(r, now);
}

static uint64_t pend_ref(const wisp_gs_router *r, uint32_t slot)
{
	return (uint64_t)r->pend[slot].gen << 32 | slot;
}

static struct pend *pend_by_ref(wisp_gs_router *r, uint64_t ref)
{
	uint32_t slot = (uint32_t)ref;
	if (slot >= r->cfg.max_pending)
		return NULL;
	struct pend *e = &r->pend[slot];
	return e->state != P_FREE && e->gen == (uint32_t)(ref >> 32) ? e : NULL;
}

static void queue_completion(wisp_gs_router *r, uint32_t slot)
{
	uint32_t i = r->cq_head + r->cq_n++;
	if (i >= r->cfg.max_pending)
		i -= r->cfg.max_pending;
	r->cq[i] = slot;
	r->pend[slot].state = P_QUEUED;
}

static uint8_t *pend_id(const wisp_gs_router *r, uint32_t slot)
{
	return r->pend_ids + (size_t)slot * r->cfg.lim.max_id;
}

static void pend_free(wisp_gs_router *r, uint32_t slot)
{
	struct pend *e = &r->pend[slot];
	fpmap_del(&r->pmap, r->pmap.keys[slot]);
	wisp_buf_unref(e->frame);
	e->frame = NULL;
	e->state = P_FREE;
	e->gen++;
	r->pfree[r->n_pfree++] = slot;
	r->topics[e->topic].n_pending--;
	topic_release(r, e->topic);
}

static bool peer_is(const wisp_gs_router *r, uint32_t peer, uint32_t gen)
{
	return peer < r->cfg.max_peers && r->peers[peer].used && r->peers[peer].gen == gen;
}

/* Sends the accepted message of slot (or own message) to mesh and explicit
 * peers of t, except skip (the origin), the peers in dup[], and peers that
 * said IDONTWANT. */
static uint32_t forward(wisp_gs_router *r, uint32_t t, wisp_buf *frame, fp128 k, const struct pend *e,
			wisp_tstamp now)
{
	const struct topic *tp = &r->topics[t];
	int prio = WISP_GS_PRIO(WISP_GS_PRIO_FORWARD, tp->prof.priority);
	wisp_tstamp exp = r->cfg.forward_ttl_ns ? sat_add(now, r->cfg.forward_ttl_ns) : 0;
	uint32_t sent = 0;
	for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext) {
		uint32_t p = r->recs[ri].peer;
		if (!(r->recs[ri].flags & F_MESH) && !r->peers[p].expl)
			continue;
		if (e) {
			/* not back to its author (go-libp2p does the same) */
			const wisp_peer_id *pid = &r->peers[p].id;
			bool skip = (peer_is(r, e->from, e->from_gen) && p == e->from) ||
				    (e->m.from.len == pid->len &&
				     !memcmp(e->m.from.data, pid->bytes, pid->len));
			for (uint32_t d = 0; d < e->n_dup && !skip; d++)
				skip = e->dup[d] == p && e->dup_gen[d] == r->peers[p].gen;
			if (skip)
				continue;
		}
		if (idw_has(r, k, p)) {
			r->st.msg_idontwant_skipped++;
			continue;
		}
		send_frame(r, p, frame, prio, exp);
		sent++;
	}
	r->st.msg_forwarded += sent;
	return sent;
}

static void finish(wisp_gs_router *r, uint32_t slot, wisp_gs_verdict v, wisp_tstamp now)
{
	struct pend *e = &r->pend[slot];
	fp128 k = r->pmap.keys[slot];
	uint32_t t = e->topic;
	bool from_ok = peer_is(r, e->from, e->from_gen);

	switch (v) {
	case WISP_GS_ACCEPT:
		r->st.msg_accepted++;
		seen_add(r, k, SEEN_ACCEPTED, now);
		mc_put(r, k, pend_id(r, slot), e->id_len, t, e->frame, e->first);
		if (from_ok)
			event(r, WISP_GS_EV_FIRST_DELIVERY, e->from, t, 0, now);
		for (uint32_t d = 0; d < e->n_dup; d++) {
			if (!peer_is(r, e->dup[d], e->dup_gen[d]))
				continue;
			uint64_t ms = (now - e->first) / WISP_NS_PER_MS;
			event(r, WISP_GS_EV_DUPLICATE, e->dup[d], t,
			      ms > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)ms, now);
		}
		if (r->topics[t].subscribed && r->ops.deliver) {
			r->st.msg_delivered++;
			r->ops.deliver(r->ctx, t, e->frame, &e->m, pend_id(r, slot), e->id_len, e->from);
		}
		forward(r, t, e->frame, k, e, now);
		break;
	case WISP_GS_REJECT:
		r->st.msg_rejected++;
		seen_add(r, k, SEEN_REJECTED, now);
		if (from_ok)
			event(r, WISP_GS_EV_INVALID, e->from, t, WISP_GS_INVALID_REJECTED, now);
		for (uint32_t d = 0; d < e->n_dup; d++)
			if (peer_is(r, e->dup[d], e->dup_gen[d]))
				event(r, WISP_GS_EV_INVALID, e->dup[d], t, WISP_GS_INVALID_REJECTED, now);
		break;
	case WISP_GS_IGNORE:
		r->st.msg_ignored++;
		seen_add(r, k, SEEN_IGNORED, now);
		break;
	case WISP_GS_IGNORE_RETRY:
		r->st.msg_retry++;
		break;
	}
	pend_free(r, slot);
}

static void start_validate(wisp_gs_router *r, uint32_t slot)
{
	struct pend *e = &r->pend[slot];
	if (!r->ops.validate) {
		e->kind = C_VALIDATED;
		e->verdict = WISP_GS_ACCEPT;
		queue_completion(r, slot);
		return;
	}
	e->state = P_VALIDATE;
	r->ops.validate(r->ctx, pend_ref(r, slot), e->topic, e->frame, &e->m, pend_id(r, slot),
			e->id_len, e->from);
}

static void complete(wisp_gs_router *r, uint32_t slot, wisp_tstamp now)
{
	struct pend *e = &r->pend[slot];
	if (e->kind == C_VERIFIED) {
		if (!e->ok) {
			r->st.msg_bad_signature++;
			if (peer_is(r, e->from, e->from_gen))
				event(r, WISP_GS_EV_INVALID, e->from, e->topic, WISP_GS_INVALID_SIGNATURE,
				      now);
			/* not seen: a forged copy must not shadow the genuine
			 * message, which may come again through gossip */
			pend_free(r, slot);
			return;
		}
		start_validate(r, slot);
		return;
	}
	finish(r, slot, (wisp_gs_verdict)e->verdict, now);
}

static void drain(wisp_gs_router *r, wisp_tstamp now)
{
	r->depth++;
	while (r->cq_n) {
		uint32_t slot = r->cq[r->cq_head];
		r->cq_head = r->cq_head + 1 == r->cfg.max_pending ? 0 : r->cq_head + 1;
		r->cq_n--;
		complete(r, slot, now);
	}
	r->depth--;
}

/* Verifies m inline (no ops.verify), with a pooled scratch buffer. */
static int verify_inline(wisp_gs_router *r, const wisp_gs_message *m)
{
	size_t need = wisp_gs_sign_bytes_size(m);
	wisp_buf *s = wisp_buf_alloc(r->pool, need);
	if (!s)
		return WISP_ERR_NOMEM;
	int rc = wisp_gs_verify(m, s->data, s->cap);
	wisp_buf_unref(s);
	return rc;
}

/* ---- received messages ---------------------------------------------------------- */

static bool policy_ok(const wisp_gs_topic_profile *p, const wisp_gs_message *m)
{
	if (p->sign == WISP_GS_SIGN_STRICT)
		return m->has_from && m->from.len && m->has_seqno &&
		       m->seqno.len == WISP_GS_SEQNO_LEN && m->has_signature;
	return !m->has_from && !m->has_seqno && !m->has_signature && !m->has_key;
}

static void send_idontwant(wisp_gs_router *r, uint32_t t, uint32_t from, const uint8_t *id,
			   size_t len)
{
	wisp_buf *f = NULL;
	for (uint32_t ri = r->topics[t].head; ri != NIL; ri = r->recs[ri].tnext) {
		uint32_t p = r->recs[ri].peer;
		if (!(r->recs[ri].flags & F_MESH) || p == from || r->peers[p].proto < WISP_GS_PROTO_V12)
			continue;
		if (!f) {
			/* the same bytes for every mesh peer: one frame */
			wisp_gs_bytes idb = { id, (uint32_t)len };
			wisp_gs_range rg = { 0, 1 };
			wisp_gs_rpc x;
			memset(&x, 0, sizeof(x));
			x.ids = &idb;
			x.n_ids = 1;
			x.idontwant = &rg;
			x.n_idontwant = 1;
			if (wisp_gs_rpc_frame(&x, r->pool, &f)) {
				r->st.send_nomem++;
				return;
			}
		}
		r->st.idontwant_out++;
		send_frame(r, p, f, WISP_GS_PRIO_CONTROL, 0);
	}
	wisp_buf_unref(f);
}

static void on_message(wisp_gs_router *r, uint32_t peer, const wisp_gs_message *m, wisp_tstamp now)
{
	r->st.msg_in++;
	int64_t ti = m->has_topic ? topic_find(r, m->topic.data, m->topic.len) : WISP_ERR_NOTFOUND;
	if (ti < 0 || !r->topics[ti].subscribed) {
		r->st.msg_not_subscribed++;
		return;
	}
	uint32_t t = (uint32_t)ti;
	struct topic *tp = &r->topics[t];
	const wisp_gs_topic_profile *prof = &tp->prof;
	uint32_t max = prof->max_size ? prof->max_size : r->cfg.lim.max_message;
	if (m->data.len > max) {
		r->st.msg_too_large++;
		event(r, WISP_GS_EV_INVALID, peer, t, WISP_GS_INVALID_TOO_LARGE, now);
		return;
	}
	if (!policy_ok(prof, m)) {
		r->st.msg_policy++;
		event(r, WISP_GS_EV_INVALID, peer, t, WISP_GS_INVALID_POLICY, now);
		return;
	}
	uint8_t id[WISP_GS_ID_MAX];
	size_t idl = wisp_gs_message_id(prof, m, id, r->cfg.lim.max_id);
	if (!idl) {
		r->st.msg_no_id++;
		event(r, WISP_GS_EV_INVALID, peer, t, WISP_GS_INVALID_NO_ID, now);
		return;
	}
	fp128 k = fp_id(r, id, idl);
	prom_fulfil(r, k);

	uint32_t s = fpmap_find(&r->seen.map, k);
	if (s != NIL) {
		r->st.msg_duplicate++;
		uint8_t status = r->seen_e[s].status;
		if (status == SEEN_REJECTED) {
			event(r, WISP_GS_EV_INVALID, peer, t, WISP_GS_INVALID_REJECTED, now);
		} else if (status == SEEN_ACCEPTED || status == SEEN_OWN) {
			uint32_t mi = fpmap_find(&r->mc.map, k);
			uint64_t ms = mi == NIL ? UINT32_MAX : (now - r->mc_e[mi].first) / WISP_NS_PER_MS;
			event(r, WISP_GS_EV_DUPLICATE, peer, t, ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms,
			      now);
		}
		return;
	}
	if (r->has_key && m->from.len == r->self.len &&
	    !memcmp(m->from.data, r->self.bytes, r->self.len)) {
		/* ours by its author field, but not in the seen cache: a replay
		 * or a forgery; never validated, never forwarded */
		r->st.msg_self++;
		return;
	}
	uint32_t slot = fpmap_find(&r->pmap, k);
	if (slot != NIL) {
		/* in validation: remember who else delivered it (not forwarded
		 * back to them; scored with the verdict) */
		struct pend *e = &r->pend[slot];
		r->st.msg_duplicate++;
		bool known = e->from == peer && e->from_gen == r->peers[peer].gen;
		for (uint32_t d = 0; d < e->n_dup && !known; d++)
			known = e->dup[d] == peer && e->dup_gen[d] == r->peers[peer].gen;
		if (!known && e->n_dup < DUP_MAX) {
			e->dup[e->n_dup] = peer;
			e->dup_gen[e->n_dup++] = r->peers[peer].gen;
		}
		return;
	}
	if (!r->n_pfree || (prof->max_validating && tp->n_pending >= prof->max_validating)) {
		r->st.msg_pending_full++;
		return;
	}

	/* the one copy: the frame it is forwarded in, and the bytes the
	 * application sees */
	wisp_buf *f;
	size_t off;
	if (wisp_gs_publish_frame(m, r->pool, &f, &off)) {
		r->st.send_nomem++;
		return;
	}
	slot = r->pfree[--r->n_pfree];
	struct pend *e = &r->pend[slot];
	e->frame = f;
	if (wisp_gs_message_decode(&e->m, f->data + off, f->len - off, &r->cfg.lim)) {
		/* cannot happen: the same bytes decoded a moment ago */
		wisp_buf_unref(f);
		e->frame = NULL;
		r->pfree[r->n_pfree++] = slot;
		return;
	}
	e->state = P_VERIFY;
	e->n_dup = 0;
	e->id_len = (uint16_t)idl;
	e->topic = t;
	e->from = peer;
	e->from_gen = r->peers[peer].gen;
	e->first = now;
	memcpy(pend_id(r, slot), id, idl);
	fpmap_put(&r->pmap, k, slot);
	tp->n_pending++;

	if (m->data.len > prof->idontwant_threshold)
		send_idontwant(r, t, peer, id, idl);

	if (prof->sign == WISP_GS_SIGN_STRICT) {
		if (r->ops.verify) {
			r->ops.verify(r->ctx, pend_ref(r, slot), e->frame, &e->m);
		} else {
			int rc = verify_inline(r, &e->m);
			if (rc == WISP_ERR_NOMEM) {
				r->st.send_nomem++;
				pend_free(r, slot);
				return;
			}
			e->kind = C_VERIFIED;
			e->ok = rc == 0;
			queue_completion(r, slot);
		}
	} else {
		start_validate(r, slot);
	}
}

int wisp_gs_router_verified(wisp_gs_router *r, uint64_t ref, bool ok, wisp_tstamp now)
{
	struct pend *e = pend_by_ref(r, ref);
	if (!e || e->state != P_VERIFY)
		return WISP_ERR_NOTFOUND;
	e->kind = C_VERIFIED;
	e->ok = ok;
	enter(r);
	queue_completion(r, (uint32_t)ref);
	leave(r, now);
	return 0;
}

int wisp_gs_router_validated(wisp_gs_router *r, uint64_t ref, wisp_gs_verdict v, wisp_tstamp now)
{
	if ((unsigned)v > WISP_GS_IGNORE_RETRY)
		return WISP_ERR_INVALID_ARG;
	struct pend *e = pend_by_ref(r, ref);
	if (!e || e->state != P_VALIDATE)
		return WISP_ERR_NOTFOUND;
	e->kind = C_VALIDATED;
	e->verdict = (uint8_t)v;
	enter(r);
	queue_completion(r, (uint32_t)ref);
	leave(r, now);
	return 0;
}

static void pend_sweep(wisp_gs_router *r, wisp_tstamp now)
{
	if (!r->cfg.validate_timeout_ns)
		return;
	for (uint32_t i = 0; i < r->cfg.max_pending; i++) {
		struct pend *e = &r->pend[i];
		if ((e->state == P_VERIFY || e->state == P_VALIDATE) &&
		    now >= sat_add(e->first, r->cfg.validate_timeout_ns)) {
			r->st.msg_validate_timeout++;
			finish(r, i, WISP_GS_IGNORE, now);
		}
	}
}

/* ---- received control ----------------------------------------------------------- */

static void on_subs(wisp_gs_router *r, uint32_t peer, wisp_tstamp now)
{
	const wisp_gs_rpc *in = r->in;
	for (uint32_t i = 0; i < in->n_subs; i++) {
		const wisp_gs_subopt *s = &in->subs[i];
		r->st.subs_in++;
		if (!s->topic.len) {
			r->st.subs_ignored++;
			continue;
		}
		int64_t t = topic_find(r, s->topic.data, s->topic.len);
		if (s->subscribe) {
			if (t >= 0 && rec_find(r, peer, (uint32_t)t) != NIL)
				continue;
			if (r->peers[peer].n_recs >= r->cfg.max_peer_subs) {
				r->st.subs_capped++;
				continue;
			}
			if (t < 0 && (t = topic_create(r, s->topic.data, s->topic.len, false)) < 0) {
				r->st.topics_capped++;
				continue;
			}
			rec_add(r, peer, (uint32_t)t);
		} else if (t >= 0) {
			uint32_t ri = rec_find(r, peer, (uint32_t)t);
			if (ri != NIL)
				rec_del(r, ri, WISP_GS_PRUNED_UNSUB, now);
		}
	}
}

static void on_ihave(wisp_gs_router *r, uint32_t peer, double sc, wisp_tstamp now)
{
	const wisp_gs_rpc *in = r->in;
	struct peer *p = &r->peers[peer];
	if (!in->n_ihave)
		return;
	r->st.ihave_in += in->n_ihave;
	if ((!p->expl && sc < r->cfg.gossip_threshold) ||
	    ++p->ihave_in > r->cfg.max_ihave_messages || p->iasked >= r->cfg.max_ihave_length) {
		r->st.ihave_ignored += in->n_ihave;
		return;
	}
	uint32_t n = 0;
	for (uint32_t i = 0; i < in->n_ihave; i++) {
		const wisp_gs_ihave *ih = &in->ihave[i];
		int64_t t = topic_find(r, ih->topic.data, ih->topic.len);
		if (t < 0 || !r->topics[t].subscribed)
			continue;
		for (uint32_t j = 0; j < ih->ids.n; j++) {
			uint32_t x = ih->ids.first + j;
			fp128 k = fp_id(r, in->ids[x].data, in->ids[x].len);
			if (fpmap_find(&r->seen.map, k) != NIL || fpmap_find(&r->pmap, k) != NIL ||
			    fpmap_find(&r->prom.map, k) != NIL)
				continue;
			r->iwscr[n++] = x;
		}
	}
	if (!n)
		return;
	/* a random subset when over budget, and one id of them (unknown to the
	 * peer) whose absence later counts as a broken promise */
	shuffle(r, r->iwscr, n);
	uint32_t left = r->cfg.max_ihave_length - p->iasked;
	if (n > left)
		n = left;
	bool scored = false;
	for (uint32_t i = 0; i < n; i++) {
		const wisp_gs_bytes *id = &in->ids[r->iwscr[i]];
		fp128 k = fp_id(r, id->data, id->len);
		if (fpmap_find(&r->prom.map, k) != NIL)
			continue; /* the same id twice in this RPC */
		if (prom_add(r, k, peer, !scored, now))
			scored = true;
		ob_id(r, true, id->data, id->len);
		p->iasked++;
		r->st.iwant_out_ids++;
	}
}

static void on_iwant(wisp_gs_router *r, uint32_t peer, double sc, wisp_tstamp now)
{
	const wisp_gs_rpc *in = r->in;
	struct peer *p = &r->peers[peer];
	if (!in->n_iwant)
		return;
	if (!p->expl && sc < r->cfg.gossip_threshold) {
		for (uint32_t i = 0; i < in->n_iwant; i++)
			r->st.iwant_in_ids += in->iwant[i].n;
		return;
	}
	wisp_tstamp exp = r->cfg.forward_ttl_ns ? sat_add(now, r->cfg.forward_ttl_ns) : 0;
	for (uint32_t i = 0; i < in->n_iwant; i++) {
		for (uint32_t j = 0; j < in->iwant[i].n; j++) {
			const wisp_gs_bytes *id = &in->ids[in->iwant[i].first + j];
			r->st.iwant_in_ids++;
			if (p->iwant_served >= r->cfg.max_iwant_serve) {
				r->st.iwant_budget++;
				continue;
			}
			uint32_t s = fpmap_find(&r->mc.map, fp_id(r, id->data, id->len));
			if (s == NIL) {
				r->st.iwant_unknown++;
				continue;
			}
			const struct mc_e *e = &r->mc_e[s];
			p->iwant_served++;
			r->st.iwant_served++;
			send_frame(r, peer, e->frame,
				   WISP_GS_PRIO(WISP_GS_PRIO_FORWARD, r->topics[e->topic].prof.priority),
				   exp);
		}
	}
}

static void on_graft(wisp_gs_router *r, uint32_t peer, double sc, wisp_tstamp now)
{
	const wisp_gs_rpc *in = r->in;
	struct peer *p = &r->peers[peer];
	bool do_px = r->cfg.do_px;
	uint32_t n_prune = 0;

	for (uint32_t i = 0; i < in->n_graft; i++) {
		r->st.graft_in++;
		int64_t ti = topic_find(r, in->graft[i].data, in->graft[i].len);
		if (ti < 0 || !r->topics[ti].subscribed) {
			/* spam hardening: ignored, and no PX to a peer probing
			 * topics we are not in */
			do_px = false;
			continue;
		}
		uint32_t t = (uint32_t)ti;
		uint32_t ri = rec_find(r, peer, t);
		if (ri != NIL && (r->recs[ri].flags & F_MESH))
			continue;
		if (p->expl) {
			/* spec: an error to GRAFT on an explicit peer; refuse with PRUNE */
			r->st.graft_refused++;
			r->gscr[n_prune++] = t;
			continue;
		}
		const struct boff *b = boff_get(r, peer, t);
		if (b && now < b->exp) {
			uint32_t pen = 1;
			if (now < sat_add(b->set_at, r->cfg.graft_flood_ns))
				pen++;
			r->st.graft_backoff++;
			event(r, WISP_GS_EV_BEHAVIOUR, peer, t, pen, now);
			do_px = false;
			boff_add(r, peer, t, r->cfg.prune_backoff_ns, now);
			r->gscr[n_prune++] = t;
			continue;
		}
		if (sc < 0) {
			r->st.graft_refused++;
			do_px = false;
			boff_add(r, peer, t, r->cfg.prune_backoff_ns, now);
			r->gscr[n_prune++] = t;
			continue;
		}
		if (r->topics[t].n_mesh >= r->cfg.d_hi && !p->outbound) {
			r->st.graft_refused++;
			boff_add(r, peer, t, r->cfg.prune_backoff_ns, now);
			r->gscr[n_prune++] = t;
			continue;
		}
		if (ri == NIL && (ri = rec_add(r, peer, t)) == NIL) {
			/* a GRAFT is a subscription too; past the peer's cap: refused */
			r->st.subs_capped++;
			r->gscr[n_prune++] = t;
			continue;
		}
		mesh_add(r, ri, now);
	}
	for (uint32_t i = 0; i < n_prune; i++)
		ob_prune(r, r->gscr[i], r->cfg.prune_backoff_ns, do_px);
}

static void on_prune(wisp_gs_router *r, uint32_t peer, double sc, wisp_tstamp now)
{
	const wisp_gs_rpc *in = r->in;
	struct peer *p = &r->peers[peer];
	for (uint32_t i = 0; i < in->n_prune; i++) {
		const wisp_gs_prune *pr = &in->prune[i];
		r->st.prune_in++;
		int64_t ti = topic_find(r, pr->topic.data, pr->topic.len);
		if (ti < 0 || !r->topics[ti].subscribed)
			continue;
		uint32_t t = (uint32_t)ti;
		uint32_t ri = rec_find(r, peer, t);
		if (ri != NIL && (r->recs[ri].flags & F_MESH))
			mesh_del(r, ri, WISP_GS_PRUNED_BY_PEER, now);
		uint64_t dur = r->cfg.prune_backoff_ns;
		if (pr->has_backoff && pr->backoff) {
			/* the peer's backoff, clamped: a huge value must not park
			 * the peer forever, a tiny one must not invite a flood */
			dur = pr->backoff > r->cfg.backoff_max_ns / WISP_NS_PER_S
				      ? r->cfg.backoff_max_ns
				      : pr->backoff * WISP_NS_PER_S;
			/* config_check: backoff_min_ns <= backoff_max_ns */
			if (dur < r->cfg.backoff_min_ns)
				dur = r->cfg.backoff_min_ns;
		}
		boff_add(r, peer, t, dur, now);
		if (!pr->px.n)
			continue;
		if (p->proto < WISP_GS_PROTO_V11 || sc < r->cfg.accept_px_threshold || !r->ops.px) {
			r->st.px_ignored += pr->px.n;
			continue;
		}
		uint32_t n = pr->px.n < r->cfg.px_peers ? pr->px.n : r->cfg.px_peers;
		r->st.px_ignored += pr->px.n - n;
		for (uint32_t j = 0; j < n; j++) {
			const wisp_gs_peer_info *pi = &in->px[pr->px.first + j];
			if (!pi->peer_id.len) {
				r->st.px_ignored++;
				continue;
			}
			r->st.px_accepted++;
			r->ops.px(r->ctx, pi->peer_id.data, pi->peer_id.len, pi->has_record ? pi->record.data : NULL,
				  pi->has_record ? pi->record.len : 0);
		}
	}
}

static void on_idontwant(wisp_gs_router *r, uint32_t peer, wisp_tstamp now)
{
	const wisp_gs_rpc *in = r->in;
	struct peer *p = &r->peers[peer];
	for (uint32_t i = 0; i < in->n_idontwant; i++) {
		for (uint32_t j = 0; j < in->idontwant[i].n; j++) {
			const wisp_gs_bytes *id = &in->ids[in->idontwant[i].first + j];
			r->st.idontwant_in++;
			if (p->idw_in >= r->cfg.max_idontwant_ids || p->idw_live >= r->cfg.max_idontwant_peer) {
				r->st.idontwant_dropped++;
				continue;
			}
			p->idw_in++;
			fp128 k = idw_key(r, fp_id(r, id->data, id->len), peer);
			if (fpmap_find(&r->idw.map, k) != NIL)
				continue;
			if (r->idw.n == r->idw.cap) {
				r->st.idontwant_dropped++;
				idw_pop(r);
			}
			uint32_t s = fifo_at(&r->idw, r->idw.n++);
			r->idw_e[s] = (struct idw){ .exp = sat_add(now, r->cfg.idontwant_ttl_ns),
						    .peer = peer,
						    .gen = p->gen };
			fpmap_put(&r->idw.map, k, s);
			p->idw_live++;
		}
	}
}

int wisp_gs_router_handle_rpc(wisp_gs_router *r, uint32_t peer, wisp_buf *buf, const uint8_t *p,
			      size_t n, wisp_tstamp now)
{
	(void)buf; /* new messages are copied into their forward frame */
	if (r->depth)
		return WISP_ERR_STATE;
	if (peer >= r->cfg.max_peers || !r->peers[peer].used || (!p && n))
		return WISP_ERR_INVALID_ARG;
	struct peer *pp = &r->peers[peer];
	r->st.rpc_in++;
	double sc = score(r, peer);
	if (!pp->expl && sc < r->cfg.graylist_threshold) {
		r->st.rpc_graylisted++;
		return 0;
	}
	int rc = wisp_gs_rpc_decode(r->in, p, n);
	if (rc) {
		r->st.rpc_bad++;
		return rc;
	}
	enter(r);
	on_subs(r, peer, now);
	for (uint32_t i = 0; i < r->in->n_msgs; i++)
		on_message(r, peer, &r->in->msgs[i], now);
	ob_begin(r, peer);
	on_idontwant(r, peer, now);
	on_ihave(r, peer, sc, now);
	on_iwant(r, peer, sc, now);
	on_graft(r, peer, sc, now);
	on_prune(r, peer, sc, now);
	ob_flush(r);
	leave(r, now);
	return 0;
}

/* ---- heartbeat ------------------------------------------------------------------ */

/* Records of t a graft may pick: not in the mesh, not explicit, not in
 * backoff, not just pruned, score >= min_score (> when strict), outbound
 * when asked. Into r->scr; returns how many. */
static uint32_t graft_candidates(wisp_gs_router *r, uint32_t t, double min_score, bool strict,
				 bool outbound_only, wisp_tstamp now)
{
	uint32_t n = 0;
	for (uint32_t ri = r->topics[t].head; ri != NIL; ri = r->recs[ri].tnext) {
		const struct rec *e = &r->recs[ri];
		const struct peer *p = &r->peers[e->peer];
		if ((e->flags & (F_MESH | F_PRUNE)) || p->expl || (outbound_only && !p->outbound))
			continue;
		if (strict ? !(p->hb_score > min_score) : !(p->hb_score >= min_score))
			continue;
		if (boff_blocks_graft(r, e->peer, t, now))
			continue;
		r->scr[n++] = ri;
	}
	return n;
}

static void graft_some(wisp_gs_router *r, uint32_t n_cand, uint32_t want, wisp_tstamp now)
{
	shuffle(r, r->scr, n_cand);
	for (uint32_t i = 0; i < n_cand && i < want; i++)
		graft_rec(r, r->scr[i], now);
}

static void sort_by_score(wisp_gs_router *r, uint32_t *a, uint32_t n)
{
	/* insertion sort: n <= max_peers, and qsort has no context argument */
	for (uint32_t i = 1; i < n; i++) {
		uint32_t x = a[i];
		double sx = r->peers[r->recs[x].peer].hb_score;
		uint32_t j = i;
		while (j > 0 && r->peers[r->recs[a[j - 1]].peer].hb_score < sx) {
			a[j] = a[j - 1];
			j--;
		}
		a[j] = x;
	}
}

static bool rec_outbound(const wisp_gs_router *r, uint32_t ri)
{
	return r->peers[r->recs[ri].peer].outbound;
}

static void maintain_mesh(wisp_gs_router *r, uint32_t t, wisp_tstamp now)
{
	struct topic *tp = &r->topics[t];
	const wisp_gs_config *c = &r->cfg;

	/* peers with a negative score leave, without PX */
	for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext)
		if ((r->recs[ri].flags & F_MESH) && r->peers[r->recs[ri].peer].hb_score < 0)
			prune_rec(r, ri, false, WISP_GS_PRUNED_SCORE, now);

	if (tp->n_mesh < c->d_lo) {
		uint32_t n = graft_candidates(r, t, 0, false, false, now);
		graft_some(r, n, c->d - tp->n_mesh, now);
	}

	if (tp->n_mesh > c->d_hi) {
		/* keep the D_score best, the rest of D at random, with at least
		 * D_out outbound peers among the D kept */
		uint32_t n = 0;
		for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext)
			if (r->recs[ri].flags & F_MESH)
				r->scr[n++] = ri;
		shuffle(r, r->scr, n);
		sort_by_score(r, r->scr, n);
		shuffle(r, r->scr + c->d_score, n - c->d_score);
		uint32_t out = 0;
		for (uint32_t i = 0; i < c->d; i++)
			out += rec_outbound(r, r->scr[i]);
		if (out < c->d_out) {
			/* bubble outbound peers to the front: first those already
			 * kept, then enough from the rest */
			uint32_t moved = 0;
			for (uint32_t i = 0; i < n && moved < c->d_out; i++) {
				if (!rec_outbound(r, r->scr[i]))
					continue;
				uint32_t x = r->scr[i];
				memmove(r->scr + moved + 1, r->scr + moved, (size_t)(i - moved) * sizeof(uint32_t));
				r->scr[moved++] = x;
			}
		}
		for (uint32_t i = c->d; i < n; i++)
			prune_rec(r, r->scr[i], true, WISP_GS_PRUNED_EXCESS, now);
	}

	if (tp->n_mesh >= c->d_lo) {
		uint32_t out = 0;
		for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext)
			if ((r->recs[ri].flags & F_MESH) && rec_outbound(r, ri))
				out++;
		if (out < c->d_out) {
			uint32_t n = graft_candidates(r, t, 0, false, true, now);
			graft_some(r, n, c->d_out - out, now);
		}
	}

	if (c->opportunistic_graft_ticks && r->tick % c->opportunistic_graft_ticks == 0 &&
	    tp->n_mesh > 1) {
		uint32_t n = 0;
		for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext)
			if (r->recs[ri].flags & F_MESH)
				r->scr[n++] = ri;
		sort_by_score(r, r->scr, n);
		double median = r->peers[r->recs[r->scr[n / 2]].peer].hb_score;
		if (median < c->opportunistic_graft_threshold) {
			uint32_t k = graft_candidates(r, t, median, true, false, now);
			graft_some(r, k, c->opportunistic_graft_peers, now);
		}
	}
}

static void fanout_fill(wisp_gs_router *r, uint32_t t, bool use_hb)
{
	struct topic *tp = &r->topics[t];
	uint32_t n = 0;
	if (tp->n_fanout >= r->cfg.d)
		return;
	for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext) {
		const struct rec *e = &r->recs[ri];
		const struct peer *p = &r->peers[e->peer];
		double sc = use_hb ? p->hb_score : score(r, e->peer);
		if (!(e->flags & F_FANOUT) && !p->expl && sc >= r->cfg.publish_threshold)
			r->scr[n++] = ri;
	}
	shuffle(r, r->scr, n);
	for (uint32_t i = 0; i < n && tp->n_fanout < r->cfg.d; i++) {
		r->recs[r->scr[i]].flags |= F_FANOUT;
		tp->n_fanout++;
		r->st.fanout++;
	}
}

static void maintain_fanout(wisp_gs_router *r, uint32_t t, wisp_tstamp now)
{
	struct topic *tp = &r->topics[t];
	if (now >= sat_add(tp->fanout_pub, r->cfg.fanout_ttl_ns)) {
		for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext)
			if (r->recs[ri].flags & F_FANOUT)
				fanout_del(r, ri);
		tp->fanout = false;
		topic_update_local(r, tp);
		topic_release(r, t);
		return;
	}
	for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext)
		if ((r->recs[ri].flags & F_FANOUT) &&
		    r->peers[r->recs[ri].peer].hb_score < r->cfg.publish_threshold)
			fanout_del(r, ri);
	if (!tp->prof.flood_publish)
		fanout_fill(r, t, true);
}

/* Gossip: per topic the ids in the last mcache_gossip windows, to
 * max(D_lazy, gossip_factor x eligible) random peers outside the mesh (or
 * fanout) scoring at least gossip_threshold. Sets F_IHAVE. */
static void emit_gossip(wisp_gs_router *r)
{
	uint64_t from = r->mc_hist[r->cfg.mcache_gossip ? r->cfg.mcache_gossip - 1 : 0];
	if (!r->cfg.mcache_gossip)
		return;
	for (uint32_t t = 0; t < r->cap_topics; t++)
		r->topics[t].g_n = 0;
	for (uint32_t i = 0; i < r->mc.n; i++) {
		const struct mc_e *e = &r->mc_e[fifo_at(&r->mc, i)];
		if (e->seq >= from)
			r->topics[e->topic].g_n++;
	}
	uint32_t acc = 0;
	for (uint32_t t = 0; t < r->cap_topics; t++) {
		r->topics[t].g_first = acc;
		acc += r->topics[t].g_n;
		r->topics[t].g_n = 0;
	}
	for (uint32_t i = 0; i < r->mc.n; i++) {
		uint32_t s = fifo_at(&r->mc, i);
		struct topic *tp = &r->topics[r->mc_e[s].topic];
		if (r->mc_e[s].seq >= from)
			r->gossip[tp->g_first + tp->g_n++] = s;
	}
	for (uint32_t t = 0; t < r->cap_topics; t++) {
		struct topic *tp = &r->topics[t];
		if (!tp->used || !tp->g_n || !(tp->subscribed || tp->fanout))
			continue;
		/* a pure publisher that floods has told every subscriber already */
		if (!tp->subscribed && tp->prof.flood_publish)
			continue;
		shuffle(r, r->gossip + tp->g_first, tp->g_n);
		uint8_t skip = tp->subscribed ? F_MESH : F_FANOUT;
		uint32_t n = 0;
		for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext) {
			const struct rec *e = &r->recs[ri];
			const struct peer *p = &r->peers[e->peer];
			if (!(e->flags & skip) && !p->expl && p->hb_score >= r->cfg.gossip_threshold)
				r->scr[n++] = ri;
		}
		uint32_t want = (uint32_t)(r->cfg.gossip_factor * n);
		if (want < r->cfg.d_lazy)
			want = r->cfg.d_lazy;
		shuffle(r, r->scr, n);
		for (uint32_t i = 0; i < n && i < want; i++)
			r->recs[r->scr[i]].flags |= F_IHAVE;
	}
}

static void heartbeat(wisp_gs_router *r, wisp_tstamp now)
{
	r->st.heartbeats++;
	r->tick++;
	for (uint32_t i = 0; i < r->cfg.max_peers; i++) {
		struct peer *p = &r->peers[i];
		if (!p->used)
			continue;
		p->hb_score = score(r, i);
		p->ihave_in = p->iasked = p->iwant_served = p->idw_in = p->ihave_out = 0;
	}
	prom_sweep(r, now);
	pend_sweep(r, now);
	seen_sweep(r, now);
	idw_sweep(r, now);
	boff_sweep(r, now);

	for (uint32_t t = 0; t < r->cap_topics; t++)
		if (r->topics[t].used && r->topics[t].subscribed)
			maintain_mesh(r, t, now);
	for (uint32_t t = 0; t < r->cap_topics; t++)
		if (r->topics[t].used && r->topics[t].fanout && !r->topics[t].subscribed)
			maintain_fanout(r, t, now);
	emit_gossip(r);

	for (uint32_t i = 0; i < r->cfg.max_peers; i++) {
		if (!r->peers[i].used)
			continue;
		ob_begin(r, i);
		ob_flags(r, i);
		ob_flush(r);
	}
	mc_shift(r);
}

wisp_tstamp wisp_gs_router_expiry(const wisp_gs_router *r)
{
	return r->next_hb;
}

int wisp_gs_router_handle_expiry(wisp_gs_router *r, wisp_tstamp now)
{
	if (r->depth)
		return WISP_ERR_STATE;
	if (now < r->next_hb)
		return 0;
	enter(r);
	heartbeat(r, now);
	leave(r, now);
	r->next_hb = sat_add(r->next_hb, r->cfg.heartbeat_ns);
	if (r->next_hb <= now)
		r->next_hb = sat_add(now, r->cfg.heartbeat_ns);
	return 0;
}

/* ---- peers, subscriptions, publishing ------------------------------------------- */

int wisp_gs_router_add_peer(wisp_gs_router *r, uint32_t peer, const wisp_peer_id *id, bool outbound,
			    bool explicit_peer, uint32_t protocol, wisp_tstamp now)
{
	if (r->depth)
		return WISP_ERR_STATE;
	if (peer >= r->cfg.max_peers || !id->len || id->len > WISP_PEER_ID_MAX ||
	    (protocol != WISP_GS_PROTO_V10 && protocol != WISP_GS_PROTO_V11 &&
	     protocol != WISP_GS_PROTO_V12))
		return WISP_ERR_INVALID_ARG;
	struct peer *p = &r->peers[peer];
	if (p->used)
		return WISP_ERR_EXISTS;
	uint32_t gen = p->gen;
	memset(p, 0, sizeof(*p));
	p->gen = gen;
	p->used = true;
	p->outbound = outbound;
	p->expl = explicit_peer;
	p->proto = (uint8_t)protocol;
	p->id = *id;
	r->st.peers++;

	enter(r);
	ob_begin(r, peer);
	for (uint32_t t = 0; t < r->cap_topics; t++)
		if (r->topics[t].used && r->topics[t].subscribed)
			ob_sub(r, t, true);
	ob_flush(r);
	leave(r, now);
	return 0;
}

void wisp_gs_router_remove_peer(wisp_gs_router *r, uint32_t peer, wisp_tstamp now)
{
	if (r->depth || peer >= r->cfg.max_peers || !r->peers[peer].used)
		return;
	struct peer *p = &r->peers[peer];
	enter(r);
	while (p->n_recs)
		rec_del(r, peer * r->cfg.max_peer_subs + p->n_recs - 1, WISP_GS_PRUNED_GONE, now);
	p->used = false;
	p->gen++;
	r->st.peers--;
	leave(r, now);
}

/* Tells every peer that we (un)subscribed t, with the GRAFTs and PRUNEs
 * the change set on its records. */
static void announce_sub(wisp_gs_router *r, uint32_t t, bool sub)
{
	for (uint32_t i = 0; i < r->cfg.max_peers; i++) {
		if (!r->peers[i].used)
			continue;
		ob_begin(r, i);
		ob_sub(r, t, sub);
		ob_flags(r, i);
		ob_flush(r);
	}
}

int wisp_gs_router_subscribe(wisp_gs_router *r, const uint8_t *topic, size_t len,
			     const wisp_gs_topic_profile *prof, wisp_tstamp now)
{
	if (r->depth)
		return WISP_ERR_STATE;
	if (!len || len > r->cfg.lim.max_topic)
		return WISP_ERR_INVALID_ARG;
	if (!prof)
		prof = &r->cfg.default_profile;
	if (profile_check(prof))
		return WISP_ERR_INVALID_ARG;
	int64_t ti = topic_find(r, topic, len);
	if (ti >= 0 && r->topics[ti].subscribed) {
		r->topics[ti].prof = *prof;
		return 0;
	}
	if (ti < 0)
		ti = topic_create(r, topic, len, true);
	else if (!r->topics[ti].local && r->n_local >= r->cfg.max_topics)
		ti = WISP_ERR_LIMIT;
	if (ti < 0)
		return WISP_ERR_LIMIT;
	uint32_t t = (uint32_t)ti;
	struct topic *tp = &r->topics[t];
	tp->subscribed = true;
	tp->prof = *prof;
	topic_update_local(r, tp);

	enter(r);
	/* the mesh starts from the fanout, then random eligible subscribers */
	for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext) {
		r->peers[r->recs[ri].peer].hb_score = score(r, r->recs[ri].peer);
		if (!(r->recs[ri].flags & F_FANOUT))
			continue;
		fanout_del(r, ri);
		if (tp->n_mesh < r->cfg.d && r->peers[r->recs[ri].peer].hb_score >= 0 &&
		    !boff_blocks_graft(r, r->recs[ri].peer, t, now))
			graft_rec(r, ri, now);
	}
	tp->fanout = false;
	if (tp->n_mesh < r->cfg.d) {
		uint32_t n = graft_candidates(r, t, 0, false, false, now);
		graft_some(r, n, r->cfg.d - tp->n_mesh, now);
	}
	announce_sub(r, t, true);
	leave(r, now);
	return 0;
}

int wisp_gs_router_unsubscribe(wisp_gs_router *r, const uint8_t *topic, size_t len, wisp_tstamp now)
{
	if (r->depth)
		return WISP_ERR_STATE;
	int64_t ti = topic_find(r, topic, len);
	if (ti < 0 || !r->topics[ti].subscribed)
		return WISP_ERR_NOTFOUND;
	uint32_t t = (uint32_t)ti;
	struct topic *tp = &r->topics[t];
	enter(r);
	for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext)
		if (r->recs[ri].flags & F_MESH)
			prune_rec(r, ri, true, WISP_GS_PRUNED_UNSUB, now);
	tp->subscribed = false;
	topic_update_local(r, tp);
	announce_sub(r, t, false);
	leave(r, now);
	topic_release(r, t);
	return 0;
}

static int pub_fail(wisp_gs_router *r, wisp_gs_publish_result *out, wisp_gs_pub_status s, int rc)
{
	out->status = s;
	r->st.pub_failed++;
	return rc;
}

int wisp_gs_router_publish(wisp_gs_router *r, const uint8_t *topic, size_t len, const uint8_t *data,
			   size_t n, wisp_tstamp now, wisp_gs_publish_result *out)
{
	memset(out, 0, offsetof(wisp_gs_publish_result, id));
	if (r->depth)
		return WISP_ERR_STATE;
	if (!len || len > r->cfg.lim.max_topic || (!data && n))
		return WISP_ERR_INVALID_ARG;
	int64_t ti = topic_find(r, topic, len);
	/* the subscription's profile (kept after an unsubscribe), else the default */
	const wisp_gs_topic_profile *prof = ti >= 0 ? &r->topics[ti].prof : &r->cfg.default_profile;
	uint32_t max = prof->max_size ? prof->max_size : r->cfg.lim.max_message;
	if (n > max)
		return pub_fail(r, out, WISP_GS_PUB_TOO_LARGE, WISP_ERR_LIMIT);
	if (prof->sign == WISP_GS_SIGN_STRICT && !r->has_key)
		return pub_fail(r, out, WISP_GS_PUB_NO_KEY, WISP_ERR_STATE);

	wisp_gs_message m;
	memset(&m, 0, sizeof(m));
	m.has_data = m.has_topic = true;
	m.data.data = n ? data : NULL;
	m.data.len = (uint32_t)n;
	m.topic.data = topic;
	m.topic.len = (uint32_t)len;
	uint8_t seqno[WISP_GS_SEQNO_LEN], sig[WISP_SIG_MAX];
	if (prof->sign == WISP_GS_SIGN_STRICT) {
		uint64_t s = ++r->seqno;
		for (int i = 7; i >= 0; i--, s >>= 8)
			seqno[i] = (uint8_t)s;
		m.has_from = m.has_seqno = m.has_signature = true;
		m.from.data = r->self.bytes;
		m.from.len = r->self.len;
		m.seqno.data = seqno;
		m.seqno.len = WISP_GS_SEQNO_LEN;
		wisp_buf *scratch = wisp_buf_alloc(r->pool, wisp_gs_sign_bytes_size(&m));
		if (!scratch)
			return pub_fail(r, out, WISP_GS_PUB_NO_MEMORY, WISP_ERR_NOMEM);
		ssize_t sl = wisp_gs_sign(&m, &r->key, scratch->data, scratch->cap, sig, sizeof(sig));
		wisp_buf_unref(scratch);
		if (sl < 0)
			return pub_fail(r, out, WISP_GS_PUB_NO_MEMORY, WISP_ERR_CRYPTO);
		m.signature.data = sig;
		m.signature.len = (uint32_t)sl;
	}
	size_t idl = wisp_gs_message_id(prof, &m, out->id, r->cfg.lim.max_id);
	if (!idl)
		return pub_fail(r, out, WISP_GS_PUB_TOO_LARGE, WISP_ERR_LIMIT);
	out->id_len = (uint32_t)idl;
	fp128 k = fp_id(r, out->id, idl);
	if (fpmap_find(&r->seen.map, k) != NIL || fpmap_find(&r->pmap, k) != NIL)
		return pub_fail(r, out, WISP_GS_PUB_DUPLICATE, WISP_ERR_EXISTS);

	if (ti < 0 && (ti = topic_create(r, topic, len, true)) < 0)
		return pub_fail(r, out, WISP_GS_PUB_NO_TOPIC, WISP_ERR_LIMIT);
	uint32_t t = (uint32_t)ti;
	struct topic *tp = &r->topics[t];
	if (!tp->subscribed) {
		if (!tp->local && r->n_local >= r->cfg.max_topics)
			return pub_fail(r, out, WISP_GS_PUB_NO_TOPIC, WISP_ERR_LIMIT);
		/* remembered for fanout_ttl: fanout peers, gossip about it */
		tp->fanout = true;
		tp->fanout_pub = now;
		topic_update_local(r, tp);
	}

	wisp_buf *f;
	if (wisp_gs_publish_frame(&m, r->pool, &f, NULL)) {
		topic_release(r, t);
		return pub_fail(r, out, WISP_GS_PUB_NO_MEMORY, WISP_ERR_NOMEM);
	}
	enter(r);
	seen_add(r, k, SEEN_OWN, now);
	mc_put(r, k, out->id, idl, t, f, now);

	int prio = WISP_GS_PRIO(WISP_GS_PRIO_PUBLISH, tp->prof.priority);
	uint32_t sent = 0;
	bool flood = tp->prof.flood_publish;
	if (!flood && !tp->subscribed && tp->n_fanout == 0)
		fanout_fill(r, t, false);
	for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext) {
		const struct rec *e = &r->recs[ri];
		const struct peer *p = &r->peers[e->peer];
		bool to;
		if (p->expl)
			to = true;
		else if (flood)
			to = score(r, e->peer) >= r->cfg.publish_threshold;
		else if (tp->subscribed)
			to = e->flags & F_MESH;
		else
			to = (e->flags & F_FANOUT) && score(r, e->peer) >= r->cfg.publish_threshold;
		if (!to)
			continue;
		if (idw_has(r, k, e->peer)) {
			r->st.msg_idontwant_skipped++;
			continue;
		}
		send_frame(r, e->peer, f, prio, 0);
		sent++;
	}
	wisp_buf_unref(f);
	leave(r, now);
	out->peers = sent;
	if (sent) {
		out->status = WISP_GS_PUB_OK;
		r->st.pub_ok++;
	} else {
		out->status = WISP_GS_PUB_NO_PEERS;
		r->st.pub_no_peers++;
	}
	return 0;
}

/* ---- creation ------------------------------------------------------------------- */

static int fifo_init(const wisp_mem *mem, struct fifo *q, uint32_t cap)
{
	q->cap = cap;
	q->head = q->n = 0;
	return fpmap_init(mem, &q->map, cap);
}

int wisp_gs_router_new(wisp_gs_router **out, const wisp_mem *mem, const wisp_gs_config *cfg,
		       const wisp_gs_ops *ops, void *ctx, const wisp_privkey *key, wisp_pool *pool,
		       wisp_tstamp now)
{
	wisp_gs_config def;
	*out = NULL;
	if (!cfg) {
		wisp_gs_config_default(&def);
		cfg = &def;
	}
	if (config_check(cfg) || !ops->send)
		return WISP_ERR_INVALID_ARG;
	uint64_t seed = cfg->seed;
	uint64_t keys[3];
	if (seed) {
		keys[0] = mix64(seed);
		keys[1] = mix64(keys[0] ^ UINT64_C(0x9e3779b97f4a7c15));
		keys[2] = mix64(keys[1] ^ UINT64_C(0x9e3779b97f4a7c15));
	} else if (getrandom(keys, sizeof(keys), 0) != (ssize_t)sizeof(keys)) {
		return WISP_ERR_IO;
	}

	wisp_gs_router *r = wisp_calloc(mem, 1, sizeof(*r));
	if (!r)
		return WISP_ERR_NOMEM;
	r->mem = mem;
	r->cfg = *cfg;
	r->ops = *ops;
	r->ctx = ctx;
	r->pool = pool;
	r->rng = keys[0] | 1;
	r->sipk[0] = keys[1];
	r->sipk[1] = keys[2];
	r->seqno = mix64(keys[0] ^ keys[2]);
	r->next_hb = sat_add(now, cfg->heartbeat_delay_ns);
	if (key) {
		r->has_key = true;
		r->key = *key;
		if (wisp_peer_id_from_pubkey(&r->self, wisp_privkey_pubkey(key))) {
			wisp_gs_router_free(r);
			return WISP_ERR_INVALID_ARG;
		}
	}

	const wisp_gs_config *c = &r->cfg;
	r->cap_topics = c->max_topics + c->max_remote_topics;
	uint32_t tsize = pow2_at_least((uint64_t)r->cap_topics * 2);
	r->tmask = tsize - 1;
	r->peers = wisp_calloc(mem, c->max_peers, sizeof(*r->peers));
	r->recs = wisp_calloc(mem, (size_t)c->max_peers * c->max_peer_subs, sizeof(*r->recs));
	r->topics = wisp_calloc(mem, r->cap_topics, sizeof(*r->topics));
	r->names = wisp_malloc(mem, (size_t)r->cap_topics * c->lim.max_topic);
	r->tslots = wisp_malloc(mem, (size_t)tsize * sizeof(*r->tslots));
	r->tfree = wisp_malloc(mem, (size_t)r->cap_topics * sizeof(*r->tfree));
	r->seen_e = wisp_calloc(mem, c->seen_cap, sizeof(*r->seen_e));
	r->mc_e = wisp_calloc(mem, c->mcache_cap, sizeof(*r->mc_e));
	r->mc_ids = wisp_malloc(mem, (size_t)c->mcache_cap * c->lim.max_id);
	r->mc_hist = wisp_calloc(mem, c->mcache_len, sizeof(*r->mc_hist));
	r->pend = wisp_calloc(mem, c->max_pending, sizeof(*r->pend));
	r->pend_ids = wisp_malloc(mem, (size_t)c->max_pending * c->lim.max_id);
	r->pfree = wisp_malloc(mem, (size_t)c->max_pending * sizeof(*r->pfree));
	r->cq = wisp_malloc(mem, (size_t)c->max_pending * sizeof(*r->cq));
	r->prom_e = wisp_calloc(mem, c->max_promises, sizeof(*r->prom_e));
	r->idw_e = wisp_calloc(mem, c->max_idontwant, sizeof(*r->idw_e));
	r->boff = wisp_calloc(mem, c->max_backoffs, sizeof(*r->boff));
	r->bfree = wisp_malloc(mem, (size_t)c->max_backoffs * sizeof(*r->bfree));
	r->scr = wisp_malloc(mem, (size_t)c->max_peers * sizeof(*r->scr));
	r->gossip = wisp_malloc(mem, (size_t)c->mcache_cap * sizeof(*r->gossip));
	r->iwscr = wisp_malloc(mem, (size_t)c->lim.max_ids * sizeof(*r->iwscr));
	r->gscr = wisp_malloc(mem, (size_t)c->lim.max_graft * sizeof(*r->gscr));
	if (!r->peers || !r->recs || !r->topics || !r->names || !r->tslots || !r->tfree ||
	    !r->seen_e || !r->mc_e || !r->mc_ids || !r->mc_hist || !r->pend || !r->pend_ids ||
	    !r->pfree || !r->cq || !r->prom_e || !r->idw_e || !r->boff || !r->bfree || !r->scr ||
	    !r->gossip || !r->iwscr || !r->gscr ||
	    fifo_init(mem, &r->seen, c->seen_cap) || fifo_init(mem, &r->mc, c->mcache_cap) ||
	    fpmap_init(mem, &r->pmap, c->max_pending) ||
	    fifo_init(mem, &r->prom, c->max_promises) ||
	    fifo_init(mem, &r->idw, c->max_idontwant) ||
	    fpmap_init(mem, &r->bmap, c->max_backoffs) ||
	    wisp_gs_rpc_new(&r->in, mem, &c->lim) || wisp_gs_rpc_new(&r->out, mem, &c->lim)) {
		wisp_gs_router_free(r);
		return WISP_ERR_NOMEM;
	}
	for (uint32_t i = 0; i < tsize; i++)
		r->tslots[i] = NIL;
	for (uint32_t i = 0; i < r->cap_topics; i++)
		r->tfree[i] = r->cap_topics - 1 - i;
	r->n_tfree = r->cap_topics;
	for (uint32_t i = 0; i < c->max_pending; i++)
		r->pfree[i] = c->max_pending - 1 - i;
	r->n_pfree = c->max_pending;
	for (uint32_t i = 0; i < c->max_backoffs; i++)
		r->bfree[i] = c->max_backoffs - 1 - i;
	r->n_bfree = c->max_backoffs;
	*out = r;
	return 0;
}

void wisp_gs_router_free(wisp_gs_router *r)
{
	if (!r)
		return;
	const wisp_mem *mem = r->mem;
	if (r->mc_e)
		for (uint32_t i = 0; i < r->mc.n; i++)
			wisp_buf_unref(r->mc_e[fifo_at(&r->mc, i)].frame);
	if (r->pend)
		for (uint32_t i = 0; i < r->cfg.max_pending; i++)
			wisp_buf_unref(r->pend[i].frame);
	fpmap_fini(mem, &r->seen.map);
	fpmap_fini(mem, &r->mc.map);
	fpmap_fini(mem, &r->pmap);
	fpmap_fini(mem, &r->prom.map);
	fpmap_fini(mem, &r->idw.map);
	fpmap_fini(mem, &r->bmap);
	wisp_gs_rpc_free(r->in);
	wisp_gs_rpc_free(r->out);
	void *arrays[] = { r->peers,  r->recs,   r->topics,    r->names, r->tslots, r->tfree,
			   r->seen_e, r->mc_e,   r->mc_ids,    r->mc_hist, r->pend, r->pend_ids,
			   r->pfree,  r->cq,     r->prom_e,    r->idw_e, r->boff,   r->bfree,
			   r->scr,    r->gossip, r->iwscr, r->gscr };
	for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
		wisp_free(mem, arrays[i]);
	OPENSSL_cleanse(&r->key, sizeof(r->key));
	wisp_free(mem, r);
}

/* ---- queries -------------------------------------------------------------------- */

void wisp_gs_router_stats_get(const wisp_gs_router *r, wisp_gs_router_stats *out)
{
	*out = r->st;
	out->topics = r->n_topics;
	out->pending = r->cfg.max_pending - r->n_pfree;
	out->mcache = r->mc.n;
	out->seen = r->seen.n;
	out->promises = r->prom.n;
	out->idontwant = r->idw.n;
	out->backoffs = r->cfg.max_backoffs - r->n_bfree;
}

int64_t wisp_gs_router_topic_index(const wisp_gs_router *r, const uint8_t *topic, size_t len)
{
	return topic_find(r, topic, len);
}

const uint8_t *wisp_gs_router_topic_name(const wisp_gs_router *r, uint32_t t, size_t *len)
{
	if (t >= r->cap_topics || !r->topics[t].used)
		return NULL;
	*len = r->topics[t].len;
	return tname(r, t);
}

int wisp_gs_router_mesh_peers(const wisp_gs_router *r, const uint8_t *topic, size_t len,
			      bool fanout, uint32_t *out, size_t cap)
{
	int64_t t = topic_find(r, topic, len);
	if (t < 0)
		return WISP_ERR_NOTFOUND;
	uint8_t want = fanout ? F_FANOUT : F_MESH;
	int n = 0;
	for (uint32_t ri = r->topics[t].head; ri != NIL; ri = r->recs[ri].tnext) {
		if (!(r->recs[ri].flags & want))
			continue;
		if ((size_t)n < cap && out)
			out[n] = r->recs[ri].peer;
		n++;
	}
	return n;
}

int wisp_gs_router_topic_peers(const wisp_gs_router *r, const uint8_t *topic, size_t len)
{
	int64_t t = topic_find(r, topic, len);
	return t < 0 ? WISP_ERR_NOTFOUND : (int)r->topics[t].n_subs;
}

int wisp_gs_router_seen(const wisp_gs_router *r, const uint8_t *id, size_t len)
{
	fp128 k = fp_id(r, id, len);
	return fpmap_find(&r->seen.map, k) != NIL || fpmap_find(&r->pmap, k) != NIL;
}

int wisp_gs_router_backoff(const wisp_gs_router *r, uint32_t peer, const uint8_t *topic, size_t len,
			   wisp_tstamp now)
{
	int64_t t = topic_find(r, topic, len);
	if (t < 0 || peer >= r->cfg.max_peers || !r->peers[peer].used)
		return 0;
	return boff_blocks_graft(r, peer, (uint32_t)t, now);
}

#define CHECK(c)                                                                                 \
	do {                                                                                     \
		if (!(c))                                                                        \
			return WISP_ERR_INTERNAL;                                                \
	} while (0)

static int check_fifo(const struct fifo *q)
{
	CHECK(q->n <= q->cap && q->head < q->cap);
	for (uint32_t i = 0; i < q->n; i++) {
		uint32_t s = fifo_at(q, i);
		uint32_t v = fpmap_find(&q->map, q->map.keys[s]);
		CHECK(v == s || v == NIL); /* NIL: fulfilled promises stay queued */
	}
	return 0;
}

int wisp_gs_router_check(const wisp_gs_router *r)
{
	const wisp_gs_config *c = &r->cfg;
	uint64_t recs = 0, n_local = 0, n_remote = 0, n_used = 0;
	uint32_t pend_per_topic_sum = 0, mc_sum = 0, boff_sum = 0;

	for (uint32_t p = 0; p < c->max_peers; p++) {
		const struct peer *pp = &r->peers[p];
		if (!pp->used) {
			CHECK(pp->n_recs == 0);
			continue;
		}
		CHECK(pp->n_recs <= c->max_peer_subs);
		recs += pp->n_recs;
		const struct rec *b = peer_recs(r, p);
		for (uint32_t k = 0; k < pp->n_recs; k++) {
			CHECK(b[k].peer == p && b[k].topic < r->cap_topics && r->topics[b[k].topic].used);
			CHECK(!(b[k].flags & F_SEND)); /* flushed before every call returns */
			CHECK(!((b[k].flags & F_MESH) && pp->expl));
			for (uint32_t j = k + 1; j < pp->n_recs; j++)
				CHECK(b[j].topic != b[k].topic);
		}
	}
	for (uint32_t t = 0; t < r->cap_topics; t++) {
		const struct topic *tp = &r->topics[t];
		if (!tp->used)
			continue;
		n_used++;
		CHECK(tp->local == (tp->subscribed || tp->fanout));
		tp->local ? n_local++ : n_remote++;
		CHECK(topic_find(r, tname(r, t), tp->len) == (int64_t)t);
		uint32_t subs = 0, mesh = 0, fan = 0, prev = NIL;
		for (uint32_t ri = tp->head; ri != NIL; ri = r->recs[ri].tnext) {
			const struct rec *e = &r->recs[ri];
			CHECK(e->topic == t && e->tprev == prev && r->peers[e->peer].used);
			CHECK(ri - e->peer * c->max_peer_subs < r->peers[e->peer].n_recs);
			CHECK(!((e->flags & F_MESH) && !tp->subscribed));
			subs++;
			mesh += (e->flags & F_MESH) != 0;
			fan += (e->flags & F_FANOUT) != 0;
			prev = ri;
			recs--;
		}
		CHECK(subs == tp->n_subs && mesh == tp->n_mesh && fan == tp->n_fanout);
		pend_per_topic_sum += tp->n_pending;
		mc_sum += tp->n_mcache;
		boff_sum += tp->n_backoff;
	}
	CHECK(recs == 0);
	CHECK(n_used == r->n_topics && n_local == r->n_local && n_remote == r->n_remote);
	CHECK(r->n_tfree + r->n_topics == r->cap_topics);
	CHECK(r->n_local <= c->max_topics);

	uint32_t used = 0;
	for (uint32_t i = 0; i < c->max_pending; i++) {
		const struct pend *e = &r->pend[i];
		if (e->state == P_FREE) {
			CHECK(!e->frame);
			continue;
		}
		used++;
		CHECK(e->frame && fpmap_find(&r->pmap, r->pmap.keys[i]) == i);
		CHECK(e->state != P_QUEUED); /* drained before every call returns */
	}
	CHECK(used + r->n_pfree == c->max_pending && used == pend_per_topic_sum);
	CHECK(r->cq_n == 0);
	CHECK(r->mc.n == mc_sum);
	for (uint32_t i = 0; i < r->mc.n; i++) {
		const struct mc_e *e = &r->mc_e[fifo_at(&r->mc, i)];
		CHECK(e->frame && r->topics[e->topic].used);
		if (i)
			CHECK(e->seq > r->mc_e[fifo_at(&r->mc, i - 1)].seq);
	}
	uint32_t b = 0;
	for (uint32_t i = 0; i < c->max_backoffs; i++)
		if (r->boff[i].used) {
			b++;
			CHECK(fpmap_find(&r->bmap, r->bmap.keys[i]) == i);
		}
	CHECK(b == boff_sum && b + r->n_bfree == c->max_backoffs);
	if (check_fifo(&r->seen) || check_fifo(&r->mc) || check_fifo(&r->prom) || check_fifo(&r->idw))
		return WISP_ERR_INTERNAL;
	for (uint32_t i = 0; i < r->seen.n; i++)
		CHECK(fpmap_find(&r->seen.map, r->seen.map.keys[fifo_at(&r->seen, i)]) != NIL);
	uint64_t idw_live = 0;
	for (uint32_t p = 0; p < c->max_peers; p++)
		if (r->peers[p].used)
			idw_live += r->peers[p].idw_live;
	CHECK(idw_live <= r->idw.n);
	CHECK(r->depth == 0);
	return 0;
}

#undef CHECK

const wisp_peer_id *wisp_gs_router_peer_id(const wisp_gs_router *r)
{
	return &r->self;
}
